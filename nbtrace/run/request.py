"""What a capture may be asked for: request checks and the tracing flags capture adds."""

from __future__ import annotations

import math
import os

from nbtrace.errors import UsageError
from nbtrace.run.limits import MAX_PIXELS, MAX_STEPS, check_run_size

SIDES = ("c", "py")
MAX_TIMEOUT_S = 1e6  # ~12 days: beyond that the number is a typo, and wait() cannot take inf or nan

# Flags whose single argument is a file path. The producer runs in a temporary directory,
# so relative paths must be made absolute against the caller's cwd or they would silently
# point at nothing (or, worse, at a file of the same name in the temp dir).
FILE_FLAGS = frozenset(
    {
        "-hkl", "-mat", "-sourcefile", "-img", "-mask", "-dump",
        "-intfile", "-intimage", "-pgmfile", "-pgmimage", "-noisefile", "-noiseimage",
        "-stol", "-4stol", "-Q", "-stolout",
    }
)

# Flags that capture itself sets; letting users pass them too would create two sources of
# truth for where the image / taps went.
OWNED_FLAGS = {
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


def check_timeout(timeout) -> None:
    """Seconds before a producer is killed: a finite number in (0, MAX_TIMEOUT_S]. NaN would
    never expire (every comparison with it is false), so a hanging producer would hang capture."""
    ok = isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and math.isfinite(timeout)
    if not ok or not 0 < timeout <= MAX_TIMEOUT_S:
        raise UsageError(f"timeout must be a number of seconds in (0, {MAX_TIMEOUT_S:g}], got {timeout!r}",
                         "--timeout", "e.g. --timeout 900")


def check_request(side, nb_args, pixels, roi, dump, image, inject, dtype, timeout, *,
                  max_pixels: int = MAX_PIXELS, max_steps: int = MAX_STEPS) -> None:
    if side not in SIDES:
        raise UsageError(f"unknown capture side {side!r}", hint="use 'c' or 'py'")
    for arg in nb_args:
        if arg in OWNED_FLAGS:
            raise UsageError(
                f"nanoBragg argument {arg} is set by capture itself",
                hint=f"use the capture option {OWNED_FLAGS[arg]} instead",
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
    check_timeout(timeout)
    shape = check_run_size(nb_args, max_pixels=max_pixels, max_steps=max_steps)
    if shape is not None:
        if roi is not None and (roi[1] >= shape[1] or roi[3] >= shape[0]):
            raise UsageError(f"roi {tuple(roi)} reaches outside the {shape[0]}x{shape[1]} detector", "--roi",
                             f"fast (x) in 0..{shape[1] - 1}, slow (y) in 0..{shape[0] - 1}, inclusive")
        for s, f in pixels:
            if s >= shape[0] or f >= shape[1]:
                raise UsageError(f"pixel ({s}, {f}) is outside the {shape[0]}x{shape[1]} detector",
                                 "--pixel", f"slow in 0..{shape[0] - 1}, fast in 0..{shape[1] - 1}")


def tracing_args(pixels, producer_side: str, inject, dtype) -> list[str]:
    extra: list[str] = []
    for s, f in pixels:
        extra += ["-trace_pixel", str(s), str(f)]
    if producer_side in ("py", "port-cmd"):
        if dtype is not None:
            extra += ["-dtype", dtype]
        for name in inject:
            extra += ["--inject", name]
    return extra


def absolutize_file_args(nb_args: list[str]) -> list[str]:
    out = list(nb_args)
    for i, arg in enumerate(out[:-1]):
        if arg in FILE_FLAGS and not out[i + 1].startswith("-"):
            out[i + 1] = os.path.abspath(out[i + 1])
    return out
