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
    (SMALL + ["-hkl", "/nonexistent/x.hkl"], "cannot open -hkl file"),
    (SMALL + ["--inject", "nope"], "unknown injection 'nope'"),
    (SMALL + ["-dtype", "float16"], "-dtype needs float64 or float32"),
    (SMALL + ["-trace_pixel", "99", "0"], "outside the 32x32 detector"),
    (SMALL + ["-pivot", "middle"], "-pivot needs 'beam' or 'sample'"),
    (SMALL + ["-device", "tpu"], "-device needs cpu or cuda"),
    (SMALL + ["-pixel", "0"], "-pixel must be a finite number > 0"),
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
    proc = subprocess.run([sys.executable, "-m", "nbtrace.sim", "-cell", "100", "-distance", "x"],
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


@pytest.mark.parametrize("content, where, fragment", [
    ("1 2 3 100\n1 2 abc\n", ":2", "expected 4 columns 'h k l F', found 3"),
    ("1 2 3 100\n1 2 3 abc\n", ":2:7", "structure factor 'abc' is not a number"),
    ("1.0 2 3 100\n", ":1:1", "Miller index '1.0' is not an integer"),
    ("1 2 3 100 7\n", ":1", "expected 4 columns 'h k l F', found more than 4"),
    ("", ":0", "no reflections found"),
])
def test_hkl_reader_is_strict_with_file_line_col(content, where, fragment, capsys, tmp_path):
    hkl = tmp_path / "f.hkl"
    hkl.write_text(content)
    code, _, err = run_cli(capsys, SMALL + ["-hkl", hkl])
    assert code == 2 and f"{hkl}{where}: {fragment}" in err


def test_sourcefile_comment_is_an_error(capsys, tmp_path):
    src = tmp_path / "s.txt"
    src.write_text("-10 0 0\n# comment\n")
    code, _, err = run_cli(capsys, SMALL + ["-sourcefile", src])
    assert code == 2 and f"{src}:2:1: '#' is not a number" in err


@pytest.mark.parametrize("argv, fragment", [
    (["-beamsize", "0", "-flux", "1e12"], "-beamsize 0 with -flux"),
    (["-detpixels", "0"], "-detpixels must be ≥ 1"),
    (["-lambda", "inf"], "-lambda must be a finite number > 0"),
    (["-roi", "5", "1", "0", "3"], "a minimum exceeds its maximum"),
    (["-roi", "0", "40", "0", "3"], "is not inside the 32x32 detector"),
    (["-detector_thick", "-1"], "-detector_thick must be ≥ 0"),
    (["-oversample", "-2"], "-oversample must be ≥ 0"),
    (["-distance", "0"], "-distance must be a finite number > 0"),
    (["-detpixels", "1000000", "-floatfile", "x.bin"], "GiB for its images"),
])
def test_more_bad_values(argv, fragment, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, SMALL + argv)
    assert code == 2 and fragment in err and err.count("nbsim: error:") == 1


def test_detector_without_pixels(capsys):
    code, _, err = run_cli(capsys, ["-cell", "100", "-default_F", "1", "-detsize", "0.01", "-trace_pixel", "0", "0"])
    assert code == 2 and "the detector holds no pixel (0x0)" in err
