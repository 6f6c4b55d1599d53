"""One nbsim run: set up, render (frame or traced pixels only), trace, write outputs."""

from __future__ import annotations

import dataclasses
import os
import sys
import time

import numpy as np
import torch

from nbtrace.errors import UsageError
from nbtrace.sim import io as io_mod
from nbtrace.sim import taps as taps_mod
from nbtrace.sim.kernel import Kernel, chunk_size, render_frame
from nbtrace.sim.setup import build_setup


class RecorderGroup:
    """Several recorders fed by one pass (a text trace and an npz region dump)."""

    def __init__(self, recorders):
        self.recorders = recorders

    def select(self, s_idx, f_idx):
        views = [v for v in (r.select(s_idx, f_idx) for r in self.recorders) if v is not None]
        return _Views(views) if views else None


class _Views:
    def __init__(self, views):
        self.views = views

    def block(self, *args):
        for v in self.views:
            v.block(*args)

    def scaling(self, *args):
        for v in self.views:
            v.scaling(*args)


def summary(setup) -> str:
    det, cfg = setup.detector, setup.cfg
    parts = [
        f"convention {det.convention}, pivot {det.pivot}",
        f"detector {det.fpixels}x{det.spixels} pixels of {det.pixel * 1000:g} mm at {float(det.distance) * 1000:g} mm",
        f"oversample {setup.oversample} (recommended {setup.oversample_recommended})",
        f"sources {setup.sources.incident.shape[0]}, phi steps {setup.phi.steps}, mosaic domains {setup.domains}",
        f"thickness layers {det.thicksteps}, steps {setup.steps}",
        f"N {setup.crystal.N[0]}x{setup.crystal.N[1]}x{setup.crystal.N[2]}, F: {setup.table.describe()}"
        + (", tricubic interpolation" if setup.interpolate else ""),
        f"dtype {'float32' if setup.dtype == torch.float32 else 'float64'}, device {cfg.device}",
    ]
    if cfg.injections:
        parts.append("INJECTED FAULTS: " + ", ".join(sorted(cfg.injections)))
    return "".join(f"nbsim: {p}\n" for p in parts)


def _check_pixels(setup, pixels, what):
    det = setup.detector
    xmin, xmax, ymin, ymax = setup.roi
    for s, f in pixels:
        if not (0 <= s < det.spixels and 0 <= f < det.fpixels):
            raise UsageError(f"{what} ({s}, {f}) is outside the {det.spixels}x{det.fpixels} detector",
                             hint="-trace_pixel takes slow then fast, 0-based")
        if not (xmin <= f <= xmax and ymin <= s <= ymax):
            raise UsageError(f"{what} ({s}, {f}) is outside the -roi, so it is never computed",
                             hint="widen -roi or pick a pixel inside it")


def _roi_pixels(roi):
    xmin, xmax, ymin, ymax = roi
    return [(s, f) for s in range(ymin, ymax + 1) for f in range(xmin, xmax + 1)]


def _progress(enabled):
    if not enabled:
        return None
    start = time.time()

    def report(done, total):
        sys.stderr.write(f"\rnbsim: {100.0 * done / total:5.1f}% ({time.time() - start:.1f} s)")
        if done == total:
            sys.stderr.write("\n")
        sys.stderr.flush()
    return report


def cpu_workers() -> int:
    """Chunk workers for a frame: NBSIM_THREADS, else the CPUs this process may use."""
    env = os.environ.get("NBSIM_THREADS")
    if env and env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def _check_frame_fits(setup) -> None:
    """Refuse a frame whose image buffers (float64 + float32) cannot fit in memory."""
    det = setup.detector
    need = det.fpixels * det.spixels * 12
    try:
        have = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return
    if need > have // 2:
        raise UsageError(f"a {det.fpixels}x{det.spixels} frame needs {need / 2**30:.1f} GiB for its images; "
                         f"this machine has {have / 2**30:.1f} GiB",
                         hint="use fewer -detpixels, a -roi, or trace pixels without an image output")


def _check_roi(setup) -> None:
    det = setup.detector
    if det.fpixels < 1 or det.spixels < 1:
        raise UsageError(f"the detector holds no pixel ({det.fpixels}x{det.spixels})",
                         hint="check -detsize and -pixel (mm)")
    if setup.cfg.roi is not None:
        xmin, xmax, ymin, ymax = setup.cfg.roi
        if xmax >= det.fpixels or ymax >= det.spixels:
            raise UsageError(f"-roi {xmin} {xmax} {ymin} {ymax} is not inside the {det.fpixels}x{det.spixels} detector",
                             hint="0 ≤ xmin ≤ xmax < fpixels and 0 ≤ ymin ≤ ymax < spixels")


def run(cfg, pixels_from=None, pixels_after=None) -> int:
    """pixels_from: None, or a function giving more (slow, fast) pixels to trace; it is called
    only after setup, so a caller can start this process before it knows the pixels and have
    the imports and geometry done meanwhile (-trace_pixels_from).
    pixels_after: the same, called once the image files are written and IMAGE_WRITTEN is on
    stderr, so that a caller can choose pixels from the image and have them traced by this very
    run (-trace_pixels_after, nbtrace hunt: one run of the port per hunt)."""
    # one intra-op thread; parallelism comes from rendering chunks concurrently (kernel.render_frame)
    torch.set_num_threads(1)
    setup = build_setup(cfg)
    _check_roi(setup)
    if pixels_from is not None:
        cfg = dataclasses.replace(cfg, trace_pixels=tuple(cfg.trace_pixels) + tuple(pixels_from()))
        wants_image = any((cfg.floatfile, cfg.intfile, cfg.noisefile, cfg.pgmfile))
        if not cfg.trace_pixels and not cfg.trace_roi and not wants_image:
            return 0  # nothing was asked for after all (the images agreed): a quiet no-op
    text_rec = taps_mod.Recorder(cfg.trace_pixels, all_blocks=True) if cfg.trace_pixels else None
    roi_rec = None
    if cfg.trace_roi:
        roi_px = _roi_pixels(cfg.trace_roi)
        _check_pixels(setup, [roi_px[0], roi_px[-1]], "-trace_roi corner")
        roi_rec = taps_mod.Recorder(roi_px, all_blocks=False)
    if text_rec:
        _check_pixels(setup, cfg.trace_pixels, "-trace_pixel")
    recs = [r for r in (text_rec, roi_rec) if r is not None]
    recorder = RecorderGroup(recs) if recs else None
    wants_image = any((cfg.floatfile, cfg.intfile, cfg.noisefile, cfg.pgmfile))
    if wants_image:
        _check_frame_fits(setup)  # before the summary: a refusal is the only line on stderr
    sys.stderr.write(summary(setup))
    with torch.no_grad(), taps_mod.replay_session(cfg):
        if recs and not wants_image:
            _render_selected(setup, recorder, recs)
        else:
            _check_frame_fits(setup)
            image = render_frame(setup, recorder, workers=cpu_workers(),
                                 progress=_progress(sys.stderr.isatty() if cfg.progress is None else cfg.progress))
            _write_outputs(setup, image.to(torch.float32).cpu().numpy())
            del image  # the frame's memory is not needed for what follows
        if pixels_after is not None:
            if roi_rec is not None:  # the region dump belongs to the image: written before the marker
                _emit_traces(setup, cfg, None, roi_rec)
                roi_rec = None
            text_rec, cfg = _trace_after(setup, cfg, text_rec, pixels_after)
    _emit_traces(setup, cfg, text_rec, roi_rec)
    return 0


def _trace_after(setup, cfg, text_rec, pixels_after):
    """Say the image is written, read more pixels, trace them (same kernel, traced pixels only).
    Returns the recorder holding every traced pixel and the config listing them all."""
    from nbtrace.sim.constants import IMAGE_WRITTEN

    sys.stderr.write(IMAGE_WRITTEN + "\n")
    sys.stderr.flush()
    extra = tuple(p for p in dict.fromkeys(pixels_after()) if p not in set(cfg.trace_pixels))
    if not extra:
        return text_rec, cfg
    _check_pixels(setup, extra, "-trace_pixels_after pixel")
    later = taps_mod.Recorder(extra, all_blocks=True)
    _render_selected(setup, later, [later])
    merged = taps_mod.Recorder(tuple(cfg.trace_pixels) + extra, all_blocks=True)
    merged.absorb(text_rec, later)
    return merged, dataclasses.replace(cfg, trace_pixels=tuple(cfg.trace_pixels) + extra)


def _render_selected(setup, recorder, recs):
    """Tracing without an image output: compute the traced pixels only (same kernel)."""
    pixels = sorted({p for r in recs for p in r.pixels})
    kern = Kernel(setup, recorder)
    dev = setup.detector.pix0.device
    size = chunk_size(setup)
    for start in range(0, len(pixels), size):
        part = pixels[start:start + size]
        s_idx = torch.tensor([p[0] for p in part], dtype=torch.long, device=dev)
        f_idx = torch.tensor([p[1] for p in part], dtype=torch.long, device=dev)
        kern.render(s_idx, f_idx)


def _emit_traces(setup, cfg, text_rec, roi_rec):
    # the dtype the per-term work really ran in (the float32 injection included), so that a
    # reader can class ~1e-7 differences as float32 precision (incident 17)
    dtype_name = "float32" if setup.dtype == torch.float32 else "float64"
    if text_rec is not None:
        lines = taps_mod.setup_lines(setup, cfg.argv, dtype_name)
        for pixel in cfg.trace_pixels:
            lines += taps_mod.pixel_lines(text_rec, pixel)
        sys.stdout.write("\n".join(lines) + "\n")
        sys.stdout.flush()
    if roi_rec is not None:
        meta = {"producer": "nbtrace-simulator 0.1.0", "dtype": dtype_name, "argv": list(cfg.argv)}
        taps_mod.write_npz(roi_rec, cfg.trace_roi, cfg.trace_dump, meta)
        sys.stderr.write(f"nbsim: wrote tap dump {cfg.trace_dump}\n")


def _write_outputs(setup, image: np.ndarray) -> None:
    cfg = setup.cfg
    mask = io_mod.roi_mask(image.shape, setup.roi)
    vals = image.reshape(-1) if mask.all() else image[mask]  # no copy of a whole frame
    if vals.size:
        # float64 accumulation without a float64 copy (0.37 s -> 0.01 s on a 4096² frame)
        total = np.add.reduce(vals, dtype=np.float64)
        sys.stderr.write(f"nbsim: max_I {vals.max():g}, mean {vals.mean():g}, sum {total:.10g}\n")
    if cfg.floatfile:
        io_mod.write_float(cfg.floatfile, image)
    scale = io_mod.int_scale(image, mask, cfg.scale)
    if cfg.intfile:
        io_mod.write_smv(cfg.intfile, setup, io_mod.int_image(image, mask, scale, cfg.adc))
    if cfg.pgmfile:
        io_mod.write_pgm(cfg.pgmfile, image, mask, io_mod.pgm_scale(image, mask, scale, cfg.pgmscale))
    if cfg.noisefile:
        from nbtrace.sim.noise import noise_image
        io_mod.write_smv(cfg.noisefile, setup, noise_image(image, mask, cfg.adc, cfg.seed))
