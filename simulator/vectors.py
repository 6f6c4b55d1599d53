"""3-vector helpers over the last axis of torch tensors, with the C's operation order.

Written component by component (not via matmul/linalg) so that sums are formed in the same
order as nanoBragg's double arithmetic; parity at 1e-9 does not need it, ties in ceil(h−½) do.
All functions accept tensors of shape (..., 3) and broadcast; angles are radians.
"""

from __future__ import annotations

import torch

Tensor = torch.Tensor


def dot(x: Tensor, y: Tensor) -> Tensor:
    return x[..., 0] * y[..., 0] + x[..., 1] * y[..., 1] + x[..., 2] * y[..., 2]


def cross(x: Tensor, y: Tensor) -> Tensor:
    return torch.stack(
        (
            x[..., 1] * y[..., 2] - x[..., 2] * y[..., 1],
            x[..., 2] * y[..., 0] - x[..., 0] * y[..., 2],
            x[..., 0] * y[..., 1] - x[..., 1] * y[..., 0],
        ),
        dim=-1,
    )


def norm(x: Tensor) -> Tensor:
    return torch.sqrt(dot(x, x))


def unitize(x: Tensor) -> Tensor:
    """x / |x|; a zero vector stays zero, as nanoBragg's unitize leaves it (e.g. the polarization
    basis of a -polar_vector parallel to the beam)."""
    n = norm(x)[..., None]
    zero = n == 0
    if not bool(zero.any()):
        return x / n
    return torch.where(zero, torch.zeros_like(x), x / torch.where(zero, torch.ones_like(n), n))


def rescale(x: Tensor, length: Tensor) -> Tensor:
    """x scaled to ``length`` (same unit as length)."""
    return x / norm(x)[..., None] * length[..., None] if torch.is_tensor(length) else x / norm(x)[..., None] * length


def _angle(theta, like: Tensor) -> Tensor:
    return theta if torch.is_tensor(theta) else torch.tensor(theta, dtype=like.dtype, device=like.device)


def rotate_x(v: Tensor, t) -> Tensor:
    c, s = torch.cos(_angle(t, v)), torch.sin(_angle(t, v))
    return torch.stack((v[..., 0], v[..., 1] * c + v[..., 2] * -s, v[..., 1] * s + v[..., 2] * c), dim=-1)


def rotate_y(v: Tensor, t) -> Tensor:
    c, s = torch.cos(_angle(t, v)), torch.sin(_angle(t, v))
    return torch.stack((v[..., 0] * c + v[..., 2] * s, v[..., 1], v[..., 0] * -s + v[..., 2] * c), dim=-1)


def rotate_z(v: Tensor, t) -> Tensor:
    c, s = torch.cos(_angle(t, v)), torch.sin(_angle(t, v))
    return torch.stack((v[..., 0] * c + v[..., 1] * -s, v[..., 0] * s + v[..., 1] * c, v[..., 2]), dim=-1)


def _is_zero(t) -> bool:
    # A Python 0 skips the rotation like the C; a tensor is always applied so that its
    # gradient exists (rotation by an exact 0 is the identity to the bit anyway).
    return (not torch.is_tensor(t)) and t == 0.0


def rotate_xyz(v: Tensor, rx, ry, rz) -> Tensor:
    """R_z R_y R_x v, each elementary rotation skipped when its (float) angle is exactly 0."""
    if not _is_zero(rx):
        v = rotate_x(v, rx)
    if not _is_zero(ry):
        v = rotate_y(v, ry)
    if not _is_zero(rz):
        v = rotate_z(v, rz)
    return v


def rotate_axis(v: Tensor, axis: Tensor, phi) -> Tensor:
    """Rodrigues rotation of v (..., 3) about ``axis`` (used as given, not normalized) by phi.

    ``phi`` may be a tensor of shape (...) broadcasting against v's leading shape.
    """
    phi = _angle(phi, v)
    c, s = torch.cos(phi), torch.sin(phi)
    ax = axis.expand_as(v) if axis.dim() == 1 else axis
    d = dot(ax, v) * (1.0 - c)
    kx = cross(ax, v)
    return ax * d[..., None] + v * c[..., None] + kx * s[..., None]
