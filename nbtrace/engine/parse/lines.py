"""The line dialects of instrumented builds, read in one streaming pass.

One file may mix every form (real C logs do): ``PREFIX: name v1 v2`` space taps (the hot path),
``PREFIX:name=value`` setup lines, ``PREFIX_PHI phi_tic=1 k_frac=…`` loop lines, ``TRACE_CONFIG``
pixel headers, free ``TRACE:`` text, and banners or progress lines that are counted and dropped.

Which prefix is the tap prefix is only known at the end (a file may open with junk that looks like
taps), so records are kept per prefix group and problems found on a group's lines wait in
``pending`` until the group is chosen: a malformed ``TRACE_C`` line is an error, a malformed
``WARNING:`` banner is not.

Two readers share that state. The line reader (``_feed_lines``) handles every line. Files and
strings arrive as bytes (``feed_raw``): nbtrace.engine.parse.blocks sorts each block's lines with numpy,
and runs of lines that need no judgement (clean taps of one prefix, pixel headers, empty lines)
are read in bulk (``_bulk_run``: one split and one ``float`` map per run, digits counted with
numpy), the rest by the line reader, in file order. Both give the same records, counts and
errors (tests/nbtrace/test_parse_bulk.py compares them on generated odd logs). Occurrences are
counted once at the end, over the columns, for both.
"""

from __future__ import annotations

import codecs
import io
import re
from array import array
from collections import Counter
from itertools import islice
from typing import Iterable

import numpy as np

from nbtrace.errors import TraceError
from nbtrace.engine.model import KINDS, LazyRecords, RecordColumns, SourceLoc, TapIndex, TapRecord, Trace, first_positions
from nbtrace.engine.parse import blocks
from nbtrace.engine.parse.numbers import EXACT, _digits, first_bad, is_int_token, parse_eq_value, record_digits

FREE = "TRACE"  # free-text prefix of the C build and the earlier port
HEADER = "TRACE_CONFIG"
INDEX_KEYS = frozenset({"source", "mos", "phi", "subpixel", "layer", "thick", "sub"})
LOOP_SUFFIX_KEYS = {"PHI": "phi_tic", "MOS": "mos_tic", "SOURCE": "source", "SRC": "source"}
MIN_COMPETING = 3  # tap lines a second prefix needs before a file counts as mixing two producers
FORMS = ("space", "eq", "loop")
CHUNK = 2048  # lines per call of the line reader when it reads a text stream
BLOCK_BYTES = 1 << 22  # bytes per block of the bulk reader: bounds its memory, amortises numpy calls
MIN_RUN = 64  # lines in a row the bulk reader must be able to take before it is worth a call
_IS_INT = re.compile(rb"[+-]?[0-9]+").fullmatch  # is_int_token for the ASCII tokens of the bulk reader

_PIXEL_CONFIG = re.compile(r"\b(?:spixel|slow)\s*=\s*(-?\d+)\s*,?\s*(?:fpixel|fast)\s*=\s*(-?\d+)")
_PIXEL_CONFIG_FS = re.compile(r"\b(?:fpixel|fast)\s*=\s*(-?\d+)\s*,?\s*(?:spixel|slow)\s*=\s*(-?\d+)")
_PIXEL_BANNER = re.compile(r"^=+\s*TRACE:?\s*Pixel\s*\(\s*(-?\d+)\s*,\s*(-?\d+)\s*\)\s*(?:\[\s*(\w+)\s*,\s*(\w+)\s*\])?",
                           re.IGNORECASE)
PIVOT_LINE = "pivoting detector around "
_FORTRAN_EXP = re.compile(r"^([-+]?(?:\d+\.?\d*|\.\d+))[dD](?=[-+]?\d+$)")
_FREE_TAP = re.compile(r"^([A-Za-z_]\w*)\s*(=)?\s+(\S.*)$")

# sigdigits and the kind code share one column entry (sigdigits * 8 + kind)
assert len(KINDS) <= 8


class _Group:
    """Records and bookkeeping of one prefix (e.g. every TRACE_C line of a file), kept as
    columns so a million-line log makes no million objects: typed arrays the line reader
    appends to, after numpy segments the bulk reader hands over whole (``sealed``)."""

    __slots__ = ("prefix", "name", "ctx", "line", "ends", "sk", "vals", "sealed", "n_sealed", "v_sealed",
                 "extras", "arity", "pending")

    def __init__(self, prefix: str):
        self.prefix = prefix
        self._new_tail()
        self.sealed: list[list[np.ndarray]] = []  # [name, ctx, line, ends, sk, vals] segments
        self.n_sealed = 0  # records in the sealed segments
        self.v_sealed = 0  # values in the sealed segments
        # position -> record not described by the columns (its occurrence is set at the end)
        self.extras: dict[int, TapRecord] = {}
        self.arity: dict[str, tuple[int, int]] = {}  # name -> (number of values, first line)
        self.pending: list[tuple[int, str, str, str]] = []  # (line, what, hint, kind)

    def _new_tail(self) -> None:
        # typed arrays, not lists: 8 bytes an entry instead of a pointer plus an int object
        self.name = array("q")  # name code per record
        self.ctx = array("q")  # (pixel, loop) code per record
        self.line = array("q")
        self.ends = array("q")  # end offset of each record's components in all the values
        self.sk = array("q")  # sigdigits * 8 + kind code
        self.vals = array("d")

    @property
    def lines(self) -> int:
        """Records so far."""
        return self.n_sealed + len(self.name)

    @property
    def n_values(self) -> int:
        return self.v_sealed + len(self.vals)

    def push(self, name, ctx, line, ends, sk, vals) -> None:
        """Append a segment of records as numpy arrays (int64 ..., float64 values; not copied)."""
        self._seal()
        self._add([name, ctx, line, ends, sk, vals])

    def _seal(self) -> None:
        if len(self.name) or len(self.vals):
            ints = [np.array(a, dtype=np.int64) for a in (self.name, self.ctx, self.line, self.ends, self.sk)]
            self._add([*ints, np.array(self.vals, dtype=np.float64)])
            self._new_tail()

    def _add(self, segment) -> None:
        self.sealed.append(segment)
        self.n_sealed += len(segment[0])
        self.v_sealed += len(segment[5])

    def column(self, k: int, final: bool = False) -> np.ndarray:
        """Field k of (name, ctx, line, ends, sk, vals) over every record, as one array.
        ``final``: the segments' copies of the field are dropped (at the end, one field at a
        time, so that joining the segments never holds every column twice)."""
        tail = (self.name, self.ctx, self.line, self.ends, self.sk, self.vals)[k]
        parts = [seg[k] for seg in self.sealed]
        if len(tail) or not parts:
            parts.append(np.frombuffer(tail, dtype=np.float64 if k == 5 else np.int64))
        out = parts[0] if len(parts) == 1 else np.concatenate(parts)
        if final:
            for seg in self.sealed:
                seg[k] = None
        return out

    def last_line(self) -> int:
        if len(self.line):
            return self.line[-1]
        return int(self.sealed[-1][2][-1]) if self.sealed else 0


class LineParser:
    """Feed it lines (with their newlines); ``finish()`` returns the Trace."""

    def __init__(self, path: str, dialect: str = "auto", prefix: str | None = None):
        self.path = path
        self.forms = frozenset(FORMS) if dialect in (None, "auto") else frozenset({dialect})
        self.want_prefix = prefix
        self.groups: dict[str, _Group] = {}
        self.pixel: tuple[int, int] | None = None
        self.pixels: list[tuple[int, int]] = []
        self.pixel_set: set[tuple[int, int]] = set()
        self.context: list[tuple[SourceLoc, str]] = []
        self.free_lines: dict[int, str] = {}
        self.counts = Counter()
        self.warnings: list[str] = []
        self.name_ids: dict[str, int] = {}
        self.name_list: list[str] = []
        self.ctx_ids: dict[tuple, int] = {}
        self.ctx_list: list[tuple] = []
        self.last_line = 0
        self.last_raw = ""
        self.nul_line = 0
        self.pivot: str | None = None  # from nanoBragg's "pivoting detector around ..." line

    # ------------------------------------------------------------------ the streaming loop
    def feed(self, lines: Iterable[str]) -> None:
        """Parse ``lines`` (text with their newlines) with the line reader, a chunk at a time."""
        it = iter(lines)
        while True:
            chunk = list(islice(it, CHUNK))
            if not chunk:
                return
            self._feed_lines(chunk)

    def feed_raw(self, raw) -> None:
        """Parse a binary stream of UTF-8 text (a leading BOM is dropped), as ``feed`` would parse
        it decoded with universal newlines.

        Blocks of BLOCK_BYTES, cut after their last newline, are sorted line by line with numpy
        (nbtrace.engine.parse.blocks); runs of at least MIN_RUN lines the bulk reader can take (clean
        taps of one prefix, pixel headers, empty lines) are read in one go, everything else goes
        through the line reader, in file order, so both share one state. A carriage return
        that does not end a line with "\n" hands the rest of the stream to ``feed`` (such a
        carriage return is a line break of its own); "\r\n" line ends are read in bulk.
        """
        carry = b""
        first = True
        while True:
            chunk = raw.read(BLOCK_BYTES)
            if first:
                first = False
                if chunk.startswith(codecs.BOM_UTF8):
                    chunk = chunk[len(codecs.BOM_UTF8):]
            if not chunk:
                if _lone_cr(carry, len(carry)):
                    self._feed_text(carry, raw)
                elif carry:
                    self._feed_block(carry + blocks.PAD, len(carry))
                return
            cut = chunk.rfind(b"\n") + 1
            if not cut:
                carry += chunk
                continue
            block = b"".join((carry, chunk[:cut], blocks.PAD))
            size = len(carry) + cut
            carry = chunk[cut:]
            if _lone_cr(block, size) or b"\r" in carry[:-1]:
                self._feed_text(block[:size] + carry, raw)
                return
            self._feed_block(block, size)

    def _feed_text(self, head: bytes, raw) -> None:
        """The rest of the stream (``head``, then ``raw``) through the line reader."""
        stream = io.TextIOWrapper(io.BufferedReader(_Prepended(head, raw)), encoding="utf-8", newline=None)
        self.feed(stream)

    def _feed_block(self, data: bytes, size: int) -> None:
        """The lines of ``data[:size]`` (``data`` ends with blocks.PAD), in order."""
        lines = blocks.scan(data, size, self._tap_prefix_ok)
        kind = lines.kind
        n = len(kind)
        other = kind == blocks.OTHER
        brk = np.zeros(n + 1, dtype=bool)
        brk[0] = brk[n] = True
        brk[1:n] = other[1:] != other[:-1]
        taps = np.flatnonzero(kind == blocks.TAP)
        if taps.size > 1:  # a new prefix starts a new run
            brk[taps[1:][lines.prefix[taps[1:]] != lines.prefix[taps[:-1]]]] = True
        cuts = np.flatnonzero(brk).tolist()
        pending = None  # a range of lines waiting for the line reader
        base = self.last_line
        for a, b in zip(cuts[:-1], cuts[1:]):
            if not other[a] and b - a >= MIN_RUN:
                if pending is not None:
                    self._line_range(lines, size, *pending)
                    pending = None
                if self._bulk_run(lines, base, a, b):
                    continue
            pending = (pending[0] if pending is not None else a, b)
        if pending is not None:
            self._line_range(lines, size, *pending)

    def _line_range(self, lines, size: int, a: int, b: int) -> None:
        """Lines a..b-1 of a block through the line reader."""
        text = lines.data[int(lines.starts[a]):int(lines.stops[b - 1])].decode("utf-8")
        if "\r" in text:  # only in "\r\n" line ends here: universal newlines make them "\n"
            text = text.replace("\r\n", "\n")
        parts = text.split("\n")
        last = parts.pop()
        out = [p + "\n" for p in parts]
        if last:
            out.append(last)
        self._feed_lines(out)

    def _tap_prefix_ok(self, prefix: str) -> bool:
        return prefix not in (FREE, HEADER) and prefix.isidentifier()

    def _feed_lines(self, lines: Iterable[str]) -> None:
        """Parse ``lines`` one by one; the space-form tap is the hot path."""
        space_ok = "space" in self.forms
        name_ids = self.name_ids
        prefix_ok: dict[str, _Group | None] = {}
        lineno = self.last_line
        raw = self.last_raw
        blank = 0
        # Per (group, pixel) state, refreshed whenever either changes: the group's column
        # appenders (bound methods, looked up once per pixel, not per line). Occurrences are
        # counted at the end, over the columns.
        cur_group = cur_pixel = None
        arity: dict[str, tuple[int, int]] = {}
        vals = array("d")
        ctx = 0
        pixel = self.pixel
        for raw in lines:
            lineno += 1
            parts = raw.split()
            if not parts:
                blank += 1
                continue
            tok = parts[0]
            # A tap line starts at column 0 ("  Mean: 12.9" in a banner is not a tap).
            if space_ok and tok[-1] == ":" and raw[0] == tok[0]:
                group = prefix_ok.get(tok)
                if group is None and tok not in prefix_ok:
                    group = prefix_ok[tok] = self._space_group(tok[:-1])
                if group is not None:
                    toks = parts[2:]
                    if toks and parts[1].isidentifier():
                        if group is not cur_group or pixel is not cur_pixel:
                            cur_group, cur_pixel = group, pixel
                            arity = group.arity
                            vals = group.vals
                            v0 = group.v_sealed  # ends count every value of the group
                            ctx = self._ctx(pixel, ())
                            add_name, add_ctx = group.name.append, group.ctx.append
                            add_line, add_end, add_sk = group.line.append, group.ends.append, group.sk.append
                        start = len(vals)
                        try:
                            vals.extend(map(float, toks))
                        except ValueError:
                            del vals[start:]  # a partly converted line leaves nothing behind
                        else:
                            name = parts[1]
                            nid = name_ids.get(name)
                            if nid is None:
                                nid = self._new_name(name)
                            nv = len(toks)
                            seen = arity.get(name)
                            if seen is None:
                                arity[name] = (nv, lineno)
                            elif seen[0] != nv:
                                self._arity_problem(group, name, nv, seen, lineno)
                            if nv == 1:
                                # _digits inlined for the common plain decimal scalar (no call
                                # per line); exponents, zeros and multi-value lines take _digits
                                t = toks[0]
                                d = t.lstrip("+-0.")
                                if not d or "e" in d or "E" in d:
                                    digits = _digits(t)
                                elif "." in t:
                                    digits = len(d) - ("." in d)
                                else:
                                    digits = 0
                            else:
                                digits = max(map(_digits, toks))
                            if digits:
                                sk = digits * 8  # kind "number"
                            else:
                                sk = EXACT * 8 + (1 if all(map(is_int_token, toks)) else 0)
                            add_name(nid)
                            add_ctx(ctx)
                            add_line(lineno)
                            add_end(v0 + start + nv)
                            add_sk(sk)
                            continue
                    self._space_slow(group, parts[1:], lineno)
                    continue
            line = raw.rstrip()
            tok, _, rest = line.partition(" ")
            self._slow(line, tok, rest, lineno)
            pixel = self.pixel  # only the slow path (a pixel header) moves it
        self.counts["blank_lines"] += blank
        self.last_line = lineno
        self.last_raw = raw

    # ------------------------------------------------------------------ the bulk path
    def _bulk_run(self, lines, base: int, a: int, b: int) -> bool:
        """Read lines a..b-1 of a block (taps of one prefix, pixel headers, empty lines) in one go;
        False, with nothing changed, when a line needs the line reader's judgement (a value
        ``float`` refuses, a tap whose arity differs from its first line)."""
        kind = lines.kind[a:b]
        taps = a + np.flatnonzero(kind == blocks.TAP)
        heads = a + np.flatnonzero(kind == blocks.HEADER)
        if taps.size:
            got = self._bulk_taps(lines, taps, base)
            if got is None:
                return False
            group, names, values, sk, nvs = got
        pixels = self._bulk_headers(lines, heads, base)
        self.counts["blank_lines"] += int(np.count_nonzero(kind == blocks.BLANK))
        if taps.size:
            seg = np.searchsorted(heads, taps)  # headers before each tap: index into pixels
            # seg never decreases, so its distinct values come in order of their first record,
            # the order in which the line reader numbers contexts
            new = np.empty(len(seg), dtype=bool)
            new[0] = True
            np.not_equal(seg[1:], seg[:-1], out=new[1:])
            ctx = np.array(self._ctxs([(pixels[k], ()) for k in seg[new].tolist()]), dtype=np.int64)
            group.push(names.astype(np.int64, copy=False), ctx[np.cumsum(new) - 1], taps + (base + 1),
                       np.cumsum(nvs) + group.n_values, sk.astype(np.int64, copy=False), values)
        self.last_line = base + b
        last = lines.data[int(lines.starts[b - 1]):int(lines.ends[b - 1])]
        self.last_raw = last.decode("ascii") + "\n"
        return True

    def _bulk_taps(self, lines, taps: np.ndarray, base: int):
        """(group, global name codes, values, sigdigits*8+kind, arities) of the tap lines, or None."""
        group = self._group(lines.prefixes[int(lines.prefix[taps[0]])])
        local = lines.name[taps]
        nvs = lines.nv[taps]
        # the run's names, in order of first appearance (the order the line reader registers
        # new names in), and the arity of each one's first line
        first = first_positions(local)
        codes = local[first]
        arity_of = np.zeros(len(lines.names), dtype=np.int64)
        arity_of[codes] = nvs[first]
        if np.any(nvs != arity_of[local]):
            return None  # an arity change: the line reader words the problem
        for c, i in zip(codes.tolist(), first.tolist()):
            seen = group.arity.get(lines.names[c])
            if seen is not None and seen[0] != int(nvs[i]):
                return None
        vb, length = blocks.value_bytes(lines, taps)
        toks = vb.split()
        if len(toks) != len(length):  # cannot happen for clean lines; never guess
            return None
        try:
            values = np.fromiter(map(float, toks), dtype=np.float64, count=len(toks))
        except ValueError:
            return None  # the line reader names the bad value and its line
        sk = self._bulk_sk(vb, length, nvs, toks, values)
        ids = np.zeros(len(lines.names), dtype=np.int64)
        for c, i in zip(codes.tolist(), first.tolist()):
            name = lines.names[c]
            nid = self.name_ids.get(name)
            ids[c] = self._new_name(name) if nid is None else nid
            if name not in group.arity:  # its first line, as the line reader records it
                group.arity[name] = (int(nvs[i]), base + 1 + int(taps[i]))
        return group, ids[local], values, sk, nvs

    @staticmethod
    def _bulk_sk(vb: bytes, length, nvs, toks: list, values) -> np.ndarray:
        """sigdigits * 8 + kind of each tap, by the line reader's rule (numbers._digits)."""
        digits = blocks.token_digits(vb, length)
        first_tok = np.zeros(len(nvs), dtype=np.int64)
        np.cumsum(nvs[:-1], out=first_tok[1:])
        per = np.maximum.reduceat(digits, first_tok)
        out = per * 8
        exact = np.flatnonzero(per == 0)
        if exact.size:
            # every component is an integer or inf/nan: "int" unless one is inf/nan (or spelt
            # with an underscore, which float() accepts and is_int_token does not)
            in_exact = np.flatnonzero(np.repeat(per == 0, nvs))
            if b"_" in vb:
                ok = np.fromiter((_IS_INT(toks[i]) is not None for i in in_exact.tolist()), dtype=bool,
                                 count=len(in_exact))
            else:
                ok = np.isfinite(values[in_exact])
            bad_rec = np.repeat(np.arange(len(exact)), nvs[exact])[~ok]
            is_int = np.ones(len(exact), dtype=bool)
            is_int[bad_rec] = False
            out[exact] = EXACT * 8 + is_int
        return out

    def _bulk_headers(self, lines, heads: np.ndarray, base: int) -> list:
        """Apply the pixel headers in order; the pixel in force before the first header and
        after each one."""
        pixels = [self.pixel]
        if not heads.size:
            return pixels
        slow, fast, canon = blocks.canonical_headers(lines, heads)
        for i, s, f, ok in zip(heads.tolist(), slow.tolist(), fast.tolist(), canon.tolist()):
            if ok:
                self._set_pixel(s, f, base + i + 1)
            else:
                text = lines.data[int(lines.starts[i]):int(lines.ends[i])].decode("ascii")
                self._header(text.rstrip(), base + i + 1)
            pixels.append(self.pixel)
        return pixels

    def _new_name(self, name: str) -> int:
        nid = self.name_ids[name] = len(self.name_list)
        self.name_list.append(name)
        return nid

    def _ctx(self, pixel, loop) -> int:
        """The code of a (pixel, loop) context, shared by every group."""
        key = (pixel, loop)
        got = self.ctx_ids.get(key)
        if got is None:
            got = self.ctx_ids[key] = len(self.ctx_list)
            self.ctx_list.append(key)
        return got

    def _ctxs(self, keys: list) -> list[int]:
        """_ctx of each (pixel, loop) key, numbered in this order when new."""
        got = list(map(self.ctx_ids.get, keys))
        if None in got:
            got = [self._ctx(*key) if c is None else c for key, c in zip(keys, got)]
        return got

    def _space_group(self, prefix: str) -> _Group | None:
        """The group of a ``PREFIX:`` token, or None when it is not a tap prefix (free text, header)."""
        if prefix in (FREE, HEADER) or not prefix.isidentifier():
            return None
        return self._group(prefix)

    def _group(self, prefix: str) -> _Group:
        group = self.groups.get(prefix)
        if group is None:
            group = self.groups[prefix] = _Group(prefix)
        return group

    # ------------------------------------------------------------------ slow paths
    def _space_slow(self, group: _Group, parts: list[str], lineno: int) -> None:
        """A ``PREFIX: ...`` line that is not a clean numeric tap."""
        if not parts or not parts[0].isidentifier():
            self._ignored(lineno)
            return
        name = parts[0]
        if len(parts) > 1 and self._fortran_tap(group, name, parts[1:], lineno):
            return
        if len(parts) == 1:
            self._pending(group, lineno, f"tap {name!r} has no value",
                          "a space-form tap is 'PREFIX: name v1 [v2 v3]'", "novalue")
        else:
            fixed = [_FORTRAN_EXP.sub(r"\1e", t) for t in parts[1:]]
            bad = parts[1:][fixed.index(first_bad(fixed))]
            self._pending(group, lineno, f"tap {name!r} has a non-numeric value {bad!r}",
                          "values must be numbers (inf, -inf, nan allowed); fix the producer's printf",
                          "nonnumeric")
        self._ignored(lineno)

    def _fortran_tap(self, group: _Group, name: str, tokens: list[str], lineno: int) -> bool:
        """``1.0D+00`` exponents (Fortran producers): read them as the numbers they are."""
        fixed = [_FORTRAN_EXP.sub(r"\1e", t) for t in tokens]
        values = _floats(fixed)
        if values is None:
            return False
        seen = group.arity.get(name)
        if seen is None:
            group.arity[name] = (len(values), lineno)
        elif seen[0] != len(values):
            self._arity_problem(group, name, len(values), seen, lineno)
        self._append(group, name, values, (), lineno, record_digits(fixed), "number", "space")
        return True

    def _slow(self, line: str, tok: str, rest: str, lineno: int) -> None:
        if tok == FREE + ":":
            self._free(rest, line, lineno)
            return
        if tok == HEADER + ":":
            self._header(line, lineno)
            return
        if line.startswith("="):
            if self._banner_header(line, lineno):
                return
        colon = tok.find(":")
        if colon > 0 and colon < len(tok) - 1:
            if self._eq(line, lineno):
                return
        elif colon < 0 and rest and "_" in tok and tok.isidentifier():
            if self._loop(tok, rest, lineno):
                return
        if "\x00" in line and not self.nul_line:
            self.nul_line = lineno
        if line.startswith(PIVOT_LINE) and self.pivot is None:
            # nanoBragg says which pivot it used only in words; the spec's when: edges need it
            self.pivot = "SAMPLE" if line[len(PIVOT_LINE):].strip().startswith("sample") else "BEAM"
        self._ignored(lineno)

    def _ignored(self, lineno: int) -> None:
        self.counts["ignored_lines"] += 1

    def _pending(self, group: _Group, lineno: int, what: str, hint: str, kind: str) -> None:
        group.pending.append((lineno, what, hint, kind))

    def _arity_problem(self, group: _Group, name: str, n: int, seen: tuple[int, int], lineno: int) -> None:
        self._pending(group, lineno, f"tap {name!r} has {n} value(s) here but {seen[0]} at line {seen[1]}",
                      "a tap keeps its arity within a trace; check the producer prints every component",
                      "arity")

    # ------------------------------------------------------------------ pixel headers
    def _header(self, line: str, lineno: int) -> None:
        m = _PIXEL_CONFIG.search(line)
        if m:
            self._set_pixel(int(m.group(1)), int(m.group(2)), lineno)
            return
        m = _PIXEL_CONFIG_FS.search(line)
        if m:
            self._set_pixel(int(m.group(2)), int(m.group(1)), lineno)
            return
        self._context(line, lineno)

    def _banner_header(self, line: str, lineno: int) -> bool:
        m = _PIXEL_BANNER.match(line)
        if not m:
            return False
        first, second = int(m.group(1)), int(m.group(2))
        order = (m.group(3) or "slow").lower()
        if order.startswith("f") or order == "x":
            first, second = second, first
        self._set_pixel(first, second, lineno)
        return True

    def _set_pixel(self, slow: int, fast: int, lineno: int) -> None:
        self.pixel = (slow, fast)
        if self.pixel not in self.pixel_set:
            self.pixel_set.add(self.pixel)
            self.pixels.append(self.pixel)
        self.counts["header_lines"] += 1

    # ------------------------------------------------------------------ free text
    def _free(self, rest: str, line: str, lineno: int) -> None:
        """``TRACE: name v1 v2`` / ``TRACE: name = v1 v2`` are taps; anything else is context."""
        # Indented TRACE: lines are steps of a narrative (the C build's "TRACE:   a = [...]");
        # only unindented "TRACE: name numbers" lines are the earlier port's taps.
        m = _FREE_TAP.match(rest) if "space" in self.forms and rest[:1] != " " else None
        if m:
            tokens = m.group(3).split()
            values = _floats(tokens)
            if values is not None:
                group = self._group(FREE)
                name = m.group(1)
                digits = record_digits(tokens)
                seen = group.arity.get(name)
                if seen is None or seen[0] == len(values):
                    group.arity.setdefault(name, (len(values), lineno))
                    kind = "int" if digits == EXACT and all(map(is_int_token, tokens)) else "number"
                    self._append(group, name, values, (), lineno, digits, kind, "free")
                    self.free_lines[lineno] = line
                    return
        self._context(line, lineno)

    def _context(self, line: str, lineno: int) -> None:
        self.context.append((SourceLoc(self.path, lineno), line))

    # ------------------------------------------------------------------ = form
    def _eq(self, line: str, lineno: int) -> bool:
        prefix, _, after = line.partition(":")
        if prefix in (FREE, HEADER) or not prefix.isidentifier() or after[:1].isspace():
            return False
        key, eq, value = after.partition("=")
        if not eq or not key.isidentifier():
            return False
        if "eq" not in self.forms:
            return False
        parsed = parse_eq_value(value)
        group = self._group(prefix)
        if parsed.kind != "string":
            seen = group.arity.get(key)
            if seen is None:
                group.arity[key] = (len(parsed.values), lineno)
            elif seen[0] != len(parsed.values):
                self._arity_problem(group, key, len(parsed.values), seen, lineno)
        self._append(group, key, parsed.values, (), lineno, parsed.sigdigits, parsed.kind, "eq",
                     text=value if parsed.kind in ("string", "matrix", "labelled") else None,
                     labels=parsed.labels, shape=parsed.shape)
        return True

    # ------------------------------------------------------------------ loop lines
    def _loop(self, tok: str, rest: str, lineno: int) -> bool:
        tokens = rest.split()
        base, _, suffix = tok.rpartition("_")
        if not base:
            return False
        if tokens[0].endswith(":") and is_int_token(tokens[0][:-1]):
            return self._loop_indexed(base, suffix, tokens, lineno)
        pairs = [t.partition("=") for t in tokens]
        if any(not eq or not k.isidentifier() for k, eq, _ in pairs):
            return False
        loop = tuple(sorted((k, int(v)) for k, _, v in pairs if _is_index_key(k) and is_int_token(v)))
        if not loop:
            return False
        if "loop" not in self.forms:
            return False
        group = self._group(base)
        index_keys = {k for k, _ in loop}
        for key, _, value in pairs:
            if key in index_keys:
                continue
            try:
                number = float(value)
            except ValueError:
                self._pending(group, lineno, f"loop tap {key!r} has a non-numeric value {value!r}",
                              "loop lines are 'PREFIX_PHI phi_tic=N key=number ...'", "nonnumeric")
                continue
            digits = record_digits((value,))
            kind = "int" if digits == EXACT and is_int_token(value) else "number"
            self._append(group, key, (number,), loop, lineno, digits, kind, "loop")
        return True

    def _loop_indexed(self, base: str, suffix: str, tokens: list[str], lineno: int) -> bool:
        """``TRACE_PY_SOURCE 2: source_weight 1``: the index follows the loop's own prefix."""
        if len(tokens) < 3 or not tokens[1].isidentifier() or "loop" not in self.forms:
            return False
        group = self._group(base)
        loop = ((LOOP_SUFFIX_KEYS.get(suffix.upper(), suffix.lower()), int(tokens[0][:-1])),)
        values = _floats(tokens[2:])
        if values is None:
            self._pending(group, lineno, f"loop tap {tokens[1]!r} has a non-numeric value "
                          f"{first_bad(tokens[2:])!r}", "values must be numbers", "nonnumeric")
            return True
        digits = record_digits(tokens[2:])
        self._append(group, tokens[1], values, loop, lineno, digits, "number", "loop")
        return True

    # ------------------------------------------------------------------ records
    def _append(self, group: _Group, name: str, values, loop, lineno: int, digits: int, kind: str,
                dialect: str, *, text=None, labels=(), shape=None) -> None:
        """A record from a slow path: columns for the engine, and the whole record kept aside."""
        nid = self.name_ids.get(name)
        if nid is None:
            nid = self._new_name(name)
        pixel = self.pixel
        values = tuple(values)
        group.extras[group.lines] = TapRecord(name, values, TapIndex(pixel, loop, 0), SourceLoc(self.path, lineno),
                                                  digits, kind, text, tuple(labels), dialect, None, shape)
        group.name.append(nid)
        group.ctx.append(self._ctx(pixel, loop))
        group.line.append(lineno)
        group.vals.extend(values)
        group.ends.append(group.n_values)
        group.sk.append(digits * 8 + KINDS.index(kind))

    # ------------------------------------------------------------------ the end
    def finish(self, *, ends_with_newline: bool, tried: str) -> Trace:
        if self.nul_line:
            raise TraceError("binary content (NUL byte)", f"{self.path}:{self.nul_line}",
                             "this is not a text trace; give the producer's stdout log")
        chosen = self._choose(tried)
        self._check_pending(chosen, ends_with_newline)
        if not ends_with_newline and self.last_line and chosen.lines and chosen.last_line() == self.last_line:
            self.warnings.append(f"{self.path}:{self.last_line}: the last line has no newline; "
                                 "the trace may be truncated (the value was kept as printed)")
        self._drop_others(chosen)
        return self._trace(chosen)

    def _choose(self, tried: str) -> _Group:
        groups = {p: g for p, g in self.groups.items() if g.lines}
        if self.want_prefix is not None:
            g = groups.get(self.want_prefix)
            if g is None:
                seen = ", ".join(sorted(groups)) or "none"
                raise TraceError(f"no taps with prefix {self.want_prefix!r}", self.path,
                                 f"prefixes with taps in this file: {seen}")
            return g
        if not groups:
            raise self._nothing_found(tried)
        real = {p: g for p, g in groups.items() if p != FREE}
        if not real:
            return groups[FREE]
        ranked = sorted(real.values(), key=lambda g: -g.lines)
        competing = [g for g in ranked if g.lines >= MIN_COMPETING]
        if len(competing) >= 2:
            a, b = competing[0], competing[1]
            first_b = int(b.column(2).min())
            raise TraceError(
                f"the file mixes two tap prefixes, {a.prefix} ({a.lines} taps) and {b.prefix} "
                f"({b.lines} taps, the first here)", f"{self.path}:{first_b}",
                f"split the log per producer (grep '^{a.prefix}[:_ ]'), or select one with "
                f"prefix={a.prefix!r} (Python) / --prefix-a and --prefix-b, one of {a.prefix}, {b.prefix} each "
                f"(nbtrace diff) / --prefix {a.prefix} (nbtrace taps init)")
        return ranked[0]

    def _nothing_found(self, tried: str) -> TraceError:
        candidates = [(ln, what) for g in self.groups.values() for ln, what, _, _ in g.pending]
        hint = f"dialects tried: {tried}; a tap line looks like 'TRACE_C: name 1.5 2.5'"
        if candidates:
            ln, what = min(candidates)
            hint += f"; the nearest candidate, line {ln}: {what}"
        return TraceError("no trace lines found", self.path, hint)

    def _check_pending(self, chosen: _Group, ends_with_newline: bool) -> None:
        for lineno, what, hint, kind in chosen.pending:
            if lineno == self.last_line and not ends_with_newline:
                if kind == "arity":
                    self.warnings.append(f"{self.path}:{lineno}: {what}; the file ends without a newline, "
                                         "so the last line looks truncated")
                    continue
                raise TraceError(f"the file ends mid-line: {what}", f"{self.path}:{lineno}",
                                 "the trace looks truncated; rerun the producer or drop the partial last line")
            raise TraceError(what, f"{self.path}:{lineno}", hint)

    def _drop_others(self, chosen: _Group) -> None:
        """Records of other prefixes become context (free text) or ignored lines (stray prefixes)."""
        for prefix, group in self.groups.items():
            if group is chosen or not group.lines:
                continue
            if prefix == FREE:
                self.context.extend((SourceLoc(self.path, ln), self.free_lines[ln]) for ln in group.column(2).tolist())
                continue
            lines = set(group.column(2).tolist())
            self.counts["ignored_lines"] += len(lines)
            self.warnings.append(f"{self.path}: {len(lines)} line(s) with prefix {prefix!r} ignored "
                                 f"(the taps are {chosen.prefix!r}; first at line {min(lines)})")

    def _trace(self, chosen: _Group) -> Trace:
        self.context.sort(key=lambda c: c[0].line)
        columns = self._columns(chosen)
        for pos, rec in chosen.extras.items():
            n = int(columns.occurrence[pos])
            if n:
                chosen.extras[pos] = rec._replace(index=rec.index._replace(occurrence=n))
        dialects, digits = _dialect_digits(columns, chosen.extras)
        meta = {
            "lines": self.last_line,
            "blank_lines": self.counts["blank_lines"],
            "ignored_lines": self.counts["ignored_lines"],
            "context_lines": len(self.context),
            "header_lines": self.counts["header_lines"],
            "warnings": self.warnings,
            "dialects": dialects,
            "format_digits": digits,
            "prefixes": {p: g.lines for p, g in self.groups.items() if g.lines},
        }
        if self.pivot is not None:
            meta["pivot"] = self.pivot
        dialect = next(iter(dialects)) if len(dialects) == 1 else ("mixed" if dialects else "space")
        return Trace(path=self.path, records=LazyRecords(columns, self.path, chosen.extras), prefix=chosen.prefix,
                     dialect=dialect, pixels=tuple(self.pixels), context=tuple(self.context), meta=meta)

    def _columns(self, g: _Group) -> RecordColumns:
        """The group's columns as read-only numpy arrays (views of the parser's own arrays when
        there is a single segment: the parser is done with them)."""
        name, ctx, line, ends, sk, vals = (g.column(k, final=True) for k in range(6))
        offsets = np.zeros(len(ends) + 1, dtype=np.int64)
        offsets[1:] = ends
        out = [name, ctx, line, vals, offsets, sk >> 3, sk & 7, occurrences(ctx, name, len(self.name_list))]
        for a in out:
            a.flags.writeable = False
        return RecordColumns(tuple(self.name_list), name, tuple(self.ctx_list), ctx, out[7], line, offsets, vals,
                             out[5], out[6])


def _dialect_digits(columns: RecordColumns, extras: dict[int, TapRecord]) -> tuple[dict, dict]:
    """Records per dialect (in order of first appearance) and the most digits each dialect shows."""
    first: dict[str, int] = {}
    counts: Counter = Counter()
    digits: dict[str, int] = {}
    for pos, r in sorted(extras.items()):
        first.setdefault(r.dialect, pos)
        counts[r.dialect] += 1
        if r.sigdigits != EXACT and r.sigdigits > digits.get(r.dialect, 0):
            digits[r.dialect] = r.sigdigits
    n_space = len(columns) - len(extras)
    if n_space:
        plain = np.ones(len(columns), dtype=bool)
        plain[list(extras)] = False
        first_plain = int(np.argmax(plain))
        counts["space"] += n_space
        first["space"] = min(first.get("space", first_plain), first_plain)
        sig = columns.sigdigits[plain]
        sig = sig[sig != EXACT]
        if sig.size:
            digits["space"] = max(digits.get("space", 0), int(sig.max()))
    dialects = {d: counts[d] for d in sorted(first, key=first.__getitem__)}
    return dialects, digits


def occurrences(ctx: np.ndarray, name: np.ndarray, n_names: int) -> np.ndarray:
    """TapIndex.occurrence of each record: how many earlier records share its context (pixel and
    loop) and name ((n,) int64 codes in, (n,) int64 out)."""
    n = len(name)
    if not n:
        return np.zeros(0, dtype=np.int64)
    key = ctx * max(n_names, 1) + name
    span = int(key.max()) + 1
    if span <= 4 * n + 1024 and np.bincount(key, minlength=span).max() <= 1:
        return np.zeros(n, dtype=np.int64)  # every (context, name) once: no sort needed
    order = np.argsort(key, kind="stable")
    k = key[order]
    run_start = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
    counts = np.diff(np.r_[run_start, n])
    out = np.empty(n, dtype=np.int64)
    out[order] = np.arange(n) - np.repeat(run_start, counts)
    return out


def _lone_cr(data: bytes, size: int) -> bool:
    """Whether data[:size] holds a carriage return not followed by a newline."""
    n = data.count(b"\r", 0, size)
    return n > 0 and data.count(b"\r\n", 0, size) != n


class _Prepended(io.RawIOBase):
    """A raw stream that yields ``head`` and then what ``rest`` (a binary stream) still holds."""

    def __init__(self, head: bytes, rest):
        self.head, self.rest = memoryview(head), rest

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        if self.head:
            n = min(len(b), len(self.head))
            b[:n] = self.head[:n]
            self.head = self.head[n:]
            return n
        return self.rest.readinto(b)


def _is_index_key(key: str) -> bool:
    return key.endswith("_tic") or key in INDEX_KEYS


def _floats(tokens):
    try:
        return tuple(map(float, tokens))
    except ValueError:
        return None
