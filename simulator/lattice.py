"""Lattice transform F_latt for the four crystal shapes (physics.md §2.8).

h, k, l are fractional Miller indices (any shape, broadcasting); N are the integer cell counts.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from nbtrace.sim.constants import ROUND_NORM

Tensor = torch.Tensor


class LatticeFactor(NamedTuple):
    """Per-axis factors (1 for N = 1 or a non-SQUARE shape) and their product."""

    a: Tensor
    b: Tensor
    c: Tensor
    total: Tensor


def sincg(x: Tensor, n: int, divided: bool = False, fused: bool = False) -> Tensor:
    """sin(N·x)/sin(x), N exactly at x == 0. ``divided`` is the flatt-normalization injection (÷N)."""
    zero = x == 0.0
    if fused or x.requires_grad or bool(zero.any()):
        den = torch.where(zero, torch.ones_like(x), torch.sin(x))  # keeps the gradient finite at 0
        val = torch.where(zero, torch.full_like(x, float(n)), torch.sin(n * x) / den)
    else:  # the common case: no exact zero in this chunk, skip the two selects
        val = torch.sin(n * x) / torch.sin(x)
    return val / n if divided else val


def sinc3(x: Tensor) -> Tensor:
    """3·(sin x/x − cos x)/x², 1 exactly at x == 0."""
    zero = x == 0.0
    safe = torch.where(zero, torch.ones_like(x), x)
    return torch.where(zero, torch.ones_like(x), 3.0 * (torch.sin(safe) / safe - torch.cos(safe)) / (safe * safe))


def square(h: Tensor, k: Tensor, l: Tensor, N: tuple[int, int, int], divided: bool = False,
           fused: bool = False) -> LatticeFactor:
    """SQUARE (parallelepiped) shape on the full h, k, l; axes with N = 1 give exactly 1."""
    if not (fused or h.requires_grad or k.requires_grad or l.requires_grad):
        quick = _square_unchecked(h, k, l, N, divided)
        if quick is not None:
            return quick
    factors = [sincg(math.pi * x, n, divided, fused) if n > 1 else None for x, n in zip((h, k, l), N)]
    return _assemble(h, factors)


def _square_unchecked(h, k, l, N, divided: bool) -> LatticeFactor | None:
    """sin(Nx)/sin(x) per axis with no x == 0 test, or None when a NaN in the product says
    some x was 0 (0/0) and the checked path must redo it. One test on the product replaces a
    test per axis; away from x == 0 the values are those of the checked path, bit for bit."""
    factors = []
    for x, n in zip((h, k, l), N):
        if n > 1:
            x = math.pi * x
            val = torch.sin(n * x) / torch.sin(x)
            factors.append(val / n if divided else val)
        else:
            factors.append(None)
    out = _assemble(h, factors)
    # NaN anywhere makes the sum NaN (an inf − inf false alarm only costs the checked path)
    return None if math.isnan(float(out.total.sum())) else out


def _assemble(h: Tensor, factors: list) -> LatticeFactor:
    live = [f for f in factors if f is not None]
    if not live:
        total = torch.ones_like(h)
    else:
        # the C multiplies by exactly 1 for an N = 1 axis; skipping that multiply is bit-identical
        total = live[0] if len(live) == 1 else live[0] * live[1] if len(live) == 2 else live[0] * live[1] * live[2]
    one = None
    if len(live) < 3:
        one = torch.ones_like(h)
    fa, fb, fc = (f if f is not None else one for f in factors)
    return LatticeFactor(fa, fb, fc, total)


def _offsets(h, k, l):
    return [x - torch.ceil(x - 0.5) for x in (h, k, l)]


def round_shape(h, k, l, N, fudge: float) -> LatticeFactor:
    dh, dk, dl = _offsets(h, k, l)
    Na, Nb, Nc = N
    rho2 = dh * dh * Na * Na + dk * dk * Nb * Nb + dl * dl * Nc * Nc
    total = Na * Nb * Nc * ROUND_NORM * sinc3(math.pi * torch.sqrt(rho2 * fudge))
    one = torch.ones_like(h)
    return LatticeFactor(one, one, one, total)


def _gauss_r2(h, k, l, N, a_star, b_star, c_star):
    dh, dk, dl = _offsets(h, k, l)
    delta = dh[..., None] * a_star + dk[..., None] * b_star + dl[..., None] * c_star
    Na, Nb, Nc = N
    r2 = delta[..., 0] * delta[..., 0] + delta[..., 1] * delta[..., 1] + delta[..., 2] * delta[..., 2]
    return r2 * Na * Na * Nb * Nb * Nc * Nc


def gauss_shape(h, k, l, N, fudge, a_star, b_star, c_star) -> LatticeFactor:
    r2 = _gauss_r2(h, k, l, N, a_star, b_star, c_star)
    one = torch.ones_like(h)
    return LatticeFactor(one, one, one, N[0] * N[1] * N[2] * torch.exp(-r2 / 0.63 * fudge))


def tophat_shape(h, k, l, N, fudge, a_star, b_star, c_star) -> LatticeFactor:
    r2 = _gauss_r2(h, k, l, N, a_star, b_star, c_star)
    one = torch.ones_like(h)
    total = torch.where(r2 * fudge < 0.3969, one * float(N[0] * N[1] * N[2]), torch.zeros_like(h))
    return LatticeFactor(one, one, one, total)


def lattice_factor(shape: str, h, k, l, N, fudge, a_star, b_star, c_star, divided=False, fused=False) -> LatticeFactor:
    """Dispatch on the shape name: 'square', 'round', 'gauss' or 'tophat'. ``fused`` avoids
    data-dependent branches (for a compiled kernel)."""
    if shape == "square":
        return square(h, k, l, N, divided, fused)
    if shape == "round":
        return round_shape(h, k, l, N, fudge)
    if shape == "gauss":
        return gauss_shape(h, k, l, N, fudge, a_star, b_star, c_star)
    return tophat_shape(h, k, l, N, fudge, a_star, b_star, c_star)
