"""-trace_pixels_from FILE|-: pixels read after setup trace exactly as -trace_pixel would."""

import io
import subprocess
import sys

import pytest

from simhelp import SMALL, run_cli


def _without_argv(text: str) -> list[str]:
    # the argv setup tap records the flags given, which differ by construction
    return [line for line in text.splitlines() if not line.startswith("TRACE_PY:argv=")]


def test_file_and_stdin_equal_trace_pixel(capsys, tmp_path, monkeypatch):
    code, ref, _ = run_cli(capsys, SMALL + ["-trace_pixel", "3", "4", "-trace_pixel", "20", "11"])
    assert code == 0 and ref.count("TRACE_CONFIG: tracing pixel") == 2
    pix = tmp_path / "pixels.txt"
    pix.write_text("# slow fast\n3 4\n\n20 11\n")
    code, from_file, _ = run_cli(capsys, SMALL + ["-trace_pixels_from", str(pix)])
    assert code == 0 and _without_argv(from_file) == _without_argv(ref)
    monkeypatch.setattr("sys.stdin", io.StringIO("3 4\n20 11\n"))
    code, from_stdin, _ = run_cli(capsys, SMALL + ["-trace_pixels_from", "-"])
    assert code == 0 and _without_argv(from_stdin) == _without_argv(ref)


def test_real_stdin_of_a_process_and_empty_input_is_quiet(capsys):
    # the command line leaves without interpreter teardown: the whole trace must still arrive
    _, ref, _ = run_cli(capsys, SMALL + ["-trace_pixel", "5", "6", "-trace_pixel", "30", "2"])
    cmd = [sys.executable, "-m", "simulator", *SMALL, "-trace_pixels_from", "-"]
    done = subprocess.run(cmd, input="5 6\n30 2\n", capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and _without_argv(done.stdout) == _without_argv(ref)
    empty = subprocess.run(cmd, input="", capture_output=True, text=True, timeout=120)
    assert (empty.returncode, empty.stdout, empty.stderr) == (0, "", "")


@pytest.mark.parametrize("content, fragment", [
    ("3 4\n3 x\n", "pixels.txt:2"),
    ("3 4 5\n", "pixels.txt:1"),
    ("7\n", "pixels.txt:1"),
    ("99 0\n", "outside the 32x32 detector"),
])
def test_malformed_line_is_one_line_exit_2(capsys, tmp_path, content, fragment):
    pix = tmp_path / "pixels.txt"
    pix.write_text(content)
    code, out, err = run_cli(capsys, SMALL + ["-trace_pixels_from", str(pix)])
    lines = [line for line in err.splitlines() if line.startswith("nbsim: error:")]
    assert code == 2 and out == "" and len(lines) == 1 and fragment in lines[0], err
    assert "Traceback" not in err and "hint:" in lines[0]


@pytest.mark.parametrize("argv, fragment", [
    (["-trace_pixels_from"], "-trace_pixels_from needs a file name"),
    (["-trace_pixels_from", "/nonexistent/p.txt"], "cannot read -trace_pixels_from file"),
    (["-trace_pixels_from", "a", "-trace_pixels_from", "b"], "given twice"),
])
def test_flag_errors(capsys, argv, fragment):
    code, _, err = run_cli(capsys, SMALL + argv)
    assert code == 2 and err.count("nbsim: error:") == 1 and fragment in err, err
