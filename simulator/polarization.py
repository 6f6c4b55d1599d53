"""Kahn polarization factor (physics.md §4.4)."""

from __future__ import annotations

import torch

from simulator.vectors import cross, dot, unitize

Tensor = torch.Tensor


def kahn_factor(K: float, incident: Tensor, diffracted: Tensor, axis: Tensor) -> Tensor:
    """P = ½(1 + cos²2θ − K·cos2ψ·sin²2θ).

    incident: (..., 3) unit beam direction; diffracted: (..., 3) unit; axis: (3,) E-vector
    direction p̂. K = 0 is the unpolarized formula and skips ψ, as the C does.
    """
    c = dot(incident, diffracted)
    s2 = 1.0 - c * c
    if K == 0:
        return 0.5 * (1.0 + c * c - 0.0 * s2)
    B = unitize(cross(axis.expand_as(incident), incident))
    E = unitize(cross(incident, B))
    psi = -torch.atan2(dot(diffracted, B), dot(diffracted, E))
    return 0.5 * (1.0 + c * c - K * torch.cos(2.0 * psi) * s2)
