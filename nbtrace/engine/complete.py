"""Completeness: what one side printed and the other did not, and whether that may still be
called agreement.

The rules (README, "What to know"):

1. A port missing any tap that the reference printed for a pixel is never "agree": each such
   tap is a finding of status ``incomplete`` (kind ``missing``), and the verdict diverges.
2. A tap printed more times on one side (subpixel or layer repeats, φ / mosaic / source
   iterations, a tap printed twice) is compared occurrence by occurrence; the extra records are a
   finding of kind ``missing_iterations`` naming the first index absent on the other side.
3. A printed name the spec does not know that is a near miss of a known one (case, accents, an
   edit distance of 1–2) is reported as a likely misspelling.

Setup taps only the reference printed (a build without -DTRACING prints none) and taps only the
port printed stay warnings: they leave nothing of the reference unchecked.
"""

from __future__ import annotations

import unicodedata
from itertools import islice
from typing import NamedTuple

import numpy as np

from nbtrace.engine.align import Alignment
from nbtrace.engine.model import TapRecord, Trace
from nbtrace.engine.results import TapVerdict, Unmatched, index_text

# Setup taps that describe the run rather than compute anything: a C build and its port always
# differ here (producer name, argv spelling), so they are never compared as divergences; they
# are kept as provenance and used to explain a divergence caused by different inputs.
PROVENANCE = ("producer", "dtype", "argv", "structure_factors")
# The setup block of a real build is a few dozen lines; a silent build has none at the top.
SETUP_HEAD = 2000


class Misspelling(NamedTuple):
    side: str  # "a" | "b"
    printed: str
    likely: str  # the known name it nearly spells
    why: str  # "case", "accents", "edit distance 1"
    loc: str

    def text(self) -> str:
        who = "A" if self.side == "a" else "B"
        return f"{who} printed `{self.printed}` ({self.loc}): likely a misspelling of `{self.likely}` ({self.why})"

    def to_json(self) -> dict:
        return {"side": self.side, "printed": self.printed, "likely": self.likely, "why": self.why,
                "loc": self.loc}


# ------------------------------------------------------------------------------ unmatched records


def unmatched(t: Trace, al: Alignment, side: str) -> tuple[Unmatched, ...]:
    positions = al.only_a if side == "a" else al.only_b
    canon = al.canon_a if side == "a" else al.canon_b
    other = al.canon_b if side == "a" else al.canon_a
    printed_by_other = set(other)
    by_tap: dict[str, list[int]] = {}
    for i in positions:
        by_tap.setdefault(canon[i], []).append(i)
    out = []
    for tap, idx in by_tap.items():
        r = t.records[idx[0]]
        out.append(Unmatched(tap, side, len(idx), r.loc, r.index, tap not in printed_by_other, idx[0]))
    return tuple(out)


class _Index:
    """One side's records by (canonical tap, loop key names) and pixel, answered with numpy
    masks over the record columns: a trace of a million records has a handful of taps."""

    def __init__(self, t: Trace, canon: tuple[str, ...]):
        cols = t.columns()
        self.name, self.context = cols.name, cols.context
        n = len(cols)
        first = np.full(len(cols.names), -1, dtype=np.int64)
        if n:
            first[cols.name[::-1]] = np.arange(n - 1, -1, -1)  # the last write is the first position
        self.name_canon = [canon[i] if i >= 0 else None for i in first.tolist()]
        self.ctx_pixel = [p for p, _ in cols.contexts]
        self.ctx_loop = [tuple(k for k, _ in lo) for _, lo in cols.contexts]
        self.ctx_full = [lo for _, lo in cols.contexts]

    def mask(self, tap: str, loop_names: tuple, pixel=..., loop=...) -> np.ndarray:
        names = [i for i, c in enumerate(self.name_canon) if c == tap]
        ctxs = [i for i, (p, lo, full) in enumerate(zip(self.ctx_pixel, self.ctx_loop, self.ctx_full))
                if lo == loop_names and (pixel is ... or p == pixel) and (loop is ... or full == loop)]
        return np.isin(self.name, names) & np.isin(self.context, ctxs)


def gap_verdicts(a: Trace, b: Trace, al: Alignment, spec, is_setup) -> list[tuple[TapVerdict, bool]]:
    """(verdict, counts) for every tap with records one side printed and the other did not:
    kind "missing" (the other side never printed the tap, or not for that pixel) or
    "missing_iterations" (fewer repeats or loop iterations). ``counts`` is True when the gap
    makes the comparison incomplete (see the module rules), False for a harmless one."""
    if not al.only_a and not al.only_b:
        return []
    index = {"a": _Index(a, al.canon_a), "b": _Index(b, al.canon_b)}
    out = []
    for side, t, positions, canon in (("a", a, al.only_a, al.canon_a), ("b", b, al.only_b, al.canon_b)):
        other = "b" if side == "a" else "a"
        groups: dict[tuple, list[int]] = {}
        for i in positions:
            r = t.records[i]
            groups.setdefault((canon[i], tuple(k for k, _ in r.index.loop)), []).append(i)
        for (tap, loop_names), idx in groups.items():
            if tap in PROVENANCE:
                continue
            r = t.records[idx[0]]
            out.append(_gap(side, tap, loop_names, r, len(idx), index[side], index[other],
                            is_setup(tap, spec, r)))
    return out


def _gap(side, tap, loop_names, r: TapRecord, n: int, mine: _Index, theirs: _Index, setup: bool):
    who, other = ("A", "B") if side == "a" else ("B", "A")
    label = f"{tap}[{','.join(loop_names)}]" if loop_names else tap
    pixel = r.index.pixel
    if not theirs.mask(tap, loop_names).any():
        kind = "missing"
        msg = f"{label}: printed only by {who} ({n} record(s), first at {r.loc}); {other} never emitted it"
        counts = side == "a" and not setup
    elif not (at_pixel := theirs.mask(tap, loop_names, pixel)).any():
        kind = "missing"
        msg = (f"{label}: {other} never printed it for pixel {_pixel(pixel)} ({who} did, at {r.loc}; "
               f"{n} record(s) without a partner)")
        counts = side == "a"  # the reference lacking a pixel's tap leaves nothing of it unchecked
    else:
        kind = "missing_iterations"
        repeat = theirs.mask(tap, loop_names, pixel, r.index.loop) if r.index.loop else at_pixel
        what = "repeat (subpixel / layer block)" if repeat.any() else "loop iteration"
        n_mine = int(mine.mask(tap, loop_names, pixel).sum())
        n_theirs = int(at_pixel.sum())
        msg = (f"{label}: {other} printed {n_theirs} record(s) for pixel {_pixel(pixel)}, {who} printed "
               f"{n_mine}; first {what} absent from {other}: {index_text(r.index)} ({who} at {r.loc})")
        counts = True
    v = TapVerdict(
        tap=tap, loop=loop_names, kind=kind, n_pairs=0, n_elements=0, n_mismatched=n, index=r.index,
        max_abs=None, max_rel=None, max_ulp=None, tolerance=None, atol=None, would_pass=None, factor=None,
        a=(r.text if r.text is not None else r.values) if side == "a" else None,
        b=(r.text if r.text is not None else r.values) if side == "b" else None,
        loc_a=r.loc if side == "a" else None, loc_b=r.loc if side == "b" else None,
        message=msg, is_setup=not r.index.loop and setup, first_loop_iteration=r.index.loop or None)
    return v, counts


def _pixel(p) -> str:
    return "(none)" if p is None else f"({p[0]}, {p[1]})"


# ------------------------------------------------------------------------------ near-miss names


def _fold(name: str) -> str:
    """Lower case without accents: `F_Céll` -> `f_cell`."""
    decomposed = unicodedata.normalize("NFKD", name)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def edit_distance(a: str, b: str, limit: int = 2) -> int:
    """Levenshtein distance with adjacent transpositions, or limit + 1 once it exceeds ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev2, prev = None, list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
            if prev2 is not None and i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        if min(cur) > limit:
            return limit + 1
        prev2, prev = prev, cur
    return prev[-1]


def _near(printed: str, known: str) -> str | None:
    if printed == known:
        return None
    if printed.casefold() == known.casefold():
        return "case"
    if _fold(printed) == _fold(known):
        return "accents"
    limit = 1 if len(known) < 6 else 2
    d = edit_distance(_fold(printed), _fold(known), limit)
    return f"edit distance {d}" if d <= limit else None


def misspellings(a: Trace, b: Trace, al: Alignment, spec) -> tuple[Misspelling, ...]:
    """Printed names that resolve to nothing known while nearly spelling a name the spec knows
    (or, without a spec, a name the other side printed), which that side then lacks."""
    out = []
    for side, t, canon, other in (("a", a, al.canon_a, al.canon_b), ("b", b, al.canon_b, al.canon_a)):
        cols = t.columns()
        mine = set(canon)
        theirs = set(other)
        known: dict[str, str] = {}  # a name one may print -> the canonical tap it stands for
        if spec is not None:
            for td in spec.taps:
                for n in td.all_names():
                    known.setdefault(n, td.name)
        for n in theirs:
            known.setdefault(n, n)
        for nid, printed in enumerate(cols.names):
            if spec is not None and spec.canonical(printed, side) is not None:
                continue
            if printed in theirs:
                continue
            best = None
            for name, tap in known.items():
                if tap in mine:
                    continue  # that tap is printed under its own name: no gap to explain
                why = _near(printed, name)
                if why is not None and (best is None or _rank(why) < _rank(best[1])):
                    best = (tap, why)
            if best is None:
                continue
            pos = np.flatnonzero(cols.name == nid)
            if not pos.size:
                continue
            out.append(Misspelling(side, printed, best[0], best[1], str(t.records[int(pos[0])].loc)))
    return tuple(out)


def _rank(why: str) -> int:
    return {"case": 0, "accents": 1}.get(why, 2)


# ------------------------------------------------------------------------------ warnings


def emission_warnings(a, b, al, ua, ub) -> list[str]:
    out = []
    for side, other, un in (("B", "A", ua), ("A", "B", ub)):
        never = [u.tap for u in un if u.whole_tap and u.tap not in PROVENANCE]
        if never:
            shown = ", ".join(never[:12]) + (f" and {len(never) - 12} more" if len(never) > 12 else "")
            out.append(f"{side} never emitted {len(never)} tap(s) that {other} printed: {shown}")
    out += count_warnings(al)
    setup_a, setup_b = has_setup_lines(a), has_setup_lines(b)
    if setup_a != setup_b:
        silent = "B" if setup_a else "A"
        out.append(f"{silent} printed no setup (`=`) lines: a build without -DTRACING?")
    return out


def count_warnings(al: Alignment) -> list[str]:
    """Taps printed a different number of times per pixel: compared up to the smaller count."""
    by_counts: dict[tuple, list[str]] = {}
    for c in al.count_mismatch:
        by_counts.setdefault((c.n_a, c.n_b, c.pixel), []).append(c.tap)
    out = []
    for (n_a, n_b, pixel), taps in by_counts.items():
        where = f"pixel ({pixel[0]}, {pixel[1]})" if pixel else "the unindexed pixel"
        shown = ", ".join(taps[:6]) + (f" and {len(taps) - 6} more" if len(taps) > 6 else "")
        out.append(f"for {where}, A printed {n_a} and B printed {n_b} copies of {len(taps)} tap(s) "
                   f"({shown}): different subpixel/layer counts (oversample, thicksteps, or a trace "
                   f"of one subpixel); the first {min(n_a, n_b)} are compared, the rest are missing iterations")
    return out


def block_ratio(al: Alignment) -> float | None:
    """B's per-pixel repeat count over A's, for the most common count mismatch (None if none)."""
    if not al.count_mismatch:
        return None
    pairs: dict[tuple[int, int], int] = {}
    for c in al.count_mismatch:
        pairs[(c.n_a, c.n_b)] = pairs.get((c.n_a, c.n_b), 0) + 1
    n_a, n_b = max(pairs, key=pairs.get)
    return n_b / n_a


def has_setup_lines(t: Trace) -> bool:
    """Whether the trace holds `=` setup lines; they precede the pixels, so the head suffices."""
    return any(r.dialect == "eq" for r in islice(t.records, SETUP_HEAD))


# ------------------------------------------------------------------------------ coverage


class Coverage(NamedTuple):
    """Per-pixel taps (canonical names) each side printed, and those printed by both.

    A per-pixel tap is one the spec declares with any semantics but "setup" (a tap the spec does
    not know: one printed in a non-`=` form); provenance taps never count.
    """

    per_pixel_a: tuple[str, ...]
    per_pixel_b: tuple[str, ...]
    both: tuple[str, ...]

    @property
    def one_sided(self) -> bool:
        """The rule (style.md rule 4): a comparison is one-sided, hence a failure, when either side
        printed per-pixel taps and fewer than half of the smaller side's per-pixel taps, or fewer
        than a quarter of the larger side's, were printed by both sides. The first clause catches
        names that do not line up; the second a side that traced almost nothing the other did
        (a port printing one tap of the reference's twenty says nothing about the other nineteen)."""
        n_a, n_b, m = len(self.per_pixel_a), len(self.per_pixel_b), len(self.both)
        if max(n_a, n_b) == 0:
            return False
        return 2 * m < min(n_a, n_b) or 4 * m < max(n_a, n_b)


def coverage(a: Trace, b: Trace, al: Alignment, spec) -> Coverage:
    """Which per-pixel taps each side printed and which of them found partners."""
    pa, pb = _per_pixel_taps(a, spec, "a"), _per_pixel_taps(b, spec, "b")
    paired = {g.tap for g in al.groups} | {c.tap for c in al.count_mismatch}
    both = tuple(t for t in pa if t in paired and t in pb)
    return Coverage(pa, pb, both)


def _per_pixel_taps(t: Trace, spec, side: str) -> tuple[str, ...]:
    """Canonical per-pixel taps of one trace in order of first appearance (one pass over the
    name column, then one record per distinct printed name)."""
    cols = t.columns()
    if not len(cols):
        return ()
    n = len(cols)
    first = np.full(len(cols.names), n, dtype=np.int64)
    first[cols.name[::-1]] = np.arange(n - 1, -1, -1)  # the last write is the first position
    out: dict[str, int] = {}
    for nid, pos in enumerate(first.tolist()):
        if pos == n:
            continue  # a name of the table no record uses (another prefix's)
        printed = cols.names[nid]
        canon = (spec.canonical(printed, side) if spec is not None else None) or printed
        if canon in PROVENANCE or is_setup_tap(canon, spec, t.records[pos]):
            continue
        out[canon] = min(pos, out.get(canon, pos))
    return tuple(sorted(out, key=out.get))


def is_setup_tap(canon: str, spec, record: TapRecord) -> bool:
    """A setup value describes the run, not a pixel: a tap the spec declares with setup
    semantics; a tap the spec does not know when it is printed in the `=` form."""
    tapdef = spec.get(canon) if spec is not None else None
    if tapdef is not None:
        return tapdef.semantics == "setup"
    return record.dialect == "eq"
