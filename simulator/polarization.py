"""Kahn polarization factor (physics.md §4.4)."""

from __future__ import annotations

from typing import NamedTuple

import torch

from simulator.vectors import cross, unitize

Tensor = torch.Tensor


class PolarBasis(NamedTuple):
    """Per-source B = unit(p̂×i) and E = unit(i×B), each (S, 3): they depend on the source only."""

    B: Tensor
    E: Tensor


def polar_basis(incident: Tensor, axis: Tensor) -> PolarBasis:
    """incident: (S, 3) unit beam directions; axis: (3,) polarization (E-vector) direction p̂."""
    B = unitize(cross(axis.expand_as(incident), incident))
    return PolarBasis(B, unitize(cross(incident, B)))


def kahn_factor(K: float, incident: Tensor, d: tuple, basis: PolarBasis) -> Tensor:
    """P = ½(1 + cos²2θ − K·cos2ψ·sin²2θ), shape (P, S).

    incident: (S, 3) unit; d: three (P,) components of the unit diffracted direction.
    K = 0 is the unpolarized formula and skips ψ, as the C does.
    """
    c = d[0][:, None] * incident[None, :, 0] + d[1][:, None] * incident[None, :, 1] + d[2][:, None] * incident[None, :, 2]
    if K == 0:
        # ψ = 0 and K·cos2ψ·sin²2θ is an exact 0 (for finite c), so it is left out
        return 0.5 * (1.0 + c * c)
    s2 = 1.0 - c * c
    dB = d[0][:, None] * basis.B[None, :, 0] + d[1][:, None] * basis.B[None, :, 1] + d[2][:, None] * basis.B[None, :, 2]
    dE = d[0][:, None] * basis.E[None, :, 0] + d[1][:, None] * basis.E[None, :, 1] + d[2][:, None] * basis.E[None, :, 2]
    psi = -torch.atan2(dB, dE)
    return 0.5 * (1.0 + c * c - K * torch.cos(2.0 * psi) * s2)
