"""Speed and memory of the PyTorch simulator beside the C reference (issue 3 targets).

    python benchmarks/sim_speed.py               # the 4096² seed configuration
    python benchmarks/sim_speed.py --size 1024   # smaller

Each measurement runs in its own process so that peak RSS is that run's own. "warm" is the
render time after torch is imported, the setup is built and a 256×256 warm-up region has been
rendered; the C time is its whole process wall time (it has no warm-up to exclude). Targets:
float64 ≤ 0.5× C, float32 ≤ 0.3× C, peak RSS ≤ 1.5 GB. Nothing here asserts: it prints figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SEED = "-lambda 0.5 -cell 100 100 100 90 90 90 -N 5 -default_F 100 -distance 500 -pixel 0.05"


def _args(size: int) -> list[str]:
    return SEED.split() + ["-detpixels", str(size)]


def child(dtype: str, size: int, threads: int, compiled: bool) -> None:
    """Runs inside the measured process; prints one JSON line."""
    import torch

    from simulator.cli import parse_args
    from simulator.kernel import chunk_size, render_frame
    from simulator.setup import build_setup

    # the simulator's own scheme (simulator/run.py): one intra-op thread, chunks in parallel
    torch.set_num_threads(1)
    extra = ["-dtype", dtype] + (["-compile"] if compiled else [])
    with torch.no_grad():
        t0 = time.perf_counter()
        setup = build_setup(parse_args(_args(size) + extra))
        t_setup = time.perf_counter() - t0
        # warm-up on exactly one full chunk, so a compiled core is built for the chunk length
        rows = max(1, min(size, chunk_size(setup) // size))
        warm = dataclasses.replace(setup, roi=(0, size - 1, 0, rows - 1))
        t0 = time.perf_counter()
        render_frame(warm, workers=threads)
        t_warm = time.perf_counter() - t0
        cpu0 = _cpu_self()
        t0 = time.perf_counter()
        image = render_frame(setup, workers=threads)
        t_render = time.perf_counter() - t0
        cpu_render = _cpu_self() - cpu0
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"setup_s": t_setup, "warmup_s": t_warm, "render_s": t_render, "cpu_s": cpu_render,
                      "rss_mb": rss_kb / 1024.0,
                      "sum": float(image.double().sum())}))


def _cpu_self() -> float:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def _wait(proc: subprocess.Popen) -> tuple[float, float]:
    """(CPU seconds, peak RSS MB) of a finished child, from wait4."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024.0


def run_python(dtype: str, size: int, threads: int, compiled: bool) -> dict:
    cmd = [sys.executable, __file__, "--child", dtype, "--size", str(size), "--threads", str(threads)]
    proc = subprocess.Popen(cmd + (["--compiled"] if compiled else []), stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, rss = _wait(proc)
    if proc.returncode != 0:
        return {"error": f"exit {proc.returncode}"}
    result = json.loads(out.strip().splitlines()[-1])
    result["rss_mb"] = rss
    return result


def run_c(size: int, threads: int) -> dict:
    try:
        from nbtrace.cbuild import ensure_built
        binary = ensure_built()
    except Exception as exc:  # the C side may not exist yet or fail to build: say so, don't crash
        return {"error": f"C reference unavailable: {exc}"}
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        proc = subprocess.Popen([str(binary), *_args(size), "-floatfile", str(Path(tmp) / "c.bin")],
                                cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cpu, rss = _wait(proc)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            return {"error": f"C reference exited {proc.returncode}"}
    return {"render_s": wall, "cpu_s": cpu, "rss_mb": rss}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=4096, help="detector pixels per side (default 4096)")
    ap.add_argument("--threads", type=int, default=2, help="threads for torch and OpenMP (default 2)")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    ap.add_argument("--child", choices=["float64", "float32"], help=argparse.SUPPRESS)
    ap.add_argument("--compiled", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.size, args.threads, args.compiled)
        return 0
    print(f"seed configuration {SEED} -detpixels {args.size}  ({args.threads} threads)")
    c = run_c(args.size, args.threads)
    rows = [("C reference", c)]
    for compiled in (False,) if args.no_compile else (False, True):
        for dtype in ("float64", "float32"):
            label = f"PyTorch {dtype}" + (" -compile" if compiled else "")
            rows.append((label, run_python(dtype, args.size, args.threads, compiled)))
    targets = {"float64": 0.5, "float32": 0.3}
    print(f"{'producer':<26} {'wall s':>9} {'× C':>7} {'target':>7} {'CPU s':>8} {'× C':>7} {'peak RSS MB':>12} {'warm-up s':>10}")
    for name, r in rows:
        if "error" in r:
            print(f"{name:<26} {r['error']}")
            continue
        ratio = r["render_s"] / c["render_s"] if "render_s" in c else float("nan")
        dt = name.split()[1] if name.startswith("PyTorch") else ""
        target = f"≤{targets[dt]}" if dt in targets else ""
        warm = f"{r['warmup_s']:10.1f}" if "warmup_s" in r else ""
        cpu_ratio = r["cpu_s"] / c["cpu_s"] if c.get("cpu_s") else float("nan")
        print(f"{name:<26} {r['render_s']:9.3f} {ratio:7.2f} {target:>7} {r['cpu_s']:8.2f} {cpu_ratio:7.2f} "
              f"{r['rss_mb']:12.0f} {warm}")
    sums = {name: r["sum"] for name, r in rows if "sum" in r}
    for dtype in ("float64", "float32"):
        eager, comp = sums.get(f"PyTorch {dtype}"), sums.get(f"PyTorch {dtype} -compile")
        if eager and comp:
            print(f"{dtype}: image sum, -compile vs eager: relative difference {comp / eager - 1:.2e}")
    if sums.get("PyTorch float64") and sums.get("PyTorch float32"):
        print(f"float32 vs float64 image sum: relative difference {sums['PyTorch float32'] / sums['PyTorch float64'] - 1:.2e}")
    print("RSS target: ≤ 1536 MB. Times are warm renders (C: whole process); warm-up includes any compilation.")
    print("CPU s (user+sys) is the fairer figure when other jobs share the machine.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
