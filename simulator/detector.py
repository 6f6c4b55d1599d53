"""Detector geometry: conventions, beam centre, pivots, rotations, pix0, pixel positions, Ω,
absorption (physics.md §5).

Lengths in metres, angles in radians. The quantities the image must be differentiable in
(distance, beam centre) enter as 0-d tensors; everything discrete stays Python.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from nbtrace.sim.beam import auto_steps
from nbtrace.sim.constants import DBL_MIN
from nbtrace.sim.vectors import dot, norm, rotate_axis, rotate_xyz, unitize

Tensor = torch.Tensor

# beam, fdet, sdet, odet, twotheta axis, polar, spindle; pivot forced by the convention
CONVENTIONS = {
    "MOSFLM": ((1, 0, 0), (0, 0, 1), (0, -1, 0), (1, 0, 0), (0, 0, -1), (0, 0, 1), (0, 0, 1), "BEAM"),
    "DENZO": ((1, 0, 0), (0, 0, 1), (0, -1, 0), (1, 0, 0), (0, 0, -1), (0, 0, 1), (0, 0, 1), "BEAM"),
    "ADXV": ((0, 0, 1), (1, 0, 0), (0, -1, 0), (0, 0, 1), (-1, 0, 0), (1, 0, 0), (1, 0, 0), "BEAM"),
    "XDS": ((0, 0, 1), (1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 0, 0), (1, 0, 0), (1, 0, 0), "SAMPLE"),
    "DIALS": ((0, 0, 1), (1, 0, 0), (0, 1, 0), (0, 0, 1), (0, 1, 0), (0, 1, 0), (0, 1, 0), "SAMPLE"),
    "CUSTOM": ((1, 0, 0), (0, 0, 1), (0, -1, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1), (0, 0, 1), None),
}


@dataclass(frozen=True)
class Detector:
    """Final detector frame. Vectors are (3,) tensors; pix0 is the pixel-(0,0) corner (m)."""

    convention: str
    pivot: str
    fpixels: int
    spixels: int
    pixel: float
    detsize_f: float
    detsize_s: float
    fdet: Tensor
    sdet: Tensor
    odet: Tensor
    odet_untilted: Tensor
    beam: Tensor
    polar: Tensor
    spindle: Tensor
    pix0: Tensor
    close_distance: Tensor
    distance: Tensor
    Fbeam: Tensor
    Sbeam: Tensor
    Fclose: Tensor
    Sclose: Tensor
    Xbeam: Tensor
    Ybeam: Tensor
    curved: bool
    point_pixel: bool
    thickness: float
    thicksteps: int
    thickstep: float
    mu: float
    # the beam centre pix0 was built from (BEAM pivot), before the rotations moved the detector
    Fbeam0: Tensor | float | None = None
    Sbeam0: Tensor | float | None = None
    distance0: Tensor | float | None = None  # close / ratio before the rotations


def detector_size(cfg) -> tuple[float, float, int, int]:
    """§5.1: (detsize_f, detsize_s) in m and (fpixels, spixels)."""
    dsf = cfg.pixel * cfg.detpixels_f if cfg.detpixels_f is not None else cfg.detsize_f
    dss = cfg.pixel * cfg.detpixels_s if cfg.detpixels_s is not None else cfg.detsize_s
    return dsf, dss, math.ceil(dsf / cfg.pixel - 0.5), math.ceil(dss / cfg.pixel - 0.5)


def default_beam_centre(cfg) -> tuple[float, float]:
    """The convention's default (Xbeam, Ybeam) in m, used when -Xbeam/-Ybeam are absent."""
    dsf, dss, _, _ = detector_size(cfg)
    fclose, sclose = _close_defaults(cfg, dsf, dss)
    xclose = cfg.Xclose if cfg.Xclose is not None else fclose
    yclose = cfg.Yclose if cfg.Yclose is not None else sclose
    px = cfg.pixel
    conv = cfg.convention
    if conv in ("MOSFLM", "DENZO"):
        return (dss + px) / 2.0, (dsf + px) / 2.0
    if conv == "ADXV":
        return (dsf + px) / 2.0, (dss - px) / 2.0
    return xclose, yclose


def _close_defaults(cfg, dsf, dss):
    fclose = (cfg.ORGX - 0.5) * cfg.pixel if cfg.ORGX is not None else dsf / 2.0
    sclose = (cfg.ORGY - 0.5) * cfg.pixel if cfg.ORGY is not None else dss / 2.0
    return fclose, sclose


def _vec(values, like: Tensor) -> Tensor:
    return torch.tensor(values, dtype=like.dtype, device=like.device)


def _beam_centre_to_fs(cfg, xbeam: Tensor, ybeam: Tensor, dss: float, half: float):
    """§5.3 mapping (Xbeam, Ybeam) → (Fbeam, Sbeam); ``half`` is the MOSFLM ½-pixel shift."""
    conv = cfg.convention
    if conv == "MOSFLM":
        if cfg.has("mosflm-half-pixel"):
            return ybeam, xbeam
        return ybeam + half, xbeam + half
    if conv == "ADXV":
        return xbeam + (half if cfg.has("mosflm-half-pixel") else 0.0), dss - ybeam
    if conv == "DENZO" and cfg.has("mosflm-half-pixel"):
        return ybeam + half, xbeam + half
    if conv in ("XDS", "DIALS", "CUSTOM") and cfg.has("mosflm-half-pixel"):
        return xbeam + half, ybeam + half
    if conv == "DENZO":
        return ybeam, xbeam
    return xbeam, ybeam


def _lab_vectors(cfg, like: Tensor):
    beam, f, s, o, t, p, u, forced = CONVENTIONS[cfg.convention]
    if cfg.convention == "CUSTOM":
        beam = cfg.beam_vector or beam
        f, s, o = cfg.fdet_vector or f, cfg.sdet_vector or s, cfg.odet_vector or o
        t, p, u = cfg.twotheta_axis or t, cfg.polar_vector or p, cfg.spindle_axis or u
    f, s, beam, p, u = (unitize(_vec(v, like)) for v in (f, s, beam, p, u))
    o = _vec(o, like)
    if float(norm(o)) != 1.0:
        o = unitize(torch.stack((f[1] * s[2] - f[2] * s[1], f[2] * s[0] - f[0] * s[2], f[0] * s[1] - f[1] * s[0])))
    return beam, f, s, o, _vec(t, like), p, u, forced or cfg.pivot


def build_detector(cfg, distance: Tensor, xbeam: Tensor, ybeam: Tensor) -> Detector:
    """§5.1–5.5 and §5.10: the detector frame. distance, xbeam, ybeam: 0-d tensors in m."""
    dsf, dss, fpix, spix = detector_size(cfg)
    beam, f, s, o, t, p, u, pivot = _lab_vectors(cfg, distance)
    fclose, sclose = _close_defaults(cfg, dsf, dss)
    fclose, sclose = distance.new_tensor(fclose), distance.new_tensor(sclose)
    fbeam, sbeam = _beam_centre_to_fs(cfg, xbeam, ybeam, dss, cfg.pixel / 2.0)
    if cfg.convention == "CUSTOM":
        fclose, sclose = xbeam, ybeam
    rx, ry, rz, tt = cfg.rotx, cfg.roty, cfg.rotz, cfg.twotheta
    ratio = dot(beam, rotate_xyz(o, rx, ry, rz))
    if float(ratio.detach()) == 0.0:
        ratio = ratio.new_tensor(DBL_MIN)
    close = torch.abs(ratio * distance) if cfg.close_distance is None else distance.new_tensor(cfg.close_distance)
    D = D0 = close / ratio
    if pivot == "SAMPLE":
        pix0 = -fclose * f - sclose * s + close * o
        if not cfg.has("sample-pivot-order"):
            pix0 = _rotate_detector(pix0, rx, ry, rz, t, tt)
    o_untilted = o
    f, s, o = (_rotate_detector(v, rx, ry, rz, t, tt) for v in (f, s, o))
    if pivot == "BEAM":
        pix0 = -fbeam * f - sbeam * s + D * beam
    close = dot(pix0, o)
    D = close / ratio
    w = D * beam - pix0
    thick_n, _, thick_d = auto_steps(cfg.thicksteps, cfg.thickness, -1.0, thickness=True)
    thickness = cfg.thickness
    mu = cfg.mu if cfg.mu is not None else (1.0 / thickness if thickness > 0 else 0.0)
    return Detector(
        convention=cfg.convention, pivot=pivot, fpixels=fpix, spixels=spix, pixel=cfg.pixel,
        detsize_f=dsf, detsize_s=dss, fdet=f, sdet=s, odet=o, odet_untilted=o_untilted, beam=beam, polar=p,
        spindle=u, pix0=pix0, close_distance=close, distance=D, Fbeam=dot(f, w), Sbeam=dot(s, w),
        Fclose=-dot(pix0, f), Sclose=-dot(pix0, s), Xbeam=xbeam, Ybeam=ybeam, curved=cfg.curved,
        point_pixel=cfg.point_pixel, thickness=thickness, thicksteps=thick_n, thickstep=thick_d, mu=mu,
        Fbeam0=fbeam if pivot == "BEAM" else None, Sbeam0=sbeam if pivot == "BEAM" else None,
        distance0=D0,
    )


def _rotate_detector(v: Tensor, rx, ry, rz, axis: Tensor, twotheta) -> Tensor:
    v = rotate_xyz(v, rx, ry, rz)
    return rotate_axis(v, axis, twotheta) if twotheta != 0.0 else v


def pixel_positions(det: Detector, s_idx: Tensor, f_idx: Tensor, sub_s: int, sub_f: int, layer: int,
                    oversample: int, edge_band: bool = False) -> Tensor:
    """§5.6–5.7: subpixel positions (P, 3) in m for pixel indices s_idx, f_idx (P,) ints.

    ``edge_band`` is the edge-geometry injection: pixels within 10 % of the detector size of
    any edge take −δ/2 instead of +δ/2 along fast.
    """
    dtype = det.pix0.dtype
    delta = det.pixel / oversample
    fd = delta * (f_idx.to(dtype) * oversample + sub_f) + delta / 2.0
    sd = delta * (s_idx.to(dtype) * oversample + sub_s) + delta / 2.0
    if edge_band:
        bf, bs = max(1, det.fpixels // 10), max(1, det.spixels // 10)
        edge = (f_idx < bf) | (f_idx >= det.fpixels - bf) | (s_idx < bs) | (s_idx >= det.spixels - bs)
        fd = torch.where(edge, fd - delta, fd)
    od = layer * det.thickstep
    pos = fd[:, None] * det.fdet + sd[:, None] * det.sdet + od * det.odet + det.pix0
    if det.curved:
        pos = _curve(det, pos)
    return pos


def _curve(det: Detector, pos: Tensor) -> Tensor:
    # angles come from the lab y and z of the flat position, not Fd/Sd (physics §5.7)
    D = det.distance
    ang_s, ang_f = pos[:, 1] / D, pos[:, 2] / D
    out = rotate_axis((D * det.beam).expand_as(pos), det.sdet, ang_s)
    return rotate_axis(out, det.fdet, ang_f)


def solid_angle(det: Detector, R: Tensor) -> Tensor:
    """§5.8: Ω (sr) of a pixel at airpath R (m), always with the full pixel²."""
    return omega_c_order(R, det.pixel, det.close_distance, det.point_pixel)


def omega_c_order(R: Tensor, pixel: float, close: Tensor, point_pixel: bool) -> Tensor:
    """pixel²/R/R·close/R (or 1/R/R), divided in the C's order. A Python scalar over a tensor
    is computed by torch as reciprocal × scalar, so the numerator is made a tensor first."""
    if point_pixel:
        return torch.div(R.new_tensor(1.0), R) / R
    return torch.div(R.new_tensor(pixel * pixel), R) / R * close / R


def capture_fraction(det: Detector, d: tuple, layer: int, odet: Tensor | None = None, absolute: bool = False,
                     always: bool = False) -> Tensor:
    """§5.10: fraction absorbed in layer ``layer`` along the unit direction d (three (P,) components).
    ``always``: the formula even without a sensor thickness, as -oversample_thick makes the C
    evaluate it (exp(-0) - exp(-0): nothing is captured)."""
    if det.thickness <= 0 and not always:
        return torch.ones_like(d[0])
    o = det.odet if odet is None else odet
    rho = d[0] * o[0] + d[1] * o[1] + d[2] * o[2]
    if absolute:
        rho = torch.abs(rho)
    step = det.thickstep
    # tensor numerators: torch computes scalar / tensor as reciprocal × scalar
    a = torch.div(rho.new_tensor(-layer * step * det.mu), rho)
    b = torch.div(rho.new_tensor(-(layer + 1) * step * det.mu), rho)
    return torch.exp(a) - torch.exp(b)
