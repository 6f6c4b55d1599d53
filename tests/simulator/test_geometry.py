"""Closed-form detector and crystal checks (physics.md §2, §5, §6)."""

import math

import numpy as np
import pytest
import torch

from nbtrace.sim.cli import parse_args
from nbtrace.sim.kernel import _block
from nbtrace.sim.setup import build_setup
from simhelp import SMALL, frame, pixels

PX, D, N = 1e-4, 0.1, 32  # 0.1 mm pixels, 100 mm, 32 × 32
BASE = "-lambda 1 -cell 100 100 100 90 90 90 -N 5 -default_F 100 -distance 100 -detpixels 32 -pixel 0.1".split()


def _pix0(extra):
    return build_setup(parse_args(BASE + extra)).detector.pix0.numpy()


@pytest.mark.parametrize("flag, expected", [
    # MOSFLM: beam (N/2 + 1) px from the corner: F = S = (3.2 + 0.1)/2 + 0.05 mm
    ("-mosflm", (D, 1.7e-3, -1.7e-3)),
    # DENZO: same default but no half-pixel shift
    ("-denzo", (D, 1.65e-3, -1.65e-3)),
    # ADXV: f = +x, s = −y, beam +z; Fbeam = (3.2+0.1)/2, Sbeam = 3.2 − (3.2−0.1)/2 mm
    ("-adxv", (-1.65e-3, 1.65e-3, D)),
    # XDS / DIALS: SAMPLE pivot about the detector centre, f = +x, s = +y, o = +z
    ("-xds", (-1.6e-3, -1.6e-3, D)),
    ("-dials", (-1.6e-3, -1.6e-3, D)),
])
def test_pix0_by_hand_for_each_convention(flag, expected):
    np.testing.assert_allclose(_pix0([flag]), expected, rtol=1e-12, atol=1e-18)


def test_xds_orgx_moves_the_near_point():
    # Fclose = (ORGX − ½)·pixel; pix0 = −Fclose·f − Sclose·s + D·o
    np.testing.assert_allclose(_pix0("-xds -ORGX 10 -ORGY 12".split()), (-0.95e-3, -1.15e-3, D), rtol=1e-12)


def test_xds_ignores_xbeam():
    assert np.array_equal(_pix0(["-xds"]), _pix0("-xds -Xbeam 1 -Ybeam 2".split()))


def test_omega_at_the_direct_beam_pixel():
    # with Xbeam = Ybeam = 1.6 mm the MOSFLM beam hits the centre of pixel (16, 16)
    args = BASE + "-Xbeam 1.6 -Ybeam 1.6 -oversample 1".split()
    setup = build_setup(parse_args(args))
    blk = _block(setup, torch.tensor([16]), torch.tensor([16]), 0, 0, 0)
    assert blk.R.item() == pytest.approx(D, rel=1e-15)
    assert blk.omega.item() == pytest.approx(PX * PX / (D * D), rel=1e-14)


def test_hkl_integral_at_a_computed_bragg_position():
    # cubic 100 Å, default orientation (a along the beam). Reflection (−1, 3, 4) is on the
    # Ewald sphere for λ = 200/26 Å: d = i + λ·q = (1 − λ/100, 3λ/100, 4λ/100). With D = 30 mm
    # and 0.1 mm pixels, pixel (s=10, f=150) looks along d when Sbeam = 8.55 mm and
    # Fbeam = 5.05 mm (MOSFLM: Xbeam = 8.5, Ybeam = 5.0).
    lam = 200.0 / 26.0
    args = (f"-lambda {lam!r} -cell 100 100 100 90 90 90 -N 5 -default_F 100 -distance 30 "
            "-detpixels 200 -pixel 0.1 -Xbeam 8.5 -Ybeam 5.0 -oversample 1").split()
    setup = build_setup(parse_args(args))
    blk = _block(setup, torch.tensor([10]), torch.tensor([150]), 0, 0, 0)
    hkl = [blk.h.item(), blk.k.item(), blk.l.item()]
    np.testing.assert_allclose(hkl, [-1, 3, 4], rtol=0, atol=1e-9)
    assert [math.ceil(x - 0.5) for x in hkl] == [-1, 3, 4]
    # (F_latt there is not checked: at h within 1e-12 of a nonzero integer sin(Nπh)/sin(πh) is
    # a ratio of rounding errors in the C formula too; test_lattice covers the closed form)


def test_intensity_is_linear_in_fluence():
    a = pixels(SMALL + ["-fluence", "1e24"], [(20, 9), (3, 30)])
    b = pixels(SMALL + ["-fluence", "3e24"], [(20, 9), (3, 30)])
    np.testing.assert_allclose(b, 3 * a, rtol=1e-14)


def test_flux_exposure_beamsize_fluence():
    setup = build_setup(parse_args(SMALL + "-flux 1e12 -exposure 2 -beamsize 0.05".split()))
    assert setup.fluence == pytest.approx(1e12 * 2 / (0.05e-3) ** 2, rel=1e-15)


def test_default_oversample_rule():
    # physics §5.9 example: 100 Å, N = 5, λ = 1 Å, D = 100 mm, 0.1 mm pixels → 2
    setup = build_setup(parse_args(BASE))
    assert setup.oversample == 2 and setup.steps == 4


def test_auto_rules_phi_mosaic_thickness():
    s = build_setup(parse_args(BASE + "-osc 1 -mosaic 0.5 -detector_thick 100".split()))
    assert (s.phi.steps, s.domains, s.detector.thicksteps) == (2, 10, 2)
    assert s.detector.thickstep == pytest.approx(50e-6)


def test_cell_angles_drift_as_in_the_c():
    # physics §2.1: -cell 70 80 90 85 95 100 ends with angles 84.9945, 95.0055, 100.001
    c = build_setup(parse_args(BASE[:2] + "-cell 70 80 90 85 95 100".split() + BASE[9:])).crystal
    a, b, cc = (v.numpy() for v in (c.a0, c.b0, c.c0))
    ang = lambda x, y: math.degrees(math.acos(np.dot(x, y) / np.linalg.norm(x) / np.linalg.norm(y)))  # noqa: E731
    assert (round(ang(b, cc), 4), round(ang(cc, a), 4), round(ang(a, b), 3)) == (84.9945, 95.0055, 100.001)


def test_roi_pixels_outside_are_zero_and_inside_match_full_frame():
    full = frame(SMALL)
    roi = frame(SMALL + "-roi 4 9 10 20".split())
    assert np.all(roi[:10] == 0) and np.all(roi[:, :4] == 0)
    np.testing.assert_array_equal(roi[10:21, 4:10], full[10:21, 4:10])


def test_sourcefile_lambda_column_is_used(tmp_path):
    src = tmp_path / "s.txt"
    src.write_text("-10 0 0 1 1.1e-10\n")
    a = frame(SMALL + ["-lambda", "1.1"])
    b = frame(SMALL + ["-sourcefile", str(src)])
    # 1.1/1e10 and 1.1e-10 may differ in the last bit; the float32 images agree (physics §4.3)
    np.testing.assert_allclose(a, b, rtol=1e-13)
    np.testing.assert_array_equal(a.astype(np.float32), b.astype(np.float32))
