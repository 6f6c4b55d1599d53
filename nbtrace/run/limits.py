"""How big a run nbtrace starts before asking: detector pixels and sub-steps per pixel.

A typo (``-detpixels 1e7``, ``-oversample 100000``, ``-phisteps 100000000``) would otherwise
start a producer that runs for hours or dies allocating memory; nbtrace refuses it up front in
one line, and ``--max-pixels`` / ``--max-steps`` raise the cap for a run that really is that big.
"""

from __future__ import annotations

import math
from typing import Sequence

from nbtrace.errors import UsageError

MAX_PIXELS = 8192 * 8192  # the largest detectors in use are ~4k x 4k; this leaves a factor of 4
MAX_STEPS = 10_000_000  # sub-steps per pixel: oversample² x phisteps x mosaic domains x sources x thickness

# flags that shape the detector (values must be finite and > 0)
SHAPE_FLAGS = frozenset({"-pixel", "-pixel_size", "-detpixels", "-detpixels_f", "-detpixels_x", "-detpixels_s",
                         "-detpixels_y", "-detsize", "-detsize_f", "-detsize_s"})
# flags whose value multiplies the work per pixel (oversample counts per axis, so it is squared)
STEP_FLAGS = {"-oversample": 2, "-phisteps": 1, "-mosaic_domains": 1, "-detector_thicksteps": 1,
              "-thicksteps": 1, "-dispsteps": 1, "-hdivsteps": 1, "-vdivsteps": 1}


def run_size(nb_args: Sequence[str]) -> tuple[tuple[int, int] | None, int]:
    """((spixels, fpixels) or None, sub-steps per pixel) that ``nb_args`` asks for.

    A value that is not a number at all is left for the producer to refuse in its own words
    (the shape is then None); a number that cannot describe a run (nan, inf, <= 0 for the
    detector) is a UsageError here, since a user's build might accept it and run for ever.
    """
    from nbtrace.engine.images import shape_from_nb_args

    args = [str(a) for a in nb_args]
    shape_known, steps = True, 1
    for i, flag in enumerate(args):
        if flag not in SHAPE_FLAGS and flag not in STEP_FLAGS:
            continue
        value = _number(args, i)
        if value is None:
            shape_known = shape_known and flag not in SHAPE_FLAGS
            continue
        if not math.isfinite(value) or (flag in SHAPE_FLAGS and value <= 0):
            raise UsageError(f"{flag} needs a finite number > 0, got {args[i + 1][:40]!r}", "nanoBragg args",
                             f"write {flag} VALUE")
        if flag in STEP_FLAGS and value >= 1:
            # nanoBragg takes the last of a repeated flag; counting every one only errs towards asking
            steps = min(steps * int(value) ** STEP_FLAGS[flag], 10**30)
    return (shape_from_nb_args(args) if shape_known else None), steps


def check_run_size(nb_args: Sequence[str], *, max_pixels: int = MAX_PIXELS, max_steps: int = MAX_STEPS,
                   ) -> tuple[int, int] | None:
    """Refuse (UsageError) a run larger than the caps; returns its shape (None if unknown)."""
    for value, name in ((max_pixels, "--max-pixels"), (max_steps, "--max-steps")):
        if not isinstance(value, int) or value < 1:
            raise UsageError(f"{name} must be a whole number >= 1, got {value!r}", name)
    shape, steps = run_size(nb_args)
    if shape is not None and shape[0] * shape[1] > max_pixels:
        raise UsageError(f"the detector would have {_count(shape[0])}x{_count(shape[1])} = "
                         f"{_count(shape[0] * shape[1])} pixels, more than the cap of {max_pixels:,}", "nanoBragg args",
                         "check -detpixels/-detsize/-pixel, or raise the cap with --max-pixels N")
    if steps > max_steps:
        raise UsageError(f"the run would take {_count(steps)} sub-steps per pixel (oversample² x phisteps x mosaic "
                         f"domains x sources x thickness steps), more than the cap of {max_steps:,}",
                         "nanoBragg args", "check those flags, or raise the cap with --max-steps N")
    return shape


def _count(n: int) -> str:
    if n < 10**15:
        return f"{n:,}"
    digits = str(n)  # a 300-digit count helps nobody; float() cannot hold the largest
    return f"{digits[0]}.{digits[1:3]}e+{len(digits) - 1}"


def _number(args: list[str], i: int) -> float | None:
    if i + 1 >= len(args):
        return None
    try:
        return float(args[i + 1])
    except ValueError:
        return None
