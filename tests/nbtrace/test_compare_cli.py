import json
import struct

import numpy as np
import pytest
from click.testing import CliRunner

from nbtrace.cli import cli, main


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(1)
    a = rng.poisson(2, (32, 40)).astype(np.float32)
    a[10, 10] = 500
    a.tofile(tmp_path / "a.bin")
    (a * 1.1).tofile(tmp_path / "b.bin")
    np.save(tmp_path / "a.npy", a)
    return tmp_path


def _run(args):
    return CliRunner().invoke(cli, ["compare", *args], standalone_mode=False)


def test_agree_exit_0(images):
    r = _run([str(images / "a.bin"), str(images / "a.npy"), "--shape", "32", "40"])
    assert r.return_value == 0, r.output
    assert r.output.startswith("AGREE: the images agree")


def test_scaled_image_exit_1_json(images):
    r = _run([str(images / "a.bin"), str(images / "b.bin"), "--json", "--", "-detpixels_f", "40", "-detpixels_s", "32"])
    assert r.return_value == 1
    doc = json.loads(r.output)
    assert doc["verdict"] == "diverge"
    assert doc["frame"]["sum_ratio"] == pytest.approx(1.1, rel=1e-6)
    assert doc["frame"]["correlation"] == pytest.approx(1.0)
    assert set(doc["frame"]) >= {"rmse", "max_abs_diff", "max_abs_diff_at", "peaks"}


def test_roi_and_png(images):
    png = images / "figs"
    r = _run([str(images / "a.bin"), str(images / "b.bin"), "--shape", "32", "40", "--roi", "0", "3", "0", "3",
              "--sum-tol", "0.2", "--png", str(png)])
    assert r.return_value == 0, r.output
    assert "roi fast 0..3, slow 0..3 (inclusive)" in r.output
    assert sorted(p.name for p in png.iterdir()) == ["images.png", "radial.png", "zoom.png"]
    data = (png / "images.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">I", data[16:20])[0] > 600


@pytest.mark.parametrize("extra,needle", [
    (["--shape", "30", "40"], "holds 1280 float32 values"),
    ([], "needs a shape"),
    (["--shape", "32", "40", "--roi", "0", "40", "0", "1"], "outside the 32x40 image"),
])
def test_bad_input_one_line_exit_2(images, capsys, extra, needle):
    with pytest.raises(SystemExit) as exc:
        main(["compare", str(images / "a.bin"), str(images / "b.bin"), *extra])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1 and "Traceback" not in err


def test_console_output_pinned(tmp_path):
    a = np.zeros((4, 5), np.float32)
    a[1, 2] = 10.0
    b = a.copy()
    b[1, 2] = 11.0
    a.tofile(tmp_path / "a.bin")
    b.tofile(tmp_path / "b.bin")
    r = _run([str(tmp_path / "a.bin"), str(tmp_path / "b.bin"), "--shape", "4", "5", "--peaks", "3"])
    assert r.return_value == 1
    assert r.output.replace(str(tmp_path) + "/", "") == (
        "DIVERGE: the images disagree: B b.bin vs A a.bin, 4x5 pixels (slow x fast)\n"
        "  outside threshold: frame: |sum ratio - 1| = 0.1 > 0.005\n"
        "frame:\n"
        "  correlation      1.000000   (>= 0.999 required)\n"
        "  sum ratio B/A    1.1   (|ratio - 1| <= 0.005 required)   (sums 10 / 11 photons)\n"
        "  RMSE             0.223607 photons\n"
        "  max |B - A|      1 photons at (slow 1, fast 2)\n"
        "  peaks            1 of 1 matched one-to-one within 1 px (top 1 in A, 1 in B), mean offset 0.00 px\n"
    )


def _one_line_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err
    return err


def test_unwritable_png_is_one_line_exit_2_before_reading(images, capsys):
    (images / "afile").write_text("x")
    # image B is missing: the --png refusal must come first, before any reading or comparing
    err = _one_line_exit_2(["compare", str(images / "a.npy"), str(images / "missing.npy"),
                            "--png", str(images / "afile" / "figs")], capsys)
    assert "--png" in err and "afile" in err
    assert not (images / "afile" / "figs").exists()


def test_probe_leaves_no_file_when_the_command_fails(images, capsys):
    _one_line_exit_2(["compare", str(images / "a.npy"), str(images / "missing.npy"),
                      "--png", str(images / "new")], capsys)
    assert not (images / "new").exists()


def _closed_pipe_run(args):
    """Run nbtrace with stdout a pipe whose reader has already gone (like `| head -0`)."""
    import os
    import subprocess
    import sys

    r, w = os.pipe()
    os.close(r)
    try:
        return subprocess.run([sys.executable, "-m", "nbtrace", *args], stdout=w, stderr=subprocess.PIPE,
                              text=True, timeout=60)
    finally:
        os.close(w)


def test_closed_stdout_pipe_keeps_the_verdict_and_is_silent(images):
    agree = _closed_pipe_run(["compare", str(images / "a.bin"), str(images / "a.npy"), "--shape", "32", "40"])
    assert (agree.returncode, agree.stderr) == (0, "")
    differ = _closed_pipe_run(["compare", str(images / "a.bin"), str(images / "b.bin"), "--shape", "32", "40",
                               "--json"])
    assert (differ.returncode, differ.stderr) == (1, "")


def test_one_sided_nan_pixel_is_exit_1_with_count_and_location(images):
    a = np.load(images / "a.npy")
    b = a.copy()
    b[5, 7] = np.nan
    np.save(images / "nan.npy", b)
    r = _run([str(images / "a.npy"), str(images / "nan.npy")])
    assert r.return_value == 1, r.output
    assert "1 pixel(s) non-finite on one side only, first at (slow 5, fast 7)" in r.output


@pytest.mark.parametrize("opt", [["--corr-min", "2"], ["--corr-min", "nan"], ["--sum-tol", "-1"]])
def test_threshold_out_of_range_is_one_line_exit_2(images, capsys, opt):
    err = _one_line_exit_2(["compare", str(images / "a.npy"), str(images / "a.npy"), *opt], capsys)
    assert opt[0] in err


def test_unknown_option_is_a_compare_usage_error_not_a_nanobragg_arg(images, capsys):
    # it used to be taken as a nanoBragg arg, giving a 1024x1024 default shape and a misleading error
    err = _one_line_exit_2(["compare", str(images / "a.npy"), str(images / "a.npy"), "--foo"], capsys)
    assert "compare has no option --foo" in err and "after `--`" in err


def test_unanticipated_file_system_refusal_is_one_line_exit_2(images, capsys, monkeypatch):
    import nbtrace.engine.images

    def refuse(path, shape=None):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(nbtrace.engine.images, "read_image", refuse)
    err = _one_line_exit_2(["compare", str(images / "a.npy"), str(images / "a.npy")], capsys)
    assert "a.npy: Permission denied" in err


@pytest.mark.parametrize("tail", [["extra"], ["extra", "--", "-detpixels", "16"]])
def test_stray_word_before_double_dash_is_a_usage_error(images, capsys, tail):
    err = _one_line_exit_2(["compare", str(images / "a.npy"), str(images / "a.npy"), *tail], capsys)
    assert "unexpected argument(s) 'extra' before `--`" in err


def test_out_writes_report_and_figures(images):
    out = images / "out"
    r = _run([str(images / "a.bin"), str(images / "b.bin"), "--out", str(out), "--",
              "-detpixels_f", "40", "-detpixels_s", "32", "-pixel", "0.1", "-distance", "100"])
    assert r.return_value == 1, r.output
    assert {p.name for p in out.iterdir()} == {"images.png", "zoom.png", "radial.png", "metrics.json",
                                               "run_metadata.json", "report.html"}
    html = (out / "report.html").read_text()
    assert '<span class="word">DIVERGE</span>' in html and html.count("data:image/png;base64,") == 3
    assert "against 2θ" in html  # -distance given: the radial profile is in 2θ


@pytest.mark.parametrize("tail, word", [(["-lambda", "1"], "'-lambda'"), (["detpixels", "32"], "'detpixels'"),
                                        (["-detpixels"], "-detpixels needs a value")])
def test_words_after_double_dash_compare_does_not_read_are_refused(images, capsys, tail, word):
    err = _one_line_exit_2(["compare", str(images / "a.bin"), str(images / "b.bin"), "--", *tail], capsys)
    assert word in err
