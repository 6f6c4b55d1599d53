"""`nbtrace diff`: exit codes, exact console output (NO_COLOR=1 COLUMNS=80), --format, --out,
one-line errors, and no torch import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nbtrace.cli import main
from nbtrace.cli.diff import parse_context

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "incidents"
CLI = DATA / "cli"
SPEC = str(ROOT / "tap_specs" / "nanobragg.yaml")

PINNED = (
    'DIVERGE: root cause q_vec: port = reference × 1e-10 in all 3 components\n'
    'Port = reference × 1e-10 in all 3 components (one constant ratio, not a known\n'
    'unit or run factor of a dimensionless value); 1 later tap inherits it.\n'
    '\n'
    '3 taps compared over 3 matched records: 1 introduced, 1 inherited, 1 agree; only\n'
    'in A: 0 record(s) of 0 tap(s), only in B: 1 record(s) of 1 tap(s).\n'
    'A (reference): a.log, pixels (slow, fast) (3, 4)\n'
    'B (port): b.log, pixels (slow, fast) (3, 4)\n'
    '\n'
    'Warnings:\n'
    '  - A never emitted 1 tap(s) that B printed: extra_tap\n'
    '\n'
    'status       tap         verdict            max rel   first at\n'
    '──────────────────────────────────────────────────────────────────\n'
    'introduced   q_vec       scale ×1e-10             1   pixel (3, 4)\n'
    'inherited    intensity   out of tolerance    0.0588   pixel (3, 4)\n'
    'missing      extra_tap   missing                  -   pixel (3, 4)\n'
    '1 agreeing tap(s) not listed; --all lists every tap\n'
    '\n'
    'q_vec: port = reference × 1e-10 in all 3 components (one constant ratio, not a\n'
    'known unit or run factor of a dimensionless value)\n'
    'Mismatched elements: 3 / 3 (100.0%)\n'
    'Greatest absolute difference: 3000 at pixel (3, 4), component 2 (up to 0.0187\n'
    'allowed)\n'
    'Greatest relative difference: 1 at pixel (3, 4), component 0 (up to 5e-06\n'
    'allowed)\n'
    'Would pass with rtol=0.802 (relative to max(|a|, |b|, ‖row‖); used rtol=5e-06,\n'
    'atol=0)\n'
    'The failure occurred for item q_vec at pixel (3, 4), component 0 (A a.log:3, B\n'
    'b.log:3)\n'
)


def run(args, capsys, monkeypatch, cwd=None):
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "80")
    if cwd is not None:
        monkeypatch.chdir(cwd)
    with pytest.raises(SystemExit) as exc:
        main(["diff", *map(str, args)])
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def test_console_output_is_pinned(capsys, monkeypatch):
    code, out, err = run(["a.log", "b.log"], capsys, monkeypatch, cwd=CLI)
    assert code == 1
    assert out == PINNED
    assert err == ""


def test_identical_exit_0(capsys, monkeypatch):
    d = DATA / "identical"
    code, out, _ = run([d / "reference.log", d / "port.log", "--spec", SPEC], capsys, monkeypatch)
    assert code == 0
    assert out.startswith("AGREE: All 53 compared taps agree (58 records matched)\n")


def test_default_spec_is_chosen_for_nanobragg_names(capsys, monkeypatch):
    d = DATA / "r02_svec_inverse_angstrom"
    code, out, _ = run([d / "reference.log", d / "port.log", "--format", "json"], capsys, monkeypatch)
    doc = json.loads(out)
    assert code == 1
    assert doc["spec"] == "nanobragg"
    assert doc["root_cause"]["tap"] == "scattering_vec_A_inv"


def test_json_contract_keys(capsys, monkeypatch):
    d = DATA / "r03_fluence_beamsize_mm"
    code, out, _ = run([d / "reference.log", d / "port.log", "--spec", SPEC, "--format", "json"], capsys, monkeypatch)
    doc = json.loads(out)
    assert code == 1
    assert doc["verdict"] == "diverge"
    assert set(doc["root_cause"]) >= {"tap", "index", "kind", "factor", "explanation"}
    assert doc["root_cause"]["factor"] == pytest.approx(1e6)
    assert doc["root_cause"]["index"] == {"pixel": [40, 57], "loop": {}, "occurrence": 0}
    assert set(doc["counts"]) == {"matched", "only_a", "only_b", "divergent", "immaterial", "incomplete"}
    assert doc["counts"]["divergent"] == 3
    tap_keys = {"tap", "index", "kind", "status", "max_abs", "max_rel", "tolerance", "factor",
                "a", "b", "loc_a", "loc_b", "message"}
    for t in doc["taps"]:
        assert set(t) >= tap_keys
        assert t["status"] in ("agree", "introduced", "inherited", "missing")
    assert {"only_a", "only_b", "pixels", "warnings"} <= set(doc)


def test_markdown_format(capsys, monkeypatch):
    d = DATA / "r05_svec_two_pi"
    code, out, _ = run([d / "reference.log", d / "port.log", "--spec", SPEC, "--format", "md"], capsys, monkeypatch)
    assert code == 1
    assert out.startswith("# nbtrace diff\n\n**DIVERGE** — `scattering_vec_A_inv` is the first divergence")
    assert "| introduced | `scattering_vec_A_inv` | scale ×6.28319 |" in out


def test_out_dir_writes_three_files(capsys, monkeypatch, tmp_path):
    d = DATA / "r07_mosflm_half_pixel"
    out_dir = tmp_path / "report"
    code, _, _ = run([d / "reference.log", d / "port.log", "--spec", SPEC, "--out", out_dir], capsys, monkeypatch)
    assert code == 1
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert metrics["root_cause"]["tap"] == "pix0_vector_meters"
    assert (out_dir / "summary.md").read_text().startswith("# nbtrace diff")
    meta = json.loads((out_dir / "run_metadata.json").read_text())
    assert set(meta["inputs"]) == {"a", "b", "spec"}
    import hashlib

    assert meta["inputs"]["a"]["sha256"] == hashlib.sha256((d / "reference.log").read_bytes()).hexdigest()
    assert meta["versions"]["numpy"]
    assert "git_sha" in meta and meta["argv"]


def test_context_and_dtype_options(capsys, monkeypatch):
    assert parse_context(("N=5,5,5", "oversample=2", "dtype=float32")) == {
        "N": (5.0, 5.0, 5.0), "oversample": 2.0, "dtype": "float32"}
    d = DATA / "r17_float32"
    code, out, _ = run([d / "reference.log", d / "port.log", "--spec", SPEC, "--dtype", "float32"], capsys, monkeypatch)
    assert code == 0 and "float32 noise" in out


def test_different_pixels_exit_2_then_force(capsys, monkeypatch):
    d = DATA / "r19_transposed_pixel"
    code, out, err = run([d / "reference.log", d / "port.log", "--spec", SPEC], capsys, monkeypatch)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert "these traces are of different pixels: A traced (slow=40, fast=57), B traced (slow=57, fast=40)" in err
    code, out, _ = run([d / "reference.log", d / "port.log", "--spec", SPEC, "--force"], capsys, monkeypatch)
    assert code == 1 and "pixel_pos_meters" in out


def test_headerless_different_pixels_exit_2(capsys, monkeypatch, tmp_path):
    d = DATA / "r19_transposed_pixel"
    paths = []
    for name in ("reference.log", "port.log"):
        lines = (d / name).read_text().splitlines(keepends=True)
        (tmp_path / name).write_text("".join(ln for ln in lines if not ln.startswith("TRACE_CONFIG")))
        paths.append(tmp_path / name)
    code, out, err = run([*paths, "--spec", SPEC], capsys, monkeypatch)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "appear to be of different pixels: pixel_pos_meters differs by (Δslow, Δfast) = (17, -17)" in err
    code, _, _ = run([*paths, "--spec", SPEC, "--force"], capsys, monkeypatch)
    assert code == 1


def test_tap_with_wrong_arity_for_its_declared_shape_is_bad_input(capsys, monkeypatch, tmp_path):
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    a.write_text("TRACE_C: pixel_pos_meters 0.1 0 0.006\nTRACE_C: omega_pixel_sr 1.6e-05\n")
    b.write_text("TRACE_PY: omega_pixel_sr 1.6e-05\nTRACE_PY: pixel_pos_meters 0.1 0.006\n")
    code, out, err = run([a, b, "--spec", SPEC], capsys, monkeypatch)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert f"{b}:2: tap `pixel_pos_meters` has 2 value(s), but the spec declares shape [3] at {SPEC}:" in err


def test_spec_by_shipped_name(capsys, monkeypatch):
    d = DATA / "identical"
    code, out, _ = run([d / "reference.log", d / "port.log", "--spec", "nanobragg"], capsys, monkeypatch)
    assert code == 0 and out.startswith("AGREE: All ")
    code, out, err = run([d / "reference.log", d / "port.log", "--spec", "nanobrag"], capsys, monkeypatch)
    assert code == 2 and "nanobrag: cannot read tap spec" in err


def test_forced_dialect_says_what_it_left_unread(capsys, monkeypatch):
    mixed = ROOT / "tests" / "data" / "wild" / "at002_c_trace_pixel_64_79.log"  # 25 eq + 22 space taps
    code, out, _ = run([mixed, mixed, "--dialect", "eq", "--format", "json"], capsys, monkeypatch)
    doc = json.loads(out)
    assert code == 0 and doc["counts"]["matched"] == 25
    assert doc["warnings"][:2] == [
        "--dialect eq: 22 tap line(s) of A in other forms (22 space) were not read, so they are not "
        "compared (221 line(s) of A ignored in all)",
        "--dialect eq: 22 tap line(s) of B in other forms (22 space) were not read, so they are not "
        "compared (221 line(s) of B ignored in all)"]
    code, out, _ = run([mixed, mixed], capsys, monkeypatch)
    assert code == 0 and "--dialect" not in out


def test_pixel_option_selects_one_pixel(capsys, monkeypatch):
    d = DATA / "identical"
    code, _, _ = run([d / "reference.log", d / "port.log", "--spec", SPEC, "--pixel", "40", "57"], capsys, monkeypatch)
    assert code == 0
    code, _, err = run([d / "reference.log", d / "port.log", "--pixel", "57", "40"], capsys, monkeypatch)
    assert code == 2 and "is not in this trace (it has: (40, 57))" in err


def test_nothing_compared_is_a_failure(capsys, monkeypatch, tmp_path):
    a = tmp_path / "a.log"
    b = tmp_path / "b.log"
    a.write_text("TRACE_C: alpha 1\nTRACE_C: beta 2\n")
    b.write_text("TRACE_PY: gamma 1\n")
    code, out, _ = run([a, b], capsys, monkeypatch)
    assert code == 1
    head, rest = out.split("\n", 1)
    assert head == "DIVERGE: Nothing was compared"
    assert " ".join(rest.split()).startswith("No record of A matches a record of B "
                                             "(A had 2 records: alpha, beta; B had 1: gamma).")


@pytest.mark.parametrize("args,needle", [
    (["missing.log", "b.log"], "missing.log: no such file"),
    (["a.log", "b.log", "--rtol", "1e-3"], "--rtol and --atol go together"),
    (["a.log", "b.log", "--context", "N"], "is not KEY=VALUE"),
    (["a.log", "b.log", "--dialect", "klingon"], "unknown dialect 'klingon'"),
    (["a.log", "b.log", "--spec", "nope.yaml"], "nope.yaml"),
    (["a.log", "b.log", "--format", "html"], "html"),
    (["a.log"], "Missing argument"),
])
def test_bad_usage_is_one_line_exit_2(args, needle, capsys, monkeypatch):
    code, out, err = run(args, capsys, monkeypatch, cwd=CLI)
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert needle in err and "Traceback" not in err


def test_bad_spec_yaml_names_file_line_col(capsys, monkeypatch, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("spec: x\ntaps: [\n")
    code, _, err = run(["a.log", "b.log", "--spec", bad], capsys, monkeypatch, cwd=CLI)
    assert code == 2 and f"{bad}:3:1" in err


def test_diff_command_does_not_import_torch():
    code = "import nbtrace.cli.diff, nbtrace.engine.diff, nbtrace.report.console, sys; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def _combined_log(tmp_path: Path) -> Path:
    """One log holding both producers' taps, as a single run printing TRACE_C and TRACE_PY does."""
    a = (CLI / "a.log").read_text().splitlines()
    b = (CLI / "b.log").read_text().splitlines()
    header = a[0]
    lines = [header] + [x for pair in zip(a[1:], b[1:]) for x in pair] + b[len(a):]
    path = tmp_path / "both.log"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_prefix_a_b_diff_one_log_holding_both_producers(tmp_path, capsys, monkeypatch):
    log = _combined_log(tmp_path)
    code, out, err = run([log, log, "--prefix-a", "TRACE_C", "--prefix-b", "TRACE_PY", "--format", "json"],
                         capsys, monkeypatch)
    both = json.loads(out)
    code2, out2, _ = run([CLI / "a.log", CLI / "b.log", "--format", "json"], capsys, monkeypatch)
    separate = json.loads(out2)
    assert (code, err) == (1, "")
    assert both["root_cause"] == separate["root_cause"] and both["root_cause"]["tap"] == "q_vec"
    for key in ("verdict", "headline", "counts", "only_a", "only_b"):
        assert both[key] == separate[key], key


def test_one_log_without_prefixes_names_the_options(tmp_path, capsys, monkeypatch):
    log = _combined_log(tmp_path)
    code, out, err = run([log, log], capsys, monkeypatch)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert "mixes two tap prefixes" in err and "--prefix-a and --prefix-b, one of TRACE_PY, TRACE_C" in err
    assert "both.log:" in err


def test_unknown_prefix_is_one_line_exit_2(tmp_path, capsys, monkeypatch):
    log = _combined_log(tmp_path)
    code, out, err = run([log, log, "--prefix-a", "TRACE_C", "--prefix-b", "TRACE_X"], capsys, monkeypatch)
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [err.strip()]
    assert "no taps with prefix 'TRACE_X'" in err and "TRACE_C, TRACE_PY" in err


def test_select_pixel_keeps_the_setup_and_that_pixel_in_order():
    from nbtrace.cli.diff import select_pixel
    from nbtrace.engine.parse import read_trace

    t = read_trace(DATA / "r21_edge_geometry" / "reference.log")
    pixels = sorted({r.index.pixel for r in t.records if r.index.pixel is not None})
    assert len(pixels) >= 2
    for p in pixels:
        got = select_pixel(t, p)
        assert got.records == tuple(r for r in t.records if r.index.pixel in (None, p)) and got.pixels == (p,)


def test_closed_stdout_pipe_keeps_the_divergence_exit_code():
    import os
    import subprocess
    import sys
    from pathlib import Path

    data = Path(__file__).resolve().parents[1] / "data" / "incidents" / "r02_svec_inverse_angstrom"
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run([sys.executable, "-m", "nbtrace", "diff", str(data / "reference.log"),
                               str(data / "port.log")], stdout=write_end, stderr=subprocess.PIPE, timeout=120)
    finally:
        os.close(write_end)
    assert proc.returncode == 1 and proc.stderr == b""
