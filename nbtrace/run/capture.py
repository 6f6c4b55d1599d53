"""Run one producer (C reference, a user's C build, the PyTorch simulator or a user's port)
and keep what it printed, with provenance.

Every call runs exactly one process in a fresh temporary directory, so nothing in the
caller's working directory (a stale ``Fdump.bin``, an old ``floatimage.bin``) can leak into
the run — incident 18 of the port's history. All requested pixels, the float image and the
region dump come from that one process, so they are mutually consistent by construction.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

from nbtrace.errors import ProducerError, UsageError

SIDES = ("c", "py")

# Flags whose single argument is a file path. The producer runs in a temporary directory,
# so relative paths must be made absolute against the caller's cwd or they would silently
# point at nothing (or, worse, at a file of the same name in the temp dir).
_FILE_FLAGS = frozenset(
    {
        "-hkl", "-mat", "-sourcefile", "-img", "-mask", "-dump",
        "-intfile", "-intimage", "-pgmfile", "-pgmimage", "-noisefile", "-noiseimage",
        "-stol", "-4stol", "-Q", "-stolout",
    }
)

# Flags that capture itself sets; letting users pass them too would create two sources of
# truth for where the image / taps went.
_OWNED_FLAGS = {
    "-trace_pixel": "--pixel S F",
    "-trace_pixels_from": "--pixel S F",
    "-trace_pixels_after": "--pixel S F",
    "-trace_roi": "--roi XMIN XMAX YMIN YMAX",
    "-trace_dump": "--dump FILE.npz",
    "-floatfile": "--image IMG",
    "-floatimage": "--image IMG",
    "-dtype": "--dtype",
    "--inject": "--inject NAME",
}

_SETUP_LINE = re.compile(r"^(TRACE_[A-Za-z0-9]+):([A-Za-z_][A-Za-z0-9_]*)=(.*)$")
_PIXEL_HEADER = re.compile(r"^TRACE_CONFIG: tracing pixel \(spixel=(-?\d+), fpixel=(-?\d+)\)")

STDERR_TAIL_LINES = 20

Progress = Callable[[str], None]


@dataclass(frozen=True)
class CaptureResult:
    """What one producer run left behind.

    side: "c" (reference build), "user-c" (NB_C_BIN / c_bin), "py" (PyTorch simulator),
        "port-cmd" (a user's port command).
    trace_path: the producer's stdout (trace text), or None when nothing was traced.
    image_path: raw little-endian float32 image, index = slow*fpixels + fast, if requested.
    dump_path: ``.npz`` region dump, if requested.
    shape: (spixels, fpixels) from the producer's ``detector_pixels=`` setup tap, else derived
        from the nanoBragg arguments (physics.md §5.1), else None.
    meta: provenance; also written as ``<trace>.meta.json`` beside the trace.
    """

    side: str
    trace_path: Path | None
    image_path: Path | None
    dump_path: Path | None
    shape: tuple[int, int] | None
    meta: dict


@dataclass(frozen=True)
class _Producer:
    side: str
    kind: str
    command: tuple[str, ...]
    executable: str


# ----------------------------------------------------------------------------------------
# public API


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
    timeout: seconds before the producer is killed (ProducerError).
    progress: called with one-line progress messages (the CLI sends them to stderr).
    replay, replay_ref: taps whose values the port replaces by those of the reference trace
        ``replay_ref`` at the traced pixels (NBTRACE_REPLAY / NBTRACE_REPLAY_TAPS, nbtrace.tap).
    """
    say = progress or (lambda _msg: None)
    nb_args = [str(a) for a in nb_args]
    pixels = tuple((int(s), int(f)) for s, f in pixels)
    inject = tuple(inject)
    _check_request(side, nb_args, pixels, roi, dump, image, inject, dtype, timeout)
    replay_env = _replay_env(side, tuple(replay), replay_ref, pixels)
    producer = _select_producer(side, c_bin, port_cmd)
    out_trace = _trace_destination(out_trace, pixels, roi, image)
    if roi is not None and dump is None:
        dump = _default_dump(out_trace)
    image, dump = _absolute(image), _absolute(dump)
    for path, what in ((out_trace, "trace"), (image, "image"), (dump, "region dump")):
        _prepare_destination(path, what)
    argv_head = [*producer.command, *_absolutize_file_args(nb_args), *_tracing_args(pixels, producer, inject, dtype)]
    run, argv = _run_in_fresh_dir(producer, argv_head, roi, image, dump, timeout, say, replay_env)
    if replay_env:  # what the port could not replay must reach the user, not stay in its stderr
        for line in run.stderr_text.splitlines():
            if "warning" in line:
                say(f"capture {producer.side}: {line}")
    setup = _setup_block(run.stdout_text)
    seen_pixels = _traced_pixels(run.stdout_text)
    shape = _shape_from_setup(setup) or shape_from_args(nb_args)
    meta = _provenance(producer, argv, nb_args, run, setup, pixels, seen_pixels, roi, image, dump, shape)
    if out_trace is not None:
        _write_trace(out_trace, run.stdout_text, meta)
    missing = [p for p in pixels if p not in seen_pixels]
    if missing:
        say(f"capture {producer.side}: warning: no trace header for pixel(s) {missing} "
            "(is the build instrumented with -trace_pixel support?)")
    say(f"capture {producer.side}: done in {run.wall_s:.2f} s"
        + (f", trace -> {out_trace}" if out_trace else "")
        + (f", image -> {image}" if image else ""))
    return CaptureResult(producer.side, out_trace, image, dump, shape, meta)


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
                 timeout: float, say: Progress):
        self._producer = _select_producer("py", None, None)
        self._nb_args, self._pixels, self._timeout, self._say = nb_args, pixels, timeout, say
        self._image, self._out_trace, self._roi, self._dump = image, out_trace, roi, dump
        self._work = Path(tempfile.mkdtemp(prefix="nbtrace-run-"))
        self._local_image = self._work / "image.float"
        self._local_dump = self._work / "taps.npz" if dump is not None else None
        argv = [*self._producer.command, *_absolutize_file_args(nb_args),
                *_tracing_args(pixels, self._producer, inject, dtype), "-floatfile", str(self._local_image)]
        if roi is not None:
            argv += ["-trace_roi", *map(str, roi), "-trace_dump", str(self._local_dump)]
        self._argv = argv + ["-trace_pixels_after", "-"]
        env, self._env_note = _child_env()
        self._out = open(self._work / "stdout.txt", "wb")
        self._err = open(self._work / "stderr.txt", "wb")
        self._start = time.perf_counter()
        try:
            self._proc = subprocess.Popen(self._argv, cwd=self._work, stdout=self._out, stderr=self._err,
                                          stdin=subprocess.PIPE, env=env, start_new_session=True)
        except OSError as exc:
            self._cleanup()
            raise ProducerError(f"cannot start {self._producer.kind}: {exc.strerror}", where=self._argv[0],
                                hint="check that the program exists and is executable") from None
        say(f"capture py: {_short(self._argv)}")

    def wait_image(self) -> CaptureResult:
        """Block until the image is written; its CaptureResult has no trace yet (see finish)."""
        try:
            self._await_marker()
            _deliver(self._local_image, self._image, "image", self._producer)
            _deliver(self._local_dump, self._dump, "region dump", self._producer)
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
            _check_request("py", self._nb_args, pixels, None, None, self._image, (), None, self._timeout)
            _prepare_destination(self._out_trace, "trace")
            try:
                self._proc.stdin.write("".join(f"{s} {f}\n" for s, f in pixels).encode())
                self._proc.stdin.close()
            except BrokenPipeError:
                pass  # it died before reading: its exit code and stderr say why, below
            run = self._wait()
            _raise_on_failure(run, self._producer, self._argv)
        except BaseException:
            self.cancel()
            raise
        self._cleanup()
        setup = _setup_block(run.stdout_text)
        seen = _traced_pixels(run.stdout_text)
        shape = _shape_from_setup(setup) or shape_from_args(self._nb_args)
        requested = tuple(self._pixels) + pixels
        meta = _provenance(self._producer, self._argv, self._nb_args, run, setup, requested, seen, self._roi,
                           self._image, self._dump, shape)
        _write_trace(self._out_trace, run.stdout_text, meta)
        self._say(f"capture py: done in {run.wall_s:.2f} s, trace -> {self._out_trace}")
        return CaptureResult("py", self._out_trace, self._image, self._dump, shape, meta)

    def cancel(self) -> None:
        """Not needed after all: stop the process (and its children) and remove its folder."""
        if self._proc.poll() is None:
            _kill_group(self._proc)
        self._cleanup()

    def _await_marker(self) -> None:
        err_path, seen = self._work / "stderr.txt", 0
        deadline = self._start + self._timeout
        while True:
            size = err_path.stat().st_size
            if size != seen:
                seen = size
                if IMAGE_WRITTEN in _read_text(err_path):
                    return
            if self._proc.poll() is not None:
                run = self._wait()
                _raise_on_failure(run, self._producer, self._argv)
                if IMAGE_WRITTEN in run.stderr_text:
                    return
                raise ProducerError(f"{self._producer.kind} ended without writing its image",
                                    where=self._producer.executable,
                                    hint=f"re-run by hand to see everything: {_short(self._argv, 200)}")
            if time.perf_counter() > deadline:
                _kill_group(self._proc)
                raise ProducerError(f"{self._producer.kind} did not write its image within {self._timeout:.0f} s "
                                    "and was killed", where=self._producer.executable,
                                    hint="use a smaller detector / -roi, or raise --timeout")
            time.sleep(_POLL_S)

    def _wait(self) -> _Run:
        timed_out = False
        try:
            self._proc.wait(timeout=max(1.0, self._start + self._timeout - time.perf_counter()))
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(self._proc)
        wall = time.perf_counter() - self._start
        self._out.close()
        self._err.close()
        return _Run(self._proc.returncode, wall, _read_text(self._work / "stdout.txt"),
                    _read_text(self._work / "stderr.txt"), timed_out, self._env_note)

    def _cleanup(self) -> None:
        for fh in (self._out, self._err):
            fh.close()
        if self._proc.stdin is not None and not self._proc.stdin.closed:
            try:
                self._proc.stdin.close()
            except BrokenPipeError:
                pass
        shutil.rmtree(self._work, ignore_errors=True)


def start_live_render(nb_args: Sequence[str], *, image: Path, pixels: Iterable[tuple[int, int]] = (),
                      out_trace: Path, roi: tuple[int, int, int, int] | None = None, dump: Path | None = None,
                      inject: Iterable[str] = (), dtype: str | None = None, timeout: float = 900,
                      progress: Progress | None = None) -> LiveRender:
    """Start the built-in PyTorch simulator's render of ``image`` (tracing ``pixels`` in that
    pass); more pixels are traced by the same run after the image (:class:`LiveRender`). Only
    for the built-in simulator: a --port-cmd or a C build need not understand the flag."""
    nb_args = [str(a) for a in nb_args]
    pixels = tuple((int(s), int(f)) for s, f in pixels)
    inject = tuple(inject)
    _check_request("py", nb_args, pixels, roi, dump, image, inject, dtype, timeout)
    image, out_trace, dump = _absolute(image), _absolute(out_trace), _absolute(dump)
    for path, what in ((out_trace, "trace"), (image, "image"), (dump, "region dump")):
        _prepare_destination(path, what)
    return LiveRender(nb_args, image=image, pixels=pixels, out_trace=out_trace, roi=roi, dump=dump,
                      inject=inject, dtype=dtype, timeout=timeout, say=progress or (lambda _m: None))


def shape_from_args(nb_args: Sequence[str]) -> tuple[int, int] | None:
    """(spixels, fpixels) implied by nanoBragg detector flags (physics.md §5.1), later flags win.

    Returns None if an argument is not a number (the producer will report that itself).
    """
    try:
        pixel = 1e-4
        size = {"f": 0.1024, "s": 0.1024}
        count: dict[str, int] = {}
        i = 0
        while i < len(nb_args):
            flag = nb_args[i]
            value = nb_args[i + 1] if i + 1 < len(nb_args) else None
            if flag in ("-pixel", "-pixel_size") and value is not None:
                pixel = float(value) / 1000
            elif flag == "-detpixels" and value is not None:
                count["f"] = count["s"] = int(value)
            elif flag in ("-detpixels_f", "-detpixels_x") and value is not None:
                count["f"] = int(value)
            elif flag in ("-detpixels_s", "-detpixels_y") and value is not None:
                count["s"] = int(value)
            elif flag == "-detsize" and value is not None:
                size["f"] = size["s"] = float(value) / 1000
            elif flag == "-detsize_f" and value is not None:
                size["f"] = float(value) / 1000
            elif flag == "-detsize_s" and value is not None:
                size["s"] = float(value) / 1000
            i += 1
    except ValueError:
        return None
    for axis, n in count.items():
        size[axis] = n * pixel
    fpix = math.ceil(size["f"] / pixel - 0.5)
    spix = math.ceil(size["s"] / pixel - 0.5)
    return (spix, fpix)


def read_meta(trace_path: Path) -> dict:
    """The provenance sidecar written beside a captured trace ({} if there is none)."""
    meta_path = Path(trace_path).with_name(Path(trace_path).name + ".meta.json")
    if not meta_path.exists():
        return {}
    return json.loads(meta_path.read_text())


# ----------------------------------------------------------------------------------------
# request checks and producer selection


def _check_request(side, nb_args, pixels, roi, dump, image, inject, dtype, timeout) -> None:
    if side not in SIDES:
        raise UsageError(f"unknown capture side {side!r}", hint="use 'c' or 'py'")
    for arg in nb_args:
        if arg in _OWNED_FLAGS:
            raise UsageError(
                f"nanoBragg argument {arg} is set by capture itself",
                hint=f"use the capture option {_OWNED_FLAGS[arg]} instead",
            )
    for s, f in pixels:
        if s < 0 or f < 0:
            raise UsageError(f"pixel ({s}, {f}) has a negative index", hint="--pixel takes SLOW FAST, both >= 0")
    if roi is not None:
        if len(roi) != 4:
            raise UsageError(f"roi needs 4 numbers, got {len(roi)}", hint="--roi XMIN XMAX YMIN YMAX")
        xmin, xmax, ymin, ymax = roi
        if xmin > xmax or ymin > ymax or min(roi) < 0:
            raise UsageError(f"empty or negative roi {tuple(roi)}",
                             hint="--roi XMIN XMAX YMIN YMAX is inclusive, fast = x, slow = y")
    if dump is not None and roi is None:
        raise UsageError("a region dump needs a region", hint="give --roi XMIN XMAX YMIN YMAX with --dump")
    if not pixels and roi is None and image is None:
        raise UsageError("nothing to capture", hint="give at least one --pixel S F, a --roi or an --image")
    if side == "c" and inject:
        raise UsageError("fault injections exist only in the PyTorch simulator", hint="use --inject with 'py'")
    if dtype is not None and dtype not in ("float64", "float32"):
        raise UsageError(f"unknown dtype {dtype!r}", hint="use float64 or float32")
    if side == "c" and dtype not in (None, "float64"):
        raise UsageError(f"the C side always computes in float64, not {dtype}", hint="drop --dtype for 'c'")
    if not timeout or timeout <= 0:
        raise UsageError(f"timeout must be positive, got {timeout}", hint="--timeout SECONDS")


def _select_producer(side: str, c_bin: str | None, port_cmd: str | None) -> _Producer:
    if c_bin is not None and not c_bin.strip():
        raise UsageError("--c-bin is empty", hint="give the path of your C build, or leave --c-bin out")
    if side == "c":
        user = c_bin or os.environ.get("NB_C_BIN") or None
        if user:
            exe = _resolve_executable(user, "--c-bin / NB_C_BIN")
            return _Producer("user-c", "user C build", (exe,), exe)
        from nbtrace.run.cbuild import ensure_built  # engineer C's module: builds on first use

        exe = str(ensure_built())
        return _Producer("c", "nbtrace C reference", (exe,), exe)
    if port_cmd is not None:  # "" is a mistake, not a request for the default simulator
        try:
            words = shlex.split(port_cmd)
        except ValueError as exc:
            raise UsageError(f"--port-cmd {port_cmd!r} cannot be split into words ({exc})", "--port-cmd",
                             "fix the quoting, e.g. --port-cmd 'python -m myport'") from None
        if not words:
            raise UsageError("--port-cmd is empty",
                             hint="give the command that runs your port, e.g. 'python -m myport'")
        exe = _resolve_executable(words[0], "--port-cmd")
        return _Producer("port-cmd", "user port command", (exe, *words[1:]), exe)
    return _Producer("py", "nbtrace PyTorch simulator", (sys.executable, "-m", "nbtrace.sim"), sys.executable)


def _resolve_executable(name: str, what: str) -> str:
    found = shutil.which(name) if os.sep not in name else (name if os.access(name, os.X_OK) else None)
    if found is None:
        where = name if os.sep in name else None
        if where and not Path(name).exists():
            raise ProducerError(f"{what} points at a file that does not exist", where=name,
                                hint="check the path of your build")
        raise ProducerError(f"{what}: {name!r} is not an executable program", where=where,
                            hint="give the path of an executable (chmod +x) or a command on PATH")
    return str(Path(found).resolve())


def _tracing_args(pixels, producer: _Producer, inject, dtype) -> list[str]:
    extra: list[str] = []
    for s, f in pixels:
        extra += ["-trace_pixel", str(s), str(f)]
    if producer.side in ("py", "port-cmd"):
        if dtype is not None:
            extra += ["-dtype", dtype]
        for name in inject:
            extra += ["--inject", name]
    return extra


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


def _run_in_fresh_dir(producer, argv_head, roi, image, dump, timeout, say,
                      extra_env=None) -> tuple[_Run, list[str]]:
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
        say(f"capture {producer.side}: {_short(argv)}")
        run = _run(argv, work, timeout, producer, extra_env)
        _raise_on_failure(run, producer, argv)
        _deliver(local_image, image, "image", producer)
        _deliver(local_dump, dump, "region dump", producer)
    return run, argv


def _prepare_destination(path: Path | None, what: str) -> None:
    """Fail before the (possibly long) run when a result could not be written."""
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create the folder for the {what}: {exc.strerror}", where=str(path.parent),
                         hint="choose a writable location") from None
    if path.is_dir():
        raise UsageError(f"the {what} destination is a directory", where=str(path), hint="give a file name")
    existed = path.exists()
    try:  # a real probe: the folder may exist yet refuse files (read-only mount, /proc)
        with open(path, "ab"):
            pass
    except OSError as exc:
        raise UsageError(f"cannot write the {what}: {exc.strerror or exc}", where=str(path),
                         hint="choose a writable location") from None
    if not existed:
        path.unlink(missing_ok=True)


def _write_trace(out_trace: Path, text: str, meta: dict) -> None:
    meta_path = out_trace.with_name(out_trace.name + ".meta.json")
    try:
        out_trace.write_text(text)
        meta_path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    except OSError as exc:
        raise UsageError(f"cannot write the trace: {exc.strerror}", where=exc.filename or str(out_trace),
                         hint="choose a writable location") from None


def _trace_destination(out_trace, pixels, roi, image) -> Path | None:
    if out_trace is not None:
        return _absolute(Path(out_trace))
    if not pixels:
        return None
    # Tracing without a destination: keep the text somewhere that outlives the run.
    return Path(tempfile.mkdtemp(prefix="nbtrace-capture-")) / "trace.txt"


def _default_dump(out_trace: Path | None) -> Path:
    """Beside the trace (c.trace -> c.npz), else in a fresh folder: never a fixed name in the
    cwd, where two concurrent captures (hunt runs both sides at once) would overwrite each other."""
    if out_trace is not None:
        return out_trace.with_suffix(".npz")
    return Path(tempfile.mkdtemp(prefix="nbtrace-capture-")) / "taps.npz"


def _absolute(path: Path | str | None) -> Path | None:
    return None if path is None else Path(os.path.abspath(os.fspath(path)))


def _absolutize_file_args(nb_args: list[str]) -> list[str]:
    out = list(nb_args)
    for i, arg in enumerate(out[:-1]):
        if arg in _FILE_FLAGS and not out[i + 1].startswith("-"):
            out[i + 1] = os.path.abspath(out[i + 1])
    return out


# ----------------------------------------------------------------------------------------
# running


@dataclass(frozen=True)
class _Run:
    returncode: int
    wall_s: float
    stdout_text: str
    stderr_text: str
    timed_out: bool
    env_note: dict


def _child_env() -> tuple[dict, dict]:
    env = dict(os.environ)
    note = {}
    # The C program's φ == 0 carry-over and the shared interpolation buffer make results
    # depend on the thread count (physics.md §9.1 items 16, 33); one thread is the
    # reproducible reference unless the caller decided otherwise.
    if "OMP_NUM_THREADS" not in env:
        env["OMP_NUM_THREADS"] = "1"
    note["OMP_NUM_THREADS"] = env["OMP_NUM_THREADS"]
    return env, note


def _run(argv: list[str], work: Path, timeout: float, producer: _Producer, extra_env=None) -> _Run:
    env, note = _child_env()
    if extra_env:
        env.update(extra_env)
        note.update(extra_env)
    out_path, err_path = work / "stdout.txt", work / "stderr.txt"
    start = time.perf_counter()
    timed_out = False
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        try:
            proc = subprocess.Popen(argv, cwd=work, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                    env=env, start_new_session=True)
        except OSError as exc:
            raise ProducerError(f"cannot start {producer.kind}: {exc.strerror}", where=argv[0],
                                hint="check that the program exists and is executable") from None
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc)
    wall = time.perf_counter() - start
    return _Run(proc.returncode, wall, _read_text(out_path), _read_text(err_path), timed_out, note)


def _kill_group(proc: subprocess.Popen) -> None:
    # start_new_session made the producer a group leader: kill it and its own children
    # (OpenMP helpers, a shell wrapper's child) but nothing else.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _read_text(path: Path) -> str:
    return path.read_bytes().decode("utf-8", errors="replace")


def _raise_on_failure(run: _Run, producer: _Producer, argv: list[str]) -> None:
    if run.timed_out:
        raise ProducerError(f"{producer.kind} did not finish within {run.wall_s:.0f} s and was killed",
                            where=producer.executable,
                            hint="use a smaller detector / -roi, or raise --timeout")
    if run.returncode != 0:
        last = _last_line(run.stderr_text) or _last_line(run.stdout_text) or "(it printed nothing)"
        how = (f"killed by signal {-run.returncode}" if run.returncode < 0
               else f"exited with code {run.returncode}")
        raise ProducerError(f"{producer.kind} {how}: {last}", where=producer.executable,
                            hint=f"re-run by hand to see everything: {_short(argv, 200)}")


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def _deliver(local: Path | None, dest: Path | None, what: str, producer: _Producer) -> None:
    if local is None or dest is None:
        return
    if not local.exists():
        raise ProducerError(f"{producer.kind} exited 0 but wrote no {what}", where=producer.executable,
                            hint="does this build support the flag for it? (-floatfile, -trace_dump)")
    try:
        shutil.move(str(local), str(dest))
    except OSError as exc:
        raise UsageError(f"cannot write the {what}: {exc.strerror}", where=str(dest),
                         hint="choose a writable location") from None


# ----------------------------------------------------------------------------------------
# provenance


def _setup_block(stdout_text: str) -> dict[str, str]:
    """The producer's ``PREFIX:key=value`` lines printed before the first pixel header.

    Only for provenance; the diff reads traces through nbtrace.engine.parse. A repeated key keeps
    its first value (the BEAM pivot prints some twice, before and after two-theta).
    """
    setup: dict[str, str] = {}
    for line in stdout_text.splitlines():
        if line.startswith("TRACE_CONFIG:"):
            break
        m = _SETUP_LINE.match(line.strip())
        if m:
            setup.setdefault(m.group(2), m.group(3).strip())
    return setup


def _traced_pixels(stdout_text: str) -> list[tuple[int, int]]:
    found = []
    for line in stdout_text.splitlines():
        m = _PIXEL_HEADER.match(line.strip())
        if m:
            found.append((int(m.group(1)), int(m.group(2))))
    return found


def _shape_from_setup(setup: dict[str, str]) -> tuple[int, int] | None:
    words = setup.get("detector_pixels", "").split()
    if len(words) != 2:
        return None
    try:
        fpix, spix = int(words[0]), int(words[1])
    except ValueError:
        return None
    return (spix, fpix)


def _sha256(path: str) -> str | None:
    try:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()
    except OSError:
        return None


def _simulator_source_sha256() -> str | None:
    """For the PyTorch side the interpreter's checksum says nothing: hash the simulator's
    own sources instead (found without importing it, so torch is not loaded here)."""
    import importlib.util

    spec = importlib.util.find_spec("nbtrace.sim")
    if spec is None or not spec.submodule_search_locations:
        return None
    digest = hashlib.sha256()
    for root in spec.submodule_search_locations:
        for path in sorted(Path(root).rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _provenance(producer, argv, nb_args, run, setup, pixels, seen_pixels, roi, image, dump, shape) -> dict:
    return {
        "side": producer.side,
        "producer_kind": producer.kind,
        "argv": argv,
        "nb_args": nb_args,
        "executable": producer.executable,
        "sha256": _sha256(producer.executable),
        "source_sha256": _simulator_source_sha256() if producer.side == "py" else None,
        "producer": setup.get("producer"),
        "dtype": setup.get("dtype"),
        "structure_factors": setup.get("structure_factors"),
        "setup": setup,
        "returncode": run.returncode,
        "wall_s": round(run.wall_s, 6),
        "stderr_tail": run.stderr_text.splitlines()[-STDERR_TAIL_LINES:],
        "env": run.env_note,
        "pixels_requested": [list(p) for p in pixels],
        "pixels_traced": [list(p) for p in seen_pixels],
        "roi": list(roi) if roi is not None else None,
        "image": str(image) if image else None,
        "dump": str(dump) if dump else None,
        "shape": list(shape) if shape else None,
        "captured_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "nbtrace_version": _nbtrace_version(),
    }


def _nbtrace_version() -> str | None:
    # the installed distribution's version: `from nbtrace import __version__` breaks when a
    # test run puts tests/ (which holds a tests/nbtrace/ folder) ahead of the package
    from importlib import metadata

    try:
        return metadata.version("nbtrace")
    except metadata.PackageNotFoundError:
        return None


def _short(argv: Sequence[str], limit: int = 160) -> str:
    text = shlex.join(argv)
    return text if len(text) <= limit else text[: limit - 3] + "..."
