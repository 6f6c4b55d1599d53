"""Speed and memory of the PyTorch simulator beside the C reference (issue 3 targets).

    python benchmarks/sim_speed.py                 # the 4096² seed configuration, 3 rounds
    python benchmarks/sim_speed.py --size 1024     # smaller
    python benchmarks/sim_speed.py --repeat 5 --no-compile

Each measurement runs in its own process so that peak RSS is that run's own, and the rounds
interleave the producers so that a burst of load from other jobs hits them alike. "warm" is
the render time after torch is imported, the setup is built and one full chunk has been
rendered (for ``-compile`` that first chunk is where the kernel is compiled: it is reported
as the cold compile time, once with an empty inductor cache and then with the on-disk cache
a second run finds). The C time is its whole process wall time (it has no warm-up to
exclude). Targets: float64 ≤ 0.5× C, float32 ≤ 0.3× C, peak RSS ≤ 1.5 GB. Nothing here
asserts: it prints figures, best and median over the rounds, wall and CPU (user+sys).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SEED = "-lambda 0.5 -cell 100 100 100 90 90 90 -N 5 -default_F 100 -distance 500 -pixel 0.05"
TARGETS = {"float64": 0.5, "float32": 0.3}


def _args(size: int) -> list[str]:
    return SEED.split() + ["-detpixels", str(size)]


def child(dtype: str, size: int, threads: int, compiled: bool) -> None:
    """Runs inside the measured process; prints one JSON line."""
    import torch

    from nbtrace.sim.cli import parse_args
    from nbtrace.sim.kernel import chunk_size, render_frame
    from nbtrace.sim.setup import build_setup

    # the simulator's own scheme (simulator/run.py): one intra-op thread, chunks in parallel
    # (a compiled kernel instead gets ``threads`` OpenMP threads inside render_frame)
    torch.set_num_threads(1)
    extra = ["-dtype", dtype] + (["-compile"] if compiled else [])
    with torch.no_grad():
        t0 = time.perf_counter()
        setup = build_setup(parse_args(_args(size) + extra))
        t_setup = time.perf_counter() - t0
        # warm-up on exactly one full chunk, so a compiled kernel is built for the chunk length
        rows = max(1, min(size, chunk_size(setup) // size))
        warm = dataclasses.replace(setup, roi=(0, size - 1, 0, rows - 1))
        t0 = time.perf_counter()
        render_frame(warm, workers=threads)
        t_warm = time.perf_counter() - t0
        self_before = resource.getrusage(resource.RUSAGE_SELF)
        kids_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        image = render_frame(setup, workers=threads)
        t_render = time.perf_counter() - t0
        self_after = resource.getrusage(resource.RUSAGE_SELF)
        kids_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # large eager frames are rendered by forked worker processes (nbtrace.sim.kernel._run_forked):
    # their CPU time and page faults count too, and their memory adds to this process's
    kid_cpu = (kids_after.ru_utime + kids_after.ru_stime) - (kids_before.ru_utime + kids_before.ru_stime)
    cpu = (self_after.ru_utime + self_after.ru_stime) - (self_before.ru_utime + self_before.ru_stime) + kid_cpu
    faults = (self_after.ru_minflt - self_before.ru_minflt) + (kids_after.ru_minflt - kids_before.ru_minflt)
    workers = threads if kid_cpu > 0 else 0
    print(json.dumps({"setup_s": t_setup, "warmup_s": t_warm, "render_s": t_render, "cpu_s": cpu,
                      "faults": faults, "workers": workers, "worker_rss_mb": kids_after.ru_maxrss / 1024.0,
                      "self_rss_mb": self_after.ru_maxrss / 1024.0, "sum": float(image.double().sum())}))


def _wait(proc: subprocess.Popen) -> tuple[float, float]:
    """(CPU seconds, peak RSS MB) of a finished child, from wait4."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024.0


def run_python(dtype: str, size: int, threads: int, compiled: bool, cache_dir: str | None = None) -> dict:
    cmd = [sys.executable, __file__, "--child", dtype, "--size", str(size), "--threads", str(threads)]
    env = dict(os.environ)
    if cache_dir is not None:
        env["TORCHINDUCTOR_CACHE_DIR"] = cache_dir
    proc = subprocess.Popen(cmd + (["--compiled"] if compiled else []), stdout=subprocess.PIPE, text=True, env=env)
    out = proc.stdout.read()
    _, rss = _wait(proc)
    if proc.returncode != 0:
        return {"error": f"exit {proc.returncode}"}
    result = json.loads(out.strip().splitlines()[-1])
    # with forked workers: this process plus each worker at the largest worker's peak, an upper
    # bound (the shared image and the pages a worker shares with its parent count twice)
    result["rss_mb"] = (result["self_rss_mb"] + result["workers"] * result["worker_rss_mb"]
                        if result.get("workers") else rss)
    return result


def run_c(size: int, threads: int) -> dict:
    try:
        from nbtrace.run.cbuild import ensure_built
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


def _producers(no_compile: bool, threads: int) -> list[tuple[str, str | None, bool, int]]:
    """(label, dtype or None for C, compiled, threads)."""
    rows = [("C reference", None, False, threads)]
    for compiled in (False,) if no_compile else (False, True):
        for dtype in ("float64", "float32"):
            rows.append((f"PyTorch {dtype}" + (" -compile" if compiled else ""), dtype, compiled, threads))
    if not no_compile and threads > 1:
        # the compiled kernel's OpenMP loop is statically split: on a busy machine a thread
        # that loses its core stalls the whole frame; one thread shows the floor
        for dtype in ("float64", "float32"):
            rows.append((f"PyTorch {dtype} -compile 1t", dtype, True, 1))
    return rows


def _cold_compiles(size: int, threads: int) -> dict:
    """Warm-up (= compile) time of a compiled run with an empty inductor cache, per dtype."""
    cold = {}
    for dtype in ("float64", "float32"):
        with tempfile.TemporaryDirectory() as cache:
            r = run_python(dtype, size, threads, True, cache_dir=cache)
        cold[dtype] = r.get("warmup_s")
    return cold


def _stats(values: list[float]) -> tuple[float, float]:
    return min(values), statistics.median(values)


def _load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=4096, help="detector pixels per side (default 4096)")
    ap.add_argument("--threads", type=int, default=2, help="threads for torch and OpenMP (default 2)")
    ap.add_argument("--repeat", type=int, default=3, help="rounds over all producers (default 3)")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    ap.add_argument("--child", choices=["float64", "float32"], help=argparse.SUPPRESS)
    ap.add_argument("--compiled", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.size, args.threads, args.compiled)
        return 0
    print(f"seed configuration {SEED} -detpixels {args.size}  ({args.threads} threads, {args.repeat} rounds)")
    print(f"load average (1/5/15 min) before: {_load()}")
    cold = {} if args.no_compile else _cold_compiles(args.size, args.threads)
    producers = _producers(args.no_compile, args.threads)
    runs: dict[str, list[dict]] = {label: [] for label, *_ in producers}
    for _ in range(args.repeat):
        for label, dtype, compiled, threads in producers:
            r = run_c(args.size, threads) if dtype is None else run_python(dtype, args.size, threads, compiled)
            runs[label].append(r)
    print(f"load average (1/5/15 min) after:  {_load()}")
    _report(runs, producers, cold)
    return 0


def _report(runs: dict, producers: list, cold: dict) -> None:
    c_ok = [r for r in runs["C reference"] if "error" not in r]
    c_wall = _stats([r["render_s"] for r in c_ok]) if c_ok else None
    c_cpu = _stats([r["cpu_s"] for r in c_ok]) if c_ok else None
    print(f"{'producer':<28} {'wall best':>9} {'median':>7} {'× C':>6} {'target':>7} "
          f"{'CPU best':>9} {'median':>7} {'× C':>6} {'RSS MB':>7} {'faults':>8} {'warm-up s':>10}")
    for label, dtype, _, _ in producers:
        ok = [r for r in runs[label] if "error" not in r]
        if not ok:
            print(f"{label:<28} {runs[label][0]['error']}")
            continue
        wall, cpu = _stats([r["render_s"] for r in ok]), _stats([r["cpu_s"] for r in ok])
        # ratios of medians: the figure least moved by one unlucky round
        ratio = wall[1] / c_wall[1] if c_wall else float("nan")
        cpu_ratio = cpu[1] / c_cpu[1] if c_cpu else float("nan")
        target = f"≤{TARGETS[dtype]}" if dtype in TARGETS else ""
        warm = f"{statistics.median(r['warmup_s'] for r in ok):10.2f}" if "warmup_s" in ok[0] else ""
        faults = f"{statistics.median(r['faults'] for r in ok):8.0f}" if "faults" in ok[0] else f"{'':8}"
        print(f"{label:<28} {wall[0]:9.3f} {wall[1]:7.3f} {ratio:6.2f} {target:>7} "
              f"{cpu[0]:9.2f} {cpu[1]:7.2f} {cpu_ratio:6.2f} {max(r['rss_mb'] for r in ok):7.0f} {faults} {warm}")
    for dtype, t in cold.items():
        if t is not None:
            print(f"-compile {dtype}: cold compile (empty inductor cache) {t:.1f} s; "
                  "the warm-up column is the same step with the cache a previous run left")
    _sum_checks(runs)
    print("× C: ratio of medians. Times are warm renders (C: whole process, incl. writing its float image).")
    if any(label.endswith(" 1t") for label in runs):
        print("'1t' rows: the compiled kernel on one thread, still against the C's --threads. The other -compile rows")
        print("  ask for --threads, in OpenMP dynamic mode: GNU OpenMP grants n − (15-min load average), at least 1.")
    print("faults: minor page faults during the render (the image's own first touch is 32768 per 4096² float64).")
    print("Eager rows: frames of >= 2^20 pixels are rendered by --threads forked worker processes (threads contend")
    print("  for the GIL around every op); CPU and faults include the workers, RSS is the parent plus each worker at")
    print("  the largest worker's peak (an upper bound: shared pages count more than once).")
    print("CPU s (user+sys) is the fairer figure when other jobs share the machine. RSS target: ≤ 1536 MB.")


def _sum_checks(runs: dict) -> None:
    sums = {label: rs[0]["sum"] for label, rs in runs.items() if rs and "sum" in rs[0]}
    for dtype in ("float64", "float32"):
        eager, comp = sums.get(f"PyTorch {dtype}"), sums.get(f"PyTorch {dtype} -compile")
        if eager and comp:
            print(f"{dtype}: image sum, -compile vs eager: relative difference {comp / eager - 1:.2e}")
    if sums.get("PyTorch float64") and sums.get("PyTorch float32"):
        print(f"float32 vs float64 image sum: relative difference {sums['PyTorch float32'] / sums['PyTorch float64'] - 1:.2e}")


if __name__ == "__main__":
    sys.exit(main())
