"""The toy's reference: a plain per-pixel loop, written like the C program it stands for.

    python reference.py --trace 32 52 --trace 40 45 > reference.log

prints, for each traced pixel, every intermediate value as ``TRACE_REF: name v1 v2 ...`` with
%.17g (the space dialect of nbtrace), and the image sum on stderr.
"""

import argparse
import math
import sys

SIZE = 64            # pixels per side
PIXEL = 1e-4         # m
DISTANCE = 0.1       # m
LAMBDA = 1e-10       # m
CELL = 50.0          # Å, cubic
N = 5                # unit cells per axis
F_CELL = 100.0       # electrons
FLUX, EXPOSURE, BEAMSIZE = 1e12, 1.0, 1e-4   # photons/s, s, m
R_E_SQR = 7.94079248018965e-30               # m²


def lattice(h):
    """sin(π N h) / sin(π h), N at integer h."""
    s = math.sin(math.pi * h)
    return N if abs(s) < 1e-12 else math.sin(math.pi * N * h) / s


def pixel(s, f, out):
    tap = (lambda name, *v: out.write(f"TRACE_REF: {name} " + " ".join(f"{x:.17g}" for x in v) + "\n")) if out else (lambda *a: None)
    pos = (DISTANCE, (f + 0.5) * PIXEL - SIZE * PIXEL / 2, (s + 0.5) * PIXEL - SIZE * PIXEL / 2)
    tap("pixel_pos_meters", *pos)
    R = math.sqrt(sum(x * x for x in pos))
    tap("R_distance_meters", R)
    d = tuple(x / R for x in pos)
    tap("diffracted_vec", *d)
    inc = (1.0, 0.0, 0.0)
    tap("incident_vec", *inc)
    tap("lambda_meters", LAMBDA)
    q = tuple((d[i] - inc[i]) / LAMBDA for i in range(3))            # m⁻¹
    tap("scattering_vec_A_inv", *q)
    axes = ((CELL, 0.0, 0.0), (0.0, CELL, 0.0), (0.0, 0.0, CELL))  # Å
    for name, a in zip(("rot_a_angstroms", "rot_b_angstroms", "rot_c_angstroms"), axes):
        tap(name, *a)
    hkl = tuple(sum(a[i] * 1e-10 * q[i] for i in range(3)) for a in axes)
    tap("hkl_frac", *hkl)
    Fa, Fb, Fc = (lattice(x) for x in hkl)
    tap("F_latt_a", Fa); tap("F_latt_b", Fb); tap("F_latt_c", Fc)
    F_latt = Fa * Fb * Fc
    tap("F_latt", F_latt)
    tap("F_cell", F_CELL)
    I = F_CELL * F_CELL * F_latt * F_latt
    tap("I_before_scaling", I)
    omega = PIXEL * PIXEL / (R * R) * DISTANCE / R                   # sr
    tap("omega_pixel_sr", omega)
    tap("r_e_sqr", R_E_SQR)
    fluence = FLUX * EXPOSURE / (BEAMSIZE * BEAMSIZE)                # photons/m²
    tap("fluence_photons_per_m2", fluence)
    photons = R_E_SQR * fluence * I * omega
    tap("I_pixel_final", photons)
    return photons


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trace", nargs=2, type=int, action="append", default=[], metavar=("SLOW", "FAST"))
    args = ap.parse_args()
    if args.trace:  # the setup block: what was run, in nanoBragg's flag words (N explains ×1/N³)
        sys.stdout.write(f"TRACE_REF:dtype=float64\nTRACE_REF:argv=-detpixels {SIZE} -pixel {PIXEL * 1e3:g} "
                         f"-distance {DISTANCE * 1e3:g} -lambda {LAMBDA * 1e10:g} -cell {CELL:g} {CELL:g} {CELL:g} "
                         f"90 90 90 -N {N} -default_F {F_CELL:g}\n")
    for s, f in args.trace:
        sys.stdout.write(f"TRACE_CONFIG: tracing pixel (spixel={s}, fpixel={f})\n")
        pixel(s, f, sys.stdout)
    total = sum(pixel(s, f, None) for s in range(SIZE) for f in range(SIZE))
    sys.stderr.write(f"reference: image sum {total:.6g} photons\n")


if __name__ == "__main__":
    main()
