"""A toy port of reference.py: the same miniature diffraction image, vectorised with numpy,
with three planted bugs (marked BUG). Instrumented with nbtrace.tap: every tap returns its
value, so the calls stay in the production code.

    python toy_port.py                         # the image sum
    NBTRACE_PIXELS="32 52" python toy_port.py  # + the trace of pixel (32, 52) on stdout
"""

import sys

import numpy as np

from nbtrace.tap import tap

SIZE, PIXEL, DISTANCE = 64, 1e-4, 0.1          # pixels, m, m
LAMBDA, CELL, N, F_CELL = 1e-10, 50.0, 5, 100.0  # m, Å, cells per axis, electrons
FLUX, EXPOSURE, BEAMSIZE_MM = 1e12, 1.0, 0.1     # photons/s, s, mm
R_E_SQR = 7.94079248018965e-30                   # m²


def render():
    f, s = np.meshgrid(np.arange(SIZE), np.arange(SIZE))          # (slow, fast) arrays
    pos = np.stack([np.full(s.shape, DISTANCE), (f + 0.5) * PIXEL - SIZE * PIXEL / 2,
                    (s + 0.5) * PIXEL - SIZE * PIXEL / 2], axis=-1)   # (S, F, 3) m
    pos = tap("pixel_pos_meters", pos)
    R = tap("R_distance_meters", np.linalg.norm(pos, axis=-1))
    d = tap("diffracted_vec", pos / R[..., None])
    inc = tap("incident_vec", np.array([1.0, 0.0, 0.0]), pixel_axes=None)
    lam = tap("lambda_meters", LAMBDA, pixel_axes=None)
    q = tap("scattering_vec_A_inv", (d - inc) / (lam * 1e10))     # BUG 1: λ in Å, q in Å⁻¹
    axes = CELL * np.eye(3)                                       # rows a, b, c in Å
    for name, a in zip(("rot_a_angstroms", "rot_b_angstroms", "rot_c_angstroms"), axes):
        tap(name, a, pixel_axes=None)
    hkl = tap("hkl_frac", q @ (axes * 1e-10).T)                   # (S, F, 3)
    sin_h = np.sin(np.pi * hkl)
    near = np.abs(sin_h) < 1e-12
    lat = np.where(near, N, np.sin(np.pi * N * hkl) / np.where(near, 1.0, sin_h))
    Fa = tap("F_latt_a", lat[..., 0])
    Fb = tap("F_latt_b", lat[..., 1])
    Fc = tap("F_latt_c", lat[..., 2])
    F_latt = tap("F_latt", Fa * Fb * Fc / N**3)                   # BUG 3: normalised by N³
    F_cell = tap("F_cell", np.full(R.shape, F_CELL))
    I = tap("I_before_scaling", F_cell * F_cell * F_latt * F_latt)
    omega = tap("omega_pixel_sr", PIXEL * PIXEL / (R * R) * DISTANCE / R)
    r_e_sqr = tap("r_e_sqr", R_E_SQR, pixel_axes=None)
    fluence = tap("fluence_photons_per_m2", FLUX * EXPOSURE / BEAMSIZE_MM**2, pixel_axes=None)  # BUG 2: mm
    return tap("I_pixel_final", r_e_sqr * fluence * I * omega)


if __name__ == "__main__":
    image = render()
    sys.stderr.write(f"toy_port: image sum {image.sum():.6g} photons\n")
