"""Caps on what one run may ask for, checked before anything is allocated (issue 11).

A typo such as ``-phisteps 100000000`` or ``-detsize 1e300`` would otherwise run for hours or
fail deep in an allocation. The caps are generous for real work and raised with ``-max_steps N``
(terms per pixel: sources × mosaic domains × φ steps × oversample² × sensor layers) and
``-max_pixels N`` (detector pixels).
"""

from __future__ import annotations

import math

from nbtrace.errors import UsageError
from nbtrace.sim.beam import auto_steps
from nbtrace.sim.crystal import mosaic_count, phi_sampling

DEFAULT_MAX_STEPS = 1_000_000
DEFAULT_MAX_PIXELS = 1 << 28  # 16384 × 16384


def _source_bound(cfg) -> int:
    """Sources the divergence grid and dispersion make, before the elliptical trim (an upper
    bound); a -sourcefile is counted when it is read (see :func:`check_terms`)."""
    if cfg.sourcefile:
        return 1
    hs = auto_steps(cfg.hdivsteps, cfg.hdivrange, cfg.hdivstep)[0]
    vs = auto_steps(cfg.vdivsteps, cfg.vdivrange, cfg.vdivstep)[0]
    ds = auto_steps(cfg.dispsteps, cfg.dispersion, -1.0)[0]
    return hs * vs * ds


def check_pixels(cfg) -> None:
    """Refuse a detector with more than cfg.max_pixels pixels (-detsize/-detpixels/-pixel). With
    an image output the frame's memory check refuses first (it names the GiB the images need)."""
    dsf = cfg.pixel * cfg.detpixels_f if cfg.detpixels_f is not None else cfg.detsize_f
    dss = cfg.pixel * cfg.detpixels_s if cfg.detpixels_s is not None else cfg.detsize_s
    nf, ns = dsf / cfg.pixel, dss / cfg.pixel
    count = nf * ns
    images = cfg.floatfile or cfg.intfile or cfg.noisefile or cfg.pgmfile
    if not math.isfinite(count) or (count > cfg.max_pixels and not images):
        raise UsageError(f"the detector would be {nf:.4g} x {ns:.4g} pixels, above the cap of {cfg.max_pixels} pixels",
                         hint="check -detsize/-detpixels/-pixel (mm); -max_pixels N raises the cap")


def check_terms(cfg, sources: int | None = None, oversample: int | None = None) -> None:
    """Refuse more than cfg.max_steps terms per pixel. Before the setup (sources, oversample
    None) the divergence grid is bounded untrimmed and an auto -oversample counts as 1."""
    n_src = sources if sources is not None else _source_bound(cfg)
    os_ = oversample if oversample is not None else max(cfg.oversample, 1)
    phis = phi_sampling(cfg).steps
    domains = mosaic_count(cfg)[1]
    layers = auto_steps(cfg.thicksteps, cfg.thickness, -1.0, thickness=True)[0]
    terms = n_src * domains * phis * os_ * os_ * layers
    if terms > cfg.max_steps:
        raise UsageError(
            f"{terms} terms per pixel (sources {n_src} x mosaic domains {domains} x phi steps {phis} x "
            f"oversample {os_}^2 x sensor layers {layers}) is above the cap of {cfg.max_steps}",
            hint="check -phisteps/-mosaic_domains/-oversample/-dispsteps/-divsteps/-thicksteps; "
                 "-max_steps N raises the cap")
