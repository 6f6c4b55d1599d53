"""`nbtrace capture both` with the real producers: the C reference (built on first use) and
the PyTorch simulator. Single-pixel traces only, so these stay fast."""

from __future__ import annotations

import json

import pytest

from nbtrace.run.capture import read_meta

DONE_WHEN = "-lambda 0.5 -cell 100 100 100 90 90 90 -N 5 -default_F 100 -distance 500 -detpixels 512 -pixel 0.05".split()


def run_cli(argv, capsys):
    from nbtrace.cli import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    return exc.value.code, out, err


@pytest.fixture(autouse=True)
def reference_c(monkeypatch):
    monkeypatch.delenv("NB_C_BIN", raising=False)


def test_done_when_command_exits_0(capsys, tmp_path, monkeypatch):
    """The issue's done-when check, verbatim (no --out: a temporary directory is used)."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # keep that directory inside the test's own
    code, out, err = run_cli(["capture", "both", "--pixel", "200", "300", "--", *DONE_WHEN], capsys)
    assert code == 0, f"{err}\n{out}"
    assert f"capture both: writing into {tmp_path}" in err


def test_both_writes_traces_with_provenance(tmp_path, capsys):
    out_dir = tmp_path / "run"
    code, out, err = run_cli(["capture", "both", "--pixel", "200", "300", "--pixel", "0", "511", "--out", str(out_dir),
                              "--format", "json", "--", *DONE_WHEN], capsys)
    assert code == 0, f"{err}\n{out}"
    report = json.loads(out)
    assert report["verdict"] == "agree"
    # every per-pixel tap pairs up (extra setup lines are provenance, CONTRACTS.md §2.1/§3)
    per_pixel = [u["tap"] for side in ("a", "b") for u in report["unmatched"][side] if u["index"]["pixel"]]
    assert per_pixel == []
    c_meta, py_meta = read_meta(out_dir / "c.trace"), read_meta(out_dir / "py.trace")
    assert c_meta["side"] == "c" and py_meta["side"] == "py"
    assert len(py_meta["source_sha256"]) == 64 and c_meta["source_sha256"] is None
    assert c_meta["dtype"] == "float64" and py_meta["dtype"] == "float64"
    assert c_meta["structure_factors"] and py_meta["structure_factors"]
    assert len(c_meta["sha256"]) == 64
    assert c_meta["pixels_traced"] == [[200, 300], [0, 511]] == py_meta["pixels_traced"]
    assert c_meta["shape"] == [512, 512] == py_meta["shape"]


def test_injected_fault_diverges_with_exit_1_and_names_the_tap(tmp_path, capsys):
    code, out, err = run_cli(["capture", "both", "--pixel", "200", "300", "--inject", "svec-two-pi",
                              "--out", str(tmp_path / "run"), "--format", "json", "--", *DONE_WHEN], capsys)
    assert code == 1, f"{err}\n{out}"
    assert json.loads(out)["root_cause"]["tap"] == "scattering_vec_A_inv"


def test_producer_bad_input_is_one_line_exit_2(tmp_path, capsys):
    code, out, err = run_cli(["capture", "both", "--pixel", "1", "1", "--out", str(tmp_path / "run"), "--",
                              "-lambda", "abc", "-cell", "100", "100", "100", "90", "90", "90", "-default_F", "1"],
                             capsys)
    assert code == 2
    errors = [ln for ln in err.splitlines() if ln.startswith("nbtrace: error:")]
    assert len(errors) == 1 and "-lambda" in errors[0], err
    assert "Traceback" not in err


def test_float32_port_agrees_within_float32_noise(tmp_path, capsys):
    code, out, err = run_cli(["capture", "both", "--pixel", "200", "300", "--dtype", "float32",
                              "--out", str(tmp_path / "run"), "--format", "json", "--", *DONE_WHEN], capsys)
    assert code == 0, f"{err}\n{out}"
    report = json.loads(out)
    assert report["verdict"] == "agree"
    assert any("float32 noise" in w for w in report["warnings"])  # compared as precision, not hidden
    assert read_meta(tmp_path / "run" / "py.trace")["dtype"] == "float32"
