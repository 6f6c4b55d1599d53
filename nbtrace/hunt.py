"""From "the images disagree" to the root cause, in one call.

Steps (each a plain function over frozen results): render both images (one producer process
per side, in parallel), compare them, choose pixels to trace, capture all of them in ONE run
per side (the built-in PyTorch port's run is started with the renders and given its pixels on
stdin, so its torch start-up overlaps them), compare the provenance (what each side was given
and said it read) BEFORE any physics, diff the traces with the engine (all pixels together,
then each pixel alone), and —
when the traces cannot explain the image difference or ``maps`` is asked for — dump every tap
over a region and map where it diverges (incident 21: faults confined to the detector edge).

Pixel coordinates are (slow, fast) everywhere, as ``-trace_pixel`` takes them.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from nbtrace.errors import UsageError
from nbtrace.images import (
    ImageComparison, Thresholds, compare_arrays, read_image, roi_from_nb_args, shape_from_nb_args,
)

# A small seed configuration with Bragg spots on a 256² detector: a 100 Å cubic cell at 0.5 Å,
# 5 unit cells per axis so the spots are a few pixels wide, 500 mm away on 0.2 mm pixels
# (resolution ~10 Å at the edge), every structure factor 100 electrons.
DEFAULT_ARGS = (
    "-lambda", "0.5", "-cell", "100", "100", "100", "90", "90", "90", "-N", "5", "-default_F", "100",
    "-distance", "500", "-detpixels", "256", "-pixel", "0.2",
)

# Setup values both sides print (CONTRACTS §2.1) that describe the run's inputs and choices;
# a difference here is an input difference, reported before any physics.
PROVENANCE_KEYS = (
    "argv", "structure_factors", "dtype", "detector_convention", "pivot", "detector_pixels", "pixel_size_m",
    "distance_m", "oversample", "steps", "phisteps", "mosaic_domains", "sources", "thicksteps",
)
# Inputs whose difference makes the physics comparison meaningless until fixed.
DECISIVE_INPUTS = ("structure_factors", "detector_pixels", "argv")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class HuntOptions:
    nb_args: tuple[str, ...] = ()
    c_bin: str | None = None
    port_cmd: str | None = None
    inject: tuple[str, ...] = ()
    npixels: int = 7
    maps: bool = False
    out_dir: Path | None = None
    thresholds: Thresholds = Thresholds()
    spec_path: str | None = None
    timeout: float = 900.0
    dtype: str | None = None  # the port's compute dtype (forwarded as -dtype; tells the engine float32 noise is expected)


@dataclass(frozen=True)
class ChosenPixel:
    pixel: tuple[int, int]  # (slow, fast)
    reason: str
    a_value: float  # reference image value (photons)
    b_value: float  # port image value (photons)


@dataclass(frozen=True)
class InputDifference:
    key: str
    a: str | None
    b: str | None
    decisive: bool


@dataclass(frozen=True)
class PixelOutcome:
    """One traced pixel diffed on its own: its root-cause tap (None when it agrees)."""

    pixel: tuple[int, int]
    reason: str
    a_value: float
    b_value: float
    root_tap: str | None
    root_kind: str | None
    root_factor: float | None
    n_divergent: int
    # port/reference of the run's root-cause tap at this pixel, per component (None if not traced
    # here or a reference component is 0): shows whether a factor is constant across the detector
    root_ratio: tuple[float, ...] | None = None


@dataclass(frozen=True, eq=False)
class HuntResult:
    options: HuntOptions
    nb_args: tuple[str, ...]
    default_config: bool
    shape: tuple[int, int]
    images: ImageComparison
    input_differences: tuple[InputDifference, ...]
    input_same: tuple[tuple[str, str], ...]
    pixels: tuple[PixelOutcome, ...]
    diff: object | None  # nbtrace.results.DiffResult over all traced pixels
    maps: object | None  # nbtrace.maps.MapsResult
    maps_reason: str | None
    region_diff: object | None  # DiffResult of pixels chosen from the maps, when traces missed it
    timings: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)  # side -> capture meta

    @property
    def decisive_inputs(self) -> tuple[InputDifference, ...]:
        return tuple(d for d in self.input_differences if d.decisive)

    @property
    def root(self):
        """The root cause that explains the run (traced pixels first, region follow-up second)."""
        if self.diff is not None and self.diff.root_cause is not None:
            return self.diff.root_cause
        if self.region_diff is not None and self.region_diff.root_cause is not None:
            return self.region_diff.root_cause
        return None

    @property
    def agrees(self) -> bool:
        maps_ok = self.maps is None or bool(self.maps)
        return bool(self.images) and self.root is None and maps_ok and not self.decisive_inputs

    @property
    def verdict(self) -> str:
        return "agree" if self.agrees else "diverge"


# --------------------------------------------------------------------------- pixel choice


_FIXED_REASONS = ("detector centre (near the direct beam)", "edge (middle of fast-min edge)", "corner (0, 0)",
                  "opposite corner")
_FIXED_ROI_REASONS = ("centre of the -roi", "edge (middle of the -roi fast-min edge)", "-roi corner (min, min)",
                      "opposite -roi corner")


def fixed_pixels(shape: tuple[int, int], roi: tuple[int, int, int, int] | None = None) -> tuple[ChosenPixel, ...]:
    """Pixels chosen before any image exists, so the render pass itself can trace them: the
    detector centre (near the direct beam), the middle of the fast-min edge and two opposite
    corners (geometry faults grow towards the edges and corners). With the run's -roi
    (xmin, xmax, ymin, ymax inclusive) the same four points of the ROI box, since a pixel
    outside it is never computed. Values are filled later."""
    if roi is None:
        ymin, ymax, xmin, xmax = 0, shape[0] - 1, 0, shape[1] - 1
        reasons = _FIXED_REASONS
    else:
        xmin, xmax, ymin, ymax = roi
        reasons = _FIXED_ROI_REASONS
    mid_s, mid_f = (ymin + ymax + 1) // 2, (xmin + xmax + 1) // 2
    picks = zip([(mid_s, mid_f), (mid_s, xmin), (ymin, xmin), (ymax, xmax)], reasons)
    seen: dict = {}
    for p, why in picks:
        seen.setdefault(p, ChosenPixel(p, why, math.nan, math.nan))
    return tuple(seen.values())


def image_pixels(a: np.ndarray, b: np.ndarray, n: int, exclude=(),
                 roi: tuple[int, int, int, int] | None = None) -> tuple[ChosenPixel, ...]:
    """Pixels chosen from the two images, each with why: the largest |B − A| in photons (absolute,
    so a 1 % error on a bright spot outranks 100 % on dim background), the brightest reference
    pixel, a background pixel, then further large-|Δ| pixels until ``n``. a, b: (S, F) photons.
    roi: the run's -roi (xmin, xmax, ymin, ymax inclusive): choose only inside it."""
    if roi is not None:
        xmin, xmax, ymin, ymax = roi
        box = (slice(ymin, ymax + 1), slice(xmin, xmax + 1))
        inner = image_pixels(a[box], b[box], n, [(s - ymin, f - xmin) for s, f in exclude])
        return tuple(dataclasses.replace(c, pixel=(c.pixel[0] + ymin, c.pixel[1] + xmin)) for c in inner)
    F = a.shape[1]
    fa, fb = np.nan_to_num(a), np.nan_to_num(b)
    diff = np.abs(fb - fa)
    taken = {tuple(p) for p in exclude}
    chosen: dict[tuple[int, int], ChosenPixel] = {}

    def pick(pixel, reason):
        pixel = (int(pixel[0]), int(pixel[1]))
        if pixel not in chosen and pixel not in taken and len(chosen) < n:
            chosen[pixel] = ChosenPixel(pixel, reason, float(a[pixel]), float(b[pixel]))

    if diff.max() > 0:
        pick(np.unravel_index(int(np.argmax(diff)), a.shape), "largest |B-A| (photons)")
    pick(np.unravel_index(int(np.argmax(fa)), a.shape), "brightest pixel of the reference")
    pick(_background_pixel(fa), "background (median intensity, inner region)")
    if diff.max() > 0:
        for k in np.argsort(-diff, axis=None)[: 4 * n]:
            if len(chosen) >= n or diff.flat[k] == 0:
                break
            # skip the immediate neighbours of pixels already chosen: they say the same thing
            s, f = divmod(int(k), F)
            if all(abs(s - p[0]) > 2 or abs(f - p[1]) > 2 for p in [*chosen, *taken]):
                pick((s, f), "next largest |B-A|")
    return tuple(chosen.values())


def choose_pixels(a: np.ndarray, b: np.ndarray, n: int = 7,
                  roi: tuple[int, int, int, int] | None = None) -> tuple[ChosenPixel, ...]:
    """Every pixel a hunt traces for these images: image-derived ones first, then the fixed ones."""
    fixed = tuple(dataclasses.replace(c, a_value=float(a[c.pixel]), b_value=float(b[c.pixel]))
                  for c in fixed_pixels(a.shape, roi))
    return image_pixels(a, b, max(n - len(fixed), 1), exclude=[c.pixel for c in fixed], roi=roi) + fixed


def _background_pixel(img: np.ndarray) -> tuple[int, int]:
    S, F = img.shape
    inner = img[S // 8: S - S // 8 or S, F // 8: F - F // 8 or F]
    k = int(np.argmin(np.abs(inner - np.median(inner))))
    s, f = divmod(k, inner.shape[1])
    return s + S // 8, f + F // 8


# --------------------------------------------------------------------------- provenance


def compare_provenance(meta_a: dict, meta_b: dict) -> tuple[tuple[InputDifference, ...], tuple[tuple[str, str], ...]]:
    """Compare what each side was given and said it read (setup block + capture meta)."""
    diffs, same = [], []
    derived = _derived_setup(meta_a)
    for key in PROVENANCE_KEYS:
        if key in derived:
            continue  # computed by the physics, so the diff engine judges it, not the input check
        va, vb = _prov_value(meta_a, key), _prov_value(meta_b, key)
        if va is None and vb is None:
            continue
        if _same_value(va, vb):
            same.append((key, va))
        elif va is not None and vb is not None:
            diffs.append(InputDifference(key, va, vb, key in DECISIVE_INPUTS))
        else:
            # one side silent about a key is only worth a note when it is decisive
            if key in ("structure_factors", "dtype"):
                diffs.append(InputDifference(key, va, vb, False))
    return tuple(diffs), tuple(same)


def _derived_setup(meta_a: dict) -> frozenset[str]:
    """Setup keys that are results, not inputs, for this run: the SAMPLE pivot rotates pix0
    first and derives the beam-path distance from it (tap_specs/nanobragg.yaml, pivot=SAMPLE)."""
    pivot = (_prov_value(meta_a, "pivot") or "").strip().upper()
    return frozenset({"distance_m"}) if pivot == "SAMPLE" else frozenset()


def _same_value(va: str | None, vb: str | None) -> bool:
    """Equal as text, or as numbers to 1e-12 relative (sides print %.17g vs repr: 2e-4 both ways)."""
    if va == vb:
        return True
    if va is None or vb is None:
        return False
    wa, wb = va.split(), vb.split()
    if len(wa) != len(wb):
        return False
    try:
        return all(abs(float(x) - float(y)) <= 1e-12 * max(abs(float(x)), abs(float(y))) for x, y in zip(wa, wb))
    except ValueError:
        return False


def _prov_value(meta: dict, key: str) -> str | None:
    setup = meta.get("setup") or {}
    if key == "argv":
        args = meta.get("nb_args")
        return " ".join(args) if args else None
    v = setup.get(key, meta.get(key))
    return None if v is None else str(v).strip()


# --------------------------------------------------------------------------- running


def _capture(side, args, opts: HuntOptions, progress, **kw):
    from nbtrace.capture import capture

    return capture(side, list(args), c_bin=opts.c_bin if side == "c" else None,
                   port_cmd=opts.port_cmd if side == "py" else None,
                   inject=opts.inject if side == "py" else (), dtype=opts.dtype if side == "py" else None,
                   timeout=opts.timeout, progress=progress, **kw)


def _both(opts: HuntOptions, args, progress, kw_c: dict, kw_py: dict):
    """Run the two producers at once (2 cores); each returns its CaptureResult."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        fc = pool.submit(_capture, "c", args, opts, progress, **kw_c)
        fp = pool.submit(_capture, "py", args, opts, progress, **kw_py)
        return fc.result(), fp.result()


def _load_spec(path):
    from nbtrace import spec as spec_mod
    from nbtrace.errors import NbtraceError

    if path:
        return spec_mod.load_spec(path)
    try:
        return spec_mod.default_spec()
    except (NbtraceError, OSError, ImportError):
        # an editable install may not map nbtrace.tap_specs; a source checkout still has the file
        src = Path(__file__).resolve().parents[1] / "tap_specs" / "nanobragg.yaml"
        return spec_mod.load_spec(src) if src.is_file() else None


def _diff(trace_a, trace_b, spec, context):
    from nbtrace.diff import diff_traces

    return diff_traces(trace_a, trace_b, spec, context=context)


def _only_pixel(trace, pixel):
    recs = tuple(r for r in trace.records if r.index.pixel is None or tuple(r.index.pixel) == pixel)
    return dataclasses.replace(trace, records=recs, pixels=(pixel,))


def _run_context(args, meta, dtype=None) -> dict:
    """Config-derived numbers the engine may use to explain factors (N, oversample, ...)."""
    ctx: dict = {"dtype": dtype} if dtype else {}
    setup = meta.get("setup") or {}
    for key in ("oversample", "steps", "phisteps", "mosaic_domains", "sources"):
        try:
            ctx[key] = int(float(setup[key]))
        except (KeyError, ValueError):
            pass
    a = list(args)
    for flag, keys in (("-N", ("Na", "Nb", "Nc")), ("-Na", ("Na",)), ("-Nb", ("Nb",)), ("-Nc", ("Nc",))):
        if flag in a and a.index(flag) + 1 < len(a):
            try:
                for k in keys:
                    ctx[k] = int(float(a[a.index(flag) + 1]))
            except ValueError:
                pass
    return ctx


# float32 images carry 24 bits: two renders of the same physics may differ by an ulp or two
# (summation order); 2 ulps relative is 2.4e-7.
FLOAT32_SAME = 2.4e-7


def same_to_float32(a: np.ndarray, b: np.ndarray) -> bool:
    """True when every pixel agrees within two float32 ulps (NaN positions must match too)."""
    if not np.array_equal(np.isnan(a), np.isnan(b)):
        return False
    fa, fb = np.nan_to_num(a), np.nan_to_num(b)
    scale = np.maximum(np.abs(fa), np.abs(fb))
    return bool(np.all(np.abs(fa - fb) <= FLOAT32_SAME * scale))


def _merge(first, second):
    """One Trace from the render-pass trace and the follow-up trace of the same side: the
    follow-up's setup block repeats the first one's, so only its pixel records are kept."""
    if second is None:
        return first
    extra = tuple(r for r in second.records if r.index.pixel is not None)
    return dataclasses.replace(first, records=first.records + extra, pixels=first.pixels + second.pixels)


def _diff_pixels(ta, tb, chosen, spec, ctx):
    """The engine over all traced pixels at once, then over each pixel alone."""
    combined = _diff(ta, tb, spec, ctx)
    outcomes = []
    for c in chosen:
        r = _diff(_only_pixel(ta, c.pixel), _only_pixel(tb, c.pixel), spec, ctx)
        rc = r.root_cause
        outcomes.append(PixelOutcome(c.pixel, c.reason, c.a_value, c.b_value, rc.tap if rc else None,
                                     rc.kind if rc else None, rc.factor if rc else None, len(r.divergent),
                                     _ratio_at(r, combined.root_cause)))
    return combined, tuple(outcomes)


def _ratio_at(result, root) -> tuple[float, ...] | None:
    if root is None:
        return None
    for f in result.findings:
        v = f.verdict
        if v.tap == root.tap and tuple(v.loop) == tuple(root.loop):
            if isinstance(v.a, str) or isinstance(v.b, str) or not v.a or not v.b or len(v.a) != len(v.b):
                return None
            if any(x == 0 or not math.isfinite(x) for x in v.a):
                return None
            return tuple(float(y) / float(x) for x, y in zip(v.a, v.b))
    return None


def _trace_and_diff(opts, args, chosen, work, tag, spec, progress, timings):
    from nbtrace.parse import read_trace

    pixels = [c.pixel for c in chosen]
    t0 = time.perf_counter()
    cap_c, cap_p = _both(opts, args, progress,
                         {"pixels": pixels, "out_trace": work / f"{tag}_c.trace"},
                         {"pixels": pixels, "out_trace": work / f"{tag}_py.trace"})
    timings[f"{tag}_capture_s"] = time.perf_counter() - t0
    ta, tb = read_trace(cap_c.trace_path), read_trace(cap_p.trace_path)
    combined, outcomes = _diff_pixels(ta, tb, chosen, spec, _run_context(args, cap_c.meta, opts.dtype))
    return combined, outcomes, cap_c, cap_p


def hunt(opts: HuntOptions, progress: Progress | None = None) -> HuntResult:
    """Run the whole hunt; raises nbtrace.errors.* on bad input or a failing producer."""
    say = progress or (lambda _m: None)
    args = tuple(opts.nb_args) or DEFAULT_ARGS
    shape = shape_from_nb_args(list(args))
    if opts.npixels < 1:
        raise UsageError(f"--npixels must be >= 1, got {opts.npixels}", "--npixels")
    if opts.inject and opts.port_cmd is None:
        _check_injections(opts.inject)
    spec = _load_spec(opts.spec_path)
    t_start = time.perf_counter()
    if opts.out_dir is None:
        with tempfile.TemporaryDirectory(prefix="nbtrace-hunt-") as tmp:
            return _hunt_in(opts, args, shape, spec, Path(tmp), say, t_start)
    try:
        Path(opts.out_dir).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create the output directory ({exc.strerror or exc})", f"--out {opts.out_dir}",
                         "choose a writable directory") from None
    return _hunt_in(opts, args, shape, spec, Path(opts.out_dir), say, t_start)


def _check_injections(names) -> None:
    """Fail before any rendering on a misspelt injection (the simulator would only say so later)."""
    try:
        from simulator.injections import NAMES
    except ImportError:
        return  # not installed beside nbtrace: the producer itself will refuse it
    bad = [n for n in names if n not in NAMES]
    if bad:
        raise UsageError(f"unknown injection {bad[0]!r}", "--inject", f"one of: {', '.join(sorted(NAMES))}")


def _hunt_in(opts, args, shape, spec, work, say, t_start) -> HuntResult:
    from nbtrace.maps import dump_roi_for

    timings: dict = {}
    run_roi = roi_from_nb_args(list(args), shape)
    dump_roi = dump_roi_for(shape, within=run_roi) if opts.maps else None
    fixed = fixed_pixels(shape, run_roi)
    say(f"hunt: [1/4] rendering both images ({shape[0]}x{shape[1]}), C reference and port in parallel, "
        f"tracing {len(fixed)} fixed pixels in the same pass" + (f", region dump {list(dump_roi)}" if dump_roi else ""))
    t0 = time.perf_counter()

    def render_kw(side):
        kw = {"image": work / f"image_{side}.float", "pixels": [c.pixel for c in fixed],
              "out_trace": work / f"render_{side}.trace"}
        if dump_roi:
            kw.update(roi=dump_roi, dump=work / f"region_{side}.npz")
        return kw

    # the port's follow-up trace run starts now, so its interpreter start and torch import overlap
    # the renders; it learns its pixels on stdin once the images have chosen them (issue 5)
    pending = _start_pending(opts, args, work / "pixels_py.trace", say)
    try:
        return _hunt_rest(opts, args, shape, spec, work, say, t_start, timings, run_roi, dump_roi, fixed,
                          render_kw, t0, pending)
    finally:
        if pending is not None:
            pending.cancel()


def _start_pending(opts, args, out_trace, say):
    """The early-started PyTorch trace run, or None for a --port-cmd (it need not know the flag)."""
    if opts.port_cmd is not None:
        return None
    from nbtrace.capture import start_pixels_capture

    return start_pixels_capture(list(args), out_trace, inject=opts.inject, dtype=opts.dtype,
                                timeout=opts.timeout, progress=say)


def _trace_extra(opts, args, pixels, work, say, pending):
    """One trace run per side for the image-chosen pixels; the port's is the early-started one."""
    if pending is None:
        return _both(opts, args, say, {"pixels": pixels, "out_trace": work / "pixels_c.trace"},
                     {"pixels": pixels, "out_trace": work / "pixels_py.trace"})
    with ThreadPoolExecutor(max_workers=2) as pool:
        fc = pool.submit(_capture, "c", args, opts, say, pixels=pixels, out_trace=work / "pixels_c.trace")
        fp = pool.submit(pending.finish, pixels)
        return fc.result(), fp.result()


def _hunt_rest(opts, args, shape, spec, work, say, t_start, timings, run_roi, dump_roi, fixed, render_kw, t0,
               pending) -> HuntResult:
    from nbtrace.parse import read_trace

    img_c, img_p = _both(opts, args, say, render_kw("c"), render_kw("py"))
    timings["render_s"] = time.perf_counter() - t0
    a = read_image(img_c.image_path, img_c.shape or shape)
    b = read_image(img_p.image_path, img_p.shape or img_c.shape or shape)
    images = compare_arrays(a, b, names=("C reference", "port"), thresholds=opts.thresholds)
    identical = same_to_float32(a, b)
    say(f"hunt: [2/4] images {'are identical to float32 storage' if identical else 'agree' if images else 'disagree'}: "
        f"correlation {_fmt(images.full.correlation, '.6f')}, sum ratio {_fmt(images.full.sum_ratio, '.6g')}")

    fixed = tuple(dataclasses.replace(c, a_value=float(a[c.pixel]), b_value=float(b[c.pixel])) for c in fixed)
    ta, tb = read_trace(img_c.trace_path), read_trace(img_p.trace_path)
    extra = () if identical else image_pixels(a, b, max(opts.npixels - len(fixed), 1), [c.pixel for c in fixed],
                                              roi=run_roi)
    if extra:
        # the image-derived pixels: all of them in ONE more run per side (no image, traced pixels only)
        say(f"hunt: [3/4] tracing {len(extra)} pixels chosen from the images, one run per side: "
            + ", ".join(f"({c.pixel[0]}, {c.pixel[1]})" for c in extra))
        t1 = time.perf_counter()
        ex_c, ex_p = _trace_extra(opts, args, [c.pixel for c in extra], work, say, pending)
        pending = None
        timings["pixels_capture_s"] = time.perf_counter() - t1
        ta, tb = _merge(ta, read_trace(ex_c.trace_path)), _merge(tb, read_trace(ex_p.trace_path))
    else:
        say("hunt: [3/4] images are identical to float32 storage: the pixels traced in the render pass are the evidence")
    if pending is not None:
        pending.cancel()  # frees its core before the diff and any region step
    chosen = extra + fixed
    t2 = time.perf_counter()
    combined, outcomes = _diff_pixels(ta, tb, chosen, spec, _run_context(args, img_c.meta, opts.dtype))
    timings["diff_s"] = time.perf_counter() - t2
    diffs, same = compare_provenance(img_c.meta, img_p.meta)
    for d in diffs:
        say(f"hunt: input difference: {d.key}: C {d.a!r} vs port {d.b!r}")

    maps_res, maps_reason, region_diff = None, None, None
    if opts.maps or (combined.root_cause is None and not identical):
        # traced pixels that all agree cannot explain images that differ: look at every pixel of a region
        maps_reason = ("asked for (--maps)" if opts.maps else
                       "the images differ but every traced pixel agrees: mapping every tap over a region")
        maps_res, region_diff, dump_roi = _region_step(opts, args, shape, work, spec, say, timings, dump_roi,
                                                       traced=combined.root_cause is None, run_roi=run_roi)
    timings["total_s"] = time.perf_counter() - t_start
    say(f"hunt: [4/4] done in {timings['total_s']:.2f} s (renders {timings['render_s']:.2f} s)")
    files = {"image_c": str(img_c.image_path), "image_py": str(img_p.image_path),
             "trace_c": str(img_c.trace_path), "trace_py": str(img_p.trace_path)}
    return HuntResult(opts, args, not opts.nb_args, shape, images, diffs, same, outcomes, combined, maps_res,
                      maps_reason, region_diff, timings, files, {"c": img_c.meta, "py": img_p.meta})


def _region_step(opts, args, shape, work, spec, say, timings, dump_roi, traced, run_roi=None):
    """Maps over a region; if the traced pixels missed a divergence, trace where the maps show it."""
    from nbtrace.maps import compare_dumps, dump_roi_for, load_dump

    t0 = time.perf_counter()
    if dump_roi is None:  # not dumped during the render: one more run per side, no image
        dump_roi = dump_roi_for(shape, within=run_roi)
        say(f"hunt: region dump {list(dump_roi)} (fast min, fast max, slow min, slow max), one run per side")
        _both(opts, args, say, {"roi": dump_roi, "dump": work / "region_c.npz"},
              {"roi": dump_roi, "dump": work / "region_py.npz"})
    res = compare_dumps(load_dump(work / "region_c.npz"), load_dump(work / "region_py.npz"), spec)
    timings["maps_s"] = time.perf_counter() - t0
    firsts = dict(res.first_counts())
    for t in res.divergent():
        if t.name in firsts:  # downstream taps repeat the same region: the report lists them
            say(f"hunt: maps: {t.name} diverges in {t.n_divergent:,} of {t.n_pixels:,} pixels, {t.where}")
    if not res.divergent():
        say(f"hunt: maps: {res.summary()[0]}")
    region_diff = None
    if traced and res.divergent():
        first = res.divergent()[0]
        others = [t.worst_at for t in res.divergent()[1:3] if t.worst_at]
        picks = [ChosenPixel(first.worst_at, f"where the maps show {first.name} diverging most", 0.0, 0.0)]
        picks += [ChosenPixel(p, "a further divergent pixel from the maps", 0.0, 0.0)
                  for p in others if p != first.worst_at]
        say(f"hunt: tracing the pixels the maps point at: {[p.pixel for p in picks]}")
        region_diff, _, _, _ = _trace_and_diff(opts, args, picks, work, "region_pixels", spec, say, timings)
    return res, region_diff, dump_roi


def _fmt(x, spec):
    return "undefined" if x is None else format(x, spec)


# --------------------------------------------------------------------------- reporting (reads only)


def headline(r: HuntResult) -> str:
    """The verdict sentence every report opens with."""
    m = r.images.full
    img = f"image correlation {_fmt(m.correlation, '.6f')}, sum ratio {_fmt(m.sum_ratio, '.6g')}"
    if r.decisive_inputs:
        d = r.decisive_inputs[0]
        return (f"DIVERGE: the inputs differ ({d.key}: C {d.a!r} vs port {d.b!r}) — fix the input, not the "
                f"physics; {img}.")
    rc = r.root
    if rc is not None:
        where = "traced pixels" if r.diff is not None and r.diff.root_cause is not None else "pixels the maps found"
        agree_n = sum(1 for p in r.pixels if p.root_tap == rc.tap)
        tail = f"; {agree_n} of {len(r.pixels)} traced pixels name it" if where == "traced pixels" else \
            "; found by the region maps (the usual traced pixels agreed)"
        return f"DIVERGE: root cause {_tap_label(rc)}: {_short_explanation(rc)}{tail}; {img}."
    if r.maps is not None and not r.maps:
        return f"DIVERGE: {r.maps.summary()[0]}; {img}."
    if not r.images:
        return (f"DIVERGE: the images disagree ({'; '.join(r.images.failures)}) but no traced tap diverges; "
                f"{img}.")
    n_taps = r.diff.matched if r.diff is not None else 0
    precision = [] if r.diff is None else [f.verdict.tap for f in r.diff.findings if f.verdict.kind == "precision"]
    if r.maps is not None and r.maps_reason and "differ" in r.maps_reason and precision:
        return (f"AGREE at float32 precision: the port computes in float32; the images differ by at most "
                f"{m.max_abs_diff:.4g} photons and {len(precision)} traced taps differ only within float32 "
                f"noise (first: {precision[0]}); no tap diverges beyond it; {img}.")
    if r.maps is not None and r.maps_reason and "differ" in r.maps_reason:
        return (f"AGREE within the thresholds, with a caveat: the images differ beyond float32 storage "
                f"(max |B-A| {m.max_abs_diff:.4g} photons at (slow {m.max_abs_diff_at[0]}, fast {m.max_abs_diff_at[1]})) "
                f"but no traced or mapped tap diverges — the difference arises after the last tap; {img}.")
    if m.max_abs_diff == 0:
        img = "bit-identical images (" + img.replace("image correlation", "correlation") + ")"
    elif "pixels_capture_s" not in r.timings:
        img = "images identical to float32 storage (" + img.replace("image correlation", "correlation") + ")"
    return (f"AGREE: the port reproduces the reference — {img}; {len(r.pixels)} traced pixels agree on "
            f"all {n_taps} matched tap records.")


def _short_explanation(rc) -> str:
    """The engine's sentence without its lead-in naming the tap again (the headline already does)."""
    text = rc.explanation
    for lead in (f"`{rc.tap}` (per {', '.join(rc.loop)}) is the first divergence: ", f"`{rc.tap}` is the first divergence: "):
        if text.startswith(lead):
            return text[len(lead):].rstrip(".")
    return text.rstrip(".")


def _tap_label(rc) -> str:
    return f"{rc.tap}[{','.join(rc.loop)}]" if getattr(rc, "loop", None) else rc.tap


def report_lines(r: HuntResult) -> list[str]:
    """The console / markdown body (plain text, no markup)."""
    from nbtrace.images import metrics_lines
    from nbtrace.results import index_text

    lines = [headline(r), ""]
    cfg = " ".join(r.nb_args)
    lines.append(f"configuration: {cfg}" + ("   (built-in default)" if r.default_config else ""))
    if r.options.inject:
        lines.append(f"injected into the port: {', '.join(r.options.inject)}")
    lines.append("")
    lines.append("inputs (compared before any physics):")
    for d in r.input_differences:
        flag = "DIFFERENT (decisive)" if d.decisive else "different"
        lines.append(f"  {flag}: {d.key}: C {d.a!r} vs port {d.b!r}")
    if r.input_same:
        import textwrap

        same = ", ".join(f"{k}={_prov_text(v)}" for k, v in r.input_same if k != "argv")
        lines += textwrap.wrap("same: " + same, width=100, initial_indent="  ", subsequent_indent="        ")
    if not r.input_differences:
        lines.append("  no input difference: both sides were given and read the same")
    lines.append("")
    lines.append(f"image metrics (B = port vs A = C reference, {r.shape[0]}x{r.shape[1]}):")
    lines += metrics_lines(r.images.full, r.images.thresholds)
    lines.append("")
    n_fixed = sum(1 for p in r.pixels if p.reason in _FIXED_REASONS + _FIXED_ROI_REASONS)
    if "pixels_capture_s" in r.timings:
        lines.append(f"traced pixels ({n_fixed} fixed ones traced in the render pass, {len(r.pixels) - n_fixed} chosen "
                     "from the images traced in one more run per side):")
    else:
        lines.append(f"traced pixels ({n_fixed} fixed ones, traced in the render pass; the images are identical to "
                     "float32 storage, so no pixel stands out to add):")
    lines.append(f"  {'(slow, fast)':<13} {'C photons':>12} {'port photons':>13}  {'first divergent tap':<24} why chosen")
    for p in r.pixels:
        verdict = p.root_tap or "agrees"
        if p.root_factor is not None:
            verdict += f" x{p.root_factor:.4g}"
        lines.append(f"  ({p.pixel[0]:>4}, {p.pixel[1]:>4}) {p.a_value:>12.6g} {p.b_value:>13.6g}  {verdict:<24} {p.reason}")
    rc = r.root
    if rc is not None:
        lines.append("")
        lines.append("root cause evidence:")
        lines.append(f"  tap          {_tap_label(rc)}   at {index_text(rc.index)}")
        lines.append(f"  kind         {rc.kind}" + (f", factor port/ref = {rc.factor:.6g}" if rc.factor is not None else ""))
        lines.append(f"  explanation  {rc.explanation}")
        named = [p.pixel for p in r.pixels if p.root_tap == rc.tap]
        agreeing = [p.pixel for p in r.pixels if p.root_tap is None]
        if named:
            lines.append(f"  named by     {len(named)} of {len(r.pixels)} traced pixels: {_pix_list(named)}")
        if agreeing:
            lines.append(f"  unaffected   {_pix_list(agreeing)} agree on every tap")
        ratios = [(p.pixel, p.root_ratio) for p in r.pixels if p.root_ratio is not None]
        if ratios and rc.tap not in ("steps",):
            lines.append("  port/ref     " + "; ".join(f"({s}, {f}) {_ratio_text(q)}" for (s, f), q in ratios[:8]))
        d = r.diff if r.diff is not None and r.diff.root_cause is not None else r.region_diff
        if d is not None:
            f0 = next((f for f in d.findings if f.verdict.tap == rc.tap and f.status == "introduced"), None)
            if f0 is not None and f0.verdict.a is not None:
                lines.append(f"  values       C {_vals(f0.verdict.a)}  port {_vals(f0.verdict.b)}")
            downstream = [f.verdict.label for f in d.findings if f.status == "inherited"]
            if downstream:
                lines.append(f"  downstream   {len(downstream)} taps inherit it: {', '.join(downstream[:8])}"
                             + (" ..." if len(downstream) > 8 else ""))
    loops = _loop_lines(r)
    if loops:
        lines.append("")
        lines.append("loop taps (per phi step / mosaic domain / source):")
        lines += loops
    if r.maps is not None:
        lines.append("")
        xmin, xmax, ymin, ymax = r.maps.roi
        lines.append(f"region maps ({r.maps_reason}); fast {xmin}..{xmax}, slow {ymin}..{ymax} inclusive:")
        firsts = dict(r.maps.first_counts())
        for t in r.maps.divergent():
            if t.name in firsts:
                lines.append(f"  {t.name} diverges in {t.n_divergent:,} of {t.n_pixels:,} pixels, {t.where}; "
                             f"first divergent tap in {firsts[t.name]:,} of them")
        later = [t.name for t in r.maps.divergent() if t.name not in firsts]
        if later:
            lines.append(f"  downstream, diverging only where an earlier tap does: {', '.join(later)}")
        if not r.maps.divergent():
            lines += [f"  {s}" for s in r.maps.summary()]
    return lines


def _prov_text(v: str) -> str:
    """A setup value for humans: numbers at 10 significant digits (the sides print %.17g)."""
    words = v.split()
    try:
        return " ".join(f"{float(w):.10g}" for w in words) if words else v
    except ValueError:
        return v


def _ratio_text(q: tuple[float, ...]) -> str:
    if all(math.isclose(x, q[0], rel_tol=1e-6) for x in q):
        return f"{q[0]:.4g}"
    return "[" + ", ".join(f"{x:.4g}" for x in q) + "]"


def _pix_list(pixels) -> str:
    return ", ".join(f"({s}, {f})" for s, f in pixels)


def _vals(v) -> str:
    if isinstance(v, str):
        return v
    return "[" + ", ".join(f"{x:.8g}" for x in v) + "]"


def _loop_lines(r: HuntResult) -> list[str]:
    """Loop taps: the one that introduced a divergence in full (with its first divergent
    iteration, incident 12), the ones inheriting it and the agreeing ones compactly."""
    out, inherited, agreeing = [], [], []
    for d in (r.diff, r.region_diff):
        if d is None:
            continue
        for f in d.findings:
            v = f.verdict
            if not v.loop:
                continue
            if v.agrees:
                agreeing.append(v)
            elif f.status == "introduced":
                first = ", ".join(f"{k} {i}" for k, i in (v.first_loop_iteration or ())) or "-"
                out.append(f"  {v.label:<28} {v.kind}: first divergent iteration {first}")
                out.append(f"  {'':<28} {v.message.splitlines()[0]}")
            else:
                inherited.append(v)
    if inherited:
        firsts = sorted({", ".join(f"{k} {i}" for k, i in (v.first_loop_iteration or ())) for v in inherited} - {""})
        out.append(f"  {len(inherited)} loop taps diverge downstream ({', '.join(v.label for v in inherited[:6])}"
                   + (" ..." if len(inherited) > 6 else "") + ")"
                   + (f"; first divergent iteration: {'; '.join(firsts)}" if firsts else ""))
    if agreeing:
        loops = sorted({k for v in agreeing for k in v.loop})
        out.append(f"  {len(agreeing)} loop taps agree over every {'/'.join(loops)} iteration: "
                   + ", ".join(v.tap for v in agreeing[:8]) + (" ..." if len(agreeing) > 8 else ""))
    return out


def to_json(r: HuntResult) -> dict:
    """The diff JSON contract plus image metrics, traced pixels, provenance and maps."""
    doc = r.diff.to_json() if r.diff is not None else {}
    doc["verdict"] = r.verdict
    doc["headline"] = headline(r)
    if r.root is not None:
        doc["root_cause"] = r.root.to_json()
    doc["image_metrics"] = r.images.to_json()
    doc["traced_pixels"] = [
        {"pixel": list(p.pixel), "reason": p.reason, "c_photons": p.a_value, "port_photons": p.b_value,
         "root_tap": p.root_tap, "root_kind": p.root_kind,
         "root_factor": p.root_factor if p.root_factor is None or np.isfinite(p.root_factor) else str(p.root_factor),
         "divergent_taps": p.n_divergent,
         "root_tap_ratio": None if p.root_ratio is None else [x if math.isfinite(x) else str(x) for x in p.root_ratio]}
        for p in r.pixels
    ]
    doc["provenance"] = {
        "differences": [dataclasses.asdict(d) for d in r.input_differences],
        "same": dict(r.input_same),
    }
    doc["config"] = {"nb_args": list(r.nb_args), "built_in_default": r.default_config,
                     "inject": list(r.options.inject)}
    doc["maps"] = r.maps.to_json() if r.maps is not None else None
    doc["region_pixels_diff"] = r.region_diff.to_json() if r.region_diff is not None else None
    doc["timings_s"] = {k: round(v, 4) for k, v in r.timings.items()}
    return doc
