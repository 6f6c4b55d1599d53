"""Poisson noise exactly as nanoBragg draws it (physics.md §7.3): float32 locals, ran1 deviates.

The draws are inherently sequential (one shared generator, pixels in memory order), so this is
a plain Python loop: about a second per million pixels; fine for test-sized frames.
"""

from __future__ import annotations

import math
import time

import numpy as np

from nbtrace.sim.rng import Ran1

f32 = np.float32
_COF = (76.18009172947146, -86.50532032941677, 24.01409824083091, -1.231739572450155,
        0.1208650973866179e-2, -0.5395239384953e-5)


def gammln(xx: float) -> float:
    """Numerical Recipes' Lanczos lnΓ, double inside, float32 out."""
    x = y = float(f32(xx))
    tmp = x + 5.5
    tmp -= (x + 0.5) * math.log(tmp)
    ser = 1.000000000190015
    for c in _COF:
        y += 1.0
        ser += c / y
    return float(f32(-tmp + math.log(2.5066282746310005 * ser / x)))


class PoissonSource:
    """One noise stream: generator state, its seed and the Box–Muller cache."""

    def __init__(self, seed: int):
        self.rng = Ran1()
        self.seed = [seed]
        self.cached: float | None = None

    def uniform(self) -> float:
        return self.rng.next(self.seed)

    def gauss(self) -> float:
        if self.cached is not None:
            g, self.cached = self.cached, None
            return g
        while True:
            v1 = f32(2.0 * self.uniform() - 1.0)
            v2 = f32(2.0 * self.uniform() - 1.0)
            rsq = f32(v1 * v1 + v2 * v2)
            if 0.0 < rsq < 1.0:
                break
        fac = f32(math.sqrt(-2.0 * math.log(rsq) / rsq))
        self.cached = float(f32(v1 * fac))
        return float(f32(v2 * fac))

    def poisson(self, mean: float) -> float:
        xm = f32(mean)
        if xm > 1.0e6:
            return float(f32(float(xm) + math.sqrt(float(xm)) * self.gauss()))
        if xm < 12.0:
            g = f32(math.exp(-float(xm)))
            em, t = -1, f32(1.0)
            while True:
                em += 1
                t = f32(t * f32(self.uniform()))
                if not t > g:
                    return float(em)
        sq = f32(math.sqrt(2.0 * float(xm)))
        alxm = f32(math.log(float(xm)))
        g = f32(f32(xm * alxm) - f32(gammln(float(xm) + 1.0)))
        while True:
            while True:
                y = f32(math.tan(math.pi * self.uniform()))
                em = f32(f32(sq * y) + xm)
                if not em < 0.0:
                    break
            em = f32(math.floor(em))
            expo = f32(f32(f32(em * alxm) - f32(gammln(float(em) + 1.0))) - g)
            t = f32(0.9 * (1.0 + float(f32(y * y))) * math.exp(float(expo)))
            if not self.uniform() > t:
                return float(em)


def noise_image(image: np.ndarray, mask: np.ndarray, adc: float, seed: int | None) -> np.ndarray:
    """uint16 noise image: Poisson(float32 pixel) + adc, clipped at 65535, truncated; 0 outside the ROI.

    seed: the C's stored (negative) noise seed; None means −time(0) like the C.
    """
    src = PoissonSource(seed if seed is not None else -int(time.time()))
    flat = image.astype(np.float32).reshape(-1)
    inside = mask.reshape(-1)
    out = np.zeros(flat.shape, dtype=np.uint16)
    for i in np.flatnonzero(inside):
        y = src.poisson(float(flat[i])) + adc
        out[i] = int(min(y, 65535.0)) if y > 0 else 0
    return out.reshape(image.shape)
