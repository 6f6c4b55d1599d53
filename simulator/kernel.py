"""The per-pixel computation (physics.md §6), vectorised over a 1-D set of pixels.

For each thickness layer and subpixel (small Python loops) every tensor has a leading pixel
axis P and, where the physics loops, source S, φ Φ and mosaic D axes: (P, S, Φ, D). The
recorder, when given, receives these very tensors; with ``recorder=None`` nothing extra runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from simulator import detector as det_mod
from simulator import structure_factors as sf_mod
from simulator.constants import R_E_SQR
from simulator.lattice import lattice_factor
from simulator.polarization import kahn_factor
from simulator.vectors import dot, norm

Tensor = torch.Tensor


@dataclass
class InterpState:
    """The C's global 'interpolate' switch: off for good after the first out-of-range lookup."""

    on: bool
    warned: bool = False


@dataclass(frozen=True)
class Block:
    """Intermediates of one (layer, subpixel) pass over a pixel chunk."""

    pos: Tensor        # (P, 3) m
    R: Tensor          # (P,) m
    d: Tensor          # (P, 3) unit
    omega: Tensor      # (P,) sr, this subpixel
    q: Tensor          # (P, S, 3) m⁻¹
    keep: Tensor       # (P, S) source not removed by dmin
    h: Tensor          # (P, S, Φ, D)
    k: Tensor
    l: Tensor
    latt: object       # LatticeFactor of (P, S, Φ, D) tensors
    looked_up: Tensor  # (P, S, Φ, D) terms that reach the F_cell lookup


def _block(setup, s_idx: Tensor, f_idx: Tensor, layer: int, ss: int, sf: int) -> Block:
    cfg, det, src = setup.cfg, setup.detector, setup.sources
    pos = det_mod.pixel_positions(det, s_idx, f_idx, ss, sf, layer, setup.oversample,
                                  edge_band=cfg.has("edge-geometry"))
    R = norm(pos)
    d = pos / R[:, None]
    omega = det_mod.solid_angle(det, R)
    q = (d[:, None, :] - src.incident[None, :, :]) / src.wavelength[None, :, None]
    if cfg.has("svec-inverse-angstrom"):
        q = q * 1e-10
    if cfg.has("svec-two-pi"):
        q = q * (2.0 * math.pi)
    keep = torch.ones(q.shape[:2], dtype=torch.bool, device=q.device)
    if cfg.dmin > 0:
        qn = norm(q)
        stol = 0.5 * qn
        keep = ~((stol > 0) & (cfg.dmin > 0.5 / stol))
    h, k, l = _miller(setup, q)
    c = setup.crystal
    latt = lattice_factor(cfg.shape, h, k, l, c.N, cfg.fudge, c.a_star, c.b_star, c.c_star,
                          divided=cfg.has("flatt-normalization"))
    looked_up = keep[:, :, None, None].expand_as(h)
    if cfg.water == 0:
        looked_up = looked_up & (latt.total != 0.0)
    return Block(pos, R, d, omega, q, keep, h, k, l, latt, looked_up)


def _miller(setup, q: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """h, k, l = (a, b, c)·q, shape (P, S, Φ, D); a in m, q in m⁻¹."""
    cfg = setup.cfg
    qq = q[:, :, None, None, :]
    if cfg.has("hkl-reciprocal-vectors"):
        c = setup.crystal
        qa = q[:, :, None, None, :] * 1e-10
        return tuple(dot(v, qa).expand(-1, -1, setup.phis.shape[0], setup.domains)
                     for v in (c.a_star, c.b_star, c.c_star))
    vecs = setup.vectors * 1e10 if cfg.has("hkl-angstrom-lattice") else setup.vectors
    return tuple(dot(vecs[i][None, None], qq) for i in range(3))


def _f_cell(setup, blk: Block, use_tricubic: Tensor | None) -> Tensor:
    """F_cell for every term; tricubic where ``use_tricubic`` (same shape) is True."""
    h0, k0, l0 = (torch.ceil(x - 0.5) for x in (blk.h, blk.k, blk.l))
    F = sf_mod.nearest(setup.table, h0, k0, l0, blk.h)
    if use_tricubic is not None and bool(use_tricubic.any()):
        sel = use_tricubic
        F = F.clone()
        F[sel] = sf_mod.tricubic(setup.table, blk.h[sel], blk.k[sel], blk.l[sel])
    return F


class Kernel:
    """Renders pixel sets for one :class:`~simulator.setup.Setup`; holds the interpolation switch."""

    def __init__(self, setup, recorder=None):
        self.setup = setup
        self.recorder = recorder
        self.interp = InterpState(setup.interpolate)

    def blocks(self):
        s = self.setup
        for t in range(s.detector.thicksteps):
            for ss in range(s.oversample):
                for sf in range(s.oversample):
                    yield t, ss, sf

    def _tricubic_cutoff(self, s_idx, f_idx) -> int | None:
        """C-order key of the first out-of-range lookup in this chunk (None: all in range)."""
        s = self.setup
        nblocks = s.detector.thicksteps * s.oversample ** 2
        best = None
        for b, (t, ss, sf) in enumerate(self.blocks()):
            blk = _block(s, s_idx, f_idx, t, ss, sf)
            bad = blk.looked_up & ~sf_mod.tricubic_in_range(s.table, blk.h, blk.k, blk.l)
            if not bool(bad.any()):
                continue
            inner = bad[0].numel()
            keys = _term_keys(bad.shape, nblocks, b)
            first = int(keys[bad].min())
            best = first if best is None else min(best, first)
        return best

    def render(self, s_idx: Tensor, f_idx: Tensor) -> Tensor:
        """Pixel values (photons, working dtype) for pixels (s_idx[i], f_idx[i]), shape (P,)."""
        s, cfg = self.setup, self.setup.cfg
        rec = self.recorder.select(s_idx, f_idx) if self.recorder is not None else None
        P = s_idx.shape[0]
        dt, dev = s.dtype, s.detector.pix0.device
        cutoff = None
        if self.interp.on:
            cutoff = self._tricubic_cutoff(s_idx, f_idx)
        nblocks = s.detector.thicksteps * s.oversample ** 2
        I = torch.full((P,), s.I_bg, dtype=dt, device=dev)
        polar = torch.full((P,), 1.0 if (cfg.nopolar and not cfg.oversample_polar) else 0.0, dtype=dt, device=dev)
        omega = torch.zeros(P, dtype=dt, device=dev)
        cap = None
        slow_path = cfg.oversample_thick or cfg.oversample_polar or cfg.oversample_omega
        for b, (t, ss, sf) in enumerate(self.blocks()):
            blk = _block(s, s_idx, f_idx, t, ss, sf)
            omega = blk.omega if cfg.oversample_omega else torch.where(omega == 0, blk.omega, omega)
            if ss == 0 and sf == 0:
                cap = torch.ones(P, dtype=dt, device=dev) if s.detector.thickness <= 0 else torch.zeros(P, dtype=dt, device=dev)
            cap_sub = det_mod.capture_fraction(s.detector, blk.d, t, *self._abs_args())
            cap = cap_sub if cfg.oversample_thick else torch.where(cap == 0, cap_sub, cap)
            pol_src = kahn_factor(s.polar_K, s.sources.incident[None, :, :], blk.d[:, None, :], s.detector.polar)
            use_tc = None
            if self.interp.on:
                use_tc = blk.looked_up.clone()
                if cutoff is not None:
                    use_tc &= _term_keys(blk.h.shape, nblocks, b) < cutoff
            F = _f_cell(s, blk, use_tc)
            term = F * F * blk.latt.total * blk.latt.total
            if cfg.has("source-weights"):
                term = term * s.sources.weight[None, :, None, None]
            if slow_path:
                I, polar = self._accumulate_sequential(I, polar, pol_src, term, blk, cap, omega)
            else:
                polar = self._first_polar(polar, pol_src, blk.keep)
                I = I + torch.where(blk.looked_up, term, torch.zeros_like(term)).sum(dim=(1, 2, 3))
            if rec is not None:
                rec.block(t, ss, sf, self.setup, blk, F, omega, cap, I)
        if cutoff is not None:
            self.interp.on = False
        v = R_E_SQR * s.fluence * I / s.steps
        if not cfg.oversample_thick:
            v = v * cap
        if not cfg.oversample_polar:
            v = v * polar
        if not cfg.oversample_omega:
            v = v * omega
        if rec is not None:
            rec.scaling(self.setup, I, cap, polar, omega, blk, v)
        return v

    def _abs_args(self):
        cfg, det = self.setup.cfg, self.setup.detector
        if cfg.has("abs-parallax"):
            return (det.odet_untilted, True)
        return (None, False)

    @staticmethod
    def _first_polar(polar: Tensor, pol_src: Tensor, keep: Tensor) -> Tensor:
        # P is computed at the first source not removed by dmin while it is still 0
        for j in range(pol_src.shape[1]):
            polar = torch.where((polar == 0) & keep[:, j], pol_src[:, j], polar)
        return polar

    def _accumulate_sequential(self, I, polar, pol_src, term, blk, cap, omega):
        """The oversample_* flags multiply the running sum after every term, in C loop order."""
        cfg = self.setup.cfg
        S, NPHI, ND = term.shape[1:]
        for j in range(S):
            keep = blk.keep[:, j]
            if cfg.oversample_polar:
                polar = torch.where(keep, pol_src[:, j], polar)
            else:
                polar = torch.where((polar == 0) & keep, pol_src[:, j], polar)
            for m in range(NPHI):
                for n in range(ND):
                    live = blk.looked_up[:, j, m, n]
                    new = I + term[:, j, m, n]
                    if cfg.oversample_thick:
                        new = new * cap
                    if cfg.oversample_polar:
                        new = new * polar
                    if cfg.oversample_omega:
                        new = new * omega
                    I = torch.where(live, new, I)
        return I, polar


def _term_keys(shape, nblocks: int, block: int) -> Tensor:
    """C loop order key of each term of a block: pixel-major, then block, then S, Φ, D."""
    P = shape[0]
    inner = 1
    for n in shape[1:]:
        inner *= n
    pix = torch.arange(P, dtype=torch.int64)[:, None] * (nblocks * inner) + block * inner
    return (pix + torch.arange(inner, dtype=torch.int64)[None, :]).reshape(shape)


def render_frame(setup, recorder=None, chunk: int | None = None, progress=None) -> Tensor:
    """The whole image (spixels, fpixels) in the working dtype; zero outside the ROI."""
    det = setup.detector
    xmin, xmax, ymin, ymax = setup.roi
    xs = torch.arange(max(xmin, 0), min(xmax, det.fpixels - 1) + 1)
    ys = torch.arange(max(ymin, 0), min(ymax, det.spixels - 1) + 1)
    ss, ff = torch.meshgrid(ys, xs, indexing="ij")
    s_all, f_all = ss.reshape(-1), ff.reshape(-1)
    image = torch.zeros(det.spixels * det.fpixels, dtype=setup.dtype, device=det.pix0.device)
    kern = Kernel(setup, recorder)
    size = chunk or chunk_size(setup)
    total = s_all.shape[0]
    dev = det.pix0.device
    for start in range(0, total, size):
        s_idx, f_idx = s_all[start:start + size].to(dev), f_all[start:start + size].to(dev)
        image[s_idx * det.fpixels + f_idx] = kern.render(s_idx, f_idx)
        if progress is not None:
            progress(min(start + size, total), total)
    return image.reshape(det.spixels, det.fpixels)


def chunk_size(setup) -> int:
    """Pixels per chunk so that a (P, S, Φ, D) tensor holds about 2^19 elements."""
    inner = setup.sources.incident.shape[0] * setup.phis.shape[0] * setup.domains
    return max(1, min(1 << 18, (1 << 19) // inner))
