"""The trace model shared by every stage: parse -> align -> compare -> localize -> report.

Records are NamedTuples (immutable). A ``Trace`` is an ordered sequence of records plus
provenance metadata. Nothing downstream re-parses text.

A parsed trace of a million lines does not hold a million record objects: the parser fills
:class:`RecordColumns` (numpy arrays, a few dozen bytes per record) and ``Trace.records`` is a
:class:`LazyRecords` view that builds a ``TapRecord`` only when one is asked for — the engine
aligns and compares on the columns, and a report shows a handful of records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np


class SourceLoc(NamedTuple):
    file: str
    line: int  # 1-based

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


class TapIndex(NamedTuple):
    """Where in the computation a value was tapped.

    pixel: (slow, fast) or None for setup taps printed before any pixel header.
    loop: sorted tuple of (key, int) pairs, e.g. (("phi_tic", 3),) for loop taps; () otherwise.
    occurrence: 0-based count of earlier records with the same (name, pixel, loop) in the
        trace — the subpixel / thickness-layer repeat number for per-subpixel taps.
    """

    pixel: tuple[int, int] | None
    loop: tuple[tuple[str, int], ...]
    occurrence: int


class TapRecord(NamedTuple):
    """One printed value.

    name: the name as printed (canonicalisation through spec aliases happens in align).
    values: tuple of floats (ints are stored as floats, ``is_int`` remembers it); () for strings.
    text: the raw value text for string / labelled / matrix values, else None.
    sigdigits: significant digits printed (see below; 17 for exact integers).
    kind: "number" | "int" | "string" | "matrix" | "labelled".
    labels: component labels for labelled values ("X:1 Y:2" -> ("X", "Y")), else ().
    dialect: the form the line was printed in: "space", "eq", "loop", "free" (a ``TRACE:``
        free-text line of the exact shape ``TRACE: name v1 ...``) or "jsonl".
    unit: the unit the producer declared for this value (JSON Lines ``"unit"``), else None.
    shape: (rows, cols) for a matrix value, else None (the values are then flat).

    ``sigdigits`` is the most significant digits any non-integer component shows: one line is
    printed with one format and %g-style formats strip trailing zeros, so the longest component
    is the best lower bound of the format's precision; integers (and non-finite values) are
    exact and count 17. A short value such as ``0.1`` printed by ``%.15g`` therefore counts 1:
    ``Trace.meta["format_digits"]`` holds the most digits seen per dialect as a second opinion.
    """

    name: str
    values: tuple[float, ...]
    index: TapIndex
    loc: SourceLoc
    sigdigits: int = 17
    kind: str = "number"
    text: str | None = None
    labels: tuple[str, ...] = ()
    dialect: str = "space"
    unit: str | None = None
    shape: tuple[int, int] | None = None


@dataclass(frozen=True)
class Trace:
    """An ordered trace of one side.

    prefix: the trace prefix seen (e.g. "TRACE_C"), or None for prefix-less dialects (JSON Lines).
    pixels: the pixels announced by headers (``TRACE_CONFIG``), in order, as (slow, fast).
    context: free-text lines kept as (SourceLoc, text) — low-precision context, never an error.
    meta: provenance (producer, argv, binary checksum, dtype, what the producer said it read, ...).
        The parser adds: "lines", "blank_lines", "ignored_lines", "context_lines", "header_lines",
        "unread_lines" (lines of the producer that could not be read, kept as context),
        "warnings" (list of str), "dialects" (records per dialect), "format_digits" (per dialect),
        "prefixes" (records per tap prefix seen, before one prefix was chosen).
    """

    path: str
    records: tuple[TapRecord, ...]  # or a LazyRecords view (parsed traces): index, iterate, len
    prefix: str | None = None
    dialect: str = "space"
    pixels: tuple[tuple[int, int], ...] = ()
    context: tuple[tuple[SourceLoc, str], ...] = ()
    meta: dict = field(default_factory=dict)

    def names(self) -> list[str]:
        if isinstance(self.records, LazyRecords):
            cols = self.records.columns
            return [cols.names[cols.name[i]] for i in _first_appearance(cols.name)]
        seen: dict[str, None] = {}
        for r in self.records:
            seen.setdefault(r.name, None)
        return list(seen)

    def __len__(self) -> int:
        return len(self.records)

    def columns(self) -> RecordColumns:
        """The records as columns (built once from plain record tuples, free for parsed traces)."""
        recs = self.records
        if isinstance(recs, LazyRecords):
            return recs.columns
        cached = self.__dict__.get("_columns")
        if cached is None:
            cached = RecordColumns.from_records(recs)
            object.__setattr__(self, "_columns", cached)  # a cache, not state: the records are frozen
        return cached


KINDS = ("number", "int", "string", "matrix", "labelled")
_KIND_CODE = {k: i for i, k in enumerate(KINDS)}
Context = tuple  # (pixel or None, loop tuple): where a record was tapped, without its occurrence


@dataclass(frozen=True, eq=False)
class RecordColumns:
    """Every record of one trace as parallel arrays (n = number of records).

    names: the printed-name table; name: (n,) int64 codes into it.
    contexts: table of (pixel, loop) pairs; context: (n,) int64 codes into it.
    occurrence, line: (n,) int64 (TapIndex.occurrence, 1-based source line).
    offsets: (n + 1,) int64; the components of record i are values[offsets[i]:offsets[i + 1]].
    values: flat float64 of every component. sigdigits: (n,) int64. kind: (n,) int64 codes into KINDS.
    """

    names: tuple[str, ...]
    name: np.ndarray
    contexts: tuple[Context, ...]
    context: np.ndarray
    occurrence: np.ndarray
    line: np.ndarray
    offsets: np.ndarray
    values: np.ndarray
    sigdigits: np.ndarray
    kind: np.ndarray

    def __len__(self) -> int:
        return len(self.name)

    @property
    def arity(self) -> np.ndarray:
        return np.diff(self.offsets)

    @classmethod
    def from_records(cls, records) -> RecordColumns:
        names: dict[str, int] = {}
        contexts: dict[Context, int] = {}
        n = len(records)
        name = np.empty(n, dtype=np.int64)
        context = np.empty(n, dtype=np.int64)
        occurrence = np.empty(n, dtype=np.int64)
        line = np.empty(n, dtype=np.int64)
        sig = np.empty(n, dtype=np.int64)
        kind = np.empty(n, dtype=np.int64)
        offsets = np.zeros(n + 1, dtype=np.int64)
        flat: list[float] = []
        for i, r in enumerate(records):
            name[i] = names.setdefault(r.name, len(names))
            context[i] = contexts.setdefault((r.index.pixel, r.index.loop), len(contexts))
            occurrence[i] = r.index.occurrence
            line[i] = r.loc.line
            sig[i] = r.sigdigits
            kind[i] = _KIND_CODE.get(r.kind, 0)
            flat.extend(r.values)
            offsets[i + 1] = len(flat)
        return cls(tuple(names), name, tuple(contexts), context, occurrence, line, offsets,
                   np.asarray(flat, dtype=np.float64), sig, kind)


def _first_appearance(codes: np.ndarray) -> list[int]:
    """Positions of the first record of each code, in trace order."""
    return first_positions(codes).tolist() if codes.size else []


def first_positions(codes: np.ndarray) -> np.ndarray:
    """Position of the first occurrence of each distinct code (small non-negative ints), in order.

    The codes of a log (names) usually all show up within its first lines: prefixes of growing
    length are searched until every code present has been seen, instead of sorting them all."""
    need = int(np.count_nonzero(np.bincount(codes)))
    found: dict[int, int] = {}
    start, step = 0, 1024
    while len(found) < need:
        u, idx = np.unique(codes[start:start + step], return_index=True)
        for c, i in zip(u.tolist(), idx.tolist()):
            found.setdefault(c, start + i)
        start += step
        step *= 4
    return np.array(sorted(found.values()), dtype=np.int64)


class LazyRecords(Sequence):
    """``Trace.records`` of a parsed trace: a read-only sequence of TapRecord built on demand.

    Records that the columns cannot describe alone (text, labels, a matrix shape, a declared
    unit, a non-space dialect) are kept whole in ``extras`` {position: TapRecord}; all others
    are space-form numeric taps of ``path``. Iterating builds records as it goes (stopping early
    costs only what was read); ``materialize()`` builds and keeps the full tuple.
    """

    __slots__ = ("columns", "path", "extras", "_all")

    def __init__(self, columns: RecordColumns, path: str, extras: dict[int, TapRecord]):
        self.columns, self.path, self.extras = columns, path, extras
        self._all: tuple[TapRecord, ...] | None = None

    def __len__(self) -> int:
        return len(self.columns)

    def _build(self, i: int) -> TapRecord:
        rec = self.extras.get(i)
        if rec is not None:
            return rec
        c = self.columns
        pixel, loop = c.contexts[c.context[i]]
        lo, hi = int(c.offsets[i]), int(c.offsets[i + 1])
        return TapRecord(c.names[c.name[i]], tuple(c.values[lo:hi].tolist()),
                         TapIndex(pixel, loop, int(c.occurrence[i])), SourceLoc(self.path, int(c.line[i])),
                         int(c.sigdigits[i]), KINDS[c.kind[i]])

    def __getitem__(self, i):
        if self._all is not None:
            return self._all[i]
        if isinstance(i, slice):
            return tuple(self._build(j) for j in range(*i.indices(len(self))))
        n = len(self)
        j = i + n if i < 0 else i
        if not 0 <= j < n:
            raise IndexError("record index out of range")
        return self._build(j)

    def materialize(self) -> tuple[TapRecord, ...]:
        if self._all is None:
            self._all = tuple(map(self._build, range(len(self))))
        return self._all

    def __iter__(self):
        if self._all is not None:
            return iter(self._all)
        # lazily, so that a caller reading the setup block and stopping early pays for that only
        return map(self._build, range(len(self)))

    def __eq__(self, other) -> bool:
        if isinstance(other, (tuple, list, LazyRecords)):
            return self.materialize() == tuple(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __add__(self, other):
        return self.materialize() + tuple(other)

    def __radd__(self, other):
        return tuple(other) + self.materialize()

    def __repr__(self) -> str:
        return f"LazyRecords({len(self)} records of {self.path!r})"
