"""The port's real incident classes (docs/incidents.md): each hand-made port trace in
tests/data/incidents/ (made by make_incidents.py) must get the right root-cause tap and class.

These run the whole path a user runs: read_trace -> spec -> diff_traces, on text in the exact
format the C build prints.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from nbtrace.engine.diff import diff_traces
from nbtrace.errors import UsageError
from nbtrace.engine.parse import read_trace
from nbtrace.engine.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "incidents"
SPEC = load_spec(ROOT / "tap_specs" / "nanobragg.yaml")


def diff(case: str, **kw):
    d = DATA / case
    return diff_traces(read_trace(d / "reference.log"), read_trace(d / "port.log"), SPEC, **kw)


def finding(result, label):
    return next(f for f in result.findings if f.verdict.label == label)


# row, case, root tap, kind, factor (None: no factor), words the explanation must contain
CASES = [
    (1, "r01_hkl_angstrom_lattice", "hkl_frac", "scale", 1e10, "Å where metres were expected"),
    (2, "r02_svec_inverse_angstrom", "scattering_vec_A_inv", "scale", 1e-10, "Å⁻¹ where the reference holds m⁻¹"),
    (3, "r03_fluence_beamsize_mm", "fluence_photons_per_m2", "scale", 1e6, "squared unit"),
    (4, "r04_flatt_normalization", "F_latt_a", "scale", 0.2, "×1/N per axis (N = 5)"),
    (5, "r05_svec_two_pi", "scattering_vec_A_inv", "scale", 2 * math.pi, "an extra 2π"),
    (7, "r07_mosflm_half_pixel", "pix0_vector_meters", "offset", None, "exactly +½ pixel along fast"),
    # the printed reciprocal vectors are regenerated from the real ones (physics §2.4; issue 9's
    # spec fix), so a -mat scaled by 1/λ twice shows first in the real vectors, ×λ
    (9, "r09_mosflm_lambda_twice", "rot_a_angstroms", "scale", 1.2, "×λ (λ = 1.2 Å)"),
    (11, "r11_phi_midpoint", "rot_a_angstroms", "rotation", None, "rotated by 0.25°"),
    (13, "r13_sample_pivot_order", "pix0_vector_meters", "rotation", None, "same norm, different direction"),
    (14, "r14_source_weights", "steps", "integer_count", 2.0, "4 vs 2"),
    (18, "r18_stale_fdump", "F_cell", "out_of_tolerance", None, "the inputs differ"),
    (20, "r20_trace_one_subpixel", "I_before_scaling", "scale", 0.25, "oversample²"),
    (21, "r21_edge_geometry", "pixel_pos_meters", "out_of_tolerance", None,
     "confined to 2 of 4 pixels: (0, 0), (99, 50)"),
]


@pytest.mark.parametrize("row,case,tap,kind,factor,words", CASES, ids=[c[1] for c in CASES])
def test_incident_root_cause(row, case, tap, kind, factor, words):
    r = diff(case)
    assert r.verdict == "diverge"
    assert r.root_cause.tap == tap, r.headline
    assert r.root_cause.kind == kind, r.headline
    if factor is None:
        assert r.root_cause.factor is None
    else:
        assert r.root_cause.factor == pytest.approx(factor, rel=1e-6)
    assert words in r.root_cause.explanation, r.headline
    assert r.headline.startswith(f"`{tap}` is the first divergence")


def test_row4_lattice_factor_is_n_cubed_overall():
    r = diff("r04_flatt_normalization")
    f = finding(r, "F_latt")
    assert f.status == "inherited"
    assert f.verdict.factor == pytest.approx(1 / 125)
    assert "N³" in f.verdict.message


def test_row15_oversample_differs_and_steps_is_its_square():
    # The setup block prints oversample, so the auto-selected value is the first divergence;
    # steps inherits it with the ratio 16 named as the oversample ratio squared.
    r = diff("r15_oversample_auto")
    assert r.root_cause.tap == "oversample"
    assert r.root_cause.kind == "integer_count"
    assert "4 vs 1" in r.headline
    steps = finding(r, "steps")
    assert steps.status == "inherited"
    assert steps.verdict.kind == "integer_count"
    assert steps.verdict.factor == 16
    assert "160 vs 10" in steps.verdict.message
    assert "(oversample 4 vs 1)²" in steps.verdict.message
    # 16 subpixel blocks against 1 are never paired by occurrence
    assert any("A printed 1 and B printed 16 copies" in w for w in r.warnings)


def test_row15_without_setup_line_steps_is_the_root_with_ratio_16():
    # Nothing prints oversample: the per-subpixel blocks (1 vs 16) cannot be paired, and among
    # the divergences the one whose upstream was compared and agrees is steps.
    r = diff("r15b_oversample_auto_unprinted")
    assert r.root_cause.tap == "steps"
    assert r.root_cause.kind == "integer_count"
    assert r.root_cause.factor == 16
    assert "160 vs 10" in r.headline
    assert "16× as many subpixel blocks per pixel as A (oversample² ratio 4²)" in r.headline


def test_row17_float32_is_precision_not_a_bug():
    r = diff("r17_float32")
    assert r.verdict == "agree", r.headline
    kinds = {f.verdict.kind for f in r.findings}
    assert "precision" in kinds
    assert "float32 noise" in r.headline
    # the same numbers without knowing the port is float32 are a divergence
    d = DATA / "r17_float32"
    a, b = read_trace(d / "reference.log"), read_trace(d / "port.log")
    from dataclasses import replace

    b64 = replace(b, records=tuple(r for r in b.records if r.name != "dtype"))
    strict = diff_traces(a, b64, SPEC)
    assert strict.verdict == "diverge"
    assert strict.root_cause.kind == "out_of_tolerance"


def test_row10_style_percent_error_is_never_precision_even_in_float32():
    r = diff("r09_mosflm_lambda_twice", context={"dtype": "float32"})
    assert r.root_cause.tap == "rot_a_angstroms"
    assert r.root_cause.kind == "scale"
    star = finding(r, "rot_a_star_A_inv")
    assert star.verdict.kind == "scale" and star.verdict.factor == pytest.approx(1 / 1.2)
    assert "wavelength factor applied again" in star.verdict.message


def test_row12_only_the_first_phi_iteration_differs():
    r = diff("r12_phi_carry_over")
    assert r.root_cause.tap == "h_frac"
    assert r.root_cause.loop == ("phi_tic",)
    assert r.root_cause.index.loop == (("phi_tic", 0),)
    assert "only iteration phi_tic 0 differs, the 3 later ones agree" in r.headline


def test_row12_real_logs_name_iteration_zero():
    d = DATA / "wild"
    r = diff_traces(read_trace(d / "phi_c_trace_phi.log"), read_trace(d / "phi_trace_py_spec_per_phi.log"), SPEC)
    assert r.root_cause.tap == "k_frac"
    assert r.root_cause.index.loop == (("phi_tic", 0),)
    assert "iteration phi_tic 0 stands out" in r.headline


def test_row18_names_the_input():
    r = diff("r18_stale_fdump")
    assert "F_cell 108.21 vs 100" in r.headline
    assert "A: file:Fdump.bin entries:9261, B: default_F:100" in r.headline


def test_row19_different_pixels_refused_unless_forced():
    with pytest.raises(UsageError) as exc:
        diff("r19_transposed_pixel")
    msg = exc.value.one_line()
    assert "these traces are of different pixels: A traced (slow=40, fast=57), B traced (slow=57, fast=40)" in msg
    assert "slow/fast transposed?" in msg and "--force" in msg
    forced = diff("r19_transposed_pixel", force=True)
    assert forced.verdict == "diverge"
    # the transposed pixel has the same intensity (cubic cell: h and k swap, F_latt = Fa·Fb·Fc
    # and everything after it agree), so no divergence reaches the output: the pixel-position
    # difference is listed as immaterial, never headlined as a cause (issue 9)
    assert forced.root_cause is None
    assert forced.immaterial[0].verdict.tap == "pixel_pos_meters"
    assert forced.headline.startswith("No divergence reaches the output")
    assert forced.headline.endswith("traced different pixels (forced), so this may be nothing but the pixel difference.")
    assert any("forced" in w for w in forced.warnings)


def test_identical_traces_agree():
    r = diff("identical")
    assert r.verdict == "agree" and bool(r)
    assert r.root_cause is None
    assert r.to_json()["counts"]["divergent"] == 0
    assert r.matched == 58


def test_real_port_trace_found_its_inverse_angstrom_scattering_vector():
    # The earlier port's own trace printed S in Å⁻¹ where the C prints m⁻¹ (trace-format.md).
    # That is a print convention: hkl_frac agrees to 1e-15, so the ×1e-10 changes nothing
    # downstream and is immaterial, never the root cause (issue 9). What does reach the
    # intensity is F_latt_a/F_latt_c, 4.5e-9 and 3.1e-8 relative off (the port's sinc).
    d = DATA / "wild"
    r = diff_traces(read_trace(d / "at002_c_trace_pixel_64_79.log"),
                    read_trace(d / "at002_py_trace_FIXED_pixel_64_79.log"), SPEC)
    (imm,) = r.immaterial
    assert imm.verdict.tap == "scattering_vec_A_inv" and imm.verdict.factor == pytest.approx(1e-10)
    assert finding(r, "hkl_frac").status == "agree"
    assert r.root_cause.tap in ("F_latt_a", "F_latt_c") and "scattering_vec_A_inv" not in r.root_cause.tap
    assert "A names no pixel; assumed (64, 79), the pixel B traced" in r.warnings
    assert any("B printed no setup (`=`) lines" in w for w in r.warnings)


def _headerless(case: str, tmp_path) -> tuple[Path, Path]:
    out = []
    for name in ("reference.log", "port.log"):
        text = (DATA / case / name).read_text()
        dst = tmp_path / name
        dst.write_text("".join(ln for ln in text.splitlines(keepends=True) if not ln.startswith("TRACE_CONFIG")))
        out.append(dst)
    return out[0], out[1]


def test_row19_without_headers_is_refused_from_the_pixel_positions(tmp_path):
    # the false lead of incident 19 was "an additive offset of whole pixels, a MOSFLM ½ pixel?"
    ref, port = _headerless("r19_transposed_pixel", tmp_path)
    a, b = read_trace(ref), read_trace(port)
    assert a.pixels == () and b.pixels == ()
    with pytest.raises(UsageError) as exc:
        diff_traces(a, b, SPEC)
    msg = str(exc.value)
    assert ("these traces appear to be of different pixels: pixel_pos_meters differs by (Δslow, Δfast) = "
            "(17, -17) whole pixels while pix0/fdet/sdet agree — slow/fast transposed? (use --force to diff anyway)") in msg
    assert msg.startswith(f"{ref}:") and f" vs {port}:" in msg
    forced = diff_traces(a, b, SPEC, force=True)
    assert forced.root_cause is None and forced.immaterial[0].verdict.tap == "pixel_pos_meters"


def test_whole_pixel_check_leaves_real_geometry_bugs_alone(tmp_path):
    # row 7: pix0 itself moved by ½ pixel; the frame disagrees, so this is a bug, not a pixel mix-up
    ref, port = _headerless("r07_mosflm_half_pixel", tmp_path)
    r = diff_traces(read_trace(ref), read_trace(port), SPEC)
    assert r.root_cause.tap == "pix0_vector_meters" and r.root_cause.kind == "offset"



@pytest.mark.parametrize("pivot,root,kind", [("SAMPLE", "pix0_vector", "rotation"),
                                             ("BEAM", "Fbeam_m", "out_of_tolerance")])
def test_row13_the_pivot_decides_whether_pix0_or_the_beam_centre_comes_first(pivot, root, kind):
    # The same numbers mean different things: under the SAMPLE pivot the beam centre is derived
    # from the rotated pix0 (a wrong pix0 makes a wrong beam centre); under BEAM, pix0 is built
    # from the beam centre. The spec's pivot-conditional edges decide which is the cause.
    from nbtrace.testing import make_trace

    p = (0.1, 0.00505, -0.00505)
    c, s_ = math.cos(0.05), math.sin(0.05)
    q = (p[0] * c - p[1] * s_, p[0] * s_ + p[1] * c, p[2])  # same norm, rotated about z

    def trace(pix0, fbeam, prefix):
        setup = [("pivot", pivot), ("distance_m", 0.1), ("Fbeam_m", fbeam), ("Sbeam_m", 0.00505),
                 ("pix0_vector", pix0)]
        return make_trace([("pix0_vector_meters", pix0)], pixel=(40, 57), setup=setup, prefix=prefix)

    r = diff_traces(trace(p, 0.00505, "TRACE_C"), trace(q, 0.0101, "TRACE_PY"), SPEC)
    assert r.root_cause.tap == root, r.headline
    assert r.root_cause.kind == kind, r.headline
    statuses = {f.verdict.label: f.status for f in r.findings}
    other = "Fbeam_m" if root == "pix0_vector" else "pix0_vector"
    assert statuses[other] == "inherited"
