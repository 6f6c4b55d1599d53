"""Taps come from the production pass: trace text, npz dumps and the image agree."""

import json

import numpy as np
import pytest

from nbtrace.sim import kernel as kernel_mod
from nbtrace.sim.taps import BLOCK_TAPS, SCALING_TAPS
from simhelp import SMALL, loop_lines, run_cli, taps


def test_one_pixel_trace_agrees_with_the_full_frame(capsys, tmp_path):
    img = tmp_path / "img.bin"
    code, out, _ = run_cli(capsys, SMALL + ["-floatfile", img, "-trace_pixel", 20, 9, "-trace_pixel", 3, 30])
    assert code == 0
    data = np.fromfile(img, dtype="<f4").reshape(32, 32)
    for i, (s, f) in enumerate([(20, 9), (3, 30)]):
        t = taps(out, i)
        assert t["floatimage_accumulated"][0][0] == float(data[s, f])
        assert np.float32(t["I_pixel_final"][0][0]) == data[s, f]
    # the same pixel traced alone (no image output) gives the same double value
    code, alone, _ = run_cli(capsys, SMALL + ["-trace_pixel", 20, 9])
    assert taps(alone)["I_pixel_final"] == taps(out, 0)["I_pixel_final"]


def test_tracing_one_pixel_computes_one_pixel(capsys, monkeypatch):
    seen = []
    original = kernel_mod.Kernel.render

    def spy(self, s_idx, f_idx):
        seen.append(int(s_idx.numel()))
        return original(self, s_idx, f_idx)

    monkeypatch.setattr(kernel_mod.Kernel, "render", spy)
    assert run_cli(capsys, SMALL + ["-trace_pixel", 5, 6])[0] == 0
    assert seen == [1]


def test_trace_layout_per_subpixel_and_setup_block(capsys):
    code, out, _ = run_cli(capsys, SMALL + ["-oversample", 2, "-trace_pixel", 20, 9])
    assert code == 0
    t = taps(out)
    assert all(len(t[name]) == 4 for name in BLOCK_TAPS)
    assert all(len(t[name]) == 1 for name in SCALING_TAPS)
    setup = [line for line in out.splitlines() if line.startswith("TRACE_PY:") and "=" in line.split()[0]]
    keys = [line.split("=", 1)[0][len("TRACE_PY:"):] for line in setup]
    assert keys[:4] == ["producer", "dtype", "argv", "structure_factors"]
    assert "TRACE_PY:oversample=2" in setup and "TRACE_PY:steps=4" in setup
    # I_before_scaling holds the sum over all four subpixels: trace-one-subpixel shows one share
    _, bad, _ = run_cli(capsys, SMALL + ["-oversample", 2, "-trace_pixel", 20, 9, "--inject", "trace-one-subpixel"])
    assert taps(bad)["I_before_scaling"][0][0] == t["I_before_scaling"][0][0] / 4
    assert taps(bad)["I_pixel_final"] == t["I_pixel_final"]


def test_loop_lines(capsys):
    args = SMALL + "-phi 1 -osc 0.3 -phisteps 3 -mosaic 0.2 -mosaic_domains 4 -divergence 0.1 -divsteps 2".split()
    code, out, _ = run_cli(capsys, args + ["-oversample", 2, "-trace_pixel", 20, 9])
    assert code == 0
    phi, mos, src = (loop_lines(out, k) for k in ("PHI", "MOS", "SOURCE"))
    # TRACE_PY_PHI as the real build's TRACE_C_PHI: source 0, domain 0, every φ step, every subpixel
    assert [r["phi_tic"] for r in phi] == [0, 1, 2] * 4
    assert phi[2]["phi_deg"] == pytest.approx(1.2)
    assert set(phi[0]) == {"phi_tic", "phi_deg", "k_frac", "F_latt_b", "F_latt"}
    assert [r["mos_tic"] for r in mos] == [0, 1, 2, 3]
    assert len(src) == 4 and {"lambda_meters", "incident_x", "h_frac", "F_latt"} <= set(src[0])
    assert [r["source"] for r in src] == [0, 1, 2, 3] and {r["phi_tic"] for r in src} == {0}
    t = taps(out)
    # φ step 0 of each subpixel is the first pass the block's taps show
    for k in range(4):
        assert phi[3 * k]["k_frac"] == t["hkl_frac"][k][1] and phi[3 * k]["F_latt"] == t["F_latt"][k][0]
    # mosaic domain 0 is the identity: its line is source 0's first pass, as the SOURCE line of source 0
    assert mos[0]["h_frac"] == src[0]["h_frac"] == t["hkl_frac"][0][0]


def test_npz_dump_agrees_with_the_text_trace(capsys, tmp_path):
    dump = tmp_path / "taps.npz"
    code, out, _ = run_cli(capsys, SMALL + ["-trace_roi", 8, 10, 19, 21, "-trace_dump", dump, "-trace_pixel", 20, 9])
    assert code == 0
    z = np.load(dump)
    assert list(z["roi"]) == [8, 10, 19, 21]
    meta = json.loads(bytes(z["meta_json"]).decode())
    assert meta["producer"].startswith("nbtrace-simulator") and meta["dtype"] == "float64"
    t = taps(out)
    for name in BLOCK_TAPS + SCALING_TAPS:
        value = z[name][20 - 19, 9 - 8]
        assert value.shape == (3,) or value.shape == ()
        np.testing.assert_array_equal(np.atleast_1d(value), t[name][0], err_msg=name)
    assert z["pixel_pos_meters"].shape == (3, 3, 3)
    assert np.isfinite(z["I_pixel_final"]).all()


def test_taps_after_the_dmin_test_are_absent_for_a_removed_source(capsys):
    args = "-water 0.05 -dmin 30 -lambda 1 -cell 50 50 50 90 90 90 -N 5 -default_F 100 -distance 100 -detpixels 64 -pixel 0.1"
    code, out, _ = run_cli(capsys, args.split() + ["-trace_pixel", 63, 7, "-trace_pixel", 32, 32])
    assert code == 0
    removed, kept = taps(out, 0), taps(out, 1)
    # as in the real build: nothing after the test ran for source 0, so nothing is printed
    for name in ("rot_a_angstroms", "hkl_frac", "F_latt", "F_cell"):
        assert name not in removed and kept[name][0].any(), name
    # computed before the test: still the source's values
    assert removed["lambda_meters"][0][0] == 1e-10 and removed["scattering_vec_A_inv"][0].any()
    assert removed["I_pixel_final"][0][0] == 0.0
