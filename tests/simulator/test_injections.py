"""Every --inject NAME reproduces its incident: the contract's tap is the first to diverge
(at 1e-9 relative) in the trace, and the taps upstream of it agree with a clean run."""

import numpy as np
import pytest

from nbtrace.sim.injections import INJECTIONS
from nbtrace.sim.taps import BLOCK_TAPS, SCALING_TAPS
from simhelp import SMALL, frame, loop_lines, run_cli, taps

ORDER = BLOCK_TAPS + SCALING_TAPS
TILTED_THICK = SMALL + "-detector_thick 200 -detector_rotx 20 -detector_roty 15".split()
# the cell of examples/10: V/(|a||b||c|) = 0.9901, so the formula volume is 0.99 % off
TRICLINIC = "-cell 50 60 70 86 94 96".split()
# short distance, wide detector: 2θ up to 42°, where the Kahn factor matters (examples/08)
WIDE_ANGLE = "-lambda 1 -cell 50 50 50 90 90 90 -N 5 -default_F 100 -distance 40 -detpixels 64 -pixel 0.8".split()

# name -> (extra arguments, traced pixel, expected first divergent tap)
CASES = {
    "hkl-angstrom-lattice": ([], (20, 9), "hkl_frac"),
    "svec-inverse-angstrom": ([], (20, 9), "scattering_vec_A_inv"),
    "fluence-beamsize-mm": ("-flux 1e12 -exposure 1 -beamsize 0.1".split(), (20, 9), "fluence_photons_per_m2"),
    "flatt-normalization": ([], (20, 9), "F_latt_a"),
    "svec-two-pi": ([], (20, 9), "scattering_vec_A_inv"),
    "hkl-reciprocal-vectors": ([], (20, 9), "hkl_frac"),
    "mosflm-half-pixel": ([], (20, 9), "pix0_vector_meters"),
    "kahn-default-one": ([], (20, 9), "polar"),
    # in print order the real vectors come first; with the spec DAG the root is rot_a_star_A_inv
    # (the real vectors are generated from it), which the examples test checks
    "mosflm-lambda-twice": (None, (20, 9), "rot_a_angstroms"),
    "triclinic-volume-formula": (None, (20, 9), "rot_a_angstroms"),
    "phi-midpoint": ("-phi 3 -osc 2 -phisteps 1".split(), (20, 9), "rot_a_angstroms"),
    "sample-pivot-order": ("-xds -detector_rotx 5 -twotheta 8".split(), (20, 9), "pix0_vector_meters"),
    "source-weights": (None, (20, 9), "steps"),
    "oversample-auto": ([], (20, 9), "steps"),
    "abs-parallax": (None, (3, 28), "capture_fraction"),
    "float32": ([], (20, 9), None),
    "trace-one-subpixel": (["-oversample", "2"], (20, 9), "I_before_scaling"),
    "edge-geometry": ([], (1, 9), "pixel_pos_meters"),
}


def _args(name, tmp_path):
    extra, pixel, tap = CASES[name]
    base = list(SMALL)
    if name == "mosflm-lambda-twice":
        mat = tmp_path / "A.mat"
        mat.write_text(" 0.0123 -0.0031 0.0012\n 0.0021 0.0115 -0.0040\n -0.0015 0.0045 0.0109\n")
        # at λ = 1 Å the extra factor 1e-10/λ is exactly 1
        base = ["-lambda", "1.5", "-mat", str(mat)] + SMALL[9:]
        extra = []
    elif name == "triclinic-volume-formula":
        base = SMALL[:2] + TRICLINIC + SMALL[9:]
        extra = []
    elif name == "source-weights":
        src = tmp_path / "sources.txt"
        src.write_text("-10 0 0 1\n-10 0.01 0 0\n-10 0 0.01 1\n")
        extra = ["-sourcefile", str(src)]
    elif name == "abs-parallax":
        base, extra = list(TILTED_THICK), []
    return base + extra + ["-trace_pixel", *map(str, pixel)]


def _first_divergent(clean, bad):
    for name in ORDER:
        for a, b in zip(clean.get(name, []), bad.get(name, [])):
            if not np.allclose(a, b, rtol=1e-9, atol=0.0):
                return name
    return None


def test_every_contract_row_is_covered():
    assert {i.name for i in INJECTIONS} == set(CASES)
    assert sorted(i.row for i in INJECTIONS) == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 20, 21]


@pytest.mark.parametrize("name", sorted(CASES))
def test_injection_diverges_first_at_its_tap(name, capsys, tmp_path):
    args = _args(name, tmp_path)
    code, clean_out, _ = run_cli(capsys, args)
    assert code == 0
    code, bad_out, err = run_cli(capsys, args + ["--inject", name])
    assert code == 0 and "INJECTED FAULTS: " + name in err
    clean, bad = taps(clean_out), taps(bad_out)
    expected = CASES[name][2]
    if name == "float32":
        # precision class: the final value moves, but only at float32 noise
        a, b = clean["I_pixel_final"][0][0], bad["I_pixel_final"][0][0]
        assert a != b and abs(b / a - 1) < 1e-4
        assert "TRACE_PY:dtype=float32" in bad_out and "TRACE_PY:dtype=float64" in clean_out
        return
    assert _first_divergent(clean, bad) == expected


def test_edge_geometry_spares_the_centre(capsys):
    args = SMALL + ["-trace_pixel", "16", "16"]
    _, clean, _ = run_cli(capsys, args)
    _, bad, _ = run_cli(capsys, args + ["--inject", "edge-geometry"])
    assert taps(clean)["I_pixel_final"] == taps(bad)["I_pixel_final"]


def test_phi_midpoint_shows_in_the_phi_loop(capsys):
    args = SMALL + "-phi 3 -osc 2 -phisteps 1 -trace_pixel 20 9".split()
    _, clean, _ = run_cli(capsys, args)
    _, bad, _ = run_cli(capsys, args + ["--inject", "phi-midpoint"])
    assert loop_lines(clean, "PHI")[0]["phi_deg"] == pytest.approx(3.0)
    assert loop_lines(bad, "PHI")[0]["phi_deg"] == pytest.approx(4.0)


def test_list_injections_format(capsys):
    code, out, _ = run_cli(capsys, ["--list-injections"])
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == len(INJECTIONS)
    # NAME<TAB>ROW<TAB>description (issue 12: each fault says what it does)
    assert all(len(line.split("\t")) == 3 and line.split("\t")[1].isdigit() and line.split("\t")[2]
               for line in lines)
    assert "mosflm-half-pixel\t7\tMOSFLM +½ pixel dropped (other conventions: added)" in lines


@pytest.mark.parametrize("name", sorted(CASES))
def test_injection_without_its_flags_still_runs(name, capsys):
    # rows that need particular flags (CONTRACTS §5) must not crash when those flags are absent
    code, out, err = run_cli(capsys, SMALL + ["-trace_pixel", "20", "9", "--inject", name])
    assert code == 0, err
    assert np.isfinite(taps(out)["I_pixel_final"][0][0])


# ------------------------------------------------- the image symptom of the incidents (rows 8, 10, 20)


def _frames(argv, name):
    return frame(argv), frame(argv + ["--inject", name])


def _corr(a, b):
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_kahn_fault_skips_polarization_in_the_per_pixel_path():
    clean, bad = _frames(WIDE_ANGLE + ["-oversample", "1"], "kahn-default-one")
    ratio = bad / clean
    centre, corner = ratio[32, 32], ratio[0, 0]
    # P = ½(1 + cos²2θ) left out: port/ref = 1/P, 1 on the beam, growing with 2θ (a radial trend)
    assert centre == pytest.approx(1.0, abs=1e-3)
    assert 1.2 < corner < 1.4
    assert ratio[32, 0] > ratio[32, 16] > ratio[32, 24] > centre
    # the incident's symptom: sum ratio 1.10
    assert 1.07 < bad.sum() / clean.sum() < 1.13


def test_kahn_fault_polar_tap_is_one_where_the_reference_has_half_one_plus_cos2(capsys):
    args = WIDE_ANGLE + "-oversample 1 -trace_pixel 2 3".split()
    _, clean, _ = run_cli(capsys, args)
    _, bad, _ = run_cli(capsys, args + ["--inject", "kahn-default-one"])
    c, b = taps(clean), taps(bad)
    cos2 = c["cos_2theta"][0][0]
    assert c["polar"][0][0] == pytest.approx(0.5 * (1 + cos2 * cos2), rel=1e-12)
    assert b["polar"][0][0] == 1.0
    assert b["I_pixel_final"][0][0] / c["I_pixel_final"][0][0] == pytest.approx(1 / c["polar"][0][0], rel=1e-12)


def test_kahn_fault_defaults_K_to_one_in_the_oversample_polar_path(capsys):
    # -oversample_polar still applies P, but with the port's default K = 1: an azimuthal
    # (polarized-beam) pattern instead of the unpolarized ½(1 + cos²2θ)
    args = WIDE_ANGLE + "-oversample 1 -oversample_polar".split()
    clean, bad = _frames(args, "kahn-default-one")
    ratio = bad / clean
    assert ratio.max() > 1.1 and ratio.min() < 0.9
    # along the polarization axis (MOSFLM p̂ = z = fast) fully polarized P is smaller, across it larger
    assert ratio[32, 0] < 0.9 and ratio[0, 32] > 1.1
    _, clean_t, _ = run_cli(capsys, args + ["-trace_pixel", "32", "0"])
    _, bad_t, _ = run_cli(capsys, args + ["-trace_pixel", "32", "0", "--inject", "kahn-default-one"])
    cos2 = taps(clean_t)["cos_2theta"][0][0]
    assert taps(bad_t)["polar"][0][0] < 0.5 * (1 + cos2 * cos2) - 0.05


def test_kahn_fault_with_an_explicit_polar_only_skips_the_per_pixel_path():
    # K given: the default does not apply, so the oversample_polar path is untouched ...
    args = WIDE_ANGLE + "-oversample 1 -polar 0.5 -oversample_polar".split()
    clean, bad = _frames(args, "kahn-default-one")
    assert np.array_equal(clean, bad)
    # ... and the per-pixel path still leaves P out
    clean, bad = _frames(WIDE_ANGLE + "-oversample 1 -polar 0.5".split(), "kahn-default-one")
    assert (bad / clean).max() > 1.2


def _crystal(argv):
    from nbtrace.sim.cli import parse_args
    from nbtrace.sim.setup import build_setup

    return build_setup(parse_args(list(argv))).crystal


def test_triclinic_fault_scales_both_bases_by_the_formula_volume():
    args = SMALL[:2] + TRICLINIC + SMALL[9:]
    good, bad = _crystal(args), _crystal(args + ["--inject", "triclinic-volume-formula"])
    a, b, c = (v.numpy() for v in (good.a0, good.b0, good.c0))
    formula = np.linalg.norm(a) * np.linalg.norm(b) * np.linalg.norm(c)
    # a* = (b×c)/V: scaled by V_cell/V_formula; a = (b*×c*)·V_formula then brings back
    # a·(b×c) of the generated vectors (equal to the cell's V to ~1e-5, not to the last bit)
    s_star = good.volume_A3 * 1e-30 / formula
    s_real = float(np.dot(a, np.cross(b, c))) / formula
    assert 0.984 < s_star < 0.995 and 0.984 < s_real < 0.995  # the incident's 0.5–1.6 %
    for s, pairs in ((s_star, ((good.a_star, bad.a_star), (good.b_star, bad.b_star), (good.c_star, bad.c_star))),
                     (s_real, ((good.a0, bad.a0), (good.b0, bad.b0), (good.c0, bad.c0)))):
        for g, w in pairs:
            np.testing.assert_allclose(w.numpy(), s * g.numpy(), rtol=1e-12, atol=1e-300)


def test_triclinic_fault_moves_the_spots():
    args = "-lambda 1 -cell 50 60 70 86 94 96 -N 5 -default_F 100 -distance 100 -detpixels 32 -pixel 0.8 -oversample 1".split()
    clean, bad = _frames(args, "triclinic-volume-formula")
    assert _corr(clean, bad) < 0.95


def test_triclinic_fault_leaves_an_orthogonal_cell_alone():
    # V = |a||b||c| is right for 90° angles: the fault needs a triclinic cell (CONTRACTS §5)
    clean, bad = _frames(SMALL, "triclinic-volume-formula")
    np.testing.assert_allclose(bad, clean, rtol=1e-12)


def test_trace_one_subpixel_changes_the_trace_not_the_image(capsys):
    # incident 20 was a trace-tool fault: the image is right, only I_before_scaling is 1/os²
    args = SMALL + ["-oversample", "2"]
    clean, bad = _frames(args, "trace-one-subpixel")
    assert np.array_equal(clean, bad)
    _, clean_t, _ = run_cli(capsys, args + ["-trace_pixel", "20", "9"])
    _, bad_t, _ = run_cli(capsys, args + ["-trace_pixel", "20", "9", "--inject", "trace-one-subpixel"])
    c, b = taps(clean_t), taps(bad_t)
    assert b["I_before_scaling"][0][0] == c["I_before_scaling"][0][0] / 4
    assert b["I_pixel_final"] == c["I_pixel_final"]


def test_first_subpixel_alone_is_not_a_quarter_of_the_sum(capsys):
    # why the injection reports sum ÷ os² and not the first subpixel's own term: in the
    # configuration of examples/20 that term is far from a quarter of the sum (one source,
    # φ step and domain, so a block's F_cell²·F_latt² is that subpixel's whole contribution)
    args = "-oversample 2 -lambda 1 -cell 50 50 50 90 90 90 -N 5 -default_F 100 -distance 100 -detpixels 64 -pixel 0.4"
    _, out, _ = run_cli(capsys, args.split() + ["-trace_pixel", "32", "32"])
    t = taps(out)
    terms = [f[0] ** 2 * g[0] ** 2 for f, g in zip(t["F_cell"], t["F_latt"])]
    assert len(terms) == 4 and sum(terms) == pytest.approx(t["I_before_scaling"][0][0], rel=1e-12)
    assert abs(terms[0] / sum(terms) - 0.25) > 0.1
