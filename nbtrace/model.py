"""The trace model shared by every stage: parse -> align -> compare -> localize -> report.

Records are NamedTuples (cheap to create by the million, immutable). A ``Trace`` is an
ordered list of records plus provenance metadata. Nothing downstream re-parses text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple


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
        "warnings" (list of str), "dialects" (records per dialect), "format_digits" (per dialect),
        "prefixes" (records per tap prefix seen, before one prefix was chosen).
    """

    path: str
    records: tuple[TapRecord, ...]
    prefix: str | None = None
    dialect: str = "space"
    pixels: tuple[tuple[int, int], ...] = ()
    context: tuple[tuple[SourceLoc, str], ...] = ()
    meta: dict = field(default_factory=dict)

    def names(self) -> list[str]:
        seen: dict[str, None] = {}
        for r in self.records:
            seen.setdefault(r.name, None)
        return list(seen)

    def __len__(self) -> int:
        return len(self.records)
