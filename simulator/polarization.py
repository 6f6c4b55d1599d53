"""Kahn polarization factor (physics.md §4.4)."""

from __future__ import annotations

from typing import NamedTuple

import torch

from nbtrace.sim.vectors import cross, unitize

Tensor = torch.Tensor


class PolarBasis(NamedTuple):
    """Per-source B = unit(p̂×i) and E = unit(i×B), each (S, 3): they depend on the source only."""

    B: Tensor
    E: Tensor


def polar_basis(incident: Tensor, axis: Tensor) -> PolarBasis:
    """incident: (S, 3) unit beam directions; axis: (3,) polarization (E-vector) direction p̂."""
    B = unitize(cross(axis.expand_as(incident), incident))
    return PolarBasis(B, unitize(cross(incident, B)))


def kahn_factor(K: float, incident: Tensor, d: tuple, basis: PolarBasis, codes: tuple | None = None) -> Tensor:
    """P = ½(1 + cos²2θ − K·cos2ψ·sin²2θ), shape (P, S).

    incident: (S, 3) unit; d: three (P,) components of the unit diffracted direction.
    K = 0 is the unpolarized formula and skips ψ, as the C does. ``codes`` (optional, per
    incident component for every source: 0 = ±0, 1 = exactly 1, 2 = other) lets K = 0 skip
    the products by 0 and 1.
    """
    if K == 0:
        # ψ = 0 and K·cos2ψ·sin²2θ is an exact 0 (for finite c), so it is left out
        c = _cos2theta_for_square(incident, d, codes)
        return 0.5 * (1.0 + c * c)
    c = d[0][:, None] * incident[None, :, 0] + d[1][:, None] * incident[None, :, 1] + d[2][:, None] * incident[None, :, 2]
    s2 = 1.0 - c * c
    dB = d[0][:, None] * basis.B[None, :, 0] + d[1][:, None] * basis.B[None, :, 1] + d[2][:, None] * basis.B[None, :, 2]
    dE = d[0][:, None] * basis.E[None, :, 0] + d[1][:, None] * basis.E[None, :, 1] + d[2][:, None] * basis.E[None, :, 2]
    psi = -torch.atan2(dB, dE)
    return 0.5 * (1.0 + c * c - K * torch.cos(2.0 * psi) * s2)


def _cos2theta_for_square(incident: Tensor, d: tuple, codes: tuple | None) -> Tensor:
    """d·i (P, S), exact where it is squared: a term d_k·0 only adds ±0 (so at most the
    sign of a zero sum changes, which c² erases) and d_k·1 is d_k."""
    if codes is None or all(code == 2 for code in codes) or all(code == 0 for code in codes):
        return d[0][:, None] * incident[None, :, 0] + d[1][:, None] * incident[None, :, 1] + d[2][:, None] * incident[None, :, 2]
    S = incident.shape[0]
    terms = [d[k][:, None].expand(-1, S) if code == 1 else d[k][:, None] * incident[None, :, k]
             for k, code in enumerate(codes) if code != 0]
    c = terms[0]
    for t in terms[1:]:
        c = c + t
    return c
