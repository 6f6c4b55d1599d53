"""Real C/port pairs from the earlier nanoBragg port, diffed unchanged (issue 9, item 6).

Each test records what nbtrace says about one pair of real logs (tests/data/wild/: the real logs,
copied unchanged) and why that is right: the tap the port engineer had to
fix, with its factor, or why the pair is not a pair of the same run. tests/data/wild/PAIRS.md
tabulates them. Four pairs are the engineers' own hand diffs (`diff -u C.log port.log` committed
as trace_diff.*): the test takes the two sides out of the unified diff in memory; the file is
read as committed.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from nbtrace.engine.diff import diff_traces
from nbtrace.engine.parse import read_trace
from nbtrace.engine.spec import default_spec

WILD = Path(__file__).resolve().parents[1] / "data" / "wild"
CORPUS = WILD / "corpus"
SPEC = default_spec()


def corpus(prefix: str) -> Path:
    (path,) = CORPUS.glob(prefix + "*")
    return path


def diff(a: Path, b: Path, **kw):
    return diff_traces(read_trace(a), read_trace(b), SPEC, **kw)


def sides_of_unified_diff(path: Path, tmp_path: Path) -> tuple[Path, Path]:
    """The two files a committed `diff -u OLD NEW` compared (one hunk over both whole files)."""
    old, new = [], []
    for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
        if line.startswith(("---", "+++", "@@")):
            continue
        if line.startswith("-"):
            old.append(line[1:])
        elif line.startswith("+"):
            new.append(line[1:])
        elif line.startswith(" "):
            old.append(line[1:])
            new.append(line[1:])
    a, b = tmp_path / "c.log", tmp_path / "port.log"
    a.write_text("".join(old), encoding="utf-8")
    b.write_text("".join(new), encoding="utf-8")
    return a, b


def finding(r, label):
    return next(f for f in r.findings if f.verdict.label == label)


# ------------------------------------------------------------------ AT-PARALLEL-002, pixel (64, 79)


def test_at002_fixed_port_inverse_angstrom_print_is_immaterial():
    # The port printed S in Å⁻¹ (×1e-10 against the C's m⁻¹) while hkl_frac agrees to 1e-15: a
    # print convention, immaterial. Following the ×1e-10 lead and "fixing" the units of a value
    # that was already right is what created the earlier port's h/k/l ×1e10 bug (issue 9).
    # What really remains is F_latt: the port's sinc differs by 4.5e-9 (a) and 3.2e-8 (c).
    r = diff(WILD / "at002_c_trace_pixel_64_79.log", WILD / "at002_py_trace_FIXED_pixel_64_79.log")
    assert [f.verdict.tap for f in r.immaterial] == ["scattering_vec_A_inv"]
    assert r.immaterial[0].verdict.factor == pytest.approx(1e-10)
    assert finding(r, "hkl_frac").status == "agree"
    assert r.root_cause.tap == "F_latt_c" and [f.verdict.tap for f in r.causes] == ["F_latt_c", "F_latt_a"]
    assert "×(1 − 3.2e-08)" in r.headline or "port = reference ×(1 − 3.2e-08)" in r.headline
    assert "`scattering_vec_A_inv` (×1e-10)" in r.headline  # listed, not the cause
    assert r.verdict == "diverge" and r.incomplete  # the port printed 10 of the C's 22 per-pixel taps


def test_at002_port_before_the_fix_names_the_final_scaling():
    # The pre-fix port (the polarization incident, incidents.md row 8) printed its values as prose
    # ("Omega (solid angle) = ...", "Final intensity = ..."), read under the spec's aliases: the
    # geometry and scale factors it printed agree, the final intensity is ×1.0018 (the Kahn factor
    # it left out at this pixel), and it never printed polar or the chain before the scaling.
    r = diff(WILD / "at002_c_trace_pixel_64_79.log", WILD / "at002_py_trace_pixel_64_79.log")
    assert r.verdict == "diverge" and r.root_cause.tap == "I_pixel_final"
    assert finding(r, "I_pixel_final").verdict.ratio == pytest.approx(2121.363563786 / 2117.55880649785, rel=1e-9)
    for tap in ("pixel_pos_meters", "R_distance_meters", "omega_pixel_sr", "r_e_sqr", "fluence_photons_per_m2"):
        assert finding(r, tap).status == "agree", tap
    assert r.incomplete  # 16 per-pixel taps the C printed are missing from the port's trace


def test_at002_debug_trace_reciprocal_vectors_used_for_h():
    # reports/2025-09-29-debug-traces-002: the same pixel, the port while it formed h from the
    # reciprocal vectors. S ×1e-10 (printed in Å⁻¹) is NOT the bug: with the real vectors in Å,
    # S[Å⁻¹]·a[Å] equals the C's S[m⁻¹]·a[m]. h ×1e-4 = |a*|/|a| = 0.01 Å⁻¹ / 100 Å for this
    # cubic 100 Å cell is a factor S does not carry: h introduces it (incident 6), hkl_rounded
    # falls to 0 0 0 and F_latt ×1.08, I_before_scaling ×1.17 inherit it. The earlier engineers
    # chased the ×1e-10 first (issue 9); the evidence is the two factors: 1e-4 is not 1e-10.
    (port,) = CORPUS.glob("*2025-09-29-debug-traces-002*")
    r = diff(WILD / "at002_c_trace_pixel_64_79.log", port)
    assert r.root_cause.tap == "hkl_frac" and r.root_cause.kind == "scale"
    assert r.root_cause.factor == pytest.approx(1e-4)
    assert [f.verdict.tap for f in r.immaterial] == ["scattering_vec_A_inv"]
    assert finding(r, "F_latt").status == "inherited"
    assert finding(r, "I_before_scaling").verdict.ratio == pytest.approx(1.1721510768752246)


# ------------------------------------------------------------------ φ = 0 carry-over (CLI-FLAGS-003)


def test_phi_logs_carry_over_shows_at_phi_tic_0():
    # The C carries the previous φ's lattice vectors into φ = 0 (incident 12); the port computed
    # as the physics says. Only the per-φ lines are common (the port printed nothing else), so
    # the comparison is one-sided, but among them k_frac at phi_tic 0 stands out.
    r = diff(WILD / "phi_c_trace_phi.log", WILD / "phi_trace_py_spec_per_phi.log")
    assert r.nothing_compared and r.root_cause.tap == "k_frac"
    assert r.root_cause.index.loop == (("phi_tic", 0),)
    assert "iteration phi_tic 0 stands out" in r.headline


@pytest.mark.parametrize("c_log, port_log", [("270__", "272__"), ("294__", "300__")])
def test_parity_shim_spec_port_rotated_cell_at_phi_0(c_log, port_log):
    # reports/2025-10-cli-flags/phase_l/parity_shim/*: the port that follows the physics against
    # the C with its carry-over. The rotated real vectors differ by a pure rotation of 0.07–0.08°
    # (the C's φ = 0 uses the last step's orientation); that reaches hkl, F_latt and the
    # intensity. pix0 (2.8 µm) is a second, independent cause, listed but not headlined: in
    # issue 9's words, "the real culprit is the rotated cell at φ = 0".
    r = diff(corpus(c_log), corpus(port_log))
    assert r.root_cause.tap == "rot_b_angstroms" and r.root_cause.kind == "rotation"
    assert "rotated by 0.08371°" in r.headline
    causes = [f.verdict.tap for f in r.causes]
    assert {"rot_a_angstroms", "rot_c_angstroms", "pix0_vector_meters"} <= set(causes)
    assert finding(r, "hkl_frac").status == "inherited"
    # the C printed TRACE_C_PHI lines the port did not: never agreement
    assert any(f.verdict.label == "k_frac[phi_tic]" for f in r.incomplete)


@pytest.mark.parametrize("c_log, port_log", [("270__", "271__"), ("294__", "298__")])
def test_parity_shim_c_parity_port_leaves_the_detector_origin(c_log, port_log):
    # The same C against the port that emulates the carry-over: the rotated cells now agree and
    # what remains is pix0, 2.85 µm off along z (7.45e-6 of |pix0|), inherited by pixel_pos,
    # hkl, F_latt and I_pixel_final (×0.969). The printed reciprocal vectors differ by a
    # rotation but feed nothing that is printed: immaterial.
    r = diff(corpus(c_log), corpus(port_log))
    assert finding(r, "rot_a_angstroms").status == "agree"
    assert r.root_cause.tap == "pix0_vector_meters"
    assert {f.verdict.tap for f in r.immaterial} == {"rot_a_star_A_inv", "rot_b_star_A_inv", "rot_c_star_A_inv"}
    assert finding(r, "I_pixel_final").verdict.ratio == pytest.approx(0.9685437091639961)


# ------------------------------------------------------------------ the engineers' own trace diffs


def test_phase_h_trace_diff_names_the_beam_direction(tmp_path):
    # reports/2025-10-cli-flags/phase_h/trace_diff.log: `diff -u` of the phase_g C trace and the
    # phase_h port trace. The port's incident_vec is (1, 0, 0) where the C's custom -beam_vector
    # gives (0.0005, 0, −1): rotated by 89.97°. CLI-FLAGS-003 phase H2 was exactly "beam vector
    # propagation" (the port ignored the custom beam vector).
    a, b = sides_of_unified_diff(corpus("214__"), tmp_path)
    r = diff(a, b)
    assert r.root_cause.tap == "incident_vec" and r.root_cause.kind == "rotation"
    assert "rotated by 89.97°" in r.headline


def test_phase_k_trace_diff_after_the_f_latt_fix_points_at_the_phi_0_cell(tmp_path):
    # reports/2025-10-cli-flags/phase_k/f_latt_fix/trace_diff.txt: after the F_latt fix, the
    # divergence that reaches the intensity is the rotated cell at φ = 0 (0.084°, the C's
    # carry-over), which the engineers reached only in phase L; nbtrace names it first and lists
    # the 7.45e-6 pix0 difference as a second cause.
    a, b = sides_of_unified_diff(corpus("257__"), tmp_path)
    r = diff(a, b)
    assert r.root_cause.tap == "rot_b_angstroms" and "rotated by 0.08371°" in r.headline
    assert "pix0_vector_meters" in [f.verdict.tap for f in r.causes]


def test_phase_e_trace_diff_names_the_lattice_orientation(tmp_path):
    # reports/2025-10-cli-flags/phase_e/trace_diff.txt: the port's real vectors are another
    # orientation altogether (per-component ratios −1.79, 0.42, −1.17: not a unit, not a
    # rotation by a small angle), so hkl and everything after inherit it.
    a, b = sides_of_unified_diff(corpus("193__"), tmp_path)
    r = diff(a, b)
    assert r.root_cause.tap in ("rot_a_angstroms", "rot_b_angstroms", "rot_c_angstroms")
    assert finding(r, "rot_a_angstroms").verdict.kind == "different_quantity"
    assert finding(r, "hkl_frac").status == "inherited"


def test_phase_h6_trace_diff_is_a_setup_block_against_a_pixel_trace(tmp_path):
    # reports/2025-10-cli-flags/phase_h6/post_fix/trace_diff.txt: the C side of this diff holds
    # only the detector setup (no per-pixel tap), so nbtrace refuses to call it a comparison.
    # Among the setup taps: the port's detector axes differ from the C's normalised ones in the
    # 8th digit and its close distance by 1.2e-5 (the pix0 work of phase H6), while its
    # beam_center_m differs only in what it prints (mm vs the C's m/1000): immaterial.
    a, b = sides_of_unified_diff(corpus("235__"), tmp_path)
    r = diff(a, b)
    assert r.nothing_compared and r.headline.startswith("One-sided comparison: only 0 per-pixel tap(s)")
    assert "beam_center_m" in [f.verdict.tap for f in r.immaterial]
    assert finding(r, "close_distance_m").verdict.ratio == pytest.approx(1.000012268457679)


def test_tilted_logs_are_of_two_different_runs():
    # The top-level tilted pair: the C ran rotx 5°, roty 3°, rotz 2°, twotheta 15° and the port's
    # "fixed" trace rotx 1°, roty 5°, twotheta 3° with another beam centre: not the same run.
    # nbtrace says so (a setup value, configured differently) instead of inventing a bug.
    r = diff(WILD / "tilted_trace.log", WILD / "tilted_py_trace_fixed.log")
    assert r.root_cause.tap == "angles_rad" and r.root_cause.index.pixel is None
    assert "the runs were configured differently" in r.headline
    assert math.isfinite(finding(r, "angles_rad").verdict.max_rel)
