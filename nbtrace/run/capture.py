"""Run one producer (C reference, a user's C build, the PyTorch simulator or a user's port)
and keep what it printed, with provenance.

Every call runs exactly one process in a fresh temporary directory, so nothing in the
caller's working directory (a stale ``Fdump.bin``, an old ``floatimage.bin``) can leak into
the run — incident 18 of the port's history. All requested pixels, the float image and the
region dump come from that one process, so they are mutually consistent by construction.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Sequence

from nbtrace.errors import ProducerError, UsageError
from nbtrace.run.limits import MAX_PIXELS, MAX_STEPS
from nbtrace.run.live import IMAGE_WRITTEN, LiveRender
from nbtrace.run.outputs import (
    CaptureResult, absolute, default_dump, deliver, prepare_destination, provenance, read_meta, setup_block,
    shape_from_args, shape_from_setup, trace_destination, traced_pixels, write_trace,
)
from nbtrace.run.producer import Producer, Run, raise_on_failure, run_process, select_producer, short
from nbtrace.run.request import SIDES, absolutize_file_args, check_request, tracing_args

__all__ = ["CaptureResult", "IMAGE_WRITTEN", "LiveRender", "SIDES", "capture", "read_meta", "shape_from_args",
           "start_live_render"]

Progress = Callable[[str], None]


def capture(
    side: str,
    nb_args: Sequence[str],
    *,
    pixels: Iterable[tuple[int, int]] = (),
    roi: tuple[int, int, int, int] | None = None,
    dump: Path | None = None,
    image: Path | None = None,
    out_trace: Path | None = None,
    c_bin: str | None = None,
    port_cmd: str | None = None,
    inject: Iterable[str] = (),
    dtype: str | None = None,
    timeout: float = 900,
    progress: Progress | None = None,
    max_pixels: int = MAX_PIXELS,
    max_steps: int = MAX_STEPS,
    replay: Iterable[str] = (),
    replay_ref: Path | None = None,
) -> CaptureResult:
    """Run one producer once and return where its outputs went.

    pixels: (slow, fast) pixel indices to trace (``-trace_pixel S F``, in this order).
    roi: (xmin, xmax, ymin, ymax) inclusive, fast = x, slow = y, for the region dump.
    dump: where the ``.npz`` region dump goes (requires roi); default: beside the trace
        (``c.trace`` -> ``c.npz``), else a fresh temporary folder.
    image: where the raw float32 image goes.
    out_trace: where the trace text goes; a fresh temporary file when None and tracing.
    c_bin: a user's C build (else NB_C_BIN, else the reference built by nbtrace.run.cbuild).
    port_cmd: a user's port command (shell words; nanoBragg arguments are appended).
    inject: PyTorch fault injections (``--inject NAME``); only for the PyTorch simulator.
    dtype: "float64" | "float32" for the PyTorch side; the C side is always float64.
    timeout: seconds before the producer is killed (ProducerError); finite, > 0.
    progress: called with one-line progress messages (the CLI sends them to stderr).
    max_pixels, max_steps: caps on the detector's pixels and the sub-steps per pixel that
        ``nb_args`` may ask for (nbtrace.run.limits); a larger run is a UsageError.
    replay, replay_ref: taps whose values the port replaces by those of the reference trace
        ``replay_ref`` at the traced pixels (NBTRACE_REPLAY / NBTRACE_REPLAY_TAPS, nbtrace.tap).
    """
    say = progress or (lambda _msg: None)
    nb_args = [str(a) for a in nb_args]
    pixels = tuple((int(s), int(f)) for s, f in pixels)
    inject = tuple(inject)
    check_request(side, nb_args, pixels, roi, dump, image, inject, dtype, timeout,
                  max_pixels=max_pixels, max_steps=max_steps)
    replay_env = _replay_env(side, tuple(replay), replay_ref, pixels)
    producer = select_producer(side, c_bin, port_cmd)
    # fresh temporary folders made for outputs nobody named (never a folder the caller chose, as
    # a default dump beside a named trace is): removed again if the run fails, so a failed
    # capture leaves no empty nbtrace-capture-* folder behind in the temp dir
    made: set[Path] = set()
    named_trace = out_trace is not None
    out_trace = trace_destination(out_trace, pixels)
    if out_trace is not None and not named_trace:
        made.add(out_trace.parent)
    if roi is not None and dump is None:
        dump = default_dump(out_trace)
        if not named_trace:
            made.add(dump.parent)
    try:
        return _capture(producer, nb_args, pixels, roi, dump, image, out_trace, inject, dtype, timeout, say,
                        replay_env)
    except BaseException:
        for folder in made:
            shutil.rmtree(folder, ignore_errors=True)
        raise


def _capture(producer, nb_args, pixels, roi, dump, image, out_trace, inject, dtype, timeout, say,
             replay_env) -> CaptureResult:
    image, dump = absolute(image), absolute(dump)
    for path, what in ((out_trace, "trace"), (image, "image"), (dump, "region dump")):
        prepare_destination(path, what)
    argv_head = [*producer.command, *absolutize_file_args(nb_args),
                 *tracing_args(pixels, producer.side, inject, dtype)]
    run, argv = _run_in_fresh_dir(producer, argv_head, roi, image, dump, timeout, say, replay_env)
    if replay_env:  # what the port could not replay must reach the user, not stay in its stderr
        for line in run.stderr_text.splitlines():
            if "warning" in line:
                say(f"capture {producer.side}: {line}")
    if pixels and not run.stdout_text.strip():
        raise ProducerError(f"{producer.kind} exited 0 but printed nothing: no trace for the "
                            f"{len(pixels)} pixel(s) asked for", where=producer.executable,
                            hint="is the build instrumented (-DNBTRACE_ENABLE, -trace_pixel support)?")
    setup = setup_block(run.stdout_text)
    seen_pixels = traced_pixels(run.stdout_text)
    shape = shape_from_setup(setup) or shape_from_args(nb_args)
    meta = provenance(producer, argv, nb_args, run, setup, pixels, seen_pixels, roi, image, dump, shape)
    if out_trace is not None:
        write_trace(out_trace, run.stdout_text, meta)
    missing = [p for p in pixels if p not in seen_pixels]
    if missing:
        say(f"capture {producer.side}: warning: no trace header for pixel(s) {missing} "
            "(is the build instrumented with -trace_pixel support?)")
    say(f"capture {producer.side}: done in {run.wall_s:.2f} s"
        + (f", trace -> {out_trace}" if out_trace else "")
        + (f", image -> {image}" if image else ""))
    return CaptureResult(producer.side, out_trace, image, dump, shape, meta)


def start_live_render(nb_args: Sequence[str], *, image: Path, pixels: Iterable[tuple[int, int]] = (),
                      out_trace: Path, roi: tuple[int, int, int, int] | None = None, dump: Path | None = None,
                      inject: Iterable[str] = (), dtype: str | None = None, timeout: float = 900,
                      progress: Progress | None = None, max_pixels: int = MAX_PIXELS,
                      max_steps: int = MAX_STEPS) -> LiveRender:
    """Start the built-in PyTorch simulator's render of ``image`` (tracing ``pixels`` in that
    pass); more pixels are traced by the same run after the image (:class:`LiveRender`). Only
    for the built-in simulator: a --port-cmd or a C build need not understand the flag."""
    nb_args = [str(a) for a in nb_args]
    pixels = tuple((int(s), int(f)) for s, f in pixels)
    inject = tuple(inject)
    limits = {"max_pixels": max_pixels, "max_steps": max_steps}
    check_request("py", nb_args, pixels, roi, dump, image, inject, dtype, timeout, **limits)
    image, out_trace, dump = absolute(image), absolute(out_trace), absolute(dump)
    for path, what in ((out_trace, "trace"), (image, "image"), (dump, "region dump")):
        prepare_destination(path, what)
    return LiveRender(nb_args, image=image, pixels=pixels, out_trace=out_trace, roi=roi, dump=dump,
                      inject=inject, dtype=dtype, timeout=timeout, say=progress or (lambda _m: None),
                      limits=limits)


def _replay_env(side, replay, replay_ref, pixels) -> dict:
    """NBTRACE_REPLAY / NBTRACE_REPLAY_TAPS for a replayed capture (checked before the run)."""
    if not replay and replay_ref is None:
        return {}
    if side != "py":
        raise UsageError("replay is for the port side", hint="use --replay with 'capture py'")
    if not replay or replay_ref is None:
        raise UsageError("replay needs both the taps and the reference trace",
                         hint="--replay TAP (repeatable) --replay-ref REF.log")
    if not Path(replay_ref).is_file():
        raise UsageError("no such reference trace", str(replay_ref), "give the reference's trace file")
    if not pixels:
        raise UsageError("replay happens at traced pixels", hint="give --pixel S F (the reference's pixels)")
    return {"NBTRACE_REPLAY": str(Path(replay_ref).resolve()), "NBTRACE_REPLAY_TAPS": ",".join(replay)}


def _run_in_fresh_dir(producer: Producer, argv_head, roi, image, dump, timeout, say,
                      extra_env=None) -> tuple[Run, list[str]]:
    """Run in a temporary directory that is removed afterwards; the image and dump are written
    there first and moved to their destinations only when the producer succeeded, so a failed
    run never leaves a half-written file where the caller expects a result."""
    with tempfile.TemporaryDirectory(prefix="nbtrace-run-") as workdir:
        work = Path(workdir)
        local_image = work / "image.float" if image else None
        local_dump = work / "taps.npz" if dump else None
        argv = list(argv_head)
        if local_image is not None:
            argv += ["-floatfile", str(local_image)]
        if roi is not None:
            argv += ["-trace_roi", *map(str, roi), "-trace_dump", str(local_dump)]
        say(f"capture {producer.side}: {short(argv)}")
        run = run_process(argv, work, timeout, producer, extra_env)
        raise_on_failure(run, producer, argv)
        deliver(local_image, image, "image", producer)
        deliver(local_dump, dump, "region dump", producer)
    return run, argv
