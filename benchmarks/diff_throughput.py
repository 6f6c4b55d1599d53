"""Throughput of `nbtrace diff` on two 1M-line space-form traces (goal: <= 2 s end to end).

    python benchmarks/diff_throughput.py [--lines 1000000] [--tracemalloc] [--profile]

Writes a reference and a port trace (many pixels x the per-pixel chain of the C build, values
%.17g; the port has hkl_frac x1e10 at every pixel, and the lattice and intensity taps it feeds
halved, so the divergence reaches the image and is the root cause) into a temporary directory, then times each
stage in-process (wall and CPU: the machine may be shared, so CPU seconds are the steadier
figure) and the CLI end to end in fresh processes. Prints peak memory (ru_maxrss of the parent
and of the parse worker; tracemalloc peak with --tracemalloc, measured in a separate pass).
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import subprocess
import sys
import tempfile
import time

CHAIN = [  # (name, arity) of the per-pixel chain, then the scaling block
    ("pix0_vector_meters", 3), ("fdet_vec", 3), ("sdet_vec", 3), ("pixel_pos_meters", 3),
    ("R_distance_meters", 1), ("omega_pixel_sr", 1), ("close_distance_meters", 1),
    ("obliquity_factor", 1), ("diffracted_vec", 3), ("incident_vec", 3), ("lambda_meters", 1),
    ("lambda_angstroms", 1), ("scattering_vec_A_inv", 3), ("rot_a_angstroms", 3),
    ("rot_b_angstroms", 3), ("rot_c_angstroms", 3), ("rot_a_star_A_inv", 3),
    ("rot_b_star_A_inv", 3), ("rot_c_star_A_inv", 3), ("hkl_frac", 3), ("hkl_rounded", 3),
    ("F_latt_a", 1), ("F_latt_b", 1), ("F_latt_c", 1), ("F_latt", 1), ("F_cell", 1),
    ("I_before_scaling", 1), ("r_e_meters", 1), ("r_e_sqr", 1), ("fluence_photons_per_m2", 1),
    ("steps", 1), ("capture_fraction", 1), ("polar", 1), ("omega_pixel", 1), ("cos_2theta", 1),
    ("I_pixel_final", 1), ("floatimage_accumulated", 1),
]
LINES_PER_PIXEL = len(CHAIN) + 1  # + the TRACE_CONFIG header
# the port's fault: hkl_frac x1e10, and what it feeds (F_latt and the intensities) changed with it
PORT_SCALE = {"hkl_frac": 1e10, **{n: 0.5 for n in ("F_latt_a", "F_latt_b", "F_latt_c", "F_latt", "I_before_scaling",
                                                 "I_pixel_final", "floatimage_accumulated")}}


def write_traces(directory: str, n_lines: int) -> tuple[str, str]:
    n_pix = max(1, n_lines // LINES_PER_PIXEL)
    side = int(math.ceil(math.sqrt(n_pix)))
    paths = []
    for prefix, port in (("TRACE_C", False), ("TRACE_PY", True)):
        path = os.path.join(directory, f"{prefix}.log")
        with open(path, "w") as fh:
            for p in range(n_pix):
                s, f = divmod(p, side)
                out = [f"TRACE_CONFIG: tracing pixel (spixel={s}, fpixel={f})"]
                for k, (name, n) in enumerate(CHAIN):
                    base = 0.1 + 1e-3 * s + 1e-5 * f + k
                    vals = [base * (c + 1) * (PORT_SCALE.get(name, 1.0) if port else 1.0) for c in range(n)]
                    if name in ("steps", "hkl_rounded"):
                        text = " ".join(str(int(v)) for v in vals)
                    else:
                        text = " ".join(format(v, ".17g") for v in vals)
                    out.append(f"{prefix}: {name} {text}")
                fh.write("\n".join(out) + "\n")
        paths.append(path)
    return paths[0], paths[1]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class Clock:
    """Wall and CPU seconds of a stage (CPU of this process only; the machine may be shared)."""

    def __init__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def __str__(self) -> str:
        return f"{time.perf_counter() - self.wall:.2f} s wall / {time.process_time() - self.cpu:.2f} s CPU"


def stages(a_path: str, b_path: str) -> tuple[str, object]:
    """Each stage timed on its own, as the CLI runs them (GC off)."""
    from nbtrace.engine.align import align
    from nbtrace.engine.diff import diff_traces
    from nbtrace.engine.parse import read_trace, read_traces
    from nbtrace.report import render
    from nbtrace.engine.spec import spec_for

    out = []
    c = Clock()
    a = read_trace(a_path)
    out.append(f"  parse A alone                 {c}")
    c = Clock()
    a, b = read_traces(a_path, b_path)
    out.append(f"  parse A and B (read_traces)   {c}  (B in a worker process)")
    spec = spec_for(a, b)
    c = Clock()
    align(a, b, spec)
    out.append(f"  align                         {c}")
    c = Clock()
    result = diff_traces(a, b, spec)
    out.append(f"  diff (align+compare+localize) {c}")
    c = Clock()
    render(result, "json")
    render(result, "console")
    out.append(f"  report (json + console)       {c}")
    return "\n".join(out), result


def via_cli(a_path: str, b_path: str) -> tuple[float, float, float, int, float]:
    """Wall seconds, CPU seconds of the CLI process and of its helper processes (B's parse worker,
    the second half of the comparisons), exit code, peak RSS (MB)."""
    code = ("import resource, sys\n"
            "from nbtrace.cli import main\n"
            "try:\n    main(['diff', sys.argv[1], sys.argv[2], '--format', 'json'])\n"
            "except SystemExit as e:\n    rc = e.code\n"
            "me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)\n"
            "sys.stderr.write(f'STATS {me.ru_utime + me.ru_stime} {kids.ru_utime + kids.ru_stime} '\n"
            "                 f'{max(me.ru_maxrss, kids.ru_maxrss) / 1024.0}\\n')\n"
            "sys.exit(rc)\n")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, a_path, b_path], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    if "STATS " not in proc.stderr:
        raise SystemExit(f"the CLI failed: {proc.stderr.strip()}")
    cpu_main, cpu_worker, rss = map(float, proc.stderr.rsplit("STATS ", 1)[1].split())
    return wall, cpu_main, cpu_worker, proc.returncode, rss


def _best(runs, k: int) -> float:
    return min(r[k] for r in runs)


def _median(runs, k: int) -> float:
    return sorted(r[k] for r in runs)[len(runs) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=1_000_000, help="lines per trace")
    ap.add_argument("--runs", type=int, default=5, help="CLI runs (the best and the median are printed)")
    ap.add_argument("--tracemalloc", action="store_true", help="also measure the Python heap peak")
    ap.add_argument("--profile", action="store_true", help="print the top of a cProfile of parse + diff")
    args = ap.parse_args()
    import gc

    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        a_path, b_path = write_traces(d, args.lines)
        size = os.path.getsize(a_path) / 1e6
        n = sum(1 for _ in open(a_path))
        print(f"generated 2 traces of {n} lines ({size:.0f} MB each) in {time.perf_counter() - t0:.1f} s; "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        gc.disable()  # as the CLI does
        text, result = stages(a_path, b_path)
        gc.enable()
        print("in-process stages (GC off, as the CLI):")
        print(text)
        print(f"  root cause: {result.root_cause.tap if result.root_cause else None}; "
              f"peak RSS of this process so far {peak_rss_mb():.0f} MB")
        runs = [via_cli(a_path, b_path) for _ in range(args.runs)]
        print(f"CLI `nbtrace diff A B --format json` (fresh process, {args.runs} runs; goal <= 2 s wall), "
              f"exit {runs[0][3]}:")
        for wall, cpu_main, cpu_worker, _, rss in runs:
            print(f"  run: {wall:.2f} s wall, CPU {cpu_main:.2f} s CLI process + {cpu_worker:.2f} s helpers, "
                  f"peak RSS {rss:.0f} MB")
        print(f"  wall   best {_best(runs, 0):.2f} s, median {_median(runs, 0):.2f} s")
        print(f"  CPU of the CLI process (its parse of A, then the diff with half of the comparisons: the "
              f"critical path) "
              f"best {_best(runs, 1):.2f} s, median {_median(runs, 1):.2f} s")
        print(f"  CPU of the helper processes (B's parse, then half of the tap comparisons) best {_best(runs, 2):.2f} s, "
              f"median {_median(runs, 2):.2f} s")
        print(f"  peak RSS (larger of CLI process and worker) {max(r[4] for r in runs):.0f} MB; on an idle "
              f"2-core machine the wall time is about the CLI process's CPU")
        print(f"load average after: {os.getloadavg()[0]:.1f}")
        if args.tracemalloc:
            import tracemalloc

            from nbtrace.engine.diff import diff_traces
            from nbtrace.engine.parse import read_traces
            from nbtrace.engine.spec import spec_for

            tracemalloc.start()
            a, b = read_traces(a_path, b_path)
            diff_traces(a, b, spec_for(a, b))
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            print(f"tracemalloc peak (Python heap of the parent, parse+diff): {peak / 1e6:.0f} MB")
        if args.profile:
            import cProfile
            import pstats

            from nbtrace.engine.diff import diff_traces
            from nbtrace.engine.parse import read_trace
            from nbtrace.engine.spec import spec_for

            pr = cProfile.Profile()
            pr.enable()
            a, b = read_trace(a_path), read_trace(b_path)
            diff_traces(a, b, spec_for(a, b))
            pr.disable()
            pstats.Stats(pr).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
