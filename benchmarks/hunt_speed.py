"""How much does a hunt cost on top of rendering the two images? (issue 5: goal <= 1.5x)

Runs, on the 1024x1024 seed configuration, (1) the two renders alone — C reference and PyTorch
simulator in parallel, exactly as the hunt starts — and (2) the whole hunt (renders, metrics,
pixel choice, one more C run and the PyTorch render run tracing the chosen pixels itself
(-trace_pixels_after), diffs). Prints both wall times and their ratio.

    python benchmarks/hunt_speed.py [--repeat N] [--maps] [--inject NAME] [-- <nanoBragg args>]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from nbtrace.run.hunt import HuntOptions, _both, hunt

# 1024 pixels of 0.1 mm at 500 mm reach ~6 Å at the edge at 0.5 Å: a field of spots.
SEED_1024 = ("-lambda", "0.5", "-cell", "100", "100", "100", "90", "90", "90", "-N", "5", "-default_F", "100",
             "-distance", "500", "-detpixels", "1024", "-pixel", "0.1")


def time_renders(args, opts) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        _both(opts, args, None, {"image": Path(tmp) / "c.float"}, {"image": Path(tmp) / "py.float"})
        return time.perf_counter() - t0


def time_hunt(opts) -> tuple[float, dict]:
    t0 = time.perf_counter()
    res = hunt(opts)
    return time.perf_counter() - t0, res.timings


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--maps", action="store_true", help="time hunt --maps as well")
    p.add_argument("--inject", action="append", default=[], help="a fault for the port (a diverging hunt also "
                   "traces the image-chosen pixels in a second run per side)")
    p.add_argument("nb_args", nargs="*")
    ns = p.parse_args(argv)
    args = tuple(ns.nb_args) or SEED_1024
    opts = HuntOptions(nb_args=args, maps=ns.maps, inject=tuple(ns.inject))
    print(f"configuration: {' '.join(args)}")
    renders, hunts = [], []
    for i in range(ns.repeat):
        renders.append(time_renders(args, opts))
        h, timings = time_hunt(opts)
        hunts.append(h)
        print(f"run {i + 1}: renders {renders[-1]:.2f} s, hunt {h:.2f} s "
              f"(inside the hunt: " + ", ".join(f"{k} {v:.2f} s" for k, v in timings.items()) + ")")
    r, h = statistics.median(renders), statistics.median(hunts)
    print(f"two renders (parallel, median of {ns.repeat}): {r:.2f} s")
    print(f"whole hunt (median of {ns.repeat}):            {h:.2f} s")
    print(f"ratio hunt / renders:                         {h / r:.2f}x (goal <= 1.5x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
