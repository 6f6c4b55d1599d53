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
    cmd = [sys.executable, "-m", "nbtrace.sim", *SMALL, "-trace_pixels_from", "-"]
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


# -trace_pixels_after: the image first, then more pixels traced by the same run


def test_pixels_after_the_image_trace_as_trace_pixel_would(capsys, tmp_path, monkeypatch):
    _, ref, _ = run_cli(capsys, SMALL + ["-trace_pixel", "3", "4", "-trace_pixel", "20", "11",
                                         "-trace_pixel", "7", "30"])
    img = tmp_path / "img.float"
    monkeypatch.setattr("sys.stdin", io.StringIO("20 11\n3 4\n7 30\n"))  # 3 4 is already traced
    code, out, err = run_cli(capsys, SMALL + ["-floatfile", str(img), "-trace_pixel", "3", "4",
                                              "-trace_pixels_after", "-"])
    assert code == 0 and _without_argv(out) == _without_argv(ref)
    assert "nbsim: image written" in err and img.stat().st_size == 32 * 32 * 4


def test_pixels_after_from_a_real_process_waits_for_the_image(tmp_path):
    # the caller sees the marker (and a complete image) before it sends any pixel
    img = tmp_path / "img.float"
    cmd = [sys.executable, "-m", "nbtrace.sim", *SMALL, "-floatfile", str(img), "-trace_pixels_after", "-"]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if line.startswith("nbsim: image written"):
            break
    assert img.stat().st_size == 32 * 32 * 4 and proc.poll() is None
    out, err = proc.communicate("5 6\n", timeout=120)
    assert proc.returncode == 0 and out.count("TRACE_CONFIG: tracing pixel (spixel=5, fpixel=6)") == 1


@pytest.mark.parametrize("argv, fragment", [
    (["-trace_pixels_after"], "-trace_pixels_after needs a file name"),
    (["-trace_pixels_after", "-", "-trace_pixels_from", "-"], "cannot share stdin"),
])
def test_pixels_after_flag_errors(capsys, argv, fragment):
    code, _, err = run_cli(capsys, SMALL + argv)
    assert code == 2 and fragment in err and "Traceback" not in err


def test_pixels_after_outside_the_detector_is_one_line_exit_2(capsys, tmp_path):
    pix = tmp_path / "p.txt"
    pix.write_text("99 0\n")
    code, _, err = run_cli(capsys, SMALL + ["-floatfile", str(tmp_path / "i.float"), "-trace_pixels_after", str(pix)])
    lines = [line for line in err.splitlines() if line.startswith("nbsim: error:")]
    assert code == 2 and len(lines) == 1 and "outside the 32x32 detector" in lines[0], err


def test_pixels_after_without_an_image_file_or_fixed_pixel(capsys, monkeypatch):
    _, ref, _ = run_cli(capsys, SMALL + ["-trace_pixel", "9", "8"])
    monkeypatch.setattr("sys.stdin", io.StringIO("9 8\n"))
    code, out, err = run_cli(capsys, SMALL + ["-trace_pixels_after", "-"])
    assert code == 0 and _without_argv(out) == _without_argv(ref) and "nbsim: image written" in err
