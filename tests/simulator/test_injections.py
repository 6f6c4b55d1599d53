"""Every --inject NAME reproduces its incident: the contract's tap is the first to diverge
(at 1e-9 relative) in the trace, and the taps upstream of it agree with a clean run."""

import numpy as np
import pytest

from simulator.injections import INJECTIONS
from simulator.taps import BLOCK_TAPS, SCALING_TAPS
from simhelp import SMALL, loop_lines, run_cli, taps

ORDER = BLOCK_TAPS + SCALING_TAPS
TILTED_THICK = SMALL + "-detector_thick 200 -detector_rotx 20 -detector_roty 15".split()

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
    "triclinic-volume-formula": (None, (20, 9), "rot_a_star_A_inv"),
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
        base = SMALL[:2] + "-cell 70 80 90 85 95 100".split() + SMALL[9:]
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
    assert all(len(line.split("\t")) == 2 and line.split("\t")[1].isdigit() for line in lines)
    assert "mosflm-half-pixel\t7" in lines


@pytest.mark.parametrize("name", sorted(CASES))
def test_injection_without_its_flags_still_runs(name, capsys):
    # rows that need particular flags (CONTRACTS §5) must not crash when those flags are absent
    code, out, err = run_cli(capsys, SMALL + ["-trace_pixel", "20", "9", "--inject", name])
    assert code == 0, err
    assert np.isfinite(taps(out)["I_pixel_final"][0][0])
