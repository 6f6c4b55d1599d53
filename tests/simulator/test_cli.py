"""Command-line behaviour: one-line errors with exit 2, outputs, dtypes."""

import subprocess
import sys

import numpy as np
import pytest

from simhelp import SMALL, run_cli, taps


@pytest.mark.parametrize("argv, fragment", [
    (SMALL + ["-bogus"], "unknown flag '-bogus'"),
    (SMALL + ["-distanc", "100"], "unknown flag '-distanc'"),
    (SMALL + ["-distance", "abc"], "-distance needs a number, got 'abc'"),
    (SMALL + ["-distance"], "-distance needs a number"),
    (SMALL + ["-N", "2.5"], "-N needs an integer, got '2.5'"),
    (["-default_F", "100"], "no crystal given"),
    (SMALL[:9], "no structure factors"),
    (SMALL + ["-hkl", "/nonexistent/x.hkl"], "cannot read -hkl file"),
    (SMALL + ["--inject", "nope"], "unknown injection 'nope'"),
    (SMALL + ["-dtype", "float16"], "-dtype needs float64 or float32"),
    (SMALL + ["-trace_pixel", "99", "0"], "outside the 32x32 detector"),
    (SMALL + ["-pivot", "middle"], "-pivot needs 'beam' or 'sample'"),
    (SMALL + ["-device", "tpu"], "-device needs cpu or cuda"),
    (SMALL + ["-pixel", "0"], "-pixel must be > 0"),
    (SMALL + ["-energy", "0"], "-energy must be > 0"),
    (SMALL + ["-twotheta", "90"], "auto-selected oversampling would be"),
    (SMALL + ["-trace_roi", "0", "1", "0", "1", "-trace_dump", "/nonexistent/t.npz"], "cannot write the tap dump"),
    (SMALL + ["-img", "x.img"], "-img is not supported"),
])
def test_bad_input_is_one_line_and_exit_2(argv, fragment, capsys):
    code, out, err = run_cli(capsys, argv)
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("nbsim: error:")]
    assert len(lines) == 1 and fragment in lines[0], err
    assert "Traceback" not in err and "hint:" in lines[0]


def test_bad_matrix_file_names_file_and_line(capsys, tmp_path):
    mat = tmp_path / "A.mat"
    mat.write_text("1 2 3\n4 x 6\n")
    code, _, err = run_cli(capsys, ["-mat", mat, "-default_F", "1"])
    assert code == 2 and f"{mat}:2: -mat: expected a number, got 'x'" in err


def test_console_entry_point_exit_code():
    proc = subprocess.run([sys.executable, "-m", "simulator", "-cell", "100", "-distance", "x"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().count("\n") == 0 and proc.stderr.startswith("nbsim: error:")


def test_float32_agrees_with_float64(capsys, tmp_path):
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    assert run_cli(capsys, SMALL + ["-floatfile", a])[0] == 0
    assert run_cli(capsys, SMALL + ["-floatfile", b, "-dtype", "float32"])[0] == 0
    x = np.fromfile(a, "<f4").astype(float)
    y = np.fromfile(b, "<f4").astype(float)
    assert np.corrcoef(x, y)[0, 1] > 0.999999
    assert abs(y.sum() / x.sum() - 1) < 1e-5
    assert not np.array_equal(x, y)


def test_outputs_only_when_asked(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run_cli(capsys, SMALL)[0] == 0
    assert list(tmp_path.iterdir()) == []


def test_smv_header_and_layout(capsys, tmp_path):
    img = tmp_path / "i.img"
    assert run_cli(capsys, SMALL + ["-intfile", img, "-adc", "0", "-scale", "2"])[0] == 0
    raw = img.read_bytes()
    assert len(raw) == 512 + 32 * 32 * 2
    head = raw[:512].decode("ascii")
    assert head.startswith("{\nHEADER_BYTES=512;\nDIM=2;\n") and "SIZE1=32;" in head and "\n}\f" in head
    assert "DIALS_ORIGIN=" in head and "BEAMLINE=fake;" in head


def test_trace_numbers_round_trip(capsys):
    code, out, _ = run_cli(capsys, SMALL + ["-trace_pixel", "20", "9"])
    assert code == 0
    t = taps(out)
    assert t["steps"][0][0] == 4 and "TRACE_PY: steps 4" in out
    assert "TRACE_PY: hkl_rounded " in out and all(x == int(x) for x in t["hkl_rounded"][0])


def test_random_misset_is_reproducible_with_its_seed(capsys):
    def hkl(extra):
        code, out, _ = run_cli(capsys, SMALL + extra + ["-trace_pixel", 20, 9])
        assert code == 0
        return taps(out)["rot_a_angstroms"][0]
    a = hkl(["-misset_seed", "77", "-misset", "random"])
    b = hkl(["-misset_seed", "77", "-misset", "random"])
    c = hkl(["-misset_seed", "78", "-misset", "random"])
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.linalg.norm(a) == pytest.approx(100.0)
