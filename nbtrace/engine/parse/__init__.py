"""Read traces: every dialect real instrumented nanoBragg builds print, sniffed automatically.

``read_trace(path)`` streams the file (memory grows with the number of taps, not the size of the
text); ``parse_text(text)`` reads a string the same way. ``dialect=`` forces one form:

* ``"space"``  ``PREFIX: name v1 [v2 v3]`` (and the earlier port's ``TRACE: name v1 ...``)
* ``"eq"``     ``PREFIX:name=value`` setup lines (vectors, ``[a b c; ...]`` matrices, ``X:1 Y:2``, text)
* ``"loop"``   ``PREFIX_PHI phi_tic=1 k_frac=...`` and ``PREFIX_SOURCE 2: source_weight 1``
* ``"jsonl"``  one JSON object per line
* ``"auto"`` / None: all line forms at once (a file may mix them), or JSON Lines when the first
  non-blank line is a JSON object.

``prefix=`` selects one producer's taps in a file that holds two (``TRACE_C`` and ``TRACE_PY``).
Problems are :class:`~nbtrace.errors.TraceError` with ``file:line`` and a hint.
"""

from __future__ import annotations

import codecs
import gc
import io
import os

from nbtrace.errors import NbtraceError, TraceError, UsageError
from nbtrace.engine.model import Trace
from nbtrace.engine.parse.jsonl import JsonlParser
from nbtrace.engine.parse.lines import LineParser
from nbtrace.engine.parse.numbers import shown

DIALECTS = ("auto", "space", "eq", "loop", "jsonl")
_LINE_FORMS = "space (PREFIX: name v1 ...), eq (PREFIX:name=value), loop (PREFIX_PHI key=value ...)"
_SNIFF_BYTES = 8192

# Below this (both files together) a worker process costs more than it saves.
PARALLEL_MIN_BYTES = 4_000_000

__all__ = ["DIALECTS", "read_trace", "read_traces", "parse_text"]


def read_trace(path, dialect: str | None = None, prefix: str | None = None) -> Trace:
    """The trace in the file at ``path``; see the module docstring for ``dialect`` and ``prefix``.

    The file is opened once and read as a stream, so pipes work too
    (``nbtrace diff <(./c_build ...) <(python -m nbtrace.sim ...)``).
    """
    dialect = _check_dialect(dialect)
    path = os.fspath(path)
    raw = _open(path)
    wide = _wide_encoding(raw)
    if wide is not None:  # UTF-16/32 with a byte order mark (Windows tools write these): decoded, read by line
        with io.TextIOWrapper(raw, encoding=wide, newline=None, errors="strict") as stream:
            try:
                text = stream.read()
            except UnicodeDecodeError:
                raise TraceError(f"not valid {wide.upper()} text (undecodable bytes)", path,
                                 "re-save the log as UTF-8") from None
        return parse_text(text, path, dialect, prefix)
    with io.TextIOWrapper(raw, encoding="utf-8-sig", newline=None) as stream:
        head = _sniff(raw, path)
        try:
            return _parse(stream, path, dialect, prefix, head.decode("utf-8", "replace"), raw=raw)
        except UnicodeDecodeError:
            where = f"{path}:{_first_undecodable_line(path)}" if os.path.isfile(path) else path
            raise TraceError("not UTF-8 text (undecodable bytes)", where,
                             "this looks binary or in another encoding; give the producer's text log") from None


def read_traces(path_a, path_b, dialect: str | None = None, prefix_a: str | None = None,
                prefix_b: str | None = None) -> tuple[Trace, Trace]:
    """Both sides of a diff, as ``read_trace`` reads each (errors of A are raised first).

    Large regular files are parsed at the same time, B in a forked worker process (parsing is
    CPU-bound, so two cores halve the wait); the worker writes B's record columns into memory
    shared with this process (an anonymous shared mapping made before the fork: no copy, no
    pickling of the big arrays) and pickles only the rest. Anything unusual (no fork, small
    files, pipes, a worker that dies) falls back to reading one after the other.
    """
    worker = _start_worker(path_b, dialect, prefix_b) if _worth_parallel(path_a, path_b) else None
    if worker is None:
        return read_trace(path_a, dialect, prefix_a), read_trace(path_b, dialect, prefix_b)
    proc, conn, shared = worker
    try:
        a = read_trace(path_a, dialect, prefix_a)
        b = _worker_result(proc, conn, shared)
    finally:
        conn.close()
        if proc.is_alive():
            proc.terminate()  # only when A failed: B's result is no longer wanted
        proc.join()
    if b is None:  # the worker died without an answer (killed, out of memory): do it here
        b = read_trace(path_b, dialect, prefix_b)
    return a, b


def _worth_parallel(path_a, path_b) -> bool:
    try:
        sizes = [os.stat(p) for p in (path_a, path_b)]
    except (OSError, TypeError, ValueError):
        return False
    import stat

    if not all(stat.S_ISREG(st.st_mode) for st in sizes):
        return False
    return sum(st.st_size for st in sizes) >= PARALLEL_MIN_BYTES


def _start_worker(path, dialect, prefix):
    """(process, pipe end, shared mapping or None) of a worker parsing ``path``."""
    import multiprocessing

    shared = _shared_memory(path)
    try:
        ctx = multiprocessing.get_context("fork")
        recv, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_worker, args=(send, os.fspath(path), dialect, prefix, shared), daemon=True)
        proc.start()
    except (ValueError, OSError):
        return None
    send.close()
    return proc, recv, shared


def _shared_memory(path):
    """An anonymous shared mapping for the worker's columns: 16 bytes per byte of the file, more
    than any space-form trace needs (a record takes a line of at least 7 bytes and 56 bytes of
    columns, a value 2 bytes and 8); only address space, pages are allocated as the worker
    writes them. None when the system refuses it; columns that do not fit are pickled."""
    import mmap

    try:
        size = os.stat(path).st_size
        return mmap.mmap(-1, 16 * size + (1 << 20))
    except (OSError, ValueError, OverflowError):
        return None


_SHARED_FIELDS = ("name", "context", "occurrence", "line", "offsets", "values", "sigdigits", "kind")


def _to_shared(trace: Trace, shared):
    """``trace`` with its column arrays moved into ``shared``: (trace without records, columns
    without arrays, {field: (offset, dtype, count)}, extras) — or None when they do not fit."""
    from dataclasses import replace

    import numpy as np

    from nbtrace.engine.model import LazyRecords

    recs = trace.records
    if not isinstance(recs, LazyRecords):
        return None
    cols = recs.columns
    where, at = {}, 0
    for field in _SHARED_FIELDS:
        arr = np.ascontiguousarray(getattr(cols, field))
        if at + arr.nbytes > len(shared):
            return None
        np.frombuffer(shared, dtype=arr.dtype, count=len(arr), offset=at)[:] = arr
        where[field] = (at, arr.dtype.str, len(arr))
        at += -(-arr.nbytes // 8) * 8
    bare = replace(cols, **{f: None for f in _SHARED_FIELDS})
    return replace(trace, records=()), bare, where, recs.extras


def _from_shared(payload, shared) -> Trace:
    from dataclasses import replace

    import numpy as np

    from nbtrace.engine.model import LazyRecords

    trace, bare, where, extras = payload
    arrays = {}
    for field, (at, dtype, count) in where.items():
        arr = np.frombuffer(shared, dtype=dtype, count=count, offset=at)
        arr.flags.writeable = False
        arrays[field] = arr
    return replace(trace, records=LazyRecords(replace(bare, **arrays), trace.path, extras))


def _worker(conn, path, dialect, prefix, shared=None) -> None:
    from nbtrace.engine.forkwork import reply

    def compute():
        try:
            trace = read_trace(path, dialect, prefix)
            payload = _to_shared(trace, shared) if shared is not None else None
            return ("ok", trace) if payload is None else ("shared", payload)
        except NbtraceError as exc:  # re-raised in the parent with its what / where / hint intact
            return ("error", type(exc), exc.what, exc.where, exc.hint)

    # a bug, or a result that cannot be sent: "crash", and the parent reads B itself
    reply(conn, compute)


def _worker_result(proc, conn, shared=None) -> Trace | None:
    try:
        result = conn.recv()
    except (EOFError, OSError):
        return None
    if result[0] == "ok":
        return result[1]
    if result[0] == "shared":
        return _from_shared(result[1], shared)
    if result[0] == "error":
        _, cls, what, where, hint = result
        raise cls(what, where, hint)
    return None


def parse_text(text: str, path: str = "<string>", dialect: str | None = None,
               prefix: str | None = None) -> Trace:
    """The trace in ``text``, reported as if read from ``path``."""
    dialect = _check_dialect(dialect)
    if not text or text.isspace():
        raise TraceError("empty trace", path, "the producer printed nothing; check it ran with tracing on")
    if "\x00" in text[:_SNIFF_BYTES]:
        raise TraceError("binary content (NUL byte)", path, "this is not a text trace")
    if text.startswith("\ufeff"):  # a BOM, as read_trace's utf-8-sig decoding drops it
        text = text[1:]
    try:
        raw = io.BytesIO(text.encode("utf-8"))  # the bulk reader takes bytes
    except UnicodeEncodeError:  # lone surrogates: only the line reader reads those
        raw = None
    return _parse(io.StringIO(text, newline=None), path, dialect, prefix, text[:_SNIFF_BYTES], raw=raw)


def _check_dialect(dialect: str | None) -> str:
    dialect = "auto" if dialect is None else dialect
    if dialect not in DIALECTS:
        raise UsageError(f"unknown dialect {shown(dialect)}", hint="use one of: " + ", ".join(DIALECTS))
    return dialect


def _open(path: str) -> io.BufferedReader:
    if os.path.isdir(path):
        raise TraceError("is a directory, not a trace file", path, "give the path of a trace log")
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise TraceError("no such file", path, "check the path") from None
    except OSError as exc:
        raise TraceError(f"cannot read: {exc.strerror}", path, "check the path and its permissions") from None


def _wide_encoding(raw: io.BufferedReader) -> str | None:
    """"utf-16" / "utf-32" when the file opens with that encoding's byte order mark."""
    try:
        head = raw.peek(4)[:4]
    except OSError:
        return None  # _sniff words the error
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return "utf-32"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    return None


def _sniff(raw: io.BufferedReader, path: str) -> bytes:
    """The first bytes (peeked, not consumed), after refusing what cannot be a text trace."""
    try:
        head = raw.peek(_SNIFF_BYTES)[:_SNIFF_BYTES]
    except OSError as exc:
        raise TraceError(f"cannot read: {exc.strerror}", path, "check the path and its permissions") from None
    if not head:
        raise TraceError("empty file", path, "the producer printed nothing; check it ran with tracing on")
    if b"\x00" in head:
        line = head[: head.index(b"\x00")].count(b"\n") + 1
        raise TraceError("binary content (NUL byte)", f"{path}:{line}",
                         "this is not a text trace; give the producer's stdout log")
    return head


def _first_undecodable_line(path: str) -> int:
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return lineno
    return 1


def _parse(stream, path: str, dialect: str, prefix: str | None, head: str, raw=None) -> Trace:
    """Parse ``stream`` (text), or ``raw``, the same bytes undecoded, when given and the bulk
    reader can help (a line dialect that includes the space form)."""
    use_jsonl = dialect == "jsonl" or (dialect == "auto" and head.lstrip("\ufeff \t\r\n").startswith("{"))
    if use_jsonl:
        parser = JsonlParser(path)
        tried = "jsonl"
    else:
        parser = LineParser(path, dialect, prefix)
        tried = _LINE_FORMS if dialect == "auto" else dialect
    if raw is not None and not use_jsonl and "space" in parser.forms:
        _feed(parser.feed_raw, raw)
    else:
        _feed(parser.feed, stream)
    last = getattr(parser, "last_raw", None)
    if parser.last_line == _blank_count(parser):
        raise TraceError("empty trace (only blank lines)", path, "the producer printed nothing")
    ends_with_newline = last is None or last.endswith("\n")
    return parser.finish(ends_with_newline=ends_with_newline, tried=tried)


def _feed(feed, source) -> None:
    # Records are acyclic tuples, so the cyclic collector has nothing to find in them; left on, it
    # rescans the growing record list again and again and doubles the parse time of large logs.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        feed(source)
    finally:
        if was_enabled:
            gc.enable()


def _blank_count(parser) -> int:
    if isinstance(parser, JsonlParser):
        return parser.blank
    return parser.counts["blank_lines"]
