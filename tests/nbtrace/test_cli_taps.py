"""``nbtrace taps init|check|show``: exit codes, pinned output, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nbtrace.cli import main
from nbtrace.engine.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]
WILD = Path(__file__).resolve().parents[1] / "data" / "wild"
DIALECTS = Path(__file__).resolve().parents[1] / "data" / "dialects"


def run(argv, capsys, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "80")
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def test_check_shipped_spec_by_name(capsys, monkeypatch):
    code, out, err = run(["taps", "check", "nanobragg"], capsys, monkeypatch)
    assert code == 0 and err == ""
    assert out.endswith("nanobragg.yaml: ok: spec 'nanobragg', 98 taps, 10 with aliases, 118 after-edges, "
                        "loops: phi_tic, source\n")
    assert out.count("\n") == 1


def test_check_bad_spec_is_one_line_exit_2(tmp_path, capsys, monkeypatch):
    bad = tmp_path / "bad.yaml"
    bad.write_text("spec: mine\ntaps:\n  - name: F_cell\n    unit: electrons\n    after: [hkl_rnd]\n"
                   "  - name: hkl_rounded\n")
    code, out, err = run(["taps", "check", str(bad)], capsys, monkeypatch)
    assert code == 2 and out == ""
    assert err == (f"nbtrace: error: {bad}:5:13: 'after' of 'F_cell' names unknown tap 'hkl_rnd' "
                   "(hint: did you mean 'hkl_rounded'?)\n")


def test_check_missing_spec(tmp_path, capsys, monkeypatch):
    code, out, err = run(["taps", "check", str(tmp_path / "nope.yaml")], capsys, monkeypatch)
    assert code == 2 and "cannot read tap spec" in err and err.count("\n") == 1


def test_show_table_pins_a_row(capsys, monkeypatch):
    code, out, err = run(["taps", "show", str(ROOT / "tap_specs" / "scaling.yaml")], capsys, monkeypatch)
    assert code == 0 and err == ""
    assert out.startswith("nanobragg-scaling (")
    lines = [line.rstrip() for line in out.splitlines()]
    assert lines[1] == "tap (= aliases)         shape  unit         rtol/atol     after"
    i = lines.index("fluence_photons_per_m2  -      photons/m^2  1e-9/1e-300")
    assert lines[i + 1:i + 3] == ["  = fluence, Fluence", "(any)"]
    j = lines.index("I_pixel_final           -      photons      1e-9/1e-300   I_before_scaling")
    assert lines[j + 2].strip() == "fluence_photons_per_m2"  # upstream names are never cut
    assert "floatimage_accumulated  -      photons      1.2e-7/1e-38  I_pixel_final" in lines
    assert "\x1b[" not in out  # no colour codes with NO_COLOR


def test_show_json_round_trips_the_spec(capsys, monkeypatch):
    code, out, _ = run(["taps", "show", "nanobragg", "--json"], capsys, monkeypatch)
    assert code == 0
    data = json.loads(out)
    assert data["spec"] == "nanobragg" and len(data["taps"]) == 98
    svec = next(t for t in data["taps"] if t["name"] == "scattering_vec_A_inv")
    assert svec["unit"] == "m^-1" and svec["shape"] == [3]
    assert svec["after"] == ["diffracted_vec", "incident_vec", "lambda_meters"]
    assert svec["hints"]["1e-10"].startswith("Å⁻¹")


def test_init_writes_a_spec_that_checks(tmp_path, capsys, monkeypatch):
    out_path = tmp_path / "c.yaml"
    code, out, err = run(["taps", "init", str(WILD / "phi_c_trace_phi.log"), "-o", str(out_path)],
                         capsys, monkeypatch)
    assert code == 0 and out == ""
    assert err.startswith(f"wrote {out_path}: 66 taps from ")
    spec = load_spec(out_path)
    assert spec.get("scattering_vec_A_inv").unit == "A^-1"  # guessed from the name: to be reviewed
    code, out, _ = run(["taps", "check", str(out_path)], capsys, monkeypatch)
    assert code == 0
    code, _, err = run(["taps", "init", str(WILD / "phi_c_trace_phi.log"), "-o", str(out_path)],
                       capsys, monkeypatch)
    assert code == 2 and "exists" in err and "--force" in err


def test_init_to_stdout(capsys, monkeypatch):
    code, out, _ = run(["taps", "init", str(WILD / "tilted_py_trace_fixed.log")], capsys, monkeypatch)
    assert code == 0 and "  - name: R_total\n    shape: [3, 3]\n" in out


@pytest.mark.parametrize("name, expected", [
    ("empty.log", "empty file"),
    ("binary.log", ":2: binary content"),
    ("blank.log", "empty trace (only blank lines)"),  # a non-numeric value is no longer a refusal (issue 9)
    ("no_taps.log", "no trace lines found"),
    ("two_prefixes.log", "mixes two tap prefixes"),
])
def test_init_bad_traces_exit_2(name, expected, capsys, monkeypatch):
    code, out, err = run(["taps", "init", str(DIALECTS / name)], capsys, monkeypatch)
    assert code == 2 and out == ""
    assert err.startswith("nbtrace: error: ") and expected in err and err.count("\n") == 1


def test_init_prefix_option(capsys, monkeypatch):
    code, out, _ = run(["taps", "init", str(DIALECTS / "two_prefixes.log"), "--prefix", "TRACE_PY"],
                       capsys, monkeypatch)
    assert code == 0 and "(3 taps," in out


def test_unknown_dialect_option_is_usage_error(capsys, monkeypatch):
    code, _, err = run(["taps", "init", str(DIALECTS / "crlf.log"), "--dialect", "xml"], capsys, monkeypatch)
    assert code == 2 and "xml" in err


def test_python_m_nbtrace_taps_never_imports_torch_and_never_tracebacks(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("taps:\n  - name: a\n    unit: [m\n")
    code = ("import sys, runpy\n"
            "sys.argv = ['nbtrace', 'taps', 'check', sys.argv[1]]\n"
            "try:\n    runpy.run_module('nbtrace', run_name='__main__')\n"
            "except SystemExit as e:\n    rc = e.code\n"
            "print('torch' in sys.modules, rc)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(bad)], capture_output=True, text=True, cwd=ROOT,
                          timeout=60)
    assert proc.stdout.strip() == "False 2"
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"nbtrace: error: {bad}:4:1: YAML syntax error")


def test_check_against_a_trace(tmp_path, capsys, monkeypatch):
    code, out, _ = run(["taps", "check", "nanobragg", "--trace", str(WILD / "phi_c_trace_phi.log")],
                       capsys, monkeypatch)
    assert code == 0
    assert out == f"{WILD / 'phi_c_trace_phi.log'}: 66 of 66 tap names resolve in spec 'nanobragg'\n"
    trace = tmp_path / "t.log"
    trace.write_text("TRACE_PY: pixel_pos_meters 0.1 0.2\nTRACE_PY: my_tap 1\nTRACE_PY: F_cell_interpolated 3\n")
    code, out, _ = run(["taps", "check", "nanobragg", "--trace", str(trace), "--side", "b"], capsys, monkeypatch)
    assert code == 1
    assert out.splitlines() == [
        f"{trace}: 2 of 3 tap names resolve in spec 'nanobragg'",
        "  not in the spec: my_tap",
        f"  {trace}:1: pixel_pos_meters prints 2 value(s), the spec declares shape [3]",
    ]
