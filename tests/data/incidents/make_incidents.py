"""Write the hand-made incident traces in this folder (run: python make_incidents.py).

Each incident folder holds ``reference.log`` (what the instrumented C build prints, the exact
format of docs/CONTRACTS.md §2, values with %.17g) and ``port.log`` (the same run through a port
with that incident's bug). Values are computed, not typed: a small single-pixel nanoBragg chain
(MOSFLM, BEAM pivot, cubic cell, one source, no mosaic) with hooks where each port bug enters,
so every tap and all its upstream taps are physically consistent on both sides.

The committed .log files are the test data; this script documents how they were made.
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass, field, replace

HERE = os.path.dirname(os.path.abspath(__file__))
R_E = 2.8179403262e-15  # classical electron radius, m


@dataclass(frozen=True)
class Run:
    """One nanoBragg run. Lengths in m unless named; angles in degrees."""

    pixel: tuple[int, int] = (40, 57)  # (slow, fast)
    lambda_m: float = 1.2e-10
    cell_A: float = 100.0
    N: int = 5
    pixel_m: float = 1e-4
    distance_m: float = 0.1
    beam_mm: float = 5.0  # Xbeam = Ybeam, mm
    detpixels: int = 100
    oversample: int = 1
    phisteps: int = 1
    osc_deg: float = 0.0
    sources: int = 1
    steps_sources: int = 1  # sources counted in steps (zero-weight sources excluded by the C)
    fluence: float = 1.25932015286227e29
    F_default: float = 100.0
    structure_factors: str = "default_F:100"
    dtype: str = "float64"
    hooks: dict = field(default_factory=dict)  # tap name -> function(value, run) -> value
    print_oversample: bool = True

    def argv(self) -> str:
        return (f"-lambda {self.lambda_m * 1e10:g} -cell {self.cell_A:g} {self.cell_A:g} {self.cell_A:g} 90 90 90 "
                f"-N {self.N} -pixel {self.pixel_m * 1e3:g} -distance {self.distance_m * 1e3:g} "
                f"-detpixels {self.detpixels} -Xbeam {self.beam_mm:g} -Ybeam {self.beam_mm:g} "
                f"-oversample {self.oversample} -phisteps {self.phisteps} -osc {self.osc_deg:g} "
                f"-trace_pixel {self.pixel[0]} {self.pixel[1]}")


def g17(x) -> str:
    if isinstance(x, int):
        return str(x)
    return format(x, ".17g")


def vec(v) -> str:
    return " ".join(g17(x) for x in v)


def dot(a, b) -> float:
    return sum(x * y for x, y in zip(a, b))


def sincg(x: float, n: int) -> float:
    """sin(n·x)/sin(x), the lattice sum of n cells (n at x = kπ)."""
    s = math.sin(x)
    if abs(s) < 1e-12:
        return float(n)
    return math.sin(n * x) / s


def rot_z(v, deg: float):
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return (c * v[0] - s * v[1], s * v[0] + c * v[1], v[2])


def f32(x: float) -> float:
    return struct.unpack("f", struct.pack("f", x))[0]


class Printer:
    def __init__(self, prefix: str, run: Run):
        self.prefix, self.run, self.lines = prefix, run, []

    def hook(self, name, value):
        fn = self.run.hooks.get(name)
        value = fn(value, self.run) if fn else value
        if self.run.dtype == "float32" and not isinstance(value, int):
            value = tuple(f32(x) for x in value) if isinstance(value, tuple) else f32(value)
        return value

    def setup(self, name, text):
        self.lines.append(f"{self.prefix}:{name}={text}")

    def tap(self, name, value):
        value = self.hook(name, value)
        text = vec(value) if isinstance(value, tuple) else g17(value)
        self.lines.append(f"{self.prefix}: {name} {text}")
        return value


def trace(run: Run, prefix: str, producer: str) -> str:
    p = Printer(prefix, run)
    px, o = run.pixel_m, run.oversample
    Fbeam = Sbeam = run.beam_mm * 1e-3 + 0.5 * px  # MOSFLM: +½ pixel
    fdet, sdet, odet, beam = (0.0, 0.0, 1.0), (0.0, -1.0, 0.0), (1.0, 0.0, 0.0), (1.0, 0.0, 0.0)
    pix0 = tuple(-Fbeam * f - Sbeam * s + run.distance_m * d for f, s, d in zip(fdet, sdet, odet))
    steps = run.steps_sources * run.phisteps * o * o
    for name, text in (
        ("producer", producer), ("dtype", run.dtype), ("argv", run.argv()),
        ("structure_factors", run.structure_factors), ("detector_convention", "MOSFLM"),
        ("pivot", "BEAM"), ("detector_pixels", f"{run.detpixels} {run.detpixels}"),
        ("pixel_size_m", g17(px)), ("distance_m", g17(run.distance_m)), ("Fbeam_m", g17(Fbeam)),
        ("Sbeam_m", g17(Sbeam)), ("pix0_vector", vec(pix0)),
    ):
        p.setup(name, text)
    if run.print_oversample:
        p.setup("oversample", str(o))
    for name, n in (("steps", steps), ("phisteps", run.phisteps), ("mosaic_domains", 1),
                    ("sources", run.sources), ("thicksteps", 1)):
        p.setup(name, str(n))
    s_pix, f_pix = run.pixel
    p.lines.append(f"TRACE_CONFIG: tracing pixel (spixel={s_pix}, fpixel={f_pix})")
    a0, b0, c0 = (run.cell_A, 0.0, 0.0), (0.0, run.cell_A, 0.0), (0.0, 0.0, run.cell_A)
    I = 0.0
    first_omega = None
    phi_lines = []
    for ss in range(o):
        for sf in range(o):
            sub = px / o
            Fdet = sub * (f_pix * o + sf) + sub / 2
            Sdet = sub * (s_pix * o + ss) + sub / 2
            p0 = p.tap("pix0_vector_meters", pix0)
            p.tap("fdet_vec", fdet)
            p.tap("sdet_vec", sdet)
            pos = p.tap("pixel_pos_meters", tuple(p0[i] + Fdet * fdet[i] + Sdet * sdet[i] for i in range(3)))
            R = p.tap("R_distance_meters", math.sqrt(dot(pos, pos)))
            close = dot(pos, odet)
            omega = p.tap("omega_pixel_sr", px * px / (R * R) * close / R)
            first_omega = omega if first_omega is None else first_omega
            close = p.tap("close_distance_meters", close)
            p.tap("obliquity_factor", close / R)
            diffr = p.tap("diffracted_vec", tuple(x / R for x in pos))
            inc = p.tap("incident_vec", beam)
            lam = p.tap("lambda_meters", run.lambda_m)
            p.tap("lambda_angstroms", lam * 1e10)
            S = p.tap("scattering_vec_A_inv", tuple((d - i) / lam for d, i in zip(diffr, inc)))
            phi_last = run.osc_deg * (run.phisteps - 1) / max(run.phisteps, 1)
            a, b, c = (rot_z(v, phi_last) for v in (a0, b0, c0))
            a = p.tap("rot_a_angstroms", a)
            b = p.tap("rot_b_angstroms", b)
            c = p.tap("rot_c_angstroms", c)
            for name, v in (("rot_a_star_A_inv", a0), ("rot_b_star_A_inv", b0), ("rot_c_star_A_inv", c0)):
                p.tap(name, tuple(x / run.cell_A**2 for x in v))
            hkl = p.tap("hkl_frac", tuple(dot(tuple(x * 1e-10 for x in v), S) for v in (a, b, c)))
            p.tap("hkl_rounded", tuple(math.ceil(x - 0.5) for x in hkl))
            fa = p.tap("F_latt_a", sincg(math.pi * hkl[0], run.N))
            fb = p.tap("F_latt_b", sincg(math.pi * hkl[1], run.N))
            fc = p.tap("F_latt_c", sincg(math.pi * hkl[2], run.N))
            F_latt = p.tap("F_latt", fa * fb * fc)
            F_cell = p.tap("F_cell", run.F_default)
            if ss == 0 and sf == 0 and run.phisteps > 1:
                phi_lines = _phi_lines(p, run, S, (a0, b0, c0))
            I += F_cell**2 * F_latt**2 * run.phisteps
    p.lines.extend(phi_lines)
    I = p.tap("I_before_scaling", I)
    p.tap("r_e_meters", R_E)
    r2 = p.tap("r_e_sqr", R_E * R_E)
    flu = p.tap("fluence_photons_per_m2", run.fluence)
    steps = p.tap("steps", steps)
    for flag in ("oversample_thick", "oversample_polar", "oversample_omega"):
        p.tap(flag, 0)
    cap = p.tap("capture_fraction", 1.0)
    cos2t = dot(beam, diffr)
    polar = p.tap("polar", 0.5 * (1.0 + cos2t * cos2t))
    om = p.tap("omega_pixel", first_omega)
    p.tap("cos_2theta", cos2t)
    final = p.tap("I_pixel_final", r2 * flu * I / steps * cap * polar * om)
    p.tap("floatimage_accumulated", f32(final))
    return "\n".join(p.lines) + "\n"


def _phi_lines(p: Printer, run: Run, S, cell) -> list[str]:
    """Per-φ loop lines (key=value form) for the first subpixel."""
    out = []
    for tic in range(run.phisteps):
        phi = run.osc_deg * tic / run.phisteps
        hook = run.hooks.get("phi_vectors")
        vecs = hook(tic, phi, cell, run) if hook else tuple(rot_z(v, phi) for v in cell)
        h, k, l = (dot(tuple(x * 1e-10 for x in v), S) for v in vecs)
        fa, fb, fc = (sincg(math.pi * x, run.N) for x in (h, k, l))
        out.append(f"{p.prefix}_PHI phi_tic={tic} phi_deg={g17(phi)} h_frac={g17(h)} k_frac={g17(k)} "
                   f"l_frac={g17(l)} F_latt_a={g17(fa)} F_latt_b={g17(fb)} F_latt_c={g17(fc)} F_latt={g17(fa * fb * fc)}")
    return out


def _scale(f):
    return lambda v, run: tuple(x * f for x in v) if isinstance(v, tuple) else v * f


def _c_carry_over(tic, phi, cell, run):
    """The C carries the previous φ's lattice vectors into phi_tic 0 (incident 12)."""
    last = run.osc_deg * (run.phisteps - 1) / run.phisteps
    return tuple(rot_z(v, last if tic == 0 else phi) for v in cell)


def _half_pixel_fast(v, run):
    return tuple(x + 0.5 * run.pixel_m * f for x, f in zip(v, (0.0, 0.0, 1.0)))


def _rotate_pix0(v, run):
    """pix0 rotated about the beam axis by 3°: same norm, different direction."""
    c, s = math.cos(math.radians(3.0)), math.sin(math.radians(3.0))
    return (v[0], c * v[1] - s * v[2], s * v[1] + c * v[2])


def _phi_midpoint(v, run):
    """φ for a single step taken at the middle of the oscillation instead of φ0 (incident 11)."""
    return rot_z(v, run.osc_deg / 2)


def _edge_only_shift(v, run):
    """A geometry error that only shows at the detector edge (incident 21): +1 µm along slow."""
    s, f = run.pixel
    if s in (0, run.detpixels - 1) or f in (0, run.detpixels - 1):
        return (v[0], v[1] - 1e-6, v[2])
    return v


def multi_pixel(run: Run, prefix: str, producer: str, pixels) -> str:
    """One setup block, then each pixel's block (the producer's -trace_pixel given several times)."""
    out = []
    for i, px in enumerate(pixels):
        text = trace(replace(run, pixel=px), prefix, producer).splitlines()
        if i:
            text = [ln for ln in text if not (ln.startswith(prefix + ":") and "=" in ln.split()[0])]
        out.extend(text)
    return "\n".join(out) + "\n"


EDGE_PIXELS = ((0, 0), (40, 57), (99, 50), (50, 50))

BASE = Run()
INCIDENTS: dict[str, tuple[Run, Run]] = {
    "r01_hkl_angstrom_lattice": (BASE, replace(BASE, hooks={"hkl_frac": _scale(1e10)})),
    "r02_svec_inverse_angstrom": (BASE, replace(BASE, hooks={"scattering_vec_A_inv": _scale(1e-10)})),
    "r03_fluence_beamsize_mm": (BASE, replace(BASE, hooks={"fluence_photons_per_m2": _scale(1e6)})),
    "r04_flatt_normalization": (BASE, replace(BASE, hooks={
        "F_latt_a": _scale(1 / 5), "F_latt_b": _scale(1 / 5), "F_latt_c": _scale(1 / 5)})),
    "r05_svec_two_pi": (BASE, replace(BASE, hooks={"scattering_vec_A_inv": _scale(2 * math.pi)})),
    "r07_mosflm_half_pixel": (BASE, replace(BASE, hooks={"pix0_vector_meters": _half_pixel_fast})),
    # a -mat scaled by 1/λ once more: every reciprocal vector ×1/λ, so the real vectors built
    # from them (a = (b*×c*)·V) come out ×λ and h = a·S with them
    "r09_mosflm_lambda_twice": (BASE, replace(BASE, hooks={
        "rot_a_angstroms": _scale(1.2), "rot_b_angstroms": _scale(1.2), "rot_c_angstroms": _scale(1.2),
        "rot_a_star_A_inv": _scale(1 / 1.2), "rot_b_star_A_inv": _scale(1 / 1.2),
        "rot_c_star_A_inv": _scale(1 / 1.2)})),
    "r11_phi_midpoint": (replace(BASE, osc_deg=0.5), replace(BASE, osc_deg=0.5, hooks={
        "rot_a_angstroms": _phi_midpoint, "rot_b_angstroms": _phi_midpoint, "rot_c_angstroms": _phi_midpoint})),
    "r12_phi_carry_over": (replace(BASE, phisteps=4, osc_deg=0.4, hooks={"phi_vectors": _c_carry_over}),
                           replace(BASE, phisteps=4, osc_deg=0.4)),
    "r13_sample_pivot_order": (BASE, replace(BASE, hooks={"pix0_vector_meters": _rotate_pix0})),
    "r14_source_weights": (replace(BASE, sources=4, steps_sources=2),
                           replace(BASE, sources=4, steps_sources=4)),
    "r15_oversample_auto": (replace(BASE, phisteps=10, osc_deg=0.0),
                            replace(BASE, phisteps=10, osc_deg=0.0, oversample=4)),
    # an older build's setup block without the oversample line: only the counts tell
    "r15b_oversample_auto_unprinted": (replace(BASE, phisteps=10, print_oversample=False),
                                       replace(BASE, phisteps=10, oversample=4, print_oversample=False)),
    "r17_float32": (BASE, replace(BASE, dtype="float32")),
    "r18_stale_fdump": (replace(BASE, F_default=108.21, structure_factors="file:Fdump.bin entries:9261"), BASE),
    "r19_transposed_pixel": (BASE, replace(BASE, pixel=(57, 40))),
    "r20_trace_one_subpixel": (replace(BASE, N=1, oversample=2), replace(BASE, N=1, oversample=2)),
    "identical": (BASE, BASE),
    "r21_edge_geometry": (BASE, replace(BASE, hooks={"pixel_pos_meters": _edge_only_shift})),
}


def _is_scaling(line: str) -> bool:
    name = line.split()[1]
    return name in ("I_before_scaling", "r_e_meters", "r_e_sqr", "fluence_photons_per_m2", "steps",
                    "oversample_thick", "oversample_polar", "oversample_omega", "capture_fraction",
                    "polar", "omega_pixel", "cos_2theta", "I_pixel_final", "floatimage_accumulated")


def main() -> None:
    for name, (ref, port) in INCIDENTS.items():
        d = os.path.join(HERE, name)
        os.makedirs(d, exist_ok=True)
        a = trace(ref, "TRACE_C", "nbtrace-c-reference 0.1.0")
        if name == "r21_edge_geometry":
            a = multi_pixel(ref, "TRACE_C", "nbtrace-c-reference 0.1.0", EDGE_PIXELS)
            b = multi_pixel(port, "TRACE_PY", "nbsim 0.1.0", EDGE_PIXELS)
        elif name == "r20_trace_one_subpixel":
            b = _one_subpixel_port(port)
        else:
            b = trace(port, "TRACE_PY", "nbsim 0.1.0")
        for fname, text in (("reference.log", a), ("port.log", b)):
            with open(os.path.join(d, fname), "w", encoding="utf-8") as fh:
                fh.write(text)


def _one_subpixel_port(run: Run) -> str:
    """Port side of incident 20: one subpixel block printed, and I_before_scaling of that subpixel
    only (with N = 1 every subpixel has the same F_latt, so C / port is exactly oversample²)."""
    full = trace(run, "TRACE_PY", "nbsim 0.1.0")
    setup = [ln for ln in full.splitlines() if ln.startswith("TRACE_PY:") and "=" in ln.split()[0]]
    per_sub, scaling = [], {}
    sub_block = True
    header = ""
    for ln in full.splitlines():
        if ln.startswith("TRACE_CONFIG"):
            header = ln
        elif ln.startswith("TRACE_PY: "):
            nm = ln.split()[1]
            if _is_scaling(ln):
                scaling[nm] = ln
            elif sub_block:
                per_sub.append(ln)
                if nm == "F_cell":
                    sub_block = False
    I_full = float(scaling["I_before_scaling"].split()[2])
    n_sub = run.oversample ** 2
    I_one = I_full / n_sub
    scale = I_one / I_full
    final = float(scaling["I_pixel_final"].split()[2]) * scale
    scaling["I_before_scaling"] = f"TRACE_PY: I_before_scaling {g17(I_one)}"
    scaling["I_pixel_final"] = f"TRACE_PY: I_pixel_final {g17(final)}"
    scaling["floatimage_accumulated"] = f"TRACE_PY: floatimage_accumulated {g17(f32(final))}"
    return "\n".join(setup + [header] + per_sub + list(scaling.values())) + "\n"


if __name__ == "__main__":
    main()
