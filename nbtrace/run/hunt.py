"""From "the images disagree" to the root cause, in one call.

Steps (each a plain function over frozen results): render both images (one producer process
per side, in parallel), compare them, choose pixels to trace, capture all of them in ONE more
run of the C side (it starts in milliseconds); the built-in PyTorch port traces them in its own
render run, which waits for them on stdin once its image is written (-trace_pixels_after), so
torch is imported once per hunt; a --port-cmd gets one more run too. Compare the provenance (what each side was given
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
from nbtrace.run.limits import MAX_PIXELS, MAX_STEPS, check_run_size
from nbtrace.run.hunt_inputs import (  # noqa: F401  (re-exported: the hunt's public names)
    DECISIVE_INPUTS, PROVENANCE_KEYS, InputDifference, compare_provenance,
)
from nbtrace.run.hunt_pixels import ChosenPixel, fixed_pixels, image_pixels
from nbtrace.run.hunt_replay import ReplayedTraces, check_replay, replayed_both
from nbtrace.engine.images import (
    ImageComparison, Thresholds, compare_arrays, read_image, roi_from_nb_args, shape_from_nb_args,
)

# A small seed configuration with Bragg spots on a 256² detector: a 100 Å cubic cell at 0.5 Å,
# 5 unit cells per axis so the spots are a few pixels wide, 500 mm away on 0.2 mm pixels
# (resolution ~10 Å at the edge), every structure factor 100 electrons.
DEFAULT_ARGS = (
    "-lambda", "0.5", "-cell", "100", "100", "100", "90", "90", "90", "-N", "5", "-default_F", "100",
    "-distance", "500", "-detpixels", "256", "-pixel", "0.2",
)

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
    max_pixels: int = MAX_PIXELS  # caps on the run's size (nbtrace.run.limits)
    max_steps: int = MAX_STEPS
    replay: tuple[str, ...] = ()  # taps the port's traced pixels take from the C trace (run/hunt_replay.py)


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
    two_theta_deg: float | None = None  # the reference's 2θ here (from its cos_2theta tap)
    n_incomplete: int = 0  # taps of the reference the port never printed (or printed fewer times) here


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
    diff: object | None  # nbtrace.engine.results.DiffResult over all traced pixels
    maps: object | None  # nbtrace.engine.maps.MapsResult
    maps_reason: str | None
    region_diff: object | None  # DiffResult of pixels chosen from the maps, when traces missed it
    timings: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)  # side -> capture meta
    patterns: tuple = ()  # nbtrace.engine.trends.Pattern: how the root tap's error varies over the pixels

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
        # the traced pixels' own verdict too: traces that differ only immaterially, or a port
        # that lacks taps the reference printed, are never "agree" (issues 9 and 11)
        traces_ok = self.diff is None or self.diff.verdict == "agree"
        return bool(self.images) and self.root is None and maps_ok and not self.decisive_inputs and traces_ok

    @property
    def verdict(self) -> str:
        return "agree" if self.agrees else "diverge"


def _fmt(x, spec):
    return "undefined" if x is None else format(x, spec)


# --------------------------------------------------------------------------- running


def _capture(side, args, opts: HuntOptions, progress, **kw):
    from nbtrace.run.capture import capture

    return capture(side, list(args), c_bin=opts.c_bin if side == "c" else None,
                   port_cmd=opts.port_cmd if side == "py" else None,
                   inject=opts.inject if side == "py" else (), dtype=opts.dtype if side == "py" else None,
                   timeout=opts.timeout, progress=progress, max_pixels=opts.max_pixels, max_steps=opts.max_steps,
                   **kw)


def _both(opts: HuntOptions, args, progress, kw_c: dict, kw_py: dict):
    """Run the two producers at once (2 cores); each returns its CaptureResult."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        fc = pool.submit(_capture, "c", args, opts, progress, **kw_c)
        fp = pool.submit(_capture, "py", args, opts, progress, **kw_py)
        return fc.result(), fp.result()


def _load_spec(path):
    from nbtrace.engine import spec as spec_mod
    from nbtrace.errors import NbtraceError

    if path:
        return spec_mod.load_spec(path)
    try:
        return spec_mod.default_spec()
    except (NbtraceError, OSError, ImportError):
        # an editable install may not map nbtrace.tap_specs; a source checkout still has the file
        src = Path(__file__).resolve().parents[2] / "tap_specs" / "nanobragg.yaml"
        return spec_mod.load_spec(src) if src.is_file() else None


def _diff(trace_a, trace_b, spec, context):
    from nbtrace.engine.diff import diff_traces

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
        except (KeyError, ValueError, OverflowError):  # "inf" is a float, not a count
            pass
    a = list(args)
    for flag, keys in (("-N", ("Na", "Nb", "Nc")), ("-Na", ("Na",)), ("-Nb", ("Nb",)), ("-Nc", ("Nc",))):
        if flag in a and a.index(flag) + 1 < len(a):
            try:
                for k in keys:
                    ctx[k] = int(float(a[a.index(flag) + 1]))
            except (ValueError, OverflowError):
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
                                     _ratio_at(r, combined.root_cause), _two_theta_deg(r), len(r.incomplete)))
    return combined, tuple(outcomes)


def _verdict_of(result, tap: str, loop=()):
    return next((f.verdict for f in result.findings
                 if f.verdict.tap == tap and tuple(f.verdict.loop) == tuple(loop)), None)


def _two_theta_deg(result) -> float | None:
    v = _verdict_of(result, "cos_2theta")
    if v is None or isinstance(v.a, str) or not v.a or len(v.a) != 1 or not math.isfinite(v.a[0]):
        return None
    return math.degrees(math.acos(max(-1.0, min(1.0, float(v.a[0])))))


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
    from nbtrace.engine.parse import read_trace

    pixels = [c.pixel for c in chosen]
    t0 = time.perf_counter()
    if opts.replay:
        cap_c, cap_p = replayed_both(opts, args, progress, _capture, pixels, work / f"{tag}_c.trace",
                                     work / f"{tag}_py.trace")
    else:
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
    from nbtrace.run.request import check_timeout

    args = tuple(opts.nb_args) or DEFAULT_ARGS
    check_timeout(opts.timeout)
    check_run_size(args, max_pixels=opts.max_pixels, max_steps=opts.max_steps)
    shape = shape_from_nb_args(list(args))
    if opts.npixels < 1:
        raise UsageError(f"--npixels must be >= 1, got {opts.npixels}", "--npixels")
    if opts.inject and opts.port_cmd is None:
        _check_injections(opts.inject)
    check_replay(opts.replay)
    spec = _load_spec(opts.spec_path)
    t_start = time.perf_counter()
    if opts.out_dir is None:
        with tempfile.TemporaryDirectory(prefix="nbtrace-hunt-") as tmp:
            # its files are gone when the hunt returns: progress must not point at them
            def say_tmp(m, _say=say, _tmp=tmp.rstrip("/") + "/"):
                _say(m.replace(_tmp, "") + (" (temporary; --out keeps the files)" if _tmp in m else ""))

            return _hunt_in(opts, args, shape, spec, Path(tmp), say_tmp, t_start)
    try:
        Path(opts.out_dir).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create the output directory ({exc.strerror or exc})", f"--out {opts.out_dir}",
                         "choose a writable directory") from None
    return _hunt_in(opts, args, shape, spec, Path(opts.out_dir), say, t_start)


def _check_injections(names) -> None:
    """Fail before any rendering on a misspelt injection (the simulator would only say so later)."""
    try:
        from nbtrace.sim.injections import NAMES
    except ImportError:
        return  # not installed beside nbtrace: the producer itself will refuse it
    bad = [n for n in names if n not in NAMES]
    if bad:
        raise UsageError(f"unknown injection {bad[0]!r}", "--inject", f"one of: {', '.join(sorted(NAMES))}")


def _hunt_in(opts, args, shape, spec, work, say, t_start) -> HuntResult:
    from nbtrace.engine.maps import dump_roi_for

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

    # a replayed hunt traces every chosen pixel once more per side, the port after the C
    replay = ReplayedTraces(opts, args, say, _capture) if opts.replay else None
    c_side = _TwoRuns("c", opts, args, say, render_kw("c"), work / "pixels_c.trace", replay)
    # the built-in port renders, waits for the pixels chosen from the images and traces them in
    # the same process: one run of the port per hunt, torch imported once (issue 5)
    p_side = (_TwoRuns("py", opts, args, say, render_kw("py"), work / "pixels_py.trace", replay)
              if opts.port_cmd is not None or replay else _OneRun(opts, args, say, render_kw("py")))
    try:
        return _hunt_rest(opts, args, shape, spec, work, say, t_start, timings, run_roi, dump_roi, fixed,
                          t0, c_side, p_side)
    finally:
        p_side.close()


class _TwoRuns:
    """A producer run twice: the render (image + the fixed pixels' trace), then, if pixels were
    chosen from the images, one more run tracing all of them (the C reference, a user's build,
    a --port-cmd: they need not know -trace_pixels_after)."""

    def __init__(self, side, opts, args, say, render_kw, extra_trace: Path, replay=None):
        self.side, self._opts, self._args, self._say = side, opts, args, say
        self._render_kw, self._extra_trace, self._img, self._replay = render_kw, extra_trace, None, replay

    def render(self):
        self._img = _capture(self.side, self._args, self._opts, self._say, **self._render_kw)
        return self._img

    def trace(self, pixels):
        """(the whole Trace of the fixed and the given pixels, the render run's provenance)."""
        from nbtrace.engine.parse import read_trace

        if self._replay is not None:  # the fixed pixels too: the render pass traced them unreplayed
            ex = self._replay.trace(self.side, [*self._render_kw["pixels"], *pixels], self._extra_trace)
            return read_trace(ex.trace_path), self._img.meta
        t = read_trace(self._img.trace_path)
        if pixels:
            ex = _capture(self.side, self._args, self._opts, self._say, pixels=pixels, out_trace=self._extra_trace)
            t = _merge(t, read_trace(ex.trace_path))
        return t, self._img.meta

    def close(self) -> None:
        pass


class _OneRun:
    """The built-in PyTorch simulator: the render run itself traces the image-chosen pixels."""

    def __init__(self, opts, args, say, render_kw):
        from nbtrace.run.capture import start_live_render

        self._live = start_live_render(list(args), inject=opts.inject, dtype=opts.dtype, timeout=opts.timeout,
                                       progress=say, max_pixels=opts.max_pixels, max_steps=opts.max_steps,
                                       **render_kw)

    def render(self):
        return self._live.wait_image()

    def trace(self, pixels):
        from nbtrace.engine.parse import read_trace

        live, self._live = self._live, None
        res = live.finish(pixels)
        return read_trace(res.trace_path), res.meta

    def close(self) -> None:
        if self._live is not None:
            self._live.cancel()


def _hunt_rest(opts, args, shape, spec, work, say, t_start, timings, run_roi, dump_roi, fixed, t0,
               c_side, p_side) -> HuntResult:
    with ThreadPoolExecutor(max_workers=2) as pool:
        fc, fp = pool.submit(c_side.render), pool.submit(p_side.render)
        img_c, img_p = fc.result(), fp.result()
    timings["render_s"] = time.perf_counter() - t0
    if shape[0] * shape[1] > 4_000_000:  # seconds of work on a large frame: say what is going on
        say(f"hunt: comparing the two {shape[0]}x{shape[1]} images")
    a = read_image(img_c.image_path, img_c.shape or shape)
    b = read_image(img_p.image_path, img_p.shape or img_c.shape or shape)
    images = compare_arrays(a, b, names=("C reference", "port"), thresholds=opts.thresholds)
    identical = same_to_float32(a, b)
    say(f"hunt: [2/4] images {'are identical to float32 storage' if identical else 'agree' if images else 'disagree'}: "
        f"correlation {_fmt(images.full.correlation, '.6f')}, sum ratio {_fmt(images.full.sum_ratio, '.6g')}")

    fixed = tuple(dataclasses.replace(c, a_value=float(a[c.pixel]), b_value=float(b[c.pixel])) for c in fixed)
    if not identical and shape[0] * shape[1] > 4_000_000:
        say("hunt: choosing the pixels to trace from the images")
    extra = () if identical else image_pixels(a, b, max(opts.npixels - len(fixed), 1), [c.pixel for c in fixed],
                                              roi=run_roi)
    if extra:
        how = ("one more run per side" if isinstance(p_side, _TwoRuns) else
               "one more run of the C reference; the port's own render run traces them")
        say(f"hunt: [3/4] tracing {len(extra)} pixels chosen from the images ({how}): "
            + ", ".join(f"({c.pixel[0]}, {c.pixel[1]})" for c in extra))
    else:
        say("hunt: [3/4] images are identical to float32 storage: the pixels traced in the render pass are the evidence")
    t1 = time.perf_counter()
    pixels = [c.pixel for c in extra]
    with ThreadPoolExecutor(max_workers=2) as pool:
        fc, fp = pool.submit(c_side.trace, pixels), pool.submit(p_side.trace, pixels)
        (ta, meta_c), (tb, meta_p) = fc.result(), fp.result()
    if extra:
        timings["pixels_capture_s"] = time.perf_counter() - t1
    chosen = extra + fixed
    t2 = time.perf_counter()
    combined, outcomes = _diff_pixels(ta, tb, chosen, spec, _run_context(args, meta_c, opts.dtype))
    timings["diff_s"] = time.perf_counter() - t2
    diffs, same = compare_provenance(meta_c, meta_p)
    for d in diffs:
        say(f"hunt: input difference: {d.key}: C {d.a!r} vs port {d.b!r}")

    maps_res, maps_reason, region_diff = None, None, None
    # a replay leaves the images as they were: their difference alone asks for no maps then
    if opts.maps or (combined.root_cause is None and not identical and not opts.replay):
        # traced pixels that all agree cannot explain images that differ: look at every pixel of a region
        maps_reason = ("asked for (--maps)" if opts.maps else
                       "the images differ but every traced pixel agrees: mapping every tap over a region")
        maps_res, region_diff, dump_roi = _region_step(opts, args, shape, work, spec, say, timings, dump_roi,
                                                       traced=combined.root_cause is None, run_roi=run_roi)
    timings["total_s"] = time.perf_counter() - t_start
    say(f"hunt: [4/4] done in {timings['total_s']:.2f} s (renders {timings['render_s']:.2f} s)")
    files = {"image_c": str(img_c.image_path), "image_py": str(img_p.image_path),
             "trace_c": str(ta.path), "trace_py": str(tb.path)}
    return HuntResult(opts, args, not opts.nb_args, shape, images, diffs, same, outcomes, combined, maps_res,
                      maps_reason, region_diff, timings, files, {"c": meta_c, "py": meta_p},
                      combined.patterns if combined is not None else ())


def _region_step(opts, args, shape, work, spec, say, timings, dump_roi, traced, run_roi=None):
    """Maps over a region; if the traced pixels missed a divergence, trace where the maps show it."""
    from nbtrace.engine.maps import compare_dumps, dump_roi_for, load_dump

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
