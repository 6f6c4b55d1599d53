"""Classify how a divergent tap differs: one story per tap, from the most specific (non-finite,
integer count, sign, named scale, permutation, ½-pixel offset, float32 precision, rotation) to
the least (different quantity, constant offset, out of tolerance).

Every factor is said as a number; it gets a *meaning* only when one fits the tap's declared
dimension: a unit conversion of that dimension, a run factor of the right kind (1/λ for lengths
and inverse lengths, N for lattice sums, oversample² and counts for accumulations), a pixel
offset only for a detector position in m or mm (and the MOSFLM hint only at ±½ pixel).
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from nbtrace.engine import units
from nbtrace.engine.arith import Arrays, scaled_norm

FLOAT32_EPS = float(np.finfo(np.float32).eps)
# A float32 pipeline accumulates a few ULPs per operation; beyond this it is not noise.
FLOAT32_NOISE = 32 * FLOAT32_EPS
# float32 noise amplified by a tap's conditioning (see classify_precision); beyond this, a bug.
FLOAT32_AMPLIFIED = 1e-3
# A ratio constant to this relative spread (or the printed precision, if coarser) is "one ratio".
RATIO_SPREAD = 1e-6
# Units a detector position is printed in: the only taps whose offsets are counted in pixels.
POSITION_UNITS = {"m": 1.0, "mm": 1e-3}


def dimension_of(tap: str, tapdef) -> str:
    """The dimension a tap's value holds: from the spec, else guessed once from its name."""
    if tapdef is not None and getattr(tapdef, "dimension", None):
        return tapdef.dimension
    return units.parse_unit(units.guess_unit(tap)).dimension


def unit_of(tap: str, tapdef) -> str:
    unit = getattr(tapdef, "unit", None) if tapdef is not None else None
    return units.parse_unit(unit).name if unit else units.parse_unit(units.guess_unit(tap)).name


def explain(ratio: float, tap: str, tapdef, s) -> units.NamedFactor | None:
    """Name a port/reference ratio: spec hints, then run-derived factors of the tap's kind, then
    unit conversions of its dimension."""
    if not math.isfinite(ratio) or ratio == 0:
        return None
    hints = getattr(tapdef, "hints", None) or {}
    for f, meaning in hints.items():
        if math.isclose(ratio, float(f), rel_tol=1e-6):
            return units.NamedFactor(float(f), meaning)
    dim = dimension_of(tap, tapdef)
    for nf in s.run_factors:
        if nf.dims and dim not in nf.dims:
            continue
        if math.isclose(ratio, nf.factor, rel_tol=1e-6):
            return nf
    return units.explain_factor(ratio, dim)


def ratio_text(r: float) -> str:
    """×1e-10, ×0.924, and ×(1 − 4.5e-09) for a ratio too close to 1 for three digits."""
    if abs(r - 1) < 5e-3:
        return f"×(1 {'+' if r > 1 else '−'} {abs(r - 1):.2g})"
    return f"×{r:.3g}"


def fmt(v: float) -> str:
    return f"{v:.6g}"


def vec(vals) -> str:
    return "(" + ", ".join(fmt(v) for v in vals) + ")"


def classify_nonfinite(x: Arrays):
    if not x.finite_mismatch.any():
        return None
    r, c = np.argwhere(x.finite_mismatch)[0]
    if not np.isfinite(x.A[r, c]) and not np.isfinite(x.B[r, c]):
        return ("nonfinite", None,
                f"non-finite on both sides, but not the same: reference {fmt(x.A[r, c])}, port "
                f"{fmt(x.B[r, c])} (component {c}); an overflow or a sign error on one side?")
    return ("nonfinite", None,
            f"non-finite on one side only: reference {fmt(x.A[r, c])}, port {fmt(x.B[r, c])} "
            f"(component {c}); a division by zero or a zero-weight term on one side?")


def classify_integer(x: Arrays, ra, rb, tap, tapdef, s):
    # a double that happens to be integral prints like an integer ("40000"): only a tap the
    # spec declares a count is one; without a spec, both sides printing integers must do
    if tapdef is not None and getattr(tapdef, "dimension", None) != "count":
        return None
    # only reached for a divergent tap: reading the kinds row by row is affordable here
    if not all(r.kind == "int" for r in ra) or not all(r.kind == "int" for r in rb):
        return None
    bad = np.argwhere(~x.ok)[0]
    av, bv = float(x.A[tuple(bad)]), float(x.B[tuple(bad)])
    head = f"integer count differs: {av_text(bv)} vs {av_text(av)} (port vs reference)"
    factor = bv / av if av != 0 and math.isfinite(bv / av) else None
    if factor is not None:
        nf = explain(factor, tap, tapdef, s)
        head += f"; ratio {fmt(factor)}" + (f" = {nf.meaning.removeprefix('= ')}" if nf is not None else "")
    return ("integer_count", factor, head)


def av_text(v: float) -> str:
    return str(int(v)) if math.isfinite(v) and abs(v) < 1e18 else fmt(v)


def classify_sign(x: Arrays):
    if not np.any(x.mag_n > x.tol_n):
        return None
    if np.all(np.abs(x.An + x.Bn) <= x.tol_n):
        return ("sign", -1.0, "port = −reference: a sign flip in every component")
    return None


def _zero(V: np.ndarray, rtol: np.ndarray) -> np.ndarray:
    """Components that are zero next to their own row's size (scaled first: never overflows)."""
    Vn, norm = scaled_norm(V)
    return np.abs(Vn) <= rtol * norm


def constant_ratio(x: Arrays) -> float | None:
    """The single ratio B/A over all elements, or None. Zeros must coincide on both sides."""
    # "zero" is judged against each side's own vector size: a port ×1e-10 is all "zero" next
    # to the reference's magnitude, yet its own components are perfectly distinct
    # (atol is in the reference's units, meaningless for a port off by 1e10: not used here)
    if x.finite_mismatch.any():
        return None
    zero_a, zero_b = _zero(x.A, x.rtol), _zero(x.B, x.rtol)
    if np.any(zero_a != zero_b):
        return None
    nz = ~zero_a
    if not nz.any():
        return None
    with np.errstate(all="ignore"):
        ratios = x.B[nz] / x.A[nz]
    if not np.all(np.isfinite(ratios)):
        return None
    r = float(np.median(ratios))
    if r == 0 or not math.isfinite(r):
        return None
    spread = max(RATIO_SPREAD, 4 * float(x.rtol.max()))
    if np.all(np.abs(ratios - r) <= spread * abs(r)):
        return r
    return None


def classify_scale(x: Arrays, tap, tapdef, s):
    r = constant_ratio(x)
    if r is None or math.isclose(r, 1.0, rel_tol=1e-3) or math.isclose(r, -1.0, rel_tol=1e-9):
        return None
    k = x.A.shape[1]
    where = f" in all {k} components" if k > 1 else ""
    nf = explain(abs(r), tap, tapdef, s)
    sign = "−" if r < 0 else ""
    flip = " and a sign flip" if r < 0 else ""
    if nf is not None:
        r = math.copysign(nf.factor, r)  # the named factor, not its rounding-noisy estimate
        return ("scale", r, f"port = reference × {sign}{fmt(abs(r))}{where}, i.e. {nf.meaning}{flip}")
    n_nonzero = int(np.count_nonzero(np.abs(x.An) > x.tol_n))
    if n_nonzero >= 2:
        dim = dimension_of(tap, tapdef).replace("_", " ")
        return ("scale", r, f"port = reference × {fmt(r)}{where} (one constant ratio, not a known unit "
                            f"or run factor of a {dim} value)")
    return None


_AXES = "xyz"


def classify_permutation(x: Arrays):
    k = x.A.shape[1]
    if k < 2 or k > 4 or not np.any(x.mag_n > x.tol_n):
        return None
    ident = tuple(range(k))
    for perm in itertools.permutations(range(k)):
        if perm == ident:
            continue
        for signs in itertools.product((1.0, -1.0), repeat=k):
            cand = x.An[:, perm] * np.asarray(signs)
            if np.all(np.abs(x.Bn - cand) <= x.tol_n):
                names = _AXES if k == 3 else [f"c{i}" for i in range(k)]
                desc = ", ".join(("−" if sg < 0 else "") + names[p] for p, sg in zip(perm, signs))
                swapped = [f"{names[i]}↔{names[p]}" for i, p in enumerate(perm) if p > i]
                return ("permutation", None,
                        f"components swapped ({', '.join(swapped) or 'cyclic'}): "
                        f"port ({', '.join(names[:k])}) = reference ({desc})")
    return None


def constant_offset(x: Arrays) -> np.ndarray | None:
    with np.errstate(all="ignore"):
        d = x.B - x.A
        d0 = np.median(d, axis=0)
        if np.all(np.isfinite(d)) and np.all(np.abs(d - d0) <= x.tol):
            return d0
    return None


def pixel_words(v: float) -> str | None:
    """+0.5 -> "½", -1 -> "−1"; None unless v is a finite multiple of ½."""
    if not math.isfinite(v * 2):
        return None
    h = round(v * 2)
    if h == 0 or abs(v * 2 - h) > 1e-3:
        return None
    sign = "−" if h < 0 else "+"
    h = abs(h)
    return sign + ("½" if h == 1 else (str(h // 2) if h % 2 == 0 else f"{h}/2"))


def _half_pixel_hint(words: list[str]) -> str:
    """The MOSFLM convention moves the beam centre by exactly ½ pixel: named only then."""
    if words and all(w in ("+½", "−½") for w in words):
        return ": a beam-centre convention (MOSFLM +½ pixel) dropped or doubled?"
    return ": the detector origin or beam centre differs by whole pixels (a different beam centre?)"


def classify_pixel_offset(x: Arrays, tap, tapdef, s):
    g = s.geometry
    to_m = POSITION_UNITS.get(unit_of(tap, tapdef))
    if x.A.shape[1] not in (1, 3) or not g.pixel_size or to_m is None:
        return None
    d = constant_offset(x)
    if d is None:
        return None
    d = d * to_m
    unit_word = "m" if to_m == 1.0 else "m (printed in mm)"
    if x.A.shape[1] == 1:
        # a beam centre or distance: the offset in pixels, without an axis
        w = pixel_words(float(d[0]) / g.pixel_size)
        if w is None:
            return None
        exact = "exactly " if w in ("+½", "−½") else ""
        return ("offset", None, f"additive offset of {exact}{w} pixel (port − reference = {d[0]:.6g} {unit_word}, "
                                f"pixel {g.pixel_size:g} m){_half_pixel_hint([w])}")
    f_axis = np.asarray(g.fdet if g.fdet else (0.0, 0.0, 1.0))
    s_axis = np.asarray(g.sdet if g.sdet else (0.0, -1.0, 0.0))
    f = float(d @ f_axis) / g.pixel_size
    sl = float(d @ s_axis) / g.pixel_size
    resid = d - (f * f_axis + sl * s_axis) * g.pixel_size
    if np.linalg.norm(resid) > 1e-3 * g.pixel_size:
        return None
    parts, words = [], []
    for v, axis in ((f, "fast"), (sl, "slow")):
        w = pixel_words(v)
        if w is None and abs(v) > 1e-3:
            return None
        if w is not None:
            parts.append(f"{w} pixel along {axis}")
            words.append(w)
    if not parts:
        return None
    exact = "exactly " if all(w in ("+½", "−½") for w in words) else ""
    return ("offset", None,
            f"additive offset of {exact}{' and '.join(parts)} (port − reference = {vec(d)} m, "
            f"pixel {g.pixel_size:g} m){_half_pixel_hint(words)}")


def classify_rotation(x: Arrays):
    if x.A.shape[1] != 3:
        return None
    na, nb = np.linalg.norm(x.An, axis=1), np.linalg.norm(x.Bn, axis=1)
    if not np.all(na > 0) or not np.all(np.abs(na - nb) <= x.tol_n[:, 0]):
        return None
    cos = np.clip(np.sum(x.An * x.Bn, axis=1) / (na * nb), -1.0, 1.0)
    angle = float(np.degrees(np.arccos(cos)).max())
    return ("rotation", None,
            f"same norm, different direction: rotated by {angle:.4g}° (a rotation by a different "
            f"angle, in a different order, or about a different axis?)")


def classify_precision(x: Arrays, would_pass: float | None, s):
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


def classify_different_quantity(x: Arrays):
    k = x.A.shape[1]
    if k < 2:
        return None
    row = int(np.argmax((~x.ok).any(axis=1)))
    a, b = x.An[row], x.Bn[row]
    if np.any(np.abs(a) <= x.tol_n[row]) or np.any(np.abs(b) <= x.tol_n[row]):
        return None
    ratios = b / a
    spread = np.abs(ratios).max() / np.abs(ratios).min()
    if spread < 2 and np.all(np.sign(ratios) == np.sign(ratios[0])):
        return None
    return ("different_quantity", None,
            f"not a unit or scale error: a different quantity; per-component ratios port/reference "
            f"= {vec(ratios)}")


def classify_offset(x: Arrays):
    if x.A.shape[0] < 2:
        return None
    d = constant_offset(x)
    if d is None or not np.any(np.abs(d) > x.tol.min()):
        return None
    if np.allclose(x.A, x.A[0]):  # a constant tap: a "constant offset" says nothing more
        return None
    return ("offset", None, f"additive offset: port − reference = {vec(d)} in every record")


def classify(x: Arrays, ra, rb, tap, tapdef, s, would_pass):
    """(kind, factor, headline): the most specific story that explains every divergent element."""
    for attempt in (
        lambda: classify_nonfinite(x),
        lambda: classify_integer(x, ra, rb, tap, tapdef, s),
        lambda: classify_sign(x),
        lambda: classify_scale(x, tap, tapdef, s),
        lambda: classify_permutation(x),
        lambda: classify_pixel_offset(x, tap, tapdef, s),
        lambda: classify_precision(x, would_pass, s),
        lambda: classify_rotation(x),
        lambda: classify_different_quantity(x),
        lambda: classify_offset(x),
    ):
        got = attempt()
        if got is not None:
            return got
    return ("out_of_tolerance", None, oot_headline(x, would_pass))


def oot_headline(x: Arrays, would_pass) -> str:
    """Out of tolerance with no named story; the ratio is still said when the elements share one
    (a fluence ×7.9e-10 must not read "out of tolerance by 1")."""
    r = constant_ratio(x)
    ratio = (f"; port = reference {ratio_text(r)}" + (" in every component" if x.A.shape[1] > 1 else "")
             if r is not None and not math.isclose(r, 1.0, rel_tol=1e-9) else "")
    if would_pass is None:
        return "out of tolerance" + ratio
    if would_pass < 1e-12:
        return f"out of tolerance by {would_pass:.2g} relative (float64 rounding noise? check the tolerance){ratio}"
    if would_pass < 1e-6:
        return f"out of tolerance by {would_pass:.2g} relative: tiny, but far above float64 noise{ratio}"
    return f"out of tolerance by {would_pass:.3g} relative: far above float64 noise, not precision{ratio}"


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
