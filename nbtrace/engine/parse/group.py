"""The column store of one tap prefix, and the helpers the line parser's modules share."""

from __future__ import annotations

import io
from array import array
from collections import Counter

import numpy as np

from nbtrace.engine.model import RecordColumns, TapRecord
from nbtrace.engine.parse.numbers import EXACT


class Group:
    """Records and bookkeeping of one prefix (e.g. every TRACE_C line of a file), kept as
    columns so a million-line log makes no million objects: typed arrays the line reader
    appends to, after numpy segments the bulk reader hands over whole (``sealed``)."""

    __slots__ = ("prefix", "name", "ctx", "line", "ends", "sk", "vals", "sealed", "n_sealed", "v_sealed",
                 "extras", "arity", "pending", "drop", "strings", "attached")

    def __init__(self, prefix: str):
        self.prefix = prefix
        self._new_tail()
        self.sealed: list[list[np.ndarray]] = []  # [name, ctx, line, ends, sk, vals] segments
        self.n_sealed = 0  # records in the sealed segments
        self.v_sealed = 0  # values in the sealed segments
        # position -> record not described by the columns (its occurrence is set at the end)
        self.extras: dict[int, TapRecord] = {}
        self.arity: dict[str, tuple[int, int]] = {}  # name -> (number of values, first line)
        self.pending: list[tuple[int, str, str, str]] = []  # lines not read: (line, what, hint, kind)
        self.drop: dict[int, int] = {}  # position -> line of records read but not kept (an arity change)
        self.strings = 0  # records with a text value (a banner "Note: using x" reads as one)
        self.attached = 0  # records of "PREFIX:name value" lines (no space after the colon)

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

    def spaced(self) -> bool:
        """Whether any record came from a ``PREFIX: name value`` line, the form a producer's
        per-pixel taps take (an auxiliary family such as ``TRACE_ROTATE:x=…`` prints none)."""
        free_form = sum(r.dialect != "space" for r in self.extras.values())
        return self.lines - self.attached - free_form > 0

    def last_line(self) -> int:
        if len(self.line):
            return self.line[-1]
        return int(self.sealed[-1][2][-1]) if self.sealed else 0


def dialect_digits(columns: RecordColumns, extras: dict[int, TapRecord]) -> tuple[dict, dict]:
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


def lone_cr(data: bytes, size: int) -> bool:
    """Whether data[:size] holds a carriage return not followed by a newline."""
    n = data.count(b"\r", 0, size)
    return n > 0 and data.count(b"\r\n", 0, size) != n


class Prepended(io.RawIOBase):
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
