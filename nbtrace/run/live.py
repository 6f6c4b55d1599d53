"""The built-in PyTorch simulator rendering its image and then, in the same process, tracing
pixels chosen from that image (``-trace_pixels_after -``): a hunt's one run of the port."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable

from nbtrace.errors import ProducerError
from nbtrace.run.outputs import (
    CaptureResult, deliver, shape_from_args, prepare_destination, provenance, setup_block, shape_from_setup, traced_pixels, write_trace,
)
from nbtrace.run.producer import Run, child_env, kill_group, raise_on_failure, read_text, select_producer, short, start
from nbtrace.run.request import absolutize_file_args, check_request, tracing_args

Progress = Callable[[str], None]


# the line the PyTorch simulator writes to stderr once -trace_pixels_after's image is complete
IMAGE_WRITTEN = "nbsim: image written"
_POLL_S = 0.005


class LiveRender:
    """The built-in PyTorch simulator rendering its image and then, in the same process, tracing
    pixels chosen from that image (``-trace_pixels_after -``): a hunt's one run of the port.

    :meth:`wait_image` returns once the image (and region dump) are written; :meth:`finish` sends
    the extra pixels (possibly none) and returns the whole trace, the pixels given at the start
    first; :meth:`cancel` stops the run. Exactly one of finish / cancel ends it.
    """

    def __init__(self, nb_args, *, image: Path, pixels, out_trace: Path, roi, dump, inject, dtype,
                 timeout: float, say: Progress, limits: dict | None = None):
        self._producer = select_producer("py", None, None)
        self._limits = dict(limits or {})
        self._nb_args, self._pixels, self._timeout, self._say = nb_args, pixels, timeout, say
        self._image, self._out_trace, self._roi, self._dump = image, out_trace, roi, dump
        self._work = Path(tempfile.mkdtemp(prefix="nbtrace-run-"))
        self._local_image = self._work / "image.float"
        self._local_dump = self._work / "taps.npz" if dump is not None else None
        argv = [*self._producer.command, *absolutize_file_args(nb_args),
                *tracing_args(pixels, self._producer.side, inject, dtype), "-floatfile", str(self._local_image)]
        if roi is not None:
            argv += ["-trace_roi", *map(str, roi), "-trace_dump", str(self._local_dump)]
        self._argv = argv + ["-trace_pixels_after", "-"]
        env, self._env_note = child_env()
        self._out = open(self._work / "stdout.txt", "wb")
        self._err = open(self._work / "stderr.txt", "wb")
        self._start = time.perf_counter()
        try:
            self._proc = start(self._argv, self._work, self._out, self._err, env, self._producer,
                               stdin=subprocess.PIPE)
        except ProducerError:
            self._proc = None
            self._cleanup()
            raise
        say(f"capture py: {short(self._argv)}")

    def wait_image(self) -> CaptureResult:
        """Block until the image is written; its CaptureResult has no trace yet (see finish)."""
        try:
            self._await_marker()
            deliver(self._local_image, self._image, "image", self._producer)
            deliver(self._local_dump, self._dump, "region dump", self._producer)
        except BaseException:
            self.cancel()
            raise
        self._say(f"capture py: image after {time.perf_counter() - self._start:.2f} s -> {self._image}"
                  " (the same run traces the pixels chosen from it)")
        return CaptureResult("py", None, self._image, self._dump, shape_from_args(self._nb_args), {})

    def finish(self, pixels: Iterable[tuple[int, int]]) -> CaptureResult:
        """Send the (slow, fast) pixels chosen from the image, wait for the end, return the trace."""
        pixels = tuple((int(s), int(f)) for s, f in pixels)
        try:
            check_request("py", self._nb_args, pixels, None, None, self._image, (), None, self._timeout,
                          **self._limits)
            prepare_destination(self._out_trace, "trace")
            try:
                self._proc.stdin.write("".join(f"{s} {f}\n" for s, f in pixels).encode())
                self._proc.stdin.close()
            except BrokenPipeError:
                pass  # it died before reading: its exit code and stderr say why, below
            run = self._wait()
            raise_on_failure(run, self._producer, self._argv)
        except BaseException:
            self.cancel()
            raise
        self._cleanup()
        setup = setup_block(run.stdout_text)
        seen = traced_pixels(run.stdout_text)
        shape = shape_from_setup(setup) or shape_from_args(self._nb_args)
        requested = tuple(self._pixels) + pixels
        meta = provenance(self._producer, self._argv, self._nb_args, run, setup, requested, seen, self._roi,
                           self._image, self._dump, shape)
        write_trace(self._out_trace, run.stdout_text, meta)
        self._say(f"capture py: done in {run.wall_s:.2f} s, trace -> {self._out_trace}")
        return CaptureResult("py", self._out_trace, self._image, self._dump, shape, meta)

    def cancel(self) -> None:
        """Not needed after all: stop the process (and its children) and remove its folder."""
        if self._proc is not None:
            kill_group(self._proc)
        self._cleanup()

    def _await_marker(self) -> None:
        err_path, seen = self._work / "stderr.txt", 0
        deadline = self._start + self._timeout
        while True:
            size = err_path.stat().st_size
            if size != seen:
                seen = size
                if IMAGE_WRITTEN in read_text(err_path):
                    return
            if self._proc.poll() is not None:
                run = self._wait()
                raise_on_failure(run, self._producer, self._argv)
                if IMAGE_WRITTEN in run.stderr_text:
                    return
                raise ProducerError(f"{self._producer.kind} ended without writing its image",
                                    where=self._producer.executable,
                                    hint=f"re-run by hand to see everything: {short(self._argv, 200)}")
            if time.perf_counter() > deadline:
                kill_group(self._proc)
                raise ProducerError(f"{self._producer.kind} did not write its image within {self._timeout:.0f} s "
                                    "and was killed", where=self._producer.executable,
                                    hint="use a smaller detector / -roi, or raise --timeout")
            time.sleep(_POLL_S)

    def _wait(self) -> Run:
        timed_out = False
        try:
            self._proc.wait(timeout=max(1.0, self._start + self._timeout - time.perf_counter()))
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:  # whatever the producer started stops with it
            kill_group(self._proc)
        wall = time.perf_counter() - self._start
        self._out.close()
        self._err.close()
        return Run(self._proc.returncode, wall, read_text(self._work / "stdout.txt"),
                    read_text(self._work / "stderr.txt"), timed_out, self._env_note)

    def _cleanup(self) -> None:
        for fh in (self._out, self._err):
            fh.close()
        if self._proc is not None and self._proc.stdin is not None and not self._proc.stdin.closed:
            try:
                self._proc.stdin.close()
            except BrokenPipeError:
                pass
        shutil.rmtree(self._work, ignore_errors=True)
