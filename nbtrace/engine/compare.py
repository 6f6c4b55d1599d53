"""Compare the matched records of one tap and classify how they differ.

Per element: absolute, relative (to the reference) and ULP error. The tolerance of a row is
``atol + rtol·magnitude`` with ``rtol = max(spec rtol, printed-precision floor of A, of B)``:
a value printed with d significant digits is only known to ~0.5·10^(1−d) relative, and we never
demand agreement below what was printed. ``magnitude`` is max(|a|, |b|, ‖row‖) per element, so a
vector's near-zero component (5.9e-17 vs 0 in a unit vector) is judged against the vector's size.

A divergent tap gets one verdict kind (see results.KINDS), tried from the most specific story
(non-finite, integer count, sign, named scale, permutation, ½-pixel offset, rotation, float32
precision) to the least (different quantity, constant offset, out of tolerance).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from nbtrace.engine import units
from nbtrace.engine.align import TapGroup
from nbtrace.engine.model import Trace
from nbtrace.engine.results import TapVerdict, index_text

FLOAT32_EPS = float(np.finfo(np.float32).eps)
# A float32 pipeline accumulates a few ULPs per operation; beyond this it is not noise.
FLOAT32_NOISE = 32 * FLOAT32_EPS
# float32 noise amplified by a tap's conditioning (see _classify_precision); beyond this, a bug.
FLOAT32_AMPLIFIED = 1e-3
# A ratio constant to this relative spread (or the printed precision, if coarser) is "one ratio".
RATIO_SPREAD = 1e-6
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


class ComparerBug(RuntimeError):
    """An internal inconsistency in the comparer: a bug in nbtrace, never a trace mismatch and
    never "bad input" either, so it is not an NbtraceError (the CLI must not turn it into a
    polite exit 2)."""


def precision_floor(sigdigits: np.ndarray) -> np.ndarray:
    """Relative uncertainty of a value printed with ``sigdigits`` significant digits."""
    return 0.5 * 10.0 ** (1.0 - sigdigits.astype(np.float64))


def _tolerances(tapdef, s: CompareSettings) -> tuple[float, float]:
    if s.rtol is not None:
        return s.rtol, s.atol if s.atol is not None else 0.0
    if tapdef is not None and getattr(tapdef, "rtol", None) is not None:
        return float(tapdef.rtol), float(tapdef.atol)
    return s.default_rtol, s.default_atol


def dimension_of(tap: str, tapdef) -> str:
    """The dimension a tap's value holds: from the spec, else guessed once from its name."""
    if tapdef is not None and getattr(tapdef, "dimension", None):
        return tapdef.dimension
    return units.parse_unit(units.guess_unit(tap)).dimension


def explain(ratio: float, tap: str, tapdef, s: CompareSettings) -> units.NamedFactor | None:
    """Name a port/reference ratio: spec hints, then run-derived factors, then unit conversions."""
    if not math.isfinite(ratio) or ratio == 0:
        return None
    hints = getattr(tapdef, "hints", None) or {}
    for f, meaning in hints.items():
        if math.isclose(ratio, float(f), rel_tol=1e-6):
            return units.NamedFactor(float(f), meaning)
    for nf in s.run_factors:
        if math.isclose(ratio, nf.factor, rel_tol=1e-6):
            return nf
    return units.explain_factor(ratio, dimension_of(tap, tapdef))


# ---------------------------------------------------------------------------------------------
# the element-wise arithmetic of one tap


@dataclass(frozen=True)
class _Arrays:
    A: np.ndarray  # (n, k) reference values
    B: np.ndarray  # (n, k) port values
    rtol: np.ndarray  # (n, 1) effective relative tolerance per row
    atol: float
    mag: np.ndarray  # (n, k) magnitude each element is judged against
    tol: np.ndarray  # (n, k) allowed absolute difference
    abs_err: np.ndarray  # (n, k); inf where only one side is finite
    ok: np.ndarray  # (n, k) bool
    finite_mismatch: np.ndarray  # (n, k) bool: one side non-finite, the other not (or nan vs inf)


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


def _arrays(A: np.ndarray, B: np.ndarray, sig_a: np.ndarray, sig_b: np.ndarray, rtol_spec: float,
            atol: float) -> _Arrays:
    rtol = np.maximum(rtol_spec, np.maximum(precision_floor(sig_a), precision_floor(sig_b)))[:, None]
    fa, fb = np.isfinite(A), np.isfinite(B)
    both = fa & fb
    with np.errstate(invalid="ignore", over="ignore"):
        Af, Bf = np.where(both, A, 0.0), np.where(both, B, 0.0)
        norm = np.maximum(np.linalg.norm(Af, axis=1), np.linalg.norm(Bf, axis=1))[:, None]
        mag = np.maximum(np.maximum(np.abs(Af), np.abs(Bf)), norm)
        diff = np.abs(Af - Bf)
    tol = atol + rtol * mag
    same_nonfinite = ~fa & ~fb & ((A == B) | (np.isnan(A) & np.isnan(B)))
    finite_mismatch = ~both & ~same_nonfinite
    abs_err = np.where(finite_mismatch, np.inf, diff)
    ok = (both & (diff <= tol)) | same_nonfinite
    return _Arrays(A, B, rtol, atol, mag, tol, abs_err, ok, finite_mismatch)


def _rel(x: _Arrays) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = x.abs_err / np.abs(x.A)
    return np.where(x.abs_err == 0, 0.0, np.where(np.isnan(rel), np.inf, rel))


def _ulp(x: _Arrays) -> np.ndarray:
    with np.errstate(invalid="ignore", over="ignore"):
        spacing = np.spacing(np.maximum(np.abs(np.nan_to_num(x.A)), np.abs(np.nan_to_num(x.B))))
        return x.abs_err / spacing


# ---------------------------------------------------------------------------------------------
# classification of a divergent tap: each returns (kind, factor, headline) or None


def _fmt(v: float) -> str:
    return f"{v:.6g}"


def _vec(vals) -> str:
    return "(" + ", ".join(_fmt(v) for v in vals) + ")"


def _classify_nonfinite(x: _Arrays):
    if not x.finite_mismatch.any():
        return None
    r, c = np.argwhere(x.finite_mismatch)[0]
    return ("nonfinite", None,
            f"non-finite on one side only: reference {_fmt(x.A[r, c])}, port {_fmt(x.B[r, c])} "
            f"(component {c}); a division by zero or a zero-weight term on one side?")


def _classify_integer(x: _Arrays, ra, rb, tap, tapdef, s):
    # a double that happens to be integral prints like an integer ("40000"): only a tap the
    # spec declares a count is one; without a spec, both sides printing integers must do
    if tapdef is not None and getattr(tapdef, "dimension", None) != "count":
        return None
    # only reached for a divergent tap: reading the kinds row by row is affordable here
    if not all(r.kind == "int" for r in ra) or not all(r.kind == "int" for r in rb):
        return None
    bad = np.argwhere(~x.ok)[0]
    av, bv = x.A[tuple(bad)], x.B[tuple(bad)]
    head = f"integer count differs: {int(bv)} vs {int(av)} (port vs reference)"
    factor = bv / av if av != 0 else None
    if factor is not None:
        nf = explain(factor, tap, tapdef, s)
        if nf is not None:
            head += f"; ratio {_fmt(factor)} = {nf.meaning.removeprefix('= ')}"
        else:
            head += f"; ratio {_fmt(factor)}"
    return ("integer_count", factor, head)


def _classify_sign(x: _Arrays):
    nonzero = x.mag > x.tol
    if not nonzero.any():
        return None
    if np.all(np.abs(x.A + x.B) <= x.tol):
        return ("sign", -1.0, "port = −reference: a sign flip in every component")
    return None


def _zero(V: np.ndarray, rtol: np.ndarray, atol: float) -> np.ndarray:
    norm = np.linalg.norm(np.nan_to_num(V), axis=1)[:, None]
    return np.abs(V) <= atol + rtol * norm


def _constant_ratio(x: _Arrays) -> float | None:
    """The single ratio B/A over all elements, or None. Zeros must coincide on both sides."""
    # "zero" is judged against each side's own vector size: a port ×1e-10 is all "zero" next
    # to the reference's magnitude, yet its own components are perfectly distinct
    # (atol is in the reference's units, meaningless for a port off by 1e10: not used here)
    zero_a = _zero(x.A, x.rtol, 0.0)
    zero_b = _zero(x.B, x.rtol, 0.0)
    if np.any(zero_a != zero_b):
        return None
    nz = ~zero_a
    if not nz.any():
        return None
    ratios = x.B[nz] / x.A[nz]
    r = float(np.median(ratios))
    if r == 0 or not math.isfinite(r):
        return None
    spread = max(RATIO_SPREAD, 4 * float(x.rtol.max()))
    if np.all(np.abs(ratios - r) <= spread * abs(r)):
        return r
    return None


def _classify_scale(x: _Arrays, tap, tapdef, s):
    r = _constant_ratio(x)
    if r is None or math.isclose(r, 1.0, rel_tol=1e-3) or math.isclose(r, -1.0, rel_tol=1e-9):
        return None
    k = x.A.shape[1]
    where = f"in all {k} components" if k > 1 else ""
    nf = explain(abs(r), tap, tapdef, s)
    sign = "−" if r < 0 else ""
    flip = " and a sign flip" if r < 0 else ""
    if nf is not None:
        r = math.copysign(nf.factor, r)  # the named factor, not its rounding-noisy estimate
        head = f"port = reference × {sign}{_fmt(abs(r))}{' ' + where if where else ''}, i.e. {nf.meaning}{flip}"
        return ("scale", r, head)
    n_nonzero = int(np.count_nonzero(np.abs(x.A) > x.tol))
    if n_nonzero >= 2 and abs(math.log10(abs(r))) > 0.01:
        head = (f"port = reference × {_fmt(r)}{' ' + where if where else ''} "
                f"(one constant ratio, not a known unit or run factor)")
        return ("scale", r, head)
    return None


_AXES = "xyz"


def _classify_permutation(x: _Arrays):
    k = x.A.shape[1]
    if k < 2 or k > 4 or not np.any(x.mag > x.tol):
        return None
    ident = tuple(range(k))
    for perm in itertools.permutations(range(k)):
        if perm == ident:
            continue
        for signs in itertools.product((1.0, -1.0), repeat=k):
            cand = x.A[:, perm] * np.asarray(signs)
            if np.all(np.abs(x.B - cand) <= x.tol):
                names = _AXES if k == 3 else [f"c{i}" for i in range(k)]
                desc = ", ".join(("−" if sg < 0 else "") + names[p] for p, sg in zip(perm, signs))
                swapped = [f"{names[i]}↔{names[p]}" for i, p in enumerate(perm) if p > i]
                return ("permutation", None,
                        f"components swapped ({', '.join(swapped) or 'cyclic'}): "
                        f"port ({', '.join(names[:k])}) = reference ({desc})")
    return None


def _constant_offset(x: _Arrays) -> np.ndarray | None:
    d = x.B - x.A
    d0 = np.median(d, axis=0)
    if np.all(np.abs(d - d0) <= x.tol):
        return d0
    return None


def _pixel_words(v: float) -> str | None:
    """+0.5 -> "½", -1 -> "−1"; None unless v is a multiple of ½."""
    h = round(v * 2)
    if h == 0 or abs(v * 2 - h) > 1e-3:
        return None
    sign = "−" if h < 0 else "+"
    h = abs(h)
    return sign + ("½" if h == 1 else (str(h // 2) if h % 2 == 0 else f"{h}/2"))


def _classify_pixel_offset(x: _Arrays, tap, tapdef, s):
    g = s.geometry
    if x.A.shape[1] not in (1, 3) or not g.pixel_size or dimension_of(tap, tapdef) != "length":
        return None
    d = _constant_offset(x)
    if d is None:
        return None
    if x.A.shape[1] == 1:
        # a beam centre or distance: the offset in pixels, without an axis
        w = _pixel_words(float(d[0]) / g.pixel_size)
        if w is None:
            return None
        exact = "exactly " if "½" in w else ""
        return ("offset", None, f"additive offset of {exact}{w} pixel (port − reference = {d[0]:.6g} m, "
                                f"pixel {g.pixel_size:g} m): a beam-centre convention (MOSFLM +½ pixel) dropped or doubled?")
    f_axis = np.asarray(g.fdet if g.fdet else (0.0, 0.0, 1.0))
    s_axis = np.asarray(g.sdet if g.sdet else (0.0, -1.0, 0.0))
    f = float(d @ f_axis) / g.pixel_size
    sl = float(d @ s_axis) / g.pixel_size
    resid = d - (f * f_axis + sl * s_axis) * g.pixel_size
    if np.linalg.norm(resid) > 1e-3 * g.pixel_size:
        return None
    parts = []
    for v, axis in ((f, "fast"), (sl, "slow")):
        w = _pixel_words(v)
        if w is None and abs(v) > 1e-3:
            return None
        if w is not None:
            parts.append(f"{w} pixel along {axis}")
    if not parts:
        return None
    exact = "exactly " if all("½" in p for p in parts) else ""
    return ("offset", None,
            f"additive offset of {exact}{' and '.join(parts)} (port − reference = {_vec(d)} m, "
            f"pixel {g.pixel_size:g} m): a beam-centre convention (MOSFLM +½ pixel) dropped or doubled?")


def _classify_rotation(x: _Arrays):
    if x.A.shape[1] != 3:
        return None
    na, nb = np.linalg.norm(x.A, axis=1), np.linalg.norm(x.B, axis=1)
    if not np.all(na > 0) or not np.all(np.abs(na - nb) <= x.tol[:, 0]):
        return None
    cos = np.clip(np.sum(x.A * x.B, axis=1) / (na * nb), -1.0, 1.0)
    angle = float(np.degrees(np.arccos(cos)).max())
    return ("rotation", None,
            f"same norm, different direction: rotated by {angle:.4g}° (a rotation by a different "
            f"angle, in a different order, or about a different axis?)")


def _classify_precision(x: _Arrays, would_pass: float | None, s: CompareSettings):
    if s.float32_side is None or would_pass is None:
        return None
    side = "port" if s.float32_side == "b" else "reference"
    if would_pass <= FLOAT32_NOISE:
        return ("precision", None,
                f"differs by at most {would_pass:.2g} relative: within float32 noise (the {side} "
                f"computes in float32) — precision class, not a bug at float32 tolerance")
    # float32 rounding is relative to the terms a value is computed from, not to the value: sin of
    # a large argument (πh at h ≈ 6) or a value near a zero of sin(Nx)/sin(x) amplifies it by the
    # conditioning, which a trace cannot measure. Up to FLOAT32_AMPLIFIED it is still called noise,
    # and the message says so; the incident classes that matter (a 0.5 % cell volume, a 6 %
    # polarization) sit far above it.
    if would_pass > FLOAT32_AMPLIFIED:
        return None
    return ("precision", None,
            f"differs by at most {would_pass:.2g} relative: above plain float32 noise "
            f"({FLOAT32_NOISE:.2g}) but within float32 rounding amplified by this tap's conditioning "
            f"(the {side} computes in float32; limit {FLOAT32_AMPLIFIED:g}) — precision class, not a "
            f"bug at float32 tolerance")


def _classify_different_quantity(x: _Arrays):
    k = x.A.shape[1]
    if k < 2:
        return None
    row = int(np.argmax((~x.ok).any(axis=1)))
    a, b = x.A[row], x.B[row]
    if np.any(np.abs(a) <= x.tol[row]) or np.any(np.abs(b) <= x.tol[row]):
        return None
    ratios = b / a
    spread = np.abs(ratios).max() / np.abs(ratios).min()
    if spread < 2 and np.all(np.sign(ratios) == np.sign(ratios[0])):
        return None
    return ("different_quantity", None,
            f"not a unit or scale error: a different quantity; per-component ratios port/reference "
            f"= {_vec(ratios)}")


def _classify_offset(x: _Arrays):
    if x.A.shape[0] < 2:
        return None
    d = _constant_offset(x)
    if d is None or not np.any(np.abs(d) > x.tol.min()):
        return None
    if np.allclose(x.A, x.A[0]):  # a constant tap: a "constant offset" says nothing more
        return None
    return ("offset", None, f"additive offset: port − reference = {_vec(d)} in every record")


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
    x = _arrays(ca.gather(group.ia, k), cb.gather(group.ib, k), ca.digits(group.ia, ra[0].dialect),
                cb.digits(group.ib, rb[0].dialect), rtol, atol)
    return _numeric_verdict(group, label, ra, rb, x, tapdef, s, is_setup)


def _verdict(group, label, kind, ra, rb, row, *, n_el, n_mis, max_abs=0.0, max_rel=0.0,
             max_ulp=0.0, tolerance=0.0, atol=0.0, would_pass=None, factor=None, message="",
             is_setup=False, first_loop=None, text=False) -> TapVerdict:
    a, b = ra[row], rb[row]
    return TapVerdict(
        tap=group.tap, loop=group.loop, kind=kind, n_pairs=len(ra), n_elements=n_el,
        n_mismatched=n_mis, index=a.index, max_abs=max_abs, max_rel=max_rel, max_ulp=max_ulp,
        tolerance=tolerance, atol=atol, would_pass=would_pass, factor=factor,
        a=a.text if text else a.values, b=b.text if text else b.values,
        loc_a=a.loc, loc_b=b.loc, message=message, first_loop_iteration=first_loop,
        is_setup=is_setup)


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


def _numeric_verdict(group, label, ra, rb, x: _Arrays, tapdef, s, is_setup) -> TapVerdict:
    n, k = x.A.shape
    n_el = n * k
    mism = ~x.ok
    n_mis = int(mism.sum())
    rel = _rel(x)
    ulp = _ulp(x)
    max_abs, max_rel = float(x.abs_err.max()), float(rel.max())
    max_ulp = float(np.nan_to_num(ulp, posinf=np.inf).max())
    rtol_used = float(x.rtol.max())
    common = dict(n_el=n_el, n_mis=n_mis, max_abs=max_abs, max_rel=max_rel, max_ulp=max_ulp,
                  tolerance=rtol_used, atol=x.atol, is_setup=is_setup)
    if n_mis == 0:
        return _verdict(group, label, "agree", ra, rb, 0, **common)
    finite = ~x.finite_mismatch
    would_pass = None
    if finite.all():
        with np.errstate(divide="ignore", invalid="ignore"):
            need = np.where(x.mag > 0, (x.abs_err - x.atol) / x.mag, 0.0)
        would_pass = float(max(need.max(), 0.0))
    kind, factor, head = _classify(x, ra, rb, group.tap, tapdef, s, would_pass)
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
                    message=msg, first_loop=first_loop, **common)


def passing_rtol(x: _Arrays, need: float, digits: int = 3) -> float:
    """``need`` rounded *up* to ``digits`` significant digits and checked against the tolerance
    the comparison really applies (``atol + rtol·max(|a|, |b|, ‖row‖)``): the rtol a report prints
    must make the tap pass when given back (--rtol R --atol A), where a rounded-down 0.444 for a
    need of 0.4444 would not."""
    if need <= 0:
        return 0.0
    r = float(f"{need:.{digits - 1}e}")
    step = 10.0 ** (math.floor(math.log10(r)) - (digits - 1))
    for _ in range(4):
        if r >= need and np.all(x.abs_err <= x.atol + r * x.mag):
            return r
        r = float(f"{r + step:.{digits - 1}e}")
    return float(np.nextafter(need, np.inf)) * (1 + 1e-12)  # unreachable unless arithmetic is odd


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


def _loop_note(ra, rows: np.ndarray, n: int, x: _Arrays | None = None) -> str:
    first = ", ".join(f"{k} {v}" for k, v in ra[int(rows[0])].index.loop)
    if len(rows) == 1 and n > 1:
        return f"; only iteration {first} differs, the {n - 1} later ones agree"
    if x is not None and n > 1:
        with np.errstate(divide="ignore", invalid="ignore"):
            per_row = np.nan_to_num(x.abs_err / np.where(x.mag > 0, x.mag, 1.0), nan=0.0).max(axis=1)
        worst = int(np.argmax(per_row))
        rest = np.delete(per_row, worst).max()
        if per_row[worst] > 100 * rest:
            it = ", ".join(f"{k} {v}" for k, v in ra[worst].index.loop)
            return (f"; iteration {it} stands out ({per_row[worst]:.2g} relative), the other "
                    f"{n - 1} differ by at most {rest:.2g}")
    return f"; first divergent iteration: {first} ({len(rows)} of {n} iterations differ)"


def _classify(x: _Arrays, ra, rb, tap, tapdef, s, would_pass):
    """The most specific story that explains every divergent element of this tap."""
    for attempt in (
        lambda: _classify_nonfinite(x),
        lambda: _classify_integer(x, ra, rb, tap, tapdef, s),
        lambda: _classify_sign(x),
        lambda: _classify_scale(x, tap, tapdef, s),
        lambda: _classify_permutation(x),
        lambda: _classify_pixel_offset(x, tap, tapdef, s),
        lambda: _classify_precision(x, would_pass, s),
        lambda: _classify_rotation(x),
        lambda: _classify_different_quantity(x),
        lambda: _classify_offset(x),
    ):
        got = attempt()
        if got is not None:
            return got
    return ("out_of_tolerance", None, _oot_headline(x, would_pass))


def _oot_headline(x: _Arrays, would_pass) -> str:
    if would_pass is None:
        return "out of tolerance"
    if would_pass < 1e-12:
        return f"out of tolerance by {would_pass:.2g} relative (float64 rounding noise? check the tolerance)"
    if would_pass < 1e-6:
        return f"out of tolerance by {would_pass:.2g} relative: tiny, but far above float64 noise"
    return f"out of tolerance by {would_pass:.3g} relative: far above float64 noise, not precision"


def plausibility(tap: str, tapdef, side: str, records) -> str | None:
    """One-sided check: a value far outside its declared unit's plausible range.

    Returns e.g. "`lambda_meters` holds 0.5 in the port (B): looks like Å, not m", else None.
    """
    rng = getattr(tapdef, "range", None)
    unit = getattr(tapdef, "unit", None)
    if not rng or not unit:
        return None
    lo, hi = float(rng[0]), float(rng[1])
    for r in records:
        for v in r.values:
            if not math.isfinite(v) or v == 0 or lo <= abs(v) <= hi:
                continue
            who = "reference (A)" if side == "a" else "port (B)"
            u = units.plausible_unit(v, unit, lo, hi)
            looks = f"looks like {units._pretty(u.name)}, not {units._pretty(unit)}" if u else (
                f"outside the plausible range [{lo:g}, {hi:g}] {unit}")
            return f"`{tap}` holds {v:g} in the {who} at {r.loc}: {looks}"
    return None
