"""Every flag family of the issue parses into the configuration with nanoBragg's units."""

import math

import pytest

from nbtrace.sim.cli import parse_args
from nbtrace.sim.constants import RTD

BASE = ["-cell", "100", "100", "100", "90", "90", "90", "-default_F", "1"]

ISSUE_FLAGS = (
    "-cell -mat -misset -hkl -default_F -N -Na -Nb -Nc -lambda -dispersion -dispsteps -hdivrange -vdivrange "
    "-hdivsteps -vdivsteps -divsteps -fluence -flux -exposure -beamsize -polar -nopolar -distance "
    "-close_distance -detsize -detpixels -pixel -Xbeam -Ybeam -ORGX -ORGY -mosflm -xds -adxv -denzo -dials "
    "-detector_rotx -detector_roty -detector_rotz -twotheta -pivot -phi -osc -phisteps -mosaic "
    "-mosaic_domains -mosaic_seed -oversample -roi -round_xtal -square_xtal -gauss_xtal -tophat_xtal "
    "-point_pixel -detector_thick -detector_abs -thicksteps -floatfile -intfile -noisefile -seed -scale -adc "
    "-trace_pixel -trace_roi -dtype -device"
).split()


def test_every_issue_flag_is_known():
    from nbtrace.sim.cli import FLAGS
    assert [f for f in ISSUE_FLAGS if f not in FLAGS] == []


@pytest.mark.parametrize("extra, field, value", [
    (["-lambda", "1.5"], "lambda0", 1.5e-10),
    (["-energy", "12398.42"], "lambda0", 1e-10),
    (["-distance", "250"], "distance", 0.25),
    (["-pixel", "0.172"], "pixel", 0.172 / 1000),
    (["-Xbeam", "51.2"], "Xbeam", 0.0512),
    (["-phi", "10"], "phi0", 10 / RTD),
    (["-mosaic", "0.5"], "mosaic_spread", 0.5 / RTD),
    (["-hdivrange", "2"], "hdivrange", 0.002),
    (["-dispersion", "10"], "dispersion", 0.1),
    (["-detector_thick", "320"], "thickness", 320e-6),
    (["-water", "100"], "water", 100e-6),
    (["-dmin", "2"], "dmin", 2e-10),
    (["-beamsize", "0.05"], "beamsize", 5e-5),
    (["-mosaic_seed", "42"], "mosaic_seed", -42),
    (["-seed", "9"], "seed", -9),
    (["-N", "7"], "N", (7, 7, 7)),
    (["-Nb", "3"], "N", (1, 3, 1)),
    (["-detpixels", "100"], "detpixels_f", 100),
    (["-roi", "1", "2", "3", "4"], "roi", (1, 2, 3, 4)),
    (["-divsteps", "3"], "vdivsteps", 3),
    (["-tophat_xtal"], "shape", "tophat"),
    (["-xds"], "convention", "XDS"),
    (["-fdet_vector", "0", "0", "1"], "convention", "CUSTOM"),
    (["-twotheta_axis", "5", "1", "0"], "twotheta", 5 / RTD),
])
def test_units_at_parse_time(extra, field, value):
    cfg = parse_args(BASE + extra)
    got = getattr(cfg, field)
    if isinstance(value, float):
        assert math.isclose(got, value, rel_tol=1e-15)
    else:
        assert got == value


def test_detector_abs_inf_zeroes_thickness_in_argv_order():
    assert parse_args(BASE + "-detector_thick 100 -detector_abs inf".split()).thickness == 0.0
    assert math.isclose(parse_args(BASE + "-detector_abs inf -detector_thick 100".split()).thickness, 1e-4)


def test_pivot_follows_argv_order_for_custom():
    cfg = parse_args(BASE + "-fdet_vector 0 0 1 -close_distance 100 -distance 100".split())
    assert cfg.convention == "CUSTOM" and cfg.pivot == "BEAM"
    assert parse_args(BASE + "-fdet_vector 0 0 1 -distance 100 -pivot sample".split()).pivot == "SAMPLE"


def test_cell_stops_at_a_dash_token():
    cfg = parse_args(["-cell", "50", "-default_F", "1"])
    assert cfg.cell == (50.0,)
