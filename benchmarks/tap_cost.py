"""Cost of nbtrace.tap in a vectorised 4096² render: no session, and one traced pixel.

The render is the toy port's pipeline (examples/toy_port: geometry, scattering vector, h/k/l,
lattice factor, intensity; 18 taps) in PyTorch float64, in chunks of rows as a production port
renders a large frame (so the pixel-selection work runs once per chunk and tap). Three variants
are timed, best of --repeat runs each:

* ``plain``: the same code with ``tap`` replaced by a function returning its argument;
* ``taps, no session``: the real ``nbtrace.tap.tap`` with no session (goal: < 1 % over plain);
* ``taps, 1 pixel``: a session tracing one pixel, trace kept in memory (goal: < 5 ms over the
  untraced render).

The goals are checked on the CPU time spent inside ``tap()`` (thread time, so that waiting for a
core on a shared machine is not counted); end-to-end wall times are printed too.

Also printed: the cost of one ``tap`` call with no session (timeit), times the calls per render.

    python benchmarks/tap_cost.py [--size 4096] [--rows 256] [--repeat 5]
"""

from __future__ import annotations

import argparse
import math
import time
import timeit

import torch

import nbtrace.tap as T

PIXEL, DISTANCE, LAMBDA, CELL, N = 1e-4, 0.1, 1e-10, 50.0, 5
R_E_SQR, FLUENCE = 7.94079248018965e-30, 1e20


def render(size: int, rows: int, tap) -> torch.Tensor:
    image = torch.empty(size, size, dtype=torch.float64)
    fidx = torch.arange(size, dtype=torch.float64)
    axes = CELL * 1e-10 * torch.eye(3, dtype=torch.float64)
    inc = tap("incident_vec", torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64), pixel_axes=None)
    lam = tap("lambda_meters", LAMBDA, pixel_axes=None)
    r_e_sqr = tap("r_e_sqr", R_E_SQR, pixel_axes=None)  # values shared by every pixel: tapped once
    fluence = tap("fluence_photons_per_m2", FLUENCE, pixel_axes=None)
    for s0 in range(0, size, rows):
        o = (s0, 0)
        sidx = torch.arange(s0, min(s0 + rows, size), dtype=torch.float64)
        s, f = torch.meshgrid(sidx, fidx, indexing="ij")
        pos = torch.stack([torch.full_like(s, DISTANCE), (f + 0.5) * PIXEL - size * PIXEL / 2,
                           (s + 0.5) * PIXEL - size * PIXEL / 2], dim=-1)
        pos = tap("pixel_pos_meters", pos, origin=o)
        R = tap("R_distance_meters", torch.linalg.vector_norm(pos, dim=-1), origin=o)
        d = tap("diffracted_vec", pos / R[..., None], origin=o)
        q = tap("scattering_vec_A_inv", (d - inc) / lam, origin=o)
        hkl = tap("hkl_frac", q @ axes.T, origin=o)
        tap("hkl_rounded", torch.ceil(hkl - 0.5), origin=o, integer=True)
        sin_h = torch.sin(math.pi * hkl)
        near = sin_h.abs() < 1e-12
        lat = torch.where(near, float(N), torch.sin(math.pi * N * hkl) / torch.where(near, 1.0, sin_h))
        Fa = tap("F_latt_a", lat[..., 0], origin=o)
        Fb = tap("F_latt_b", lat[..., 1], origin=o)
        Fc = tap("F_latt_c", lat[..., 2], origin=o)
        F_latt = tap("F_latt", Fa * Fb * Fc, origin=o)
        F_cell = tap("F_cell", torch.full_like(F_latt, 100.0), origin=o)
        I = tap("I_before_scaling", F_cell * F_cell * F_latt * F_latt, origin=o)
        omega = tap("omega_pixel_sr", PIXEL * PIXEL / (R * R) * DISTANCE / R, origin=o)
        image[s0:s0 + rows] = tap("I_pixel_final", r_e_sqr * fluence * I * omega, origin=o)
    return image


TAPS_PER_CHUNK = 14  # per-pixel taps inside the chunk loop (+4 shared values tapped once)


def best(fn, repeat: int, clock=time.perf_counter) -> float:
    times = []
    for _ in range(repeat):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--rows", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    size, rows = args.size, args.rows
    chunks = math.ceil(size / rows)
    calls = chunks * TAPS_PER_CHUNK + 4

    def identity(name, value, **kw):
        return value

    pixel = (size // 2 + 3, size // 2 + 20)
    inside = {"s": 0.0}

    def timed(name, value, **kw):
        # CPU time of this thread: on a shared machine, waiting for a core is not the tap's cost
        t0 = time.thread_time()
        out = T.tap(name, value, **kw)
        inside["s"] += time.thread_time() - t0
        return out

    def untraced():
        render(size, rows, timed)

    def traced():
        with T.session(pixels=[pixel]) as s:
            render(size, rows, timed)
        assert "F_latt" in s.text()

    variants = {"plain": lambda: render(size, rows, identity), "nosess": untraced, "one": traced}
    traced()  # first-use costs (imports, allocator warm-up) are not the steady state
    times = {k: [] for k in variants}
    in_taps = {k: [] for k in variants}
    cpu = {k: [] for k in variants}
    for _ in range(args.repeat):  # interleaved: a shared machine's load hits every variant alike
        for k, fn in variants.items():
            inside["s"] = 0.0
            t0, c0 = time.perf_counter(), time.thread_time()
            fn()
            times[k].append(time.perf_counter() - t0)
            cpu[k].append(time.thread_time() - c0)
            in_taps[k].append(inside["s"])
    plain, nosess, one = (min(times[k]) for k in ("plain", "nosess", "one"))
    cpu_plain, cpu_none, cpu_one = (min(cpu[k]) for k in ("plain", "nosess", "one"))
    tap_none, tap_one = min(in_taps["nosess"]), min(in_taps["one"])
    x = torch.zeros(3)
    per_call = min(timeit.repeat(lambda: T.tap("hkl_frac", x, origin=(0, 0)), number=100_000, repeat=5)) / 100_000
    print(f"render {size}x{size}, {chunks} chunks of {rows} rows, {calls} tap calls per render, "
          f"best of {args.repeat}, torch {torch.__version__}, 1 thread")
    print(f"  end to end (noisy on a shared machine): plain {plain * 1e3:.1f} ms, taps no session "
          f"{nosess * 1e3:.1f} ms, 1 traced pixel {one * 1e3:.1f} ms")
    print(f"  render CPU time (thread): plain {cpu_plain * 1e3:.1f} ms, taps no session {cpu_none * 1e3:.1f} ms "
          f"({100 * (cpu_none - cpu_plain) / cpu_plain:+.2f} %), 1 traced pixel {cpu_one * 1e3:.1f} ms "
          f"({(cpu_one - cpu_none) * 1e3:+.1f} ms)")
    print(f"  CPU time inside tap(), no session  {tap_none * 1e3:8.3f} ms = {100 * tap_none / plain:.4f} % of the "
          f"render (goal < 1 %); one call {per_call * 1e9:.0f} ns")
    print(f"  CPU time inside tap(), 1 pixel     {tap_one * 1e3:8.3f} ms, {(tap_one - tap_none) * 1e3:.3f} ms more "
          f"than with no session (goal < 5 ms over the untraced render)")


if __name__ == "__main__":
    main()
