"""Throughput of `nbtrace diff` on two 1M-line space-form traces (goal: <= 2 s end to end).

    python benchmarks/diff_throughput.py [--lines 1000000] [--tracemalloc] [--profile]

Writes a reference and a port trace (many pixels x the per-pixel chain of the C build, values
%.17g; the port has hkl_frac x1e10 at every pixel) into a temporary directory, then times
parse + diff in-process, stage by stage, and the CLI end to end in a fresh process. Prints wall
times and peak memory (ru_maxrss of each process; tracemalloc peak with --tracemalloc, which
slows the run, so it is measured in a separate pass).
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


def write_traces(directory: str, n_lines: int) -> tuple[str, str]:
    n_pix = max(1, n_lines // LINES_PER_PIXEL)
    side = int(math.ceil(math.sqrt(n_pix)))
    paths = []
    for prefix, scale in (("TRACE_C", 1.0), ("TRACE_PY", 1e10)):
        path = os.path.join(directory, f"{prefix}.log")
        with open(path, "w") as fh:
            for p in range(n_pix):
                s, f = divmod(p, side)
                out = [f"TRACE_CONFIG: tracing pixel (spixel={s}, fpixel={f})"]
                for k, (name, n) in enumerate(CHAIN):
                    base = 0.1 + 1e-3 * s + 1e-5 * f + k
                    vals = [base * (c + 1) * (scale if name == "hkl_frac" else 1.0) for c in range(n)]
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


def in_process(a_path: str, b_path: str) -> dict[str, float]:
    from nbtrace.diff import diff_traces
    from nbtrace.parse import read_trace
    from nbtrace.report import render
    from nbtrace.spec import spec_for

    t = {}
    t0 = time.perf_counter()
    a = read_trace(a_path)
    b = read_trace(b_path)
    t["parse"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    spec = spec_for(a, b)
    result = diff_traces(a, b, spec)
    t["diff"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    render(result, "json")
    t["report"] = time.perf_counter() - t2
    t["total"] = time.perf_counter() - t0
    t["records"] = len(a.records) + len(b.records)
    t["root"] = result.root_cause.tap if result.root_cause else None
    return t


def diff_only_stages(a_path: str, b_path: str) -> dict[str, float]:
    """align / compare+localize split, on already parsed traces."""
    from nbtrace.align import align
    from nbtrace.diff import diff_traces
    from nbtrace.parse import read_trace
    from nbtrace.spec import spec_for

    a, b = read_trace(a_path), read_trace(b_path)
    spec = spec_for(a, b)
    t0 = time.perf_counter()
    align(a, b, spec)
    t_align = time.perf_counter() - t0
    t1 = time.perf_counter()
    diff_traces(a, b, spec)
    return {"align": t_align, "diff_traces": time.perf_counter() - t1}


def via_cli(a_path: str, b_path: str) -> tuple[float, int, float]:
    code = ("import resource, sys\n"
            "from nbtrace.cli import main\n"
            "try:\n    main(['diff', sys.argv[1], sys.argv[2], '--format', 'json'])\n"
            "except SystemExit as e:\n    rc = e.code\n"
            "sys.stderr.write(f'RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}\\n')\n"
            "sys.exit(rc)\n")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, a_path, b_path], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    rss = float(proc.stderr.strip().rsplit("RSS ", 1)[-1]) if "RSS " in proc.stderr else float("nan")
    return wall, proc.returncode, rss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=1_000_000, help="lines per trace")
    ap.add_argument("--tracemalloc", action="store_true", help="also measure the Python heap peak")
    ap.add_argument("--profile", action="store_true", help="print the top of a cProfile of the diff")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        a_path, b_path = write_traces(d, args.lines)
        size = os.path.getsize(a_path) / 1e6
        n = sum(1 for _ in open(a_path))
        print(f"generated 2 traces of {n} lines ({size:.0f} MB each) in {time.perf_counter() - t0:.1f} s")
        t = in_process(a_path, b_path)
        print(f"in-process, default GC: parse {t['parse']:.2f} s, diff {t['diff']:.2f} s, "
              f"json report {t['report']:.2f} s, total {t['total']:.2f} s")
        import gc

        gc.disable()  # as the CLI does
        t = in_process(a_path, b_path)
        gc.enable()
        print(f"in-process, GC off (as the CLI): parse {t['parse']:.2f} s, diff {t['diff']:.2f} s, json report {t['report']:.2f} s, "
              f"total {t['total']:.2f} s for {t['records']} records; root cause: {t['root']}")
        print(f"in-process peak RSS: {peak_rss_mb():.0f} MB")
        s = diff_only_stages(a_path, b_path)
        print(f"stages on parsed traces: align {s['align']:.2f} s; align+compare+localize {s['diff_traces']:.2f} s")
        wall, rc, rss = via_cli(a_path, b_path)
        print(f"CLI `nbtrace diff A B --format json`: {wall:.2f} s wall (exit {rc}), peak RSS {rss:.0f} MB")
        if args.tracemalloc:
            import tracemalloc

            tracemalloc.start()
            in_process(a_path, b_path)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            print(f"tracemalloc peak (Python heap, parse+diff): {peak / 1e6:.0f} MB")
        if args.profile:
            import cProfile
            import pstats

            from nbtrace.diff import diff_traces
            from nbtrace.parse import read_trace
            from nbtrace.spec import spec_for

            a, b = read_trace(a_path), read_trace(b_path)
            spec = spec_for(a, b)
            pr = cProfile.Profile()
            pr.enable()
            diff_traces(a, b, spec)
            pr.disable()
            pstats.Stats(pr).sort_stats("cumulative").print_stats(15)


if __name__ == "__main__":
    main()
