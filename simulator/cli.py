"""nanoBragg-compatible command line: ``python -m nbtrace.sim`` / ``nbsim``.

Flags match exactly (no prefix matching); an unknown flag, a missing or malformed argument is
one line on stderr and exit code 2. The trace goes to stdout, everything else to stderr.

The flag table itself (what each flag reads and sets) is :mod:`nbtrace.sim.flags`.
"""

from __future__ import annotations

import math
import os
import sys
import time

from nbtrace.errors import NbtraceError, UsageError
from nbtrace.sim import injections, limits
from nbtrace.sim.config import SimConfig
from nbtrace.sim.crystal import random_misset
from nbtrace.sim.flags import FLAGS, _Args  # noqa: F401  (FLAGS re-exported: callers read the table here)
from nbtrace.sim.helptext import PROG, USAGE  # torch-free: `nbsim -h` answers before torch loads
from nbtrace.sim.rng import Ran1



def _check_positive(kw: dict) -> None:
    """Values physics.md gives no meaning to (the C would print inf/NaN or hang): refused the
    same way as the C reference (simulator/c/README.md); the physics rules (N ≤ 0 → 1, …) stay."""
    for name, flag in (("pixel", "-pixel"), ("lambda0", "-lambda")):
        if name in kw and not (kw[name] > 0 and math.isfinite(kw[name])):
            raise UsageError(f"{flag} must be a finite number > 0", hint=f"give a positive {flag}")
    if "close_distance" in kw and not kw["close_distance"] > 0:
        raise UsageError("-close_distance must be > 0", hint="give the sample-detector distance in mm")
    if "distance" in kw and "close_distance" not in kw and not (kw["distance"] > 0 and math.isfinite(kw["distance"])):
        raise UsageError("-distance must be a finite number > 0", hint="give a positive -distance (mm)")
    for name in ("detpixels_f", "detpixels_s"):
        if name in kw and kw[name] < 1:
            raise UsageError(f"-detpixels must be ≥ 1, got {kw[name]}", hint="e.g. -detpixels 1024")
    if kw.get("flux", 0.0) != 0 and "beamsize" in kw and kw["beamsize"] == 0:
        raise UsageError("-beamsize 0 with -flux divides by zero", hint="give the beam size in mm, e.g. -beamsize 0.1")
    if kw.get("thickness", 0.0) < 0:
        raise UsageError("-detector_thick must be ≥ 0", hint="give the sensor thickness in µm")
    if kw.get("oversample", 0) < 0:
        raise UsageError("-oversample must be ≥ 0 (0 = auto)", hint="e.g. -oversample 2")
    if "cell" in kw:
        if not kw["cell"][0] > 0:
            raise UsageError("-cell needs a positive a (as nanoBragg, which exits when a = 0)",
                             hint="e.g. -cell 100 100 100 90 90 90")
        if any(x < 0 for x in kw["cell"]):
            raise UsageError("-cell has a negative length or angle", hint="e.g. -cell 100 100 100 90 90 90")
    for name in ("roi", "trace_roi"):
        if name in kw:
            xmin, xmax, ymin, ymax = kw[name]
            if xmin > xmax or ymin > ymax or min(kw[name]) < 0:
                raise UsageError(f"-{name} {xmin} {xmax} {ymin} {ymax}: a minimum exceeds its maximum or is negative",
                                 hint="the order is xmin xmax ymin ymax (fast, then slow), inclusive")


def parse_args(argv: list[str]) -> SimConfig:
    """Flags → :class:`SimConfig`; raises UsageError on anything it cannot read."""
    # like the C, the default misset seed is the clock read before the flags are parsed
    kw: dict = {"misset_seed": -int(time.time())}
    a = _Args(list(argv))
    while a.pos < len(a.argv):
        flag = a.word("")
        handler = FLAGS.get(flag)
        if handler is None:
            raise UsageError(f"unknown flag '{flag}' (argument {a.pos})",
                             hint="flags match exactly, as in nanoBragg; see nbsim -h")
        handler(a, kw, flag)
    kw["trace_pixels"] = tuple(kw.get("trace_pixels", ()))
    kw["injections"] = injections.validate(kw.get("injections", []))
    if "trace_roi" in kw and "trace_dump" not in kw:
        kw["trace_dump"] = "taps.npz"
    device = kw.get("device", "cpu")
    if device.split(":")[0] not in ("cpu", "cuda"):
        raise UsageError(f"-device needs cpu or cuda, got '{device}'", hint="e.g. -device cpu")
    _check_device(device)
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise UsageError(f"-device {device}: no CUDA device is available to torch", hint="use -device cpu")
    _check_positive(kw)
    if kw.pop("misset_random", False):
        kw["misset"] = random_misset(kw["misset_seed"], Ran1())
    if kw.get("cell") is None and kw.get("mat_file") is None:
        raise UsageError("no crystal given", hint="give -cell a b c alpha beta gamma or -mat FILE")
    for name in ("max_steps", "max_pixels"):
        if name in kw and kw[name] < 1:
            raise UsageError(f"-{name} must be >= 1, got {kw[name]}", hint=f"e.g. -{name} 10000000")
    cfg = SimConfig(argv=tuple(argv), **kw)
    limits.check_pixels(cfg)
    limits.check_terms(cfg)
    return cfg


def _check_device(device: str) -> None:
    """torch's own reading of the device string (e.g. 'cpu:abc' is not one)."""
    import torch

    try:
        torch.device(device)
    except (RuntimeError, ValueError):
        raise UsageError(f"-device '{device}' is not a device torch knows", hint="e.g. -device cpu or -device cuda:0") from None


PIXEL_SOURCES = ("-trace_pixels_from", "-trace_pixels_after")


def split_pixel_sources(argv: list[str]) -> tuple[list[str], dict[str, str]]:
    """Take ``-trace_pixels_from FILE`` / ``-trace_pixels_after FILE`` out of argv (they are not
    SimConfig fields: their pixels are known only later). Returns (the other flags, {flag: FILE})."""
    rest, sources = [], {}
    i = 0
    while i < len(argv):
        flag = argv[i]
        if flag in PIXEL_SOURCES:
            if i + 1 >= len(argv):
                raise UsageError(f"{flag} needs a file name or -",
                                 hint=f"write {flag} FILE (or - for stdin), one 'S F' line per pixel")
            if flag in sources:
                raise UsageError(f"{flag} is given twice", hint="give it once")
            sources[flag] = argv[i + 1]
            i += 2
            continue
        rest.append(flag)
        i += 1
    if len(sources) == 2 and "-" in sources.values():
        raise UsageError("-trace_pixels_from and -trace_pixels_after cannot share stdin",
                         hint="give one of them a file, or use one of the two")
    return rest, sources


def read_pixel_lines(lines, where: str, flag: str = "-trace_pixels_from") -> tuple[tuple[int, int], ...]:
    """'S F' lines (slow fast, 0-based integers; blank lines and # comments skipped) → pixels."""
    pixels = []
    for n, line in enumerate(lines, 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        try:
            if len(words) != 2:
                raise ValueError
            pixels.append((int(words[0]), int(words[1])))
        except ValueError:
            raise UsageError(f"{flag}: expected 'SLOW FAST' (two integers), got {line.strip()!r}",
                             where=f"{where}:{n}", hint="one pixel per line, e.g. '12 34'") from None
    return tuple(pixels)


def pixel_reader(source: str, flag: str = "-trace_pixels_from"):
    """A function returning the pixels of ``source`` ('-' = stdin), called when they are needed."""
    def read() -> tuple[tuple[int, int], ...]:
        if source == "-":
            return read_pixel_lines(sys.stdin, "<stdin>", flag)
        try:
            with open(source, encoding="utf-8") as fh:
                return read_pixel_lines(fh, source, flag)
        except OSError as exc:
            raise UsageError(f"cannot read {flag} file: {exc.strerror or exc}", where=source,
                             hint="give an existing file of 'S F' lines, or - for stdin") from None
        except UnicodeDecodeError:
            raise UsageError(f"{flag} file is not text", where=source,
                             hint="give a text file of 'S F' lines") from None
    return read


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (0 ok, 2 bad input, 1 internal failure)."""
    own_process = argv is None  # the command line, not a caller in the same interpreter
    argv = sys.argv[1:] if argv is None else list(argv)
    if any(x in ("-h", "--help", "-help") for x in argv):
        sys.stdout.write(USAGE)
        return 0
    if "--list-injections" in argv:
        sys.stdout.write(injections.listing())
        return 0
    try:
        argv, sources = split_pixel_sources(argv)
        from nbtrace.sim.run import run
        readers = {flag: pixel_reader(src, flag) for flag, src in sources.items()}
        code = run(parse_args(argv), pixels_from=readers.get("-trace_pixels_from"),
                   pixels_after=readers.get("-trace_pixels_after"))
        if own_process and sources:
            _exit_now(code)
        return code
    except NbtraceError as exc:
        print(f"{PROG}: error: {exc.one_line()}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # an internal failure is reported as such, in one line
        print(f"{PROG}: internal error: {type(exc).__name__}: {exc} (please report with the command line)",
              file=sys.stderr)
        if os.environ.get("NBSIM_DEBUG"):
            raise
        return 1


def _exit_now(code: int) -> None:
    """Leave without the interpreter's teardown: with torch loaded it takes ~0.35 s, which sits
    on the critical path of a hunt waiting for a -trace_pixels_from/-after run. Every output file is
    closed by now; only the standard streams need flushing."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:
        code = code or 1
    os._exit(code)


def console() -> None:
    sys.exit(main())
