"""The per-pixel computation (physics.md §6), vectorised over a 1-D set of pixels.

For each thickness layer and subpixel (small Python loops) every tensor has a leading pixel
axis P and, where the physics loops, source S, φ Φ and mosaic D axes: (P, S, Φ, D). The
recorder, when given, receives these very tensors; with ``recorder=None`` nothing extra runs.
"""

from __future__ import annotations

import math
import os
import struct
import sys
import threading
from dataclasses import dataclass
from typing import NamedTuple

import torch

from nbtrace.sim import detector as det_mod
from nbtrace.sim import structure_factors as sf_mod
from nbtrace.sim import taps as taps_mod
from nbtrace.sim.constants import R_E_SQR
from nbtrace.sim.lattice import LatticeFactor, lattice_factor
from nbtrace.sim.polarization import kahn_factor

Tensor = torch.Tensor


@dataclass
class InterpState:
    """The C's global 'interpolate' switch: off for good after the first out-of-range lookup."""

    on: bool
    warned: bool = False


@dataclass(frozen=True)
class Block:
    """Intermediates of one (layer, subpixel) pass over a pixel chunk, component-separated
    (structure of arrays) so that every elementwise op runs on contiguous memory."""

    pos: tuple         # 3 × (P,) m, float64 (a grid chunk, never traced: (R, 1) / (1, C) / 0-d parts)
    R: Tensor          # (P,) m
    d: tuple           # 3 × (P,) unit
    omega: Tensor      # (P,) sr, this subpixel
    q: tuple           # 3 × (P, S) m⁻¹ (compute dtype)
    keep: Tensor | None  # (P, S) source not removed by dmin; None = all kept
    h: Tensor          # (P, S, Φ, D)
    k: Tensor
    l: Tensor
    latt: object       # LatticeFactor of (P, S, Φ, D) tensors
    looked_up: Tensor | None  # (P, S, Φ, D) terms that reach the F_cell lookup; None = all


class CoreStatic(NamedTuple):
    """Run constants of :func:`_core` (hashable, so a compiled core specialises on them)."""

    fmask: tuple          # which fdet components are nonzero constants
    smask: tuple
    q_scale: float        # 1, 1e-10 (svec-inverse-angstrom) or 2π (svec-two-pi)
    hkl_mode: str         # "real", "angstrom" (×1e10) or "reciprocal"
    shape: str
    N: tuple
    fudge: float
    divided: bool
    pixel: float
    point_pixel: bool
    dmin: float
    fused: bool           # compiled: always take the select branches (no data-dependent test)
    inc_plus_zero: tuple  # incident components that are +0 for every source (d − (+0) is d)
    inc_code: tuple       # per incident component, every source: 0 (±0), 1 (exactly 1), 2 (other)


def core_static(setup) -> CoreStatic:
    cfg, det = setup.cfg, setup.detector
    nonzero = lambda v: tuple(bool(v.requires_grad or float(x) != 0.0) for x in v)  # noqa: E731
    q_scale = 1.0
    if cfg.has("svec-inverse-angstrom"):
        q_scale *= 1e-10
    if cfg.has("svec-two-pi"):
        q_scale *= 2.0 * math.pi
    mode = "reciprocal" if cfg.has("hkl-reciprocal-vectors") else ("angstrom" if cfg.has("hkl-angstrom-lattice") else "real")
    inc = setup.sources.incident
    return CoreStatic(nonzero(det.fdet), nonzero(det.sdet), q_scale, mode, cfg.shape, setup.crystal.N, cfg.fudge,
                      cfg.has("flatt-normalization"), det.pixel, det.point_pixel, cfg.dmin, setup.compiled,
                      *_incident_codes(inc))


def _incident_codes(inc: Tensor) -> tuple[tuple, tuple]:
    """(inc_plus_zero, inc_code) of :class:`CoreStatic` for incident (S, 3); a tensor that
    requires grad is never special-cased."""
    if inc.requires_grad:
        return (False,) * 3, (2,) * 3
    cols = [[float(x) for x in inc[:, i]] for i in range(3)]
    plus_zero = tuple(all(x == 0.0 and math.copysign(1.0, x) > 0 for x in c) for c in cols)
    code = tuple(0 if all(x == 0.0 for x in c) else 1 if all(x == 1.0 for x in c) else 2 for c in cols)
    return plus_zero, code


def _core(fd, sd, fdet, sdet, offset, pos_given, close, incident, lam, vecs, stars, st: CoreStatic, pix=None):
    """Geometry → h, k, l → F_latt for one (layer, subpixel) pass; a pure tensor function.

    fd, sd: (P,) m along f̂/ŝ (ignored when ``pos_given`` (3 × (P,)) is not None); offset: (3,)
    m = od·ô + pix0; incident (S, 3); lam (S,) m; vecs (3, Φ, D, 3) m; stars 3 × (3,) Å⁻¹;
    pix: (s_idx, f_idx), the pixels of the chunk (for replayed taps, nbtrace.sim.taps).
    """
    base = pos = pos_given
    if pos_given is None:
        pos = tuple(_axpy(fd, fdet[i], sd, sdet[i], offset[i], st.fmask[i], st.smask[i]) for i in range(3))
        # a component that is the same for every pixel is squared and divided as one 0-d
        # value: the same IEEE operations, broadcast, one pass fewer each
        const = [not (st.fmask[i] or st.smask[i]) for i in range(3)]
        base = pos if all(const) else tuple(offset[i] if const[i] else pos[i] for i in range(3))
    # a grid chunk (fd (1, C), sd (R, 1)) keeps what varies along one axis only that small,
    # and becomes the flat row-major pixel axis (P = R·C) at the first full-size result
    grid = pos[0].shape if pos_given is not None else torch.broadcast_shapes(fd.shape, sd.shape)
    R = torch.sqrt(base[0] * base[0] + base[1] * base[1] + base[2] * base[2])
    d = taps_mod.replay_vector("diffracted_vec", tuple(_flat(x / R, grid) for x in base), pix)
    R = _flat(R, grid)
    omega = det_mod.omega_c_order(R, st.pixel, close, st.point_pixel)
    # x − (+0) is x for every x (−0 included), so a +0 incident component is not subtracted
    q = [(d[i][:, None] if st.inc_plus_zero[i] else d[i][:, None] - incident[None, :, i]) / lam[None, :]
         for i in range(3)]
    if st.q_scale != 1.0:
        q = [x * st.q_scale for x in q]
    q = taps_mod.replay_vector("scattering_vec_A_inv", tuple(q), pix)
    keep = None
    if st.dmin > 0:
        stol = 0.5 * torch.sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2])
        # scalar / tensor in torch is reciprocal·scalar (not IEEE division): divide tensors
        keep = ~((stol > 0) & (st.dmin > torch.div(stol.new_tensor(0.5), stol)))
    # geometry stays float64; the heavy per-term work runs in the compute dtype
    q = tuple(x.to(vecs.dtype) for x in q)
    qx, qy, qz = (x[:, :, None, None] for x in q)
    if st.hkl_mode == "reciprocal":
        hkl = tuple(((qx * 1e-10) * v[0] + (qy * 1e-10) * v[1] + (qz * 1e-10) * v[2]).expand(
            -1, -1, vecs.shape[1], vecs.shape[2]) for v in stars)
    else:
        vv = vecs * 1e10 if st.hkl_mode == "angstrom" else vecs
        hkl = tuple(qx * vv[i, :, :, 0] + qy * vv[i, :, :, 1] + qz * vv[i, :, :, 2] for i in range(3))
    hkl = taps_mod.replay_vector("hkl_frac", hkl, pix)
    latt = lattice_factor(st.shape, hkl[0], hkl[1], hkl[2], st.N, st.fudge, stars[0], stars[1], stars[2],
                          divided=st.divided, fused=st.fused)
    return pos, R, d, omega, tuple(q), keep, hkl, taps_mod.replay_lattice(tuple(latt), st.N, pix)


def _flat(x: Tensor, shape) -> Tensor:
    """x broadcast to the chunk's index shape, as the flat pixel axis (a view when x already
    has that shape)."""
    return x.expand(shape).reshape(-1)


def _axpy(fd, fcomp, sd, scomp, offset, fnz: bool, snz: bool):
    """fd·f + sd·s + offset, skipping a term whose constant coefficient is exactly 0
    (adding fd·0 = ±0 to a finite sum changes nothing, so the result is bit-identical)."""
    out = None
    if fnz:
        out = fd * fcomp
    if snz:
        out = sd * scomp if out is None else out + sd * scomp
    return offset.expand_as(fd) if out is None else out + offset


def _subpixel_offset(idx: Tensor, oversample: int, sub: int, delta: float) -> Tensor:
    """δ·(i·os + sub) + δ/2 (m); with os = 1 and sub = 0 the ×1 and +0 are exact no-ops."""
    x = idx.to(torch.float64)
    if oversample != 1 or sub != 0:
        x = x * oversample + sub
    return delta * x + delta / 2.0


def _block(setup, s_idx: Tensor, f_idx: Tensor, layer: int, ss: int, sf: int) -> Block:
    cfg, det, src = setup.cfg, setup.detector, setup.sources
    od = layer * det.thickstep
    offset = od * det.odet + det.pix0
    pos_given, fd, sd = None, None, None
    if det.curved or cfg.has("edge-geometry"):
        pos_given = det_mod.pixel_positions(det, s_idx, f_idx, ss, sf, layer, setup.oversample,
                                            edge_band=cfg.has("edge-geometry")).unbind(-1)
    else:
        delta = det.pixel / setup.oversample
        fd = _subpixel_offset(f_idx, setup.oversample, sf, delta)
        sd = _subpixel_offset(s_idx, setup.oversample, ss, delta)
    pos, R, d, omega, q, keep, (h, k, l), latt = _core(
        fd, sd, det.fdet, det.sdet, offset, pos_given, det.close_distance, src.incident, src.wavelength,
        setup.kvectors, setup.stars, setup.static, (s_idx, f_idx))
    latt = LatticeFactor(*latt)
    looked_up = None if keep is None else keep[:, :, None, None].expand_as(h)
    if cfg.water == 0 and (setup.interpolate or _slow_path(cfg)):
        # only these paths can tell a skipped F_latt == 0 term from an added zero
        nz = latt.total != 0.0
        looked_up = nz if looked_up is None else looked_up & nz
    return Block(pos, R, d, omega, q, keep, h, k, l, latt, looked_up)


def _slow_path(cfg) -> bool:
    return cfg.oversample_thick or cfg.oversample_polar or cfg.oversample_omega


def _f_cell(setup, blk: Block, use_tricubic: Tensor | None) -> Tensor:
    """F_cell for every term (P, S, Φ, D); tricubic where ``use_tricubic`` is True."""
    table = setup.table
    if table.grid is None or table.count == 0:
        return torch.full((1, 1, 1, 1), table.default_F, dtype=blk.h.dtype, device=blk.h.device).expand_as(blk.h)
    h0, k0, l0 = (torch.ceil(x - 0.5) for x in (blk.h, blk.k, blk.l))
    F = sf_mod.nearest(table, h0, k0, l0, blk.h)
    if use_tricubic is not None and bool(use_tricubic.any()):
        F = F.clone()
        F[use_tricubic] = sf_mod.tricubic(table, blk.h[use_tricubic], blk.k[use_tricubic], blk.l[use_tricubic])
    return F


#: Layers × subpixels beyond which a compiled kernel is not built: the blocks are unrolled
#: into one graph, and compile time grows with them while the gain per pixel does not.
MAX_FUSED_BLOCKS = 16


def fusable(s) -> bool:
    """True when ``-compile`` renders untraced pixels through one compiled function.

    Everything else (taps, the tricubic switch, whose order matters; the oversample_* flags,
    which unroll a loop per term; autograd) runs eagerly through the same ``pixel_values``.
    """
    nblocks = s.detector.thicksteps * s.oversample ** 2
    return (s.compiled and not _slow_path(s.cfg) and nblocks <= MAX_FUSED_BLOCKS
            and not torch.is_grad_enabled())


_COMPILED = []


def _compiled_pixel_values():
    """``pixel_values`` through torch.compile, built once per process (inductor caches the
    generated code on disk, so a later process only pays the tracing). It traces to one
    graph; not ``fullgraph``, so that a process rendering many different setups degrades to
    eager at dynamo's recompile limit instead of failing."""
    if not _COMPILED:
        _COMPILED.append(torch.compile(pixel_values, dynamic=False))
    return _COMPILED[0]


class Kernel:
    """Renders pixel sets for one :class:`~nbtrace.sim.setup.Setup`; holds the interpolation switch."""

    def __init__(self, setup, recorder=None):
        self.setup = setup
        self.recorder = recorder
        self.interp = InterpState(setup.interpolate)

    def _tricubic_cutoff(self, s_idx, f_idx) -> int | None:
        """C-order key of the first out-of-range lookup in this chunk (None: all in range)."""
        s = self.setup
        nblocks = s.detector.thicksteps * s.oversample ** 2
        best = None
        for b, (t, ss, sf) in enumerate(_block_order(s)):
            blk = _block(s, s_idx, f_idx, t, ss, sf)
            bad = ~sf_mod.tricubic_in_range(s.table, blk.h, blk.k, blk.l)
            if blk.looked_up is not None:
                bad &= blk.looked_up
            if not bool(bad.any()):
                continue
            keys = _term_keys(bad.shape, nblocks, b, bad.device)
            first = int(keys[bad].min())
            best = first if best is None else min(best, first)
        return best

    def render(self, s_idx: Tensor, f_idx: Tensor) -> Tensor:
        """Pixel values (photons, float64) for pixels (s_idx[i], f_idx[i]), shape (P,); or,
        without a recorder on a flat detector, for the grid s_idx (R, 1) × f_idx (1, C),
        row-major, P = R·C."""
        s = self.setup
        rec = self.recorder.select(s_idx, f_idx) if self.recorder is not None else None
        cutoff = self._tricubic_cutoff(s_idx, f_idx) if self.interp.on else None
        if rec is None and not self.interp.on and fusable(s):
            v = _compiled_pixel_values()(s, s_idx, f_idx, None, None, False)
        else:
            v = pixel_values(s, s_idx, f_idx, rec, cutoff, self.interp.on)
        if cutoff is not None:
            self.interp.on = False
            if not self.interp.warned:
                self.interp.warned = True
                sys.stderr.write("nbsim: warning: a structure factor lookup is out of range for tricubic "
                                 "interpolation; interpolation is off for the rest of the run (as in nanoBragg)\n")
        return v


def pixel_values(s, s_idx: Tensor, f_idx: Tensor, rec, cutoff: int | None, interp_on: bool) -> Tensor:
    """Pixel values (photons, float64, shape (P,)) of one pixel set: every layer and subpixel,
    then the final scale. One function for every path (traced, interpolated, compiled), so
    the taps and the image always come from the same arithmetic.

    s: Setup; s_idx, f_idx: (P,) int64 pixel indices, or a grid (R, 1) × (1, C) (no
    recorder, flat detector); rec: a recorder view or None; cutoff: C-order key of the first
    out-of-range tricubic lookup (None: all in range).
    """
    cfg = s.cfg
    P = torch.broadcast_shapes(s_idx.shape, f_idx.shape).numel()
    dt, dev = s.dtype, s.detector.pix0.device
    gdt = s.detector.pix0.dtype
    nblocks = s.detector.thicksteps * s.oversample ** 2
    # I, Ω and P start as in the C (I_bg, 0, 0 or 1); the first block replaces a 0 exactly,
    # so the initial fills are only made when they can matter
    I = torch.full((P,), s.I_bg, dtype=dt, device=dev) if s.I_bg != 0 else None
    nopolar = cfg.nopolar and not cfg.oversample_polar
    # None stands for the C's initial 0 until the first factor replaces it
    polar = torch.ones(P, dtype=gdt, device=dev) if nopolar else None
    omega = None
    cap = None
    blk = None
    for b, (t, ss, sf) in enumerate(_block_order(s)):
        blk = _block(s, s_idx, f_idx, t, ss, sf)
        omega = blk.omega if (cfg.oversample_omega or omega is None) else torch.where(omega == 0, blk.omega, omega)
        if s.detector.thickness > 0 or cfg.oversample_thick:
            # -oversample_thick evaluates the capture formula even without a sensor thickness
            if ss == 0 and sf == 0:
                cap = torch.zeros(P, dtype=gdt, device=dev)
            cap_sub = det_mod.capture_fraction(s.detector, blk.d, t, *_abs_args(s), always=True)
            cap = cap_sub if cfg.oversample_thick else torch.where(cap == 0, cap_sub, cap)
        elif cap is None and (rec is not None or _slow_path(cfg)):
            cap = torch.ones(P, dtype=gdt, device=dev)  # no thickness: exactly 1 (only read there)
        pol_src = None
        # with K = 0 the factor is ≥ ½, so once set (first block, no -dmin) it never changes
        settled = b > 0 and s.polar_K == 0 and blk.keep is None and not cfg.oversample_polar and rec is None
        if not nopolar and not settled:
            pol_src = kahn_factor(s.polar_K, s.sources.incident, blk.d, s.polar_basis, s.static.inc_code)
        use_tc = None
        if interp_on:
            use_tc = blk.looked_up.clone() if blk.looked_up is not None else torch.ones_like(blk.h, dtype=torch.bool)
            if cutoff is not None:
                use_tc &= _term_keys(blk.h.shape, nblocks, b, blk.h.device) < cutoff
        F = _f_cell(s, blk, use_tc)
        # the C's order: F_cell²·F_latt·F_latt
        F2 = s.table.default_F * s.table.default_F if s.table.grid is None else F * F
        term = F2 * blk.latt.total * blk.latt.total
        if _slow_path(cfg):
            if I is None:
                I = torch.zeros(P, dtype=dt, device=dev)
            if polar is None:
                polar = torch.zeros(P, dtype=gdt, device=dev)
            I, polar = _accumulate_sequential(cfg, I, polar, pol_src, term, blk, cap, omega)
        else:
            if pol_src is not None:
                polar = _first_polar(polar, pol_src, blk.keep)
            if blk.looked_up is not None:
                term = torch.where(blk.looked_up, term, torch.zeros_like(term))
            add = term.reshape(P, -1).sum(dim=1) if term[0].numel() > 1 else term.reshape(P)
            I = add if I is None else I + add  # 0 + x is x exactly
        if rec is not None:
            rec.block(t, ss, sf, s, blk, F, omega, cap, I, polar, pol_src)
    I = taps_mod.replay_scalar("I_before_scaling", I, (s_idx, f_idx))
    v = taps_mod.replay_scalar("I_pixel_final", _final_scale(s, I.to(gdt), cap, polar, omega), (s_idx, f_idx))
    if rec is not None:
        rec.scaling(s, I, cap, polar, omega, blk, v)
    return v


def _final_scale(s, I: Tensor, cap, polar, omega) -> Tensor:
    """Photons (P,): r_e²·fluence·I/steps, then capture fraction, P and Ω unless the
    oversample_* flags applied them per term; in the C's order. I: (P,) float64."""
    cfg = s.cfg
    v = I
    # ×1 and ÷1 are exact no-ops
    if R_E_SQR * s.fluence != 1.0:
        v = R_E_SQR * s.fluence * v
    if s.steps != 1:
        v = v / s.steps
    if not cfg.oversample_thick and s.detector.thickness > 0:  # cap is exactly 1 otherwise
        v = v * cap
    if not cfg.oversample_polar:
        v = v * polar
    if not cfg.oversample_omega:
        v = v * omega
    return v


def _block_order(s):
    """(layer, slow subpixel, fast subpixel) in the C's loop order."""
    return [(t, ss, sf) for t in range(s.detector.thicksteps)
            for ss in range(s.oversample) for sf in range(s.oversample)]


def _abs_args(s):
    cfg, det = s.cfg, s.detector
    if cfg.has("abs-parallax"):
        return (det.odet_untilted, True)
    return (None, False)


def _first_polar(polar: Tensor | None, pol_src: Tensor, keep: Tensor | None) -> Tensor:
    """P is computed at the first source not removed by dmin while it is still 0 (None: the
    initial 0 of every pixel, which the first live source replaces without a test)."""
    for j in range(pol_src.shape[1]):
        if polar is None:
            polar = pol_src[:, j] if keep is None else torch.where(keep[:, j], pol_src[:, j], torch.zeros_like(pol_src[:, j]))
            continue
        live = polar == 0 if keep is None else (polar == 0) & keep[:, j]
        polar = torch.where(live, pol_src[:, j], polar)
    return polar


def _accumulate_sequential(cfg, I, polar, pol_src, term, blk, cap, omega):
    """The oversample_* flags multiply the running sum after every term, in C loop order."""
    S, NPHI, ND = term.shape[1:]
    P = term.shape[0]
    true = torch.ones(P, dtype=torch.bool, device=term.device)
    for j in range(S):
        keep = true if blk.keep is None else blk.keep[:, j]
        if pol_src is not None:
            live = keep if cfg.oversample_polar else (polar == 0) & keep
            polar = torch.where(live, pol_src[:, j], polar)
        for m in range(NPHI):
            for n in range(ND):
                live = true if blk.looked_up is None else blk.looked_up[:, j, m, n]
                new = I + term[:, j, m, n]
                if cfg.oversample_thick:
                    new = new * cap
                if cfg.oversample_polar:
                    new = new * polar
                if cfg.oversample_omega:
                    new = new * omega
                I = torch.where(live, new, I)
    return I, polar


def _term_keys(shape, nblocks: int, block: int, device) -> Tensor:
    """C loop order key of each term of a block: pixel-major, then block, then S, Φ, D."""
    P = shape[0]
    inner = 1
    for n in shape[1:]:
        inner *= n
    pix = torch.arange(P, dtype=torch.int64, device=device)[:, None] * (nblocks * inner) + block * inner
    return (pix + torch.arange(inner, dtype=torch.int64, device=device)[None, :]).reshape(shape)


def render_frame(setup, recorder=None, chunk: int | None = None, progress=None, workers: int = 1) -> Tensor:
    """The whole image (spixels, fpixels), float64; zero outside the ROI.

    The ROI is cut into rectangles of whole rows (or, for a row longer than a chunk, pieces
    of one row), visited in the C's pixel order; each rectangle's values are written
    straight into its window of the image, so memory is the image plus the temporaries of
    the chunks in flight. ``workers`` > 1 renders eager chunks concurrently: in forked worker
    processes writing into a shared image for large frames where that is safe (see
    :func:`_fork_ready`), else in threads (torch releases the GIL inside ops; use it with
    torch.set_num_threads(1): many small intra-op parallel regions cost far more than they
    gain, worst of all on a shared machine); a compiled kernel (``-compile``) gets that many
    OpenMP threads. Chunks only run concurrently when nothing depends on their order (no
    recorder, no tricubic switch).
    """
    det = setup.detector
    dev = det.pix0.device
    if dev.type == "cpu":
        keep_freed_heap()
    xmin, xmax, ymin, ymax = setup.roi
    xmin, ymin = max(xmin, 0), max(ymin, 0)
    xmax, ymax = min(xmax, det.fpixels - 1), min(ymax, det.spixels - 1)
    nx, ny = xmax - xmin + 1, ymax - ymin + 1
    whole = (nx, ny) == (det.fpixels, det.spixels)
    kern = Kernel(setup, recorder)
    total = max(nx, 0) * max(ny, 0)
    fused = recorder is None and not kern.interp.on and fusable(setup)
    grid = recorder is None and not fused and _grid_ok(setup)
    ordered = recorder is not None or kern.interp.on or dev.type != "cpu"
    forked = not fused and not ordered and _fork_ready(workers, total)
    shape = (det.spixels, det.fpixels)
    if forked:  # worker processes write into it: shared, and zero-filled by the kernel
        image = _shared_zeros(shape, det.pix0.dtype)
    else:  # every pixel is written when the ROI is the whole detector: skip the zero fill
        image = (torch.empty if whole else torch.zeros)(shape, dtype=det.pix0.dtype, device=dev)
    if nx <= 0 or ny <= 0:
        return image
    tiles = _Tiles(xmin, ymin, nx, ny, chunk or chunk_size(setup), dev)

    def one(tile) -> int:
        r0, c0 = tile
        if grid:
            s_idx, f_idx, rows, cols = tiles.grid(r0, c0)
        else:
            s_idx, f_idx, rows, cols = tiles.indices(r0, c0, pad=fused)
        v = kern.render(s_idx, f_idx)
        if v.shape[0] != rows * cols:  # a padded edge chunk
            v = v.view(tiles.rows, tiles.cols)[:rows, :cols]
        image[ymin + r0:ymin + r0 + rows, xmin + c0:xmin + c0 + cols] = v.view(rows, cols)
        return (r0 + rows - 1) * nx + c0 + cols  # pixels done, in C order

    if fused:
        with _intra_op_threads(workers):
            _run_serial(one, tiles, progress, total)
    elif forked and len(tiles) > 1:
        _run_forked(one, list(tiles), workers, progress, total)
    elif workers > 1 and not ordered and len(tiles) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=workers) as pool:
            for done in pool.map(one, tiles):
                if progress is not None:
                    progress(done, total)
    else:
        _run_serial(one, tiles, progress, total)
    return image


# Eager chunks in threads contend for the GIL around every op (~90 ops a chunk): on this
# project's 2-core machine 2 threads rendered the 4096² seed frame no faster than one (float32
# 0.56 s vs 0.59 s, 8600 context switches). Worker processes do not share a GIL. They are
# forked (Linux, CPU, no autograd, no recorder, one intra-op thread, no other Python thread,
# frames of at least FORK_MIN_PIXELS) and write their chunks into a shared image.
FORK_MIN_PIXELS = 1 << 20


def _fork_ready(workers: int, total: int) -> bool:
    return (workers > 1 and total >= FORK_MIN_PIXELS and sys.platform.startswith("linux") and hasattr(os, "fork")
            and not torch.is_grad_enabled() and _process_can_fork())


def _process_can_fork(torch_threads=torch.get_num_threads, python_threads=threading.active_count) -> bool:
    """Process-wide state, apart so tests can pin it: a fork copies only the calling thread,
    so a lock held by any other thread (an intra-op pool, a Python thread) would stay locked
    for ever in the child."""
    return torch_threads() == 1 and python_threads() == 1


def _shared_zeros(shape, dtype) -> Tensor:
    """A zero-filled CPU tensor in anonymous shared memory (MAP_SHARED): what a forked child
    writes into it, the parent sees. The tensor keeps the mapping alive."""
    import mmap

    count = math.prod(shape)
    buf = mmap.mmap(-1, max(1, count * torch.empty((), dtype=dtype).element_size()))
    return torch.frombuffer(buf, dtype=dtype, count=count).view(shape)


def _run_forked(one, starts, workers: int, progress, total: int) -> None:
    """Tiles dealt round-robin to ``workers`` forked processes. A worker that fails in any way
    (exception, signal, out of memory) leaves its tiles to this process, which computes them
    again (the same values: each tile is independent) and meets any error itself."""
    parts = [starts[k::workers] for k in range(workers)]
    read_end, write_end = os.pipe()
    pids = []
    for part in parts:
        pid = os.fork()
        if pid == 0:  # the child: compute, report each tile, leave without any cleanup
            code = 1
            try:
                os.close(read_end)
                for tile in part:
                    os.write(write_end, struct.pack("q", one(tile)))
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    os.close(write_end)
    seen = 0
    with os.fdopen(read_end, "rb") as fh:
        while (data := fh.read(8)) and len(data) == 8:
            seen = max(seen, struct.unpack("q", data)[0])
            if progress is not None:
                progress(seen, total)
    failed = [part for pid, part in zip(pids, parts) if os.waitpid(pid, 0)[1] != 0]
    for part in failed:
        _run_serial(one, part, progress, total)


#: glibc mallopt parameters (malloc.h): below MMAP_THRESHOLD bytes a block comes from the
#: heap; free memory at the heap top beyond TRIM_THRESHOLD is returned to the system.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_HEAP_KEPT = []


def keep_freed_heap() -> None:
    """Let glibc keep the chunk temporaries' memory between ops (once per process).

    Every eager op allocates its output; a chunk's temporaries (≤ 4 MB each) freed together
    made glibc hand the heap top back to the system, and the next ops fault it in again page
    by page: on the 4096² seed frame 0.74 M page faults, half the eager render's time. Arrays
    up to 4 MB now come from the heap, and up to 64 MB of freed heap is kept; anything larger
    (the image) is still mapped and unmapped on its own. Not glibc (or no ctypes): no-op.
    """
    if _HEAP_KEPT:
        return
    _HEAP_KEPT.append(True)
    try:
        import ctypes
        import ctypes.util

        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, 4 << 20)
        libc.mallopt(_M_TRIM_THRESHOLD, 64 << 20)
    except (OSError, AttributeError):
        pass


def _grid_ok(setup) -> bool:
    """Pixel positions are fd·f̂ + sd·ŝ + offset (flat detector, no edge-band injection), so a
    chunk may be given as rows × columns (see :func:`_core`)."""
    return not (setup.detector.curved or setup.cfg.has("edge-geometry"))


def _run_serial(one, tiles, progress, total: int) -> None:
    for tile in tiles:
        done = one(tile)
        if progress is not None:
            progress(done, total)


class _Tiles:
    """Chunk rectangles of ``rows`` × ``cols`` pixels over an nx × ny ROI at (xmin, ymin),
    in C order (slow-major); a tile is named by its ROI-relative corner (r0, c0).

    The index patterns of a full rectangle are built once; a chunk adds its offsets. An edge
    rectangle gets its own smaller patterns, or with ``pad`` the full ones clamped to the
    ROI (a compiled kernel is specialised to one chunk length; the repeated edge pixels are
    computed and dropped).
    """

    def __init__(self, xmin: int, ymin: int, nx: int, ny: int, size: int, device):
        self.xmin, self.ymin, self.nx, self.ny = xmin, ymin, nx, ny
        self.cols = min(nx, size)
        self.rows = max(1, min(ny, size // self.cols))
        flat = torch.arange(self.rows * self.cols, device=device)
        self.srow, self.fcol = flat // self.cols, flat % self.cols
        self.row_ar, self.col_ar = torch.arange(self.rows, device=device), torch.arange(self.cols, device=device)
        self.starts = [(r, c) for r in range(0, ny, self.rows) for c in range(0, nx, self.cols)]

    def __len__(self) -> int:
        return len(self.starts)

    def __iter__(self):
        return iter(self.starts)

    def grid(self, r0: int, c0: int):
        """Detector indices of the chunk at (r0, c0) as a grid: s (rows, 1), f (1, cols)."""
        rows, cols = min(self.rows, self.ny - r0), min(self.cols, self.nx - c0)
        s = self.row_ar[:rows] + (self.ymin + r0)
        f = self.col_ar[:cols] + (self.xmin + c0)
        return s[:, None], f[None, :], rows, cols

    def indices(self, r0: int, c0: int, pad: bool):
        """Detector (s, f) int64 indices (P,) of the chunk at (r0, c0), and its real rows, cols."""
        rows, cols = min(self.rows, self.ny - r0), min(self.cols, self.nx - c0)
        s0, f0 = self.ymin + r0, self.xmin + c0
        if (rows, cols) == (self.rows, self.cols):
            return self.srow + s0, self.fcol + f0, rows, cols
        if pad:
            smax, fmax = self.ymin + self.ny - 1, self.xmin + self.nx - 1
            return torch.clamp(self.srow + s0, max=smax), torch.clamp(self.fcol + f0, max=fmax), rows, cols
        flat = torch.arange(rows * cols, device=self.srow.device)
        return flat // cols + s0, flat % cols + f0, rows, cols


class _intra_op_threads:
    """Up to n OpenMP threads for a block, restored after (a compiled kernel's OpenMP loops
    are its only parallelism: its Python call holds the GIL).

    The compiled loop is split statically, so a thread that loses its core to another
    process stalls every chunk: on this project's busy 2-core machine, 2 threads took
    1.9 s median for a frame one thread renders in 0.5 s. OpenMP's dynamic mode is on
    meanwhile, so the runtime gives fewer threads when the load average says the cores are
    taken (GNU OpenMP: n − 15-minute load average, at least 1).
    """

    def __init__(self, n: int):
        self.n, self.before, self.dynamic = n, None, None

    def __enter__(self):
        self.before = torch.get_num_threads()
        torch.set_num_threads(self.n)
        omp = _openmp()
        if omp is not None and self.n > 1:
            self.dynamic = omp.omp_get_dynamic()
            omp.omp_set_dynamic(1)

    def __exit__(self, *exc):
        torch.set_num_threads(self.before)
        if self.dynamic is not None:
            _openmp().omp_set_dynamic(self.dynamic)


_OPENMP = []


def _openmp():
    """The OpenMP runtime torch loaded (ctypes handle), or None where it cannot be found."""
    if not _OPENMP:
        handle = None
        try:
            import ctypes

            with open("/proc/self/maps") as maps:
                paths = sorted({line.split()[-1] for line in maps
                                if any(n in line for n in ("libgomp", "libiomp5", "libomp"))})
            handle = ctypes.CDLL(paths[0]) if paths else None
            if handle is not None and not hasattr(handle, "omp_set_dynamic"):
                handle = None
        except (OSError, IndexError):
            handle = None
        _OPENMP.append(handle)
    return _OPENMP[0]


def chunk_size(setup) -> int:
    """Pixels per chunk so that a (P, S, Φ, D) tensor holds about 2^16 elements (2^18 compiled).

    Small eager chunks keep the temporaries in cache; measured on the seed configuration with
    the heap kept (:func:`keep_freed_heap`), one worker, float64: 2^15 0.80 s, 2^16 0.76 s,
    2^17 0.85 s, 2^18 1.04 s (float32 0.64, 0.59, 0.59, 0.70 s). A compiled kernel fuses the
    temporaries away and prefers fewer, larger calls.
    """
    inner = setup.sources.incident.shape[0] * setup.phis.shape[0] * setup.domains
    budget = 1 << (18 if setup.compiled else 16)
    return max(1, budget // inner)
