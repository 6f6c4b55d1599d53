"""A user's own instrumented C build (tests/data/user_build/onepixel.c, which includes
simulator/c/nbtrace_tap.h) selected with NB_C_BIN is captured and diffed exactly like the
reference: `nbtrace capture both` runs it against the PyTorch simulator."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from nbtrace.run.capture import read_meta

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "tests" / "data" / "user_build" / "onepixel.c"
TAP_HEADER_DIR = ROOT / "simulator" / "c"

# the done-when geometry: MOSFLM default, 512x512 pixels of 0.05 mm
NB_ARGS = "-lambda 0.5 -cell 100 100 100 90 90 90 -N 5 -default_F 100 -distance 500 -detpixels 512 -pixel 0.05".split()
PIXELS = ["--pixel", "200", "300", "--pixel", "10", "500", "--pixel", "511", "0"]

# the taps onepixel.c leaves out on purpose; the report must name them
NEVER_EMITTED = {"r_e_meters", "r_e_sqr", "fluence_photons_per_m2", "capture_fraction",
                 "floatimage_accumulated", "rot_a_star_A_inv", "cos_2theta"}


def build(tmp_path: Path, *defines: str) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc, "no C compiler on PATH: the user-build test needs cc (the C reference needs one too)"
    exe = tmp_path / "onepixel"
    cmd = [cc, "-std=c99", "-O2", "-DNBTRACE_ENABLE", *defines, "-I", str(TAP_HEADER_DIR), str(SOURCE), "-lm",
           "-o", str(exe)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, f"compiling {SOURCE.name} failed:\n{proc.stderr}"
    return exe


def run_cli(argv, capsys):
    from nbtrace.cli import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    return exc.value.code, out, err


@pytest.fixture(scope="module")
def agreeing_run(tmp_path_factory):
    """One `capture both` of the correct user build (a PyTorch start costs ~2 s; share it)."""
    from nbtrace.cli import main

    tmp = tmp_path_factory.mktemp("user_build")
    exe = build(tmp)
    out_dir = tmp / "run"
    mp = pytest.MonkeyPatch()
    mp.setenv("NB_C_BIN", str(exe))
    try:
        import contextlib
        import io

        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exc:
            main(["capture", "both", *PIXELS, "--out", str(out_dir), "--format", "json", "--", *NB_ARGS])
    finally:
        mp.undo()
    return exc.value.code, out.getvalue(), err.getvalue(), out_dir, exe


def test_user_build_agrees_on_the_taps_it_emits(agreeing_run):
    code, out, err, out_dir, exe = agreeing_run
    assert code == 0, f"{err}\n{out}"
    report = json.loads(out)
    assert report["verdict"] == "agree", report["headline"]
    assert report["counts"]["matched"] >= 3 * 25  # three pixels, ~25 compared taps each
    assert report["only_a"] == []  # everything the user build printed has a PyTorch partner
    assert NEVER_EMITTED <= set(report["only_b"])

    meta = read_meta(out_dir / "c.trace")
    assert meta["side"] == "user-c"
    assert meta["sha256"] == hashlib.sha256(exe.read_bytes()).hexdigest()
    assert meta["producer"] == "onepixel-demo 1 (a user build)"
    assert read_meta(out_dir / "py.trace")["side"] == "py"
    assert "capture user-c:" in err


def test_console_report_lists_taps_the_user_build_never_emitted(agreeing_run, capsys):
    from nbtrace.cli.capture import print_reports, trace_diff

    out_dir = agreeing_run[3]
    print_reports({"trace": trace_diff(out_dir / "c.trace", out_dir / "py.trace", {})}, "console")
    out = capsys.readouterr().out
    missing = [tap for tap in sorted(NEVER_EMITTED) if tap not in out]
    assert not missing, f"console report does not name never-emitted taps {missing}:\n{out}"


def test_a_bug_in_the_user_build_is_localised(tmp_path, monkeypatch, capsys):
    exe = build(tmp_path, "-DDEMO_DROP_HALF_PIXEL")  # incident 7: MOSFLM half-pixel shift dropped
    monkeypatch.setenv("NB_C_BIN", str(exe))
    code, out, err = run_cli(["capture", "both", "--pixel", "200", "300", "--out", str(tmp_path / "run"),
                              "--format", "json", "--", *NB_ARGS], capsys)
    assert code == 1, f"{err}\n{out}"
    report = json.loads(out)
    assert report["root_cause"]["tap"] == "pix0_vector_meters", report["headline"]


def test_user_build_agrees_with_the_c_reference_too(agreeing_run, tmp_path, monkeypatch):
    from nbtrace.run.capture import capture
    from nbtrace.engine.diff import diff_traces
    from nbtrace.engine.parse import read_trace
    from nbtrace.engine.spec import default_spec

    monkeypatch.delenv("NB_C_BIN", raising=False)
    out_dir = agreeing_run[3]
    user = read_trace(out_dir / "c.trace")
    ref = capture("c", NB_ARGS, pixels=list(user.pixels), out_trace=tmp_path / "ref.trace")
    assert ref.side == "c"
    result = diff_traces(read_trace(ref.trace_path), user, default_spec())
    # every tap both print agrees; the taps only the reference prints make the comparison
    # incomplete, which is never "agree" (issue 11)
    assert result.root_cause is None and not result.immaterial, result.headline
    assert result.headline.startswith("Incomplete: the ") and result.verdict == "diverge"
    assert {f.verdict.tap for f in result.incomplete} >= NEVER_EMITTED
    assert NEVER_EMITTED <= {u.tap for u in result.unmatched_a}  # the reference prints them, the user build not
