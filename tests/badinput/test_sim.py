"""The simulator's flags: nonsense is one line and exit 2, as the C reference refuses it (issue 11).

One table, one row per case: the flags added to a small valid run, the exit code, a piece of the
single ``nbsim: error:`` line, and whether the C reference refuses the row the same way (the
caps and ``-device`` exist only in the simulator). Rows with exit code 0 show that a cap's flag
lifts it. Adding a case is adding a line.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

import pytest

from nbtrace.sim.cli import main

BASE = ("-lambda 1 -cell 100 100 100 90 90 90 -N 5 -default_F 100 -distance 100 -detpixels 16 -pixel 0.1").split()


@dataclass(frozen=True)
class Row:
    id: str
    flags: str  # added to BASE (a -cell here replaces BASE's, as a later flag does)
    code: int
    message: str
    c_too: bool = True  # the C reference refuses it with exit 2 as well

    def param(self):
        return pytest.param(self, id=self.id)


ROWS = [
    Row("cell-nan", "-cell 50 nan 50 90 90 90", 2, "-cell must be a finite number, got 'nan'"),
    Row("default-F-nan", "-default_F nan", 2, "-default_F must be a finite number"),
    Row("detector-thick-nan", "-detector_thick nan", 2, "-detector_thick must be a finite number"),
    Row("mosaic-nan", "-mosaic nan -mosaic_domains 2", 2, "-mosaic must be a finite number"),
    Row("fluence-nan", "-fluence nan", 2, "-fluence must be a finite number"),
    Row("polar-nan", "-polar nan", 2, "-polar must be a finite number"),
    Row("misset-nan", "-misset nan 0 0", 2, "-misset must be a finite number"),
    Row("xbeam-nan", "-Xbeam nan", 2, "-Xbeam must be a finite number"),
    Row("twotheta-nan", "-twotheta nan", 2, "-twotheta must be a finite number"),
    Row("distance-inf", "-distance inf", 2, "-distance must be a finite number > 0"),
    Row("fdet-zero", "-fdet_vector 0 0 0", 2, "-fdet_vector 0 0 0 is a zero vector"),
    Row("sdet-zero", "-sdet_vector 0 0 0", 2, "-sdet_vector 0 0 0 is a zero vector"),
    Row("beam-zero", "-beam_vector 0 0 0", 2, "-beam_vector 0 0 0 is a zero vector"),
    Row("spindle-zero", "-spindle_axis 0 0 0", 2, "-spindle_axis 0 0 0 is a zero vector"),
    Row("twotheta-axis-zero", "-twotheta_axis 0 0 0", 2, "-twotheta_axis 0 0 0 is a zero vector"),
    Row("oversample-huge", "-oversample 100000", 2, "above the cap of 1000000", c_too=False),
    Row("phisteps-huge", "-phisteps 100000000", 2, "phi steps 100000000", c_too=False),
    Row("mosaic-domains-huge", "-mosaic 1 -mosaic_domains 2000000", 2, "mosaic domains 2000000", c_too=False),
    Row("dispsteps-huge", "-dispersion 1 -dispsteps 2000000", 2, "sources 2000000", c_too=False),
    Row("detsize-huge", "-detpixels 0 -detsize 1e300", 2, "above the cap of 268435456 pixels", c_too=False),
    Row("detpixels-huge", "-detpixels 100000", 2, "-max_pixels N raises the cap", c_too=False),
    Row("detsize-huge-image", "-detpixels 0 -detsize 1e300 -floatfile x.bin", 2, "1e+301 x 1e+301 pixels", c_too=False),
    Row("detpixels-huge-image", "-detpixels 1000000 -floatfile x.bin", 2, "GiB for its images", c_too=False),
    Row("max-steps-zero", "-max_steps 0", 2, "-max_steps must be >= 1", c_too=False),
    Row("device-garbage", "-device cpu:abc", 2, "-device 'cpu:abc' is not a device", c_too=False),
    Row("trace-pixel-outside", "-trace_pixel 99 0", 2, "is outside the 16x16 detector"),
    # the caps' flags lift them (a trace of one pixel keeps these quick)
    Row("max-steps-lifts", "-oversample 40 -max_steps 2000000 -trace_pixel 3 3", 0, "", c_too=False),
    Row("max-pixels-lifts", "-detpixels 20000 -max_pixels 400000000 -trace_pixel 3 3", 0, "", c_too=False),
]


def _argv(row: Row) -> list[str]:
    flags = row.flags.split()
    if "-detpixels" in flags and flags[flags.index("-detpixels") + 1] == "0":
        base = BASE[:-4] + BASE[-2:]  # no -detpixels: the -detsize row sizes the detector
        flags = flags[2:]
    else:
        base = BASE
    return base + flags


@pytest.mark.parametrize("row", [r.param() for r in ROWS])
def test_simulator(row, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(_argv(row))
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "internal error" not in err, err
    assert code == row.code, err
    if row.code == 2:
        assert err.count("\n") == 1 and err.startswith("nbsim: error: ") and row.message in err, err
        assert out == ""


@pytest.mark.parametrize("row", [r.param() for r in ROWS if r.c_too])
def test_c_reference_refuses_it_too(row, nbref, tmp_path):
    res = subprocess.run([str(nbref), *_argv(row), "-trace_pixel", "1", "1"], capture_output=True, text=True,
                         cwd=tmp_path, timeout=60)
    assert res.returncode == 2, res.stderr
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("nbref: error: ") and res.stdout == ""
    # the same flag is named
    assert row.flags.split()[0] in res.stderr, res.stderr


def test_every_row_id_is_unique():
    ids = [r.id for r in ROWS]
    assert len(ids) == len(set(ids))

