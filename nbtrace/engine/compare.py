"""Compare the matched records of one tap and classify how they differ.

Per element: absolute, relative (to the reference) and ULP error. The tolerance of a row is
``atol + rtol·magnitude`` with ``rtol = max(spec rtol, printed-precision floor of A, of B)``:
a value printed with d significant digits is only known to ~0.5·10^(1−d) relative, and we never
demand agreement below what was printed. ``magnitude`` is max(|a|, |b|, ‖row‖) per element, so a
vector's near-zero component (5.9e-17 vs 0 in a unit vector) is judged against the vector's size.

The arithmetic is in nbtrace.engine.arith (rows scaled before any norm: it never overflows); a
divergent tap gets one verdict kind (see results.KINDS) from nbtrace.engine.classify.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from nbtrace.engine import units
from nbtrace.engine.align import TapGroup
from nbtrace.engine.arith import (Arrays, check_tolerance, compare_arrays, needed_rtol, passing_rtol,  # noqa: F401
                                  precision_floor, relative_errors, ulp_errors)
from nbtrace.engine.classify import (FLOAT32_AMPLIFIED, FLOAT32_EPS, FLOAT32_NOISE, RATIO_SPREAD,  # noqa: F401
                                     classify, constant_ratio, dimension_of, explain, plausibility)
from nbtrace.engine.model import Trace
from nbtrace.engine.results import TapVerdict, index_text

# printf's %g default: no producer is assumed to print fewer significant digits than this
MIN_FORMAT_DIGITS = 6


@dataclass(frozen=True)
class Geometry:
    """Detector facts that turn an additive offset into pixels.

    pixel_size: metres (None when unknown); fdet, sdet: unit 3-vectors (fast, slow axes).
    """

    pixel_size: float | None = None
    fdet: tuple[float, float, float] | None = None
    sdet: tuple[float, float, float] | None = None


@dataclass(frozen=True)
class CompareSettings:
    """How to compare. rtol/atol: explicit override (both or neither), else the tap spec's,
    else ``default_rtol``/``default_atol``. float32_side: "a"/"b" when that side computed in
    float32 (precision class allowed), else None. run_factors: factors derivable from the run
    (N, N³, oversample², 1/λ ...) with their meaning."""

    rtol: float | None = None
    atol: float | None = None
    default_rtol: float = 1e-9
    default_atol: float = 0.0
    float32_side: str | None = None
    run_factors: tuple[units.NamedFactor, ...] = ()
    geometry: Geometry = field(default_factory=Geometry)

    def __post_init__(self):
        # validated here so that every command and library caller gets one clear UsageError
        # (a negative or nan tolerance would judge identical traces divergent, or anything equal)
        for name in ("rtol", "atol", "default_rtol", "default_atol"):
            flag = "--" + name.removeprefix("default_")
            object.__setattr__(self, name, check_tolerance(getattr(self, name), flag))


class ComparerBug(RuntimeError):
    """An internal inconsistency in the comparer: a bug in nbtrace, never a trace mismatch and
    never "bad input" either, so it is not an NbtraceError (the CLI must not turn it into a
    polite exit 2)."""


def _tolerances(tapdef, s: CompareSettings) -> tuple[float, float]:
    if s.rtol is not None:
        return s.rtol, s.atol if s.atol is not None else 0.0
    if tapdef is not None and getattr(tapdef, "rtol", None) is not None:
        return float(tapdef.rtol), float(tapdef.atol)
    return s.default_rtol, s.default_atol


class TraceColumns:
    """Every record's numbers of one trace as flat numpy columns, built in one pass, so that a
    tap's values are gathered by fancy indexing instead of a Python loop per tap.

    values: all components of all records, flat; offsets/arity: where each record's components
    sit.

    digits(): significant digits the producer printed with. A record shows only as many digits as
    its shortest form needs (%.17g prints 0.01 as "0.01"), so its own count understates the
    format's precision; the most digits any record of the same dialect in that file shows
    (parser meta "format_digits") is a lower bound of the format's precision, and so is printf's
    default of 6 (%g): a file whose numbers all happen to be short is no evidence of a 2-digit
    format.
    """

    def __init__(self, trace: Trace):
        cols = trace.columns()
        self.arity = cols.arity
        self.offsets = cols.offsets[:-1]
        self.values = cols.values
        self.format_digits = trace.meta.get("format_digits") or {}
        self.sig = cols.sigdigits

    def digits(self, positions: np.ndarray, dialect: str) -> np.ndarray:
        """Printed digits of these records, all printed in ``dialect`` (a tap's records are)."""
        floor = max(self.format_digits.get(dialect, 0), MIN_FORMAT_DIGITS)
        return np.maximum(self.sig[positions], floor)

    def gather(self, positions: np.ndarray, k: int) -> np.ndarray:
        """(len(positions), k) values of records that all have arity k."""
        return self.values[self.offsets[positions][:, None] + np.arange(k)]


class _Rows:
    """The records of one tap on one side, fetched from the trace only when a row is needed."""

    def __init__(self, records, positions: np.ndarray):
        self._records, self._pos = records, positions

    def __len__(self) -> int:
        return len(self._pos)

    def __getitem__(self, i):
        return self._records[int(self._pos[i])]

    def __iter__(self):
        return map(self._records.__getitem__, self._pos.tolist())


# ---------------------------------------------------------------------------------------------
# the one function that builds every mismatch message (headline, counts, worst, path)


def mismatch_message(label: str, headline: str, *, n_mis: int, n_el: int,
                     worst_abs: tuple[float, str, float], worst_rel: tuple[float, str, float],
                     would_pass: float | None, rtol: float, atol: float,
                     path: str) -> str:
    """Every divergence is described by this function and no other.

    worst_abs / worst_rel: (difference, where, allowed there).
    """
    pct = 100.0 * n_mis / n_el if n_el else 0.0
    lines = [
        f"{label}: {headline}",
        f"Mismatched elements: {n_mis} / {n_el} ({pct:.1f}%)",
        f"Greatest absolute difference: {worst_abs[0]:.6g} at {worst_abs[1]} (up to {worst_abs[2]:.3g} allowed)",
        f"Greatest relative difference: {worst_rel[0]:.6g} at {worst_rel[1]} (up to {worst_rel[2]:.3g} allowed)",
    ]
    if would_pass is not None:
        lines.append(f"Would pass with rtol={would_pass:.3g} (relative to max(|a|, |b|, ‖row‖); "
                     f"used rtol={rtol:.3g}, atol={atol:.3g})")
    lines.append(f"The failure occurred for item {path}")
    return "\n".join(lines)


def compare_group(group: TapGroup, ta: Trace, tb: Trace, tapdef=None,
                  settings: CompareSettings | None = None, *, cols_a: TraceColumns | None = None,
                  cols_b: TraceColumns | None = None) -> TapVerdict:
    """Compare all matched records of one tap (vectorised over the pairs) into a TapVerdict.

    cols_a / cols_b: the traces' TraceColumns when the caller compares many taps (built here
    otherwise, which costs a pass over the whole trace).
    """
    s = settings or CompareSettings()
    ra, rb = _Rows(ta.records, group.ia), _Rows(tb.records, group.ib)
    if not len(ra) or len(ra) != len(rb):
        raise ComparerBug(f"tap group {group.tap!r} has {len(ra)} vs {len(rb)} records: "
                          f"a bug in nbtrace.engine.align, please report it")
    label = f"{group.tap}[{','.join(group.loop)}]" if group.loop else group.tap
    is_setup = _is_setup(group, tapdef, ra[0])
    ca = cols_a if cols_a is not None else TraceColumns(ta)
    cb = cols_b if cols_b is not None else TraceColumns(tb)
    arities = set(np.unique(ca.arity[group.ia]).tolist()) | set(np.unique(cb.arity[group.ib]).tolist())
    if 0 in arities:
        return _compare_text(group, label, ra, rb, is_setup)
    if len(arities) > 1:
        return _arity_verdict(group, label, ra, rb, is_setup)
    k = arities.pop()
    rtol, atol = _tolerances(tapdef, s)
    # values near the float64 limits overflow norms and ratios to inf: that is still a
    # comparison (judged as non-finite / out of tolerance), not something to warn about
    with np.errstate(all="ignore"):
        return _compare_numbers(group, label, ra, rb, ca, cb, k, rtol, atol, tapdef, s, is_setup)


def _is_setup(group: TapGroup, tapdef, first) -> bool:
    """A setup value describes the run: the spec says so (semantics "setup"), or, for a tap the
    spec does not know, it is printed in the `=` form. A record without a pixel is no evidence:
    a trace without a pixel header has none on any record."""
    if group.loop:
        return False
    if tapdef is not None:
        return getattr(tapdef, "semantics", None) == "setup"
    return first.dialect == "eq"


def _compare_numbers(group, label, ra, rb, ca, cb, k, rtol, atol, tapdef, s, is_setup) -> TapVerdict:
    x = compare_arrays(ca.gather(group.ia, k), cb.gather(group.ib, k), ca.digits(group.ia, ra[0].dialect),
                       cb.digits(group.ib, rb[0].dialect), rtol, atol)
    return _numeric_verdict(group, label, ra, rb, x, tapdef, s, is_setup)


def _verdict(group, label, kind, ra, rb, row, *, n_el, n_mis, max_abs=0.0, max_rel=0.0,
             max_ulp=0.0, tolerance=0.0, atol=0.0, would_pass=None, factor=None, message="",
             is_setup=False, first_loop=None, text=False, ratio=None) -> TapVerdict:
    a, b = ra[row], rb[row]
    return TapVerdict(
        tap=group.tap, loop=group.loop, kind=kind, n_pairs=len(ra), n_elements=n_el,
        n_mismatched=n_mis, index=a.index, max_abs=max_abs, max_rel=max_rel, max_ulp=max_ulp,
        tolerance=tolerance, atol=atol, would_pass=would_pass, factor=factor,
        a=a.text if text else a.values, b=b.text if text else b.values,
        loc_a=a.loc, loc_b=b.loc, message=message, first_loop_iteration=first_loop,
        is_setup=is_setup, ratio=ratio)


def _compare_text(group, label, ra, rb, is_setup) -> TapVerdict:
    """String taps (detector_convention=MOSFLM) compare as whitespace-normalised text."""
    def norm(r):
        return " ".join((r.text if r.text is not None else " ".join(map(repr, r.values))).split())
    bad = [i for i, (p, q) in enumerate(zip(ra, rb)) if norm(p) != norm(q)]
    if not bad:
        return _verdict(group, label, "agree", ra, rb, 0, n_el=len(ra), n_mis=0,
                        is_setup=is_setup, text=True)
    i = bad[0]
    msg = (f"{label}: text differs: reference {norm(ra[i])!r}, port {norm(rb[i])!r}\n"
           f"Mismatched elements: {len(bad)} / {len(ra)} ({100.0 * len(bad) / len(ra):.1f}%)\n"
           f"The failure occurred for item {_path(label, ra[i], rb[i], None)}")
    return _verdict(group, label, "out_of_tolerance", ra, rb, i, n_el=len(ra), n_mis=len(bad),
                    message=msg, is_setup=is_setup, text=True, max_abs=math.inf, max_rel=math.inf)


def _arity_verdict(group, label, ra, rb, is_setup) -> TapVerdict:
    i = next(i for i, (p, q) in enumerate(zip(ra, rb)) if len(p.values) != len(q.values))
    msg = (f"{label}: not the same quantity: reference prints {len(ra[i].values)} component(s), "
           f"port prints {len(rb[i].values)}\n"
           f"The failure occurred for item {_path(label, ra[i], rb[i], None)}")
    return _verdict(group, label, "different_quantity", ra, rb, i, n_el=len(ra), n_mis=1,
                    message=msg, is_setup=is_setup, max_abs=math.inf, max_rel=math.inf)


def _path(label, a, b, component) -> str:
    return f"{label} at {index_text(a.index, component)} (A {a.loc}, B {b.loc})"


def _numeric_verdict(group, label, ra, rb, x: Arrays, tapdef, s, is_setup) -> TapVerdict:
    n, k = x.A.shape
    n_el = n * k
    mism = ~x.ok
    n_mis = int(mism.sum())
    rel = relative_errors(x)
    ulp = ulp_errors(x)
    max_abs, max_rel = float(x.abs_err.max()), float(rel.max())
    max_ulp = float(np.nan_to_num(ulp, posinf=np.inf).max())
    rtol_used = float(x.rtol.max())
    common = dict(n_el=n_el, n_mis=n_mis, max_abs=max_abs, max_rel=max_rel, max_ulp=max_ulp,
                  tolerance=rtol_used, atol=x.atol, is_setup=is_setup)
    if n_mis == 0:
        return _verdict(group, label, "agree", ra, rb, 0, **common)
    would_pass = None
    if not x.finite_mismatch.any():
        would_pass = float(needed_rtol(x).max())
    kind, factor, head = classify(x, ra, rb, group.tap, tapdef, s, would_pass)
    ratio = constant_ratio(x)
    if would_pass is not None:
        would_pass = passing_rtol(x, would_pass)
    rows = np.flatnonzero(mism.any(axis=1))
    first = int(rows[0])
    first_loop = ra[first].index.loop if group.loop else None
    if group.loop:
        head += _loop_note(ra, rows, n, x)
    head += _region_note(ra, rows, n)
    wa = np.unravel_index(int(np.argmax(x.abs_err)), x.A.shape)
    wr = np.unravel_index(int(np.argmax(rel)), x.A.shape)
    msg = mismatch_message(
        label, head, n_mis=n_mis, n_el=n_el,
        worst_abs=(max_abs, index_text(ra[wa[0]].index, int(wa[1])), float(x.tol[wa])),
        worst_rel=(max_rel, index_text(ra[wr[0]].index, int(wr[1])), float(x.rtol[wr[0], 0])),
        would_pass=would_pass, rtol=rtol_used, atol=x.atol,
        path=_path(label, ra[first], rb[first], int(np.flatnonzero(mism[first])[0]) if k > 1 else None))
    return _verdict(group, label, kind, ra, rb, first, would_pass=would_pass, factor=factor,
                    message=msg, first_loop=first_loop, ratio=ratio, **common)


def _region_note(ra, rows: np.ndarray, n: int) -> str:
    """For traces of several pixels: where the divergence is (incident 21: only edge pixels)."""
    if n < 2 or len(rows) > 10_000:
        return ""
    bad = dict.fromkeys(ra[int(i)].index.pixel for i in rows)
    if len(bad) == 1 and None in bad:
        return ""
    all_pixels = len(dict.fromkeys(r.index.pixel for r in ra)) if n <= 100_000 else None
    if all_pixels is None or all_pixels < 2 or len(bad) == all_pixels:
        return ""
    shown = ", ".join(f"({p[0]}, {p[1]})" for p in list(bad)[:6] if p is not None)
    more = " …" if len(bad) > 6 else ""
    return f"; confined to {len(bad)} of {all_pixels} pixels: {shown}{more}"


def _loop_note(ra, rows: np.ndarray, n: int, x: Arrays | None = None) -> str:
    first = ", ".join(f"{k} {v}" for k, v in ra[int(rows[0])].index.loop)
    if len(rows) == 1 and n > 1:
        return f"; only iteration {first} differs, the {n - 1} later ones agree"
    if x is not None and n > 1:
        with np.errstate(all="ignore"):
            per_row = np.nan_to_num(x.diff_n / np.where(x.mag_n > 0, x.mag_n, 1.0), nan=0.0).max(axis=1)
        per_row = np.where(x.finite_mismatch.any(axis=1), np.inf, per_row)
        worst = int(np.argmax(per_row))
        rest = np.delete(per_row, worst).max()
        if per_row[worst] > 100 * rest:
            it = ", ".join(f"{k} {v}" for k, v in ra[worst].index.loop)
            return (f"; iteration {it} stands out ({per_row[worst]:.2g} relative), the other "
                    f"{n - 1} differ by at most {rest:.2g}")
    return f"; first divergent iteration: {first} ({len(rows)} of {n} iterations differ)"


