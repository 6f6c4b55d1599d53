"""Wall time of the C reference on the 4096^2 seed configuration (and smaller sizes).

    python benchmarks/c_speed.py [--pixels 4096] [--repeat 3] [--threads 2]

Prints one line per run and the best time; writes the float image to a temporary directory.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time

from nbtrace.run.cbuild import ensure_built

SEED = ["-lambda", "0.5", "-cell", "100", "100", "100", "90", "90", "90", "-N", "5", "-default_F", "100",
        "-distance", "500", "-pixel", "0.05"]


def time_once(exe, pixels: int, threads: int, workdir: str) -> float:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    args = [str(exe), *SEED, "-detpixels", str(pixels), "-floatfile", os.path.join(workdir, "img.bin")]
    start = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True, env=env, cwd=workdir)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pixels", type=int, default=4096)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    opts = ap.parse_args()
    exe = ensure_built()
    with tempfile.TemporaryDirectory() as tmp:
        times = [time_once(exe, opts.pixels, opts.threads, tmp) for _ in range(opts.repeat)]
    for i, t in enumerate(times):
        print(f"run {i}: {t:.3f} s")
    print(f"C reference {opts.pixels}^2 seed config, {opts.threads} thread(s): best {min(times):.3f} s "
          f"({opts.pixels**2 / min(times) / 1e6:.1f} Mpixel/s)  binary {exe}")


if __name__ == "__main__":
    main()
