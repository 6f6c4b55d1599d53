"""The element-wise arithmetic of one tap's comparison, safe over the whole double range.

Each row (one record's components, reference and port) is divided by a power of two at least
half its largest finite magnitude before any norm, sum or difference is taken: the scaled values
are below 2 in magnitude, so ‖row‖ < 2√k and |a − b| < 4 never overflow, and the division is exact
(a power of two only moves the exponent). A norm taken on the raw values overflows past ~1e154,
which made the tolerance inf and let ``2e154`` agree with ``100``.

The tolerance of an element is ``atol + rtol·max(|a|, |b|, ‖row‖)`` (rtol at least the
printed-precision floor of either side); in scaled units ``atol/s + rtol·mag_n``, clipped to the
largest finite double, so it is never inf or nan. Non-finite values compare by identity: inf
with inf, -inf with -inf, nan with nan; anything else against a non-finite value diverges.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from nbtrace.errors import UsageError

MAX_FLOAT = float(np.finfo(np.float64).max)


def check_tolerance(value, what: str) -> float | None:
    """A tolerance as a float ≥ 0 (None stays None); UsageError for nan, inf, negative or text."""
    if value is None:
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"a tolerance must be a number, got {value!r}", where=what,
                         hint="give a finite number ≥ 0, e.g. 1e-9") from None
    if not math.isfinite(x) or x < 0:
        raise UsageError(f"a tolerance must be a finite number ≥ 0, got {value!r}", where=what,
                         hint="give a finite number ≥ 0, e.g. 1e-9 (0 asks for exact agreement)")
    return x


def precision_floor(sigdigits: np.ndarray) -> np.ndarray:
    """Relative uncertainty of a value printed with ``sigdigits`` significant digits."""
    return 0.5 * 10.0 ** (1.0 - sigdigits.astype(np.float64))


def row_scale(*arrays: np.ndarray) -> np.ndarray:
    """(n, 1): per row, a power of two between half and all of the largest finite |value| of all
    arrays (0.5 for a row of zeros or non-finite values only). Not the next power of two above:
    for values near the double limit that is 2^1024, which overflows."""
    m = np.zeros((arrays[0].shape[0], 1))
    for V in arrays:
        finite = np.where(np.isfinite(V), np.abs(V), 0.0)
        if V.shape[1]:
            m = np.maximum(m, finite.max(axis=1, keepdims=True))
    _, e = np.frexp(m)  # m = f·2^e with f in [0.5, 1); frexp(0) gives e = 0
    return np.ldexp(1.0, e - 1)


def scaled_norm(V: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(Vn, ‖Vn‖ per row): V divided by its own row scale (non-finite as 0), and the scaled norm."""
    Vf = np.where(np.isfinite(V), V, 0.0)
    Vn = Vf / row_scale(Vf)
    return Vn, np.linalg.norm(Vn, axis=1)[:, None]


@dataclass(frozen=True)
class Arrays:
    """One tap's values and their comparison. A, B: (n, k) raw values (reference, port).

    ``*_n`` arrays are in units of the row scale ``s`` (n, 1): An = A/s (non-finite as 0, |An| < 2),
    mag_n, tol_n, diff_n, atol_n; all finite. ``mag``, ``tol``: the same in the tap's own unit,
    clipped to the largest finite double (for classifiers that work on raw differences).
    ``abs_err``: |a − b| in the tap's unit (inf where only one side is finite, or where the
    difference itself exceeds the double range).
    """

    A: np.ndarray
    B: np.ndarray
    rtol: np.ndarray  # (n, 1) effective relative tolerance per row
    atol: float
    s: np.ndarray
    An: np.ndarray
    Bn: np.ndarray
    mag_n: np.ndarray
    tol_n: np.ndarray
    diff_n: np.ndarray
    atol_n: np.ndarray
    mag: np.ndarray
    tol: np.ndarray
    abs_err: np.ndarray
    ok: np.ndarray
    finite_mismatch: np.ndarray  # one side non-finite, the other not (or nan vs inf, or inf vs -inf)


def compare_arrays(A: np.ndarray, B: np.ndarray, sig_a: np.ndarray, sig_b: np.ndarray, rtol_spec: float,
                   atol: float) -> Arrays:
    rtol = np.maximum(rtol_spec, np.maximum(precision_floor(sig_a), precision_floor(sig_b)))[:, None]
    fa, fb = np.isfinite(A), np.isfinite(B)
    both = fa & fb
    with np.errstate(all="ignore"):
        Af, Bf = np.where(both, A, 0.0), np.where(both, B, 0.0)
        s = row_scale(Af, Bf)
        An, Bn = Af / s, Bf / s
        norm_n = np.maximum(np.linalg.norm(An, axis=1), np.linalg.norm(Bn, axis=1))[:, None]
        mag_n = np.maximum(np.maximum(np.abs(An), np.abs(Bn)), norm_n)
        diff_n = np.abs(An - Bn)
        atol_n = np.minimum(atol / s, MAX_FLOAT)
        tol_n = np.minimum(atol_n + rtol * mag_n, MAX_FLOAT)
        mag = np.minimum(mag_n * s, MAX_FLOAT)
        tol = np.minimum(tol_n * s, MAX_FLOAT)
        diff = diff_n * s
    same_nonfinite = ~fa & ~fb & ((A == B) | (np.isnan(A) & np.isnan(B)))
    finite_mismatch = ~both & ~same_nonfinite
    abs_err = np.where(finite_mismatch, np.inf, diff)
    ok = (both & (diff_n <= tol_n)) | same_nonfinite
    return Arrays(A, B, rtol, atol, s, An, Bn, mag_n, tol_n, diff_n, atol_n, mag, tol, abs_err, ok,
                  finite_mismatch)


def relative_errors(x: Arrays) -> np.ndarray:
    """|a − b| / |a| per element (0 where equal, inf where a is 0 or a side is non-finite)."""
    with np.errstate(all="ignore"):
        rel = np.where(x.An != 0, x.diff_n / np.abs(x.An), x.abs_err / np.abs(x.A))
    rel = np.where(x.finite_mismatch, np.inf, rel)
    return np.where(x.abs_err == 0, 0.0, np.where(np.isnan(rel), np.inf, rel))


def ulp_errors(x: Arrays) -> np.ndarray:
    with np.errstate(all="ignore"):
        big = np.maximum(np.abs(np.nan_to_num(x.A, posinf=0.0, neginf=0.0)),
                         np.abs(np.nan_to_num(x.B, posinf=0.0, neginf=0.0)))
        return np.where(x.finite_mismatch, np.inf, x.diff_n * (x.s / np.spacing(big)))


def needed_rtol(x: Arrays) -> np.ndarray:
    """Per element, the rtol that would make it pass: (|a − b| − atol) / magnitude (≥ 0)."""
    with np.errstate(all="ignore"):
        need = np.where(x.mag_n > 0, (x.diff_n - x.atol_n) / x.mag_n, 0.0)
    return np.maximum(np.nan_to_num(need, nan=0.0), 0.0)


def passing_rtol(x: Arrays, need: float, digits: int = 3) -> float:
    """``need`` rounded *up* to ``digits`` significant digits and checked against the tolerance
    the comparison really applies (``atol + rtol·max(|a|, |b|, ‖row‖)``): the rtol a report prints
    must make the tap pass when given back (--rtol R --atol A), where a rounded-down 0.444 for a
    need of 0.4444 would not. A need that is not a finite number is returned as inf."""
    if not math.isfinite(need):
        return math.inf
    if need <= 0:
        return 0.0
    r = float(f"{need:.{digits - 1}e}")
    step = 10.0 ** (math.floor(math.log10(r)) - (digits - 1))
    with np.errstate(all="ignore"):
        for _ in range(4):
            if r >= need and np.all(x.diff_n <= np.minimum(x.atol_n + r * x.mag_n, MAX_FLOAT)):
                return r
            r = float(f"{r + step:.{digits - 1}e}")
    return float(np.nextafter(need, np.inf)) * (1 + 1e-12)  # unreachable unless arithmetic is odd
