"""Crystal orientation: cell → reciprocal/real vectors, -mat, misset, φ steps and mosaic domains.

Implements physics.md §2.1–2.7. Vectors are torch tensors of shape (3,) (or stacks (..., 3)),
so that the image is differentiable with respect to the cell, misset angles and λ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from nbtrace.errors import UsageError
from nbtrace.sim.constants import DBL_MIN
from nbtrace.sim.rng import Ran1
from nbtrace.sim.vectors import cross, dot, norm, rescale, rotate_axis, rotate_xyz

Tensor = torch.Tensor


@dataclass(frozen=True)
class Crystal:
    """Static crystal: real vectors a0, b0, c0 (m) and reciprocal a*, b*, c* (Å⁻¹), each (3,)."""

    a0: Tensor
    b0: Tensor
    c0: Tensor
    a_star: Tensor
    b_star: Tensor
    c_star: Tensor
    N: tuple[int, int, int]
    volume_A3: float


def _clamp_cos(x: Tensor) -> Tensor:
    # The C resets any |cos| > 1 to +1, whatever its sign.
    return torch.where(x * x > 1.0, torch.ones_like(x), x)


def reciprocal_from_cell(cell: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Default-orientation a*, b*, c* (Å⁻¹, (3,) each) and V (Å³) from cell (6,): Å, Å, Å, rad ×3."""
    a, b, c, al, be, ga = cell.unbind()
    s = (al + be + ga) / 2.0
    skew = torch.abs(torch.sin(s) * torch.sin(s - al) * torch.sin(s - be) * torch.sin(s - ga))
    V = 2.0 * a * b * c * torch.sqrt(skew)
    V = torch.where(V <= 0, torch.full_like(V, DBL_MIN), V)
    Vs = 1.0 / V
    lens = [b * c * torch.sin(al) * Vs, c * a * torch.sin(be) * Vs, a * b * torch.sin(ga) * Vs]
    lens = [torch.where(x <= 0, torch.abs(x), x) for x in lens]
    lens = [torch.where(x <= 0, torch.full_like(x, DBL_MIN), x) for x in lens]
    as_len, bs_len, cs_len = lens
    sin_gs = torch.clamp(c * Vs / (as_len * bs_len), -1.0, 1.0)
    cos_as = _clamp_cos((torch.cos(be) * torch.cos(ga) - torch.cos(al)) / (torch.sin(be) * torch.sin(ga)))
    cos_bs = _clamp_cos((torch.cos(ga) * torch.cos(al) - torch.cos(be)) / (torch.sin(ga) * torch.sin(al)))
    cos_gs = _clamp_cos((torch.cos(al) * torch.cos(be) - torch.cos(ga)) / (torch.sin(al) * torch.sin(be)))
    zero = torch.zeros_like(a)
    a_star = torch.stack((as_len, zero, zero))
    b_star = torch.stack((bs_len * cos_gs, bs_len * sin_gs, zero))
    c_star = torch.stack(
        (
            cs_len * cos_bs,
            cs_len * (cos_as - cos_bs * cos_gs) / sin_gs,
            cs_len * V / (a * b * c * sin_gs),
        )
    )
    return a_star, b_star, c_star, V


def read_mat(path: str, lambda0: Tensor, dtype, device, twice: bool = False) -> tuple[Tensor, Tensor, Tensor]:
    """a*, b*, c* (Å⁻¹) from a MOSFLM A matrix file: rows are x, y, z; columns a*, b*, c*.

    twice: the fault of incident 9 (the λ scaling applied a second time), for --inject.
    """
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    except OSError as exc:
        raise UsageError(f"cannot read -mat file: {exc.strerror}", where=path,
                         hint="give an existing MOSFLM A-matrix file") from None
    numbers = []
    for lineno, line in enumerate(text.splitlines(), 1):
        for tok in line.split():
            if len(numbers) == 9:
                break
            try:
                numbers.append(float(tok))
            except ValueError:
                raise UsageError(f"-mat: expected a number, got '{tok}'", where=f"{path}:{lineno}",
                                 hint="the file needs 9 numbers, three per line") from None
    if len(numbers) < 9:
        raise UsageError(f"-mat: found {len(numbers)} numbers, need 9", where=path,
                         hint="the file needs 9 numbers, three per line")
    m = torch.tensor(numbers, dtype=dtype, device=device).reshape(3, 3)
    scale = 1e-10 / lambda0
    if twice:  # incident 9: the port scaled the A matrix by 1e-10/λ a second time
        scale = scale * (1e-10 / lambda0)
    return m[:, 0] * scale, m[:, 1] * scale, m[:, 2] * scale


def build_crystal(cfg, cell: Tensor | None, misset: Tensor | None, lambda0: Tensor, dtype, device) -> Crystal:
    """§2.1–2.5: orientation from -cell and/or -mat, misset, real space (m) and N.

    cell: (6,) Å/rad or None; misset: (3,) rad or None; lambda0: m (0-d).
    """
    if cell is None and cfg.mat_file is None:
        raise UsageError("no crystal given", hint="give -cell a b c alpha beta gamma or -mat FILE")
    V_cell = None
    if cell is not None:
        a_star, b_star, c_star, V_cell = reciprocal_from_cell(cell)
    if cfg.mat_file is not None:
        a_star, b_star, c_star = read_mat(cfg.mat_file, lambda0, dtype, device,
                                          twice=cfg.has("mosflm-lambda-twice"))
    if misset is not None:
        rx, ry, rz = misset.unbind()
        a_star, b_star, c_star = (rotate_xyz(v, rx, ry, rz) for v in (a_star, b_star, c_star))
    A = cross(a_star, b_star)
    B = cross(b_star, c_star)
    C = cross(c_star, a_star)
    Vstar = dot(a_star, B)
    if cell is not None:
        B = rescale(B, cell[0] / V_cell)
        C = rescale(C, cell[1] / V_cell)
        A = rescale(A, cell[2] / V_cell)
        Vstar = 1.0 / V_cell
    V = 1.0 / Vstar
    a, b, c = B * V, C * V, A * V
    if cfg.has("triclinic-volume-formula"):
        a, b, c, a_star, b_star, c_star = _formula_volume_fault(a, b, c)
    else:
        a_star, b_star, c_star = cross(b, c) * Vstar, cross(c, a) * Vstar, cross(a, b) * Vstar
    a0, b0, c0 = a * 1e-10, b * 1e-10, c * 1e-10
    N = crystal_size(cfg, a0, b0, c0)
    return Crystal(a0, b0, c0, a_star, b_star, c_star, N, float(V.detach()))


def _formula_volume_fault(a: Tensor, b: Tensor, c: Tensor) -> tuple[Tensor, ...]:
    """Incident 10, for --inject triclinic-volume-formula: (a, b, c, a*, b*, c*).

    a, b, c: the real vectors (Å, (3,) each) generated from the reciprocal basis. The port took
    V = |a||b||c| (the orthogonal-cell formula) instead of a·(b×c), regenerated a*, b*, c* (Å⁻¹)
    with it, and then derived its real vectors back from those wrong reciprocal vectors with
    the same V. Both bases come out scaled by V_true/(|a||b||c|) (0.5–1.6 % for angles a few
    degrees from 90°), so h = a·q and the image move with them, as they did in the port.
    """
    V = norm(a) * norm(b) * norm(c)
    a_star, b_star, c_star = cross(b, c) / V, cross(c, a) / V, cross(a, b) / V
    return cross(b_star, c_star) * V, cross(c_star, a_star) * V, cross(a_star, b_star) * V, a_star, b_star, c_star


def crystal_size(cfg, a0: Tensor, b0: Tensor, c0: Tensor) -> tuple[int, int, int]:
    """§2.5: Na, Nb, Nc from -N* or the sample size (clipped to the beam on y and z), each ≥ 1."""
    sx, sy, sz = cfg.sample_size
    if cfg.beamsize >= 0:
        sy, sz = min(sy, cfg.beamsize), min(sz, cfg.beamsize)
    N = list(cfg.N)
    for i, (size, vec) in enumerate(((sx, a0), (sy, b0), (sz, c0))):
        if size > 0:
            N[i] = math.ceil(size / float(norm(vec.detach())))
    return tuple(max(1, int(n)) for n in N)


# ---------------------------------------------------------------- φ and mosaic sampling


@dataclass(frozen=True)
class PhiSampling:
    """φ0, step (rad), count and oscillation range (rad) after the §2.6 auto-rules."""

    phi0: float
    step: float
    steps: int
    osc: float


def phi_sampling(cfg) -> PhiSampling:
    """Apply the §2.6 auto-rules to -phi/-osc/-phistep/-phisteps."""
    osc, step, steps = cfg.osc, cfg.phistep, cfg.phisteps
    dphi = step if step is not None else -1.0
    if steps is None:
        if osc is None:
            if dphi <= 0:
                steps, osc, dphi = 1, 0.0, 0.0
            else:
                osc, steps = dphi, 2
        elif dphi <= 0:
            steps, dphi = 2, osc / 2.0
        else:
            steps = math.ceil(osc / dphi)
    else:
        steps = max(steps, 1)
        if osc is None:
            if dphi <= 0:
                osc = 1.0 / (180.0 * 0.318309886183790671537767526745028724)
                dphi = osc / steps
            else:
                osc, steps = dphi, 2
        elif step is None:
            dphi = osc / steps
    return PhiSampling(cfg.phi0, dphi, int(steps), osc)


def phi_angles(ph: PhiSampling, cfg, dtype, device) -> Tensor:
    """The φ_m = φ0 + m·Δφ samples (rad), shape (phisteps,)."""
    m = torch.arange(ph.steps, dtype=dtype, device=device)
    phis = ph.phi0 + m * ph.step
    if cfg.has("phi-midpoint") and ph.steps == 1:
        phis = phis + ph.osc / 2.0
    return phis


def mosaic_count(cfg) -> tuple[float, int]:
    """Spread (rad) and domain count after the §2.7 auto-rules."""
    spread, domains = cfg.mosaic_spread, cfg.mosaic_domains
    if domains is None or domains <= 0:
        if spread is None or spread == 0:
            return 0.0, 1
        return spread, 10
    if spread is None or spread == 0:
        return 0.0, 1
    return spread, domains


def _random_umat(spread: float, rng: Ran1, state: list[int]) -> np.ndarray:
    """One random rotation (3, 3) of cap angle ≤ spread (rad), three ran1 draws (physics §2.7)."""
    r1 = 2.0 * rng.next(state) - 1.0
    r2 = 2.0 * rng.next(state) - 1.0
    r3 = 2.0 * rng.next(state) - 1.0
    root = math.sqrt(1.0 - r2 * r2)
    v1, v2, v3 = root * math.sin(math.pi * r1), root * math.cos(math.pi * r1), r2
    # the C computes the cap angle in float32 with powf
    p = np.float32(math.pow(float(np.float32(1.0 - r3 * r3)), float(np.float32(1.0 / 3.0))))
    rot = float(np.float32(np.float32(spread) * p))
    c, s = math.cos(rot), math.sin(rot)
    c1 = 1.0 - c
    return np.array((
        (c + v1 * v1 * c1, v1 * v2 * c1 - v3 * s, v1 * v3 * c1 + v2 * s),
        (v1 * v2 * c1 + v3 * s, c + v2 * v2 * c1, v2 * v3 * c1 - v1 * s),
        (v1 * v3 * c1 - v2 * s, v2 * v3 * c1 + v1 * s, c + v3 * v3 * c1),
    ))


def mosaic_umats(spread: float, domains: int, seed: int, rng: Ran1) -> np.ndarray:
    """(domains, 3, 3) float64 rotation matrices; domain 0 is the identity (draws still consumed)."""
    state = [seed]
    out = np.stack([_random_umat(spread, rng, state) for _ in range(domains)]) if domains else np.empty((0, 3, 3))
    if domains:
        out[0] = np.eye(3)
    return out


def random_misset(seed: int, rng: Ran1) -> tuple[float, float, float]:
    """-misset random (physics §2.3): XYZ angles (rad) of a random rotation drawn with a cap of
    "90" that the C treats as radians."""
    U = _random_umat(90.0, rng, [seed])
    if U[2, 0] * U[2, 0] < 1.0:
        rx = math.atan2(U[2, 1], U[2, 2])
        ry = math.atan2(-U[2, 0], math.sqrt(U[2, 1] * U[2, 1] + U[2, 2] * U[2, 2]))
        rz = math.atan2(U[1, 0], U[0, 0])
    else:  # gimbal lock: x and z rotations are degenerate, put it all in z
        rx, ry = 0.0, math.copysign(math.pi / 2.0, -U[2, 0])
        rz = math.atan2(-U[0, 1], U[1, 1])
    return rx, ry, rz


def oriented_vectors(crystal: Crystal, spindle: Tensor, phis: Tensor, umats: Tensor | None) -> Tensor:
    """Real vectors after φ and mosaic: shape (3 [a,b,c], phisteps, domains, 3), metres.

    spindle: unit (3,); phis: (Φ,) rad; umats: (D, 3, 3) or None when the spread is 0.
    """
    base = torch.stack((crystal.a0, crystal.b0, crystal.c0))  # (3, 3)
    nphi = phis.shape[0]
    v = base[:, None, :].expand(3, nphi, 3)
    rotated = rotate_axis(v, spindle, phis[None, :].expand(3, nphi))  # (3, Φ, 3)
    if umats is None:
        return rotated[:, :, None, :]
    u = umats[None, None]  # (1, 1, D, 3, 3)
    r = rotated[:, :, None, :]  # (3, Φ, 1, 3)
    return torch.stack(
        tuple(u[..., row, 0] * r[..., 0] + u[..., row, 1] * r[..., 1] + u[..., row, 2] * r[..., 2] for row in range(3)),
        dim=-1,
    )

