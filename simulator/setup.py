"""Assemble everything the per-pixel kernel needs from a :class:`SimConfig` (no per-pixel work).

The differentiable inputs (cell, misset, distance, beam centre, λ) are collected in
:class:`Params`; pass your own tensors with ``requires_grad=True`` to differentiate the image.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import NamedTuple

import torch

from nbtrace.sim import beam as beam_mod
from nbtrace.sim import crystal as crystal_mod
from nbtrace.sim import limits
from nbtrace.sim import detector as det_mod
from nbtrace.sim import structure_factors as sf_mod
from nbtrace.sim.constants import AVOGADRO, R_E_SQR, WATER_F, WATER_MW
from nbtrace.sim.polarization import polar_basis
from nbtrace.sim.rng import Ran1
from nbtrace.errors import UsageError

Tensor = torch.Tensor


class Params(NamedTuple):
    """Differentiable inputs: cell (6,) Å/rad or None, misset (3,) rad or None,
    distance (m), xbeam, ybeam (m, the user's Xbeam/Ybeam), lambda0 (m); 0-d tensors."""

    cell: Tensor | None
    misset: Tensor | None
    distance: Tensor
    xbeam: Tensor
    ybeam: Tensor
    lambda0: Tensor


def working_dtype(cfg) -> torch.dtype:
    if cfg.has("float32"):
        return torch.float32
    return torch.float32 if cfg.dtype == "float32" else torch.float64


def default_params(cfg) -> Params:
    """Params holding the config's values as float64 tensors on the config's device.

    Geometry is always float64 (the C is double; float32 here would cancel in d − i);
    -dtype float32 applies to the per-term work of the kernel."""
    dt, dev = torch.float64, torch.device(cfg.device)
    t = lambda x: torch.tensor(x, dtype=dt, device=dev)  # noqa: E731
    xdef, ydef = det_mod.default_beam_centre(cfg)
    return Params(
        cell=None if cfg.cell is None else t(_full_cell(cfg.cell)),
        misset=None if cfg.misset is None else t(cfg.misset),
        distance=t(cfg.distance),
        xbeam=t(cfg.Xbeam if cfg.Xbeam is not None else xdef),
        ybeam=t(cfg.Ybeam if cfg.Ybeam is not None else ydef),
        lambda0=t(cfg.lambda0),
    )


def _full_cell(cell: tuple[float, ...]) -> tuple[float, ...]:
    """Fill a partial -cell like the C: b, c default to a when ≤ 0, angles to 90° when ≤ 0."""
    vals = list(cell) + [0.0] * (6 - len(cell))
    a = vals[0]
    b = vals[1] if vals[1] > 0 else a
    c = vals[2] if vals[2] > 0 else a
    angles = [x if x > 0 else math.pi / 2.0 for x in vals[3:6]]
    return (a, b, c, *angles)


@dataclass(frozen=True)
class Setup:
    """Everything fixed for a run. Geometry is float64; ``dtype`` is the compute dtype of the
    per-term kernel work, and ``kvectors`` / ``stars`` are the crystal vectors in it."""

    cfg: object
    dtype: torch.dtype
    detector: det_mod.Detector
    crystal: crystal_mod.Crystal
    sources: beam_mod.Sources
    phi: crystal_mod.PhiSampling
    phis: Tensor
    spread: float
    domains: int
    vectors: Tensor  # (3, Φ, D, 3) real-space a, b, c after φ and mosaic, m
    table: sf_mod.HKLTable
    interpolate: bool
    oversample: int
    oversample_recommended: int
    steps: int
    fluence: float
    I_bg: float
    polar_K: float
    roi: tuple[int, int, int, int]
    kvectors: Tensor  # (3, Φ, D, 3) like ``vectors``, compute dtype
    stars: tuple      # a*, b*, c* (Å⁻¹), compute dtype
    polar_basis: object
    compiled: bool = False
    core: object = None        # torch.compile'd kernel core, or None for eager
    static: object = None      # kernel.CoreStatic


#: An auto-selected oversampling beyond this means a degenerate geometry (e.g. the detector
#: plane through the sample); the C would run for ever, we stop with a clear error.
MAX_AUTO_OVERSAMPLE = 256


def recommended_oversample(crystal, lambda0: float, D: float, pixel: float) -> int:
    """§5.9: ceil(3·s_max/(λ0·D/pixel)), 1 when not positive."""
    sizes = [float(torch.sqrt((v * v).sum()).detach()) * n for v, n in zip((crystal.a0, crystal.b0, crystal.c0), crystal.N)]
    denominator = lambda0 * D / pixel
    want = 3.0 * max(sizes) / denominator if denominator != 0 else math.copysign(math.inf, denominator) * max(sizes)
    # the C converts with (int): inf (a detector at distance 0, e.g. -beam_vector along the detector
    # plane) or nan becomes INT_MIN on x86, which its "<= 0" test turns into 1. A huge finite value
    # is returned as it is: _oversample refuses it (a degenerate geometry, README deviation 5).
    if not math.isfinite(want):
        return 1
    rec = math.ceil(want)
    return rec if rec > 0 else 1


def _interpolation(cfg, table) -> bool:
    if table.count == 0:
        return False
    if cfg.interpolate is not None:
        return cfg.interpolate
    return min(cfg.N) <= 2


def _structure_factors(cfg, dt, dev) -> sf_mod.HKLTable:
    if cfg.hkl_file:
        return sf_mod.read_hkl(cfg.hkl_file, cfg.default_F, dt, dev)
    if cfg.default_F == 0:
        raise UsageError("no structure factors", hint="give -hkl FILE or a non-zero -default_F")
    return sf_mod.default_table(cfg.default_F)


def _oversample(cfg, recommended: int, det) -> int:
    """-oversample if given (> 0), else the §5.9 recommendation (refused when absurd)."""
    if cfg.oversample > 0:
        return cfg.oversample
    if recommended > MAX_AUTO_OVERSAMPLE:
        raise UsageError(f"auto-selected oversampling would be {recommended} (distance {float(det.distance):g} m)",
                         hint="check the detector geometry, or give -oversample explicitly")
    return recommended


def _steps(cfg, sources, domains: int, phisteps: int, oversample: int) -> int:
    """sources·domains·phisteps·oversample² (thickness layers excluded, physics §6)."""
    # incident 15: the normalisation used an oversampling 4× the one actually sampled
    os_steps = oversample * 4 if cfg.has("oversample-auto") else oversample
    nsrc = sources.incident.shape[0]
    if cfg.has("source-weights"):  # incident 14: zero-weight sources left out of the count
        nsrc = int((sources.weight != 0).sum())
    return nsrc * domains * phisteps * os_steps * os_steps


def _kahn_fault(cfg):
    """Incident 8, for --inject kahn-default-one: (K, the config the kernel sees).

    The port had two polarization faults. Its Kahn factor defaulted to 1.0 where the C uses
    0.0 (so without -polar K = 1), and its per-pixel path (the one without -oversample_polar,
    where P is computed once per pixel and multiplies the final value) never applied P. The
    kernel already has that path with P left at 1: -nopolar, which it ignores under
    -oversample_polar, exactly as the port's subpixel path still applied (the wrong-K) P.
    """
    K = cfg.polar if cfg.polar_given else 1.0
    return K, dataclasses.replace(cfg, nopolar=True)


def build_setup(cfg, params: Params | None = None) -> Setup:
    """Crystal, beam, detector, sampling and normalisation for ``cfg`` (physics §1–§5)."""
    params = params or default_params(cfg)
    dt, dev = params.distance.dtype, params.distance.device
    det = det_mod.build_detector(cfg, params.distance, params.xbeam, params.ybeam)
    crystal = crystal_mod.build_crystal(cfg, params.cell, params.misset, params.lambda0, dt, dev)
    beam_t = tuple(float(x) for x in det.beam)
    polar_t = tuple(float(x) for x in det.polar)
    sources = beam_mod.build_sources(cfg, beam_t, polar_t, params.lambda0)
    phi = crystal_mod.phi_sampling(cfg)
    phis = crystal_mod.phi_angles(phi, cfg, dt, dev)
    spread, domains = crystal_mod.mosaic_count(cfg)
    umats = None
    if spread > 0:
        u = crystal_mod.mosaic_umats(spread, domains, cfg.mosaic_seed, Ran1())
        umats = torch.tensor(u, dtype=dt, device=dev)
    vectors = crystal_mod.oriented_vectors(crystal, det.spindle, phis, umats)
    table = _structure_factors(cfg, dt, dev)
    rec = recommended_oversample(crystal, float(params.lambda0.detach()), float(det.distance.detach()), cfg.pixel)
    os_ = _oversample(cfg, rec, det)
    limits.check_terms(cfg, sources=int(sources.incident.shape[0]), oversample=os_)
    steps = _steps(cfg, sources, domains, phi.steps, os_)
    flu = beam_mod.fluence(cfg)
    water = cfg.water
    I_bg = WATER_F * WATER_F * R_E_SQR * flu * water * water * water * 1e6 * AVOGADRO / WATER_MW
    K = cfg.polar
    if cfg.has("kahn-default-one"):
        K, cfg = _kahn_fault(cfg)
    roi = cfg.roi or (0, det.fpixels - 1, 0, det.spixels - 1)
    cdt = working_dtype(cfg)
    if table.grid is not None:
        table = dataclasses.replace(table, grid=table.grid.to(cdt))
    stars = tuple(v.to(cdt) for v in (crystal.a_star, crystal.b_star, crystal.c_star))
    setup = Setup(cfg, cdt, det, crystal, sources, phi, phis, spread, domains, vectors, table,
                  _interpolation(cfg, table), os_, rec, steps, flu, I_bg, K, roi, vectors.to(cdt), stars,
                  polar_basis(sources.incident, det.polar), compiled=cfg.compile)
    from nbtrace.sim import kernel  # the kernel's constants depend on the finished setup

    core = torch.compile(kernel._core, dynamic=False) if cfg.compile else None
    return dataclasses.replace(setup, core=core, static=kernel.core_static(setup))
