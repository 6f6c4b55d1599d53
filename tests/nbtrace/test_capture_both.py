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


SMALL = [*DONE_WHEN[:-4], "-detpixels", "48", "-pixel", "0.05"]

PINNED_DIVERGE = (
    'DIVERGE: root cause scattering_vec_A_inv: port = reference × 6.28319 in all 3\n'
    'components, i.e. an extra 2π\n'
    'Q = 2π·s (physics) where the reference uses s = 1/d (crystallography); 12 later\n'
    'taps inherit it.\n'
    '\n'
    '57 taps compared over 62 matched records: 1 introduced, 12 inherited, 44 agree;\n'
    'only in A: 0 record(s) of 0 tap(s), only in B: 0 record(s) of 0 tap(s).\n'
    'A (reference): run/c.trace, pixels (slow, fast) (20, 30)\n'
    'B (port): run/py.trace, pixels (slow, fast) (20, 30)\n'
    '\n'
    'status       tap                      verdict           max rel   first at\n'
    '────────────────────────────────────────────────────────────────────────────────\n'
    'introduced   scattering_vec_A_inv     scale ×6.28319       5.28   pixel (20, 30)\n'
    'inherited    hkl_frac                 scale ×6.28319       5.28   pixel (20, 30)\n'
    'inherited    hkl_rounded              out of                inf   pixel (20, 30)\n'
    '                                      tolerance\n'
    'inherited    F_latt_a                 out of           3.87e-06   pixel (20, 30)\n'
    '                                      tolerance\n'
    'inherited    F_latt_b                 out of              0.851   pixel (20, 30)\n'
    '                                      tolerance\n'
    'inherited    F_latt_c                 out of               1.41   pixel (20, 30)\n'
    '                                      tolerance\n'
    'inherited    F_latt                   out of               1.06   pixel (20, 30)\n'
    '                                      tolerance\n'
    'inherited    k_frac[phi_tic]          scale ×6.28319       5.28   pixel (20,\n'
    '                                                                  30), phi_tic 0\n'
    'inherited    F_latt_b[phi_tic]        out of              0.851   pixel (20,\n'
    '                                      tolerance                   30), phi_tic 0\n'
    'inherited    F_latt[phi_tic]          out of               1.06   pixel (20,\n'
    '                                      tolerance                   30), phi_tic 0\n'
    'inherited    I_before_scaling         out of              0.996   pixel (20, 30)\n'
    '                                      tolerance\n'
    'inherited    I_pixel_final            out of              0.996   pixel (20, 30)\n'
    '                                      tolerance\n'
    'inherited    floatimage_accumulated   out of              0.996   pixel (20, 30)\n'
    '                                      tolerance\n'
    '44 agreeing tap(s) not listed; --all lists every tap\n'
    '\n'
    'scattering_vec_A_inv: port = reference × 6.28319 in all 3 components, i.e. an\n'
    'extra 2π: q = 2π·s (physics) where the reference uses s = 1/d (crystallography)\n'
    'Mismatched elements: 3 / 3 (100.0%)\n'
    'Greatest absolute difference: 5.8115e+07 at pixel (20, 30), component 2 (up to\n'
    '0.0903 allowed)\n'
    'Greatest relative difference: 5.28319 at pixel (20, 30), component 0 (up to\n'
    '1e-09 allowed)\n'
    'Would pass with rtol=0.651 (relative to max(|a|, |b|, ‖row‖); used rtol=1e-09,\n'
    'atol=0.001)\n'
    'The failure occurred for item scattering_vec_A_inv at pixel (20, 30), component\n'
    '0 (A run/c.trace:32, B run/py.trace:32)\n'
)


def _run_pinned(argv, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.chdir(tmp_path)  # --out run: the report names run/c.trace, the same on every machine
    return run_cli(argv, capsys)


def test_console_report_is_the_diff_report_pinned(tmp_path, capsys, monkeypatch):
    """issue 12: 'capture both' prints what `nbtrace diff` prints (one renderer): verdict word
    first, only the taps that need attention; --all adds the agreeing ones."""
    argv = ["capture", "both", "--pixel", "20", "30", "--inject", "svec-two-pi", "--out", "run", "--", *SMALL]
    code, out, err = _run_pinned(argv, capsys, monkeypatch, tmp_path)
    assert code == 1, err
    assert out == PINNED_DIVERGE
    code, same, _ = _run_pinned(["diff", "run/c.trace", "run/py.trace", "--context", "N=5,5,5"], capsys, monkeypatch,
                                tmp_path)
    assert code == 1 and same == out

    code, every, err = _run_pinned(argv[:2] + ["--all"] + argv[2:], capsys, monkeypatch, tmp_path)
    assert code == 1, err
    rows = [ln.split()[0] for ln in every.splitlines() if ln.split()[:1] in (["agree"], ["introduced"], ["inherited"])]
    assert rows.count("agree") == 44 and rows.count("introduced") == 1 and rows.count("inherited") == 12
    assert "agreeing tap(s) not listed" not in every


def test_all_is_refused_without_both(capsys):
    code, out, err = run_cli(["capture", "py", "--all", "--pixel", "1", "1", "--", *SMALL], capsys)
    assert code == 2 and "--all is for 'both'" in err and "Traceback" not in err
