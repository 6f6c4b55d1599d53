"""How a root-cause tap's error varies over the traced pixels.

A constant factor (×1e10, ×N³) is classified per tap by the engine. A factor that varies from
pixel to pixel needs the pixels side by side: a port/reference ratio that grows steadily with the
scattering angle 2θ is an angle-dependent factor applied wrongly (polarization, obliquity, solid
angle, absorption — incident 8: "radial 6 % error"), and a port value that stays put where the
reference varies is a factor the port never computes (left at 1, or at a default).

Each point is (2θ in degrees or None, reference value, port value) of one scalar tap at one
pixel; nothing here reads traces.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

# A trend is claimed only over enough distinct scattering angles, spread over enough of them,
# and with a rank correlation this strong (7 traced pixels: one out-of-order pair gives 0.96).
MIN_POINTS = 4
MIN_SPAN_DEG = 2.0
MIN_RHO = 0.9
# Ratios that agree this closely are one constant factor, which the per-tap verdict explains.
CONSTANT_RTOL = 1e-6


@dataclass(frozen=True)
class Pattern:
    """kind: "radial" (ratio monotonic in 2θ) or "unapplied" (port constant, reference varies)."""

    kind: str
    text: str
    short: str  # a clause for a one-sentence headline

    def to_json(self) -> dict:
        return {"kind": self.kind, "text": self.text, "short": self.short}


def patterns(points: Sequence[tuple[float | None, float, float]]) -> tuple[Pattern, ...]:
    """The patterns the points show (possibly none). Non-finite values are ignored."""
    pts = [(t, a, b) for t, a, b in points if math.isfinite(a) and math.isfinite(b)]
    out = []
    unapplied = _unapplied(pts)
    if unapplied is not None:
        out.append(unapplied)
    radial = _radial([(t, a, b) for t, a, b in pts if t is not None and math.isfinite(t) and a != 0])
    if radial is not None:
        out.append(radial)
    return tuple(out)


def _unapplied(pts) -> Pattern | None:
    if len(pts) < 2:
        return None
    bs = [b for _, _, b in pts]
    as_ = [a for _, a, _ in pts]
    b0 = bs[0]
    if any(abs(b - b0) > CONSTANT_RTOL * max(abs(b0), 1e-300) for b in bs):
        return None
    lo, hi = min(as_), max(as_)
    if hi - lo <= CONSTANT_RTOL * max(abs(lo), abs(hi)):
        return None  # the reference is constant too: nothing varies to be missed
    what = "left at 1: the port never applies this factor" if b0 == 1.0 else \
        "a constant where the reference computes a value per pixel (a default, or computed once)"
    return Pattern("unapplied", f"the port holds {b0:.6g} at all {len(pts)} traced pixels while the reference "
                                f"varies from {lo:.6g} to {hi:.6g} — {what}",
                   f"the port holds {b0:.6g} at every traced pixel where the reference varies")


def _radial(pts) -> Pattern | None:
    by_angle: dict[float, float] = {}
    for t, a, b in pts:
        by_angle.setdefault(round(t, 6), b / a)
    if len(by_angle) < MIN_POINTS:
        return None
    angles = sorted(by_angle)
    if angles[-1] - angles[0] < MIN_SPAN_DEG:
        return None
    ratios = [by_angle[t] for t in angles]
    lo, hi = min(ratios), max(ratios)
    if hi - lo <= CONSTANT_RTOL * max(abs(lo), abs(hi)):
        return None
    rho = spearman(angles, ratios)
    if abs(rho) < MIN_RHO:
        return None
    way = "grows" if rho > 0 else "falls"
    return Pattern("radial", f"port/reference {way} with 2θ: {ratios[0]:.4g} at {angles[0]:.1f}° to "
                             f"{ratios[-1]:.4g} at {angles[-1]:.1f}° over {len(angles)} traced pixels "
                             f"(rank correlation {rho:+.2f}) — a radial trend: an angle-dependent factor "
                             f"(polarization, obliquity, solid angle, absorption), not one constant scale",
                   f"a radial trend: port/reference {ratios[0]:.4g} at 2θ {angles[0]:.1f}° to "
                   f"{ratios[-1]:.4g} at {angles[-1]:.1f}°")


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation (ties get their average rank); 0 when either side is constant."""
    rx, ry = _ranks(x), _ranks(y)
    n = len(rx)
    mx, my = sum(rx) / n, sum(ry) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    sxx = sum((a - mx) ** 2 for a in rx)
    syy = sum((b - my) ** 2 for b in ry)
    if sxx == 0 or syy == 0:
        return 0.0
    return sxy / math.sqrt(sxx * syy)


def _ranks(v: Sequence[float]) -> list[float]:
    order = sorted(range(len(v)), key=lambda i: v[i])
    ranks = [0.0] * len(v)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and v[order[j + 1]] == v[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2.0
        i = j + 1
    return ranks
