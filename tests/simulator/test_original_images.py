"""Images of the original nanoBragg (data/original, see its README) reproduced by nbsim."""

from pathlib import Path

import numpy as np
import pytest

from simhelp import run_cli

DATA = Path(__file__).parent / "data" / "original"
CASES = dict(line.split("|", 1) for line in (DATA / "cases.txt").read_text().splitlines() if line.strip())


@pytest.mark.parametrize("name", sorted(CASES))
def test_float_image_matches_the_original(name, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(DATA)  # the cases name tiny.hkl relative to this folder
    out = tmp_path / "py.bin"
    code, _, err = run_cli(capsys, CASES[name].split() + ["-floatfile", out])
    assert code == 0, err
    ref = np.fromfile(DATA / f"{name}.bin", dtype="<f4").astype(np.float64)
    got = np.fromfile(out, dtype="<f4").astype(np.float64)
    assert ref.shape == got.shape and ref.max() > 0
    # float32 storage: allow a couple of ulps for a different libm
    np.testing.assert_allclose(got, ref, rtol=3e-7, atol=0)


def test_int_and_noise_images_are_byte_identical(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(DATA)
    ints, noise = tmp_path / "i.img", tmp_path / "n.img"
    code, _, err = run_cli(capsys, CASES["noise"].split() + ["-intfile", ints, "-noisefile", noise])
    assert code == 0, err
    assert ints.read_bytes() == (DATA / "noise.img").read_bytes()
    assert noise.read_bytes() == (DATA / "noise.noise.img").read_bytes()
