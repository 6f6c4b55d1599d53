"""hunt end to end against a stand-in producer (tests/data/hunt/fake_nanobragg.py), so these
tests do not need the C build or the PyTorch simulator; tests/test_examples.py runs the real ones."""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from nbtrace.cli import cli, main
from nbtrace.run.hunt import compare_provenance
from nbtrace.report.hunt import report_lines
from nbtrace.run.hunt_pixels import choose_pixels

FAKE = Path(__file__).resolve().parents[1] / "data" / "hunt" / "fake_nanobragg.py"
ARGS = ["--", "-detpixels", "48"]


def _hunt(*opts, inject=None):
    port = f"{sys.executable} {FAKE} --port" + (f" --inject {inject}" if inject else "")
    r = CliRunner().invoke(cli, ["hunt", "--c-bin", str(FAKE), "--port-cmd", port, *opts, *ARGS],
                           standalone_mode=False)
    if r.exception:
        raise r.exception
    return r


def test_agreement_exit_0_and_verdict_first():
    r = _hunt()
    assert r.return_value == 0
    assert r.stdout.startswith("AGREE: the port reproduces the reference")
    assert "no input difference" in r.stdout


def test_scale_fault_named_with_factor_json():
    r = _hunt("--json", inject="svec-scale")
    assert r.return_value == 1
    doc = json.loads(r.stdout)
    assert doc["verdict"] == "diverge"
    assert doc["root_cause"]["tap"] == "scattering_vec_A_inv"
    assert doc["root_cause"]["factor"] == pytest.approx(1e-10)
    assert {"image_metrics", "traced_pixels", "taps", "counts", "provenance"} <= set(doc)
    assert doc["image_metrics"]["frame"]["sum_ratio"] > 10
    assert all(p["root_tap"] == "scattering_vec_A_inv" for p in doc["traced_pixels"])


def test_edge_fault_found_and_located_by_maps(tmp_path):
    r = _hunt("--maps", "--out", str(tmp_path), inject="edge-geometry")
    assert r.return_value == 1
    out = r.stdout
    assert "root cause pixel_pos_meters" in out.splitlines()[0]
    assert "all within 3 px of the detector edge; the central region agrees" in out
    for name in ("summary.md", "metrics.json", "run_metadata.json", "images.png", "report.html",
                 "maps_first_divergent.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    html = (tmp_path / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 2
    doc = json.loads((tmp_path / "metrics.json").read_text())
    assert doc["maps"]["first_divergent_counts"] == {"pixel_pos_meters": 48 * 48 - 42 * 42}


def test_progress_goes_to_stderr_not_stdout():
    r = _hunt()
    assert "[1/4]" in r.stderr and "[1/4]" not in r.stdout


def test_choose_pixels_reasons_and_dedup():
    a = np.ones((20, 30))
    a[5, 7] = 100.0
    b = a.copy()
    b[12, 20] = 50.0
    chosen = choose_pixels(a, b, n=6)
    pixels = [c.pixel for c in chosen]
    assert pixels[0] == (12, 20) and "largest |B-A|" in chosen[0].reason
    assert (5, 7) in pixels and (0, 0) in pixels and (19, 29) in pixels and (10, 0) in pixels
    assert len(set(pixels)) == len(pixels)


def test_provenance_names_structure_factor_difference():
    a = {"nb_args": ["-cell", "1"], "setup": {"structure_factors": "file:/x/Fdump.bin entries:10", "dtype": "float64"}}
    b = {"nb_args": ["-cell", "1"], "setup": {"structure_factors": "default_F:100", "dtype": "float64"}}
    diffs, same = compare_provenance(a, b)
    assert [(d.key, d.decisive) for d in diffs] == [("structure_factors", True)]
    assert ("dtype", "float64") in same


def test_bad_port_command_is_one_line_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["hunt", "--c-bin", str(FAKE), "--port-cmd", "/nonexistent/port", "--", "-detpixels", "8"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("nbtrace: error:") and "Traceback" not in "".join(err)


def test_fixed_pixels_and_float32_identity():
    from nbtrace.run.hunt import fixed_pixels, same_to_float32

    assert [c.pixel for c in fixed_pixels((10, 20))] == [(5, 10), (5, 0), (0, 0), (9, 19)]
    a = np.array([[1.0, 2.0], [0.0, np.nan]])
    assert same_to_float32(a, a * (1 + 1e-7))
    assert not same_to_float32(a, a * (1 + 1e-6))
    assert not same_to_float32(a, np.nan_to_num(a))


def test_images_differ_but_traces_agree_maps_are_run():
    # within the image thresholds: agreement, but the headline says what was seen and checked
    r = _hunt("--json", inject="image-only")
    doc = json.loads(r.stdout)
    assert r.return_value == 0 and doc["maps"] is not None and doc["maps"]["verdict"] == "agree"
    assert doc["headline"].startswith("AGREE within the thresholds, with a caveat")
    # outside them: never agreement, even though no tap diverges
    r = _hunt("--json", "--sum-tol", "1e-6", inject="image-only")
    doc = json.loads(r.stdout)
    assert r.return_value == 1 and doc["root_cause"] is None
    assert "no traced tap diverges" in doc["headline"]


def test_help_states_the_built_in_default():
    from nbtrace.run.hunt import DEFAULT_ARGS

    r = CliRunner().invoke(cli, ["hunt", "--help"], terminal_width=400)
    assert " ".join(DEFAULT_ARGS) in " ".join(r.output.split())


def test_agreement_console_output_pinned(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "80")
    r = _hunt()
    assert r.stdout == (
        'AGREE: the port reproduces the reference (bit-identical images, 4 traced pixels agree)\n'
        'The port reproduces the reference — bit-identical images (correlation 1.000000, sum ratio 1); 4 traced pixels agree on all 35 matched tap records.\n'
        '\n'
        'configuration: -detpixels 48\n'
        '\n'
        'inputs (compared before any physics):\n'
        '  same: structure_factors=default_F:100, dtype=float64, detector_pixels=48 48, oversample=1, steps=1\n'
        '  no input difference: both sides were given and read the same\n'
        '\n'
        'image metrics (B = port vs A = C reference, 48x48):\n'
        '  correlation      1.000000   (>= 0.999 required)\n'
        '  sum ratio B/A    1   (|ratio - 1| <= 0.005 required)   (sums 86081.6 / 86081.6 photons)\n'
        '  RMSE             0 photons\n'
        '  max |B - A|      0 photons at (slow 0, fast 0)\n'
        '  peaks            20 of 20 matched one-to-one within 1 px (top 20 in A, 20 in B), mean offset 0.00 px\n'
        '\n'
        'traced pixels (4 fixed ones, traced in the render pass; the images are identical to float32 storage, so no pixel stands out to add):\n'
        '  #  (slow, fast)  C photons  port photons  first divergent tap  why chosen\n'
        '  1  (24, 24)        982.424       982.424  agrees               detector centre\n'
        '                                                                 (near the direct\n'
        '                                                                 beam)\n'
        '  2  (24, 0)         1.03605       1.03605  agrees               edge (middle of\n'
        '                                                                 fast-min edge)\n'
        '  3  (0, 0)                1             1  agrees               corner (0, 0)\n'
        '  4  (47, 47)              1             1  agrees               opposite corner\n'
    )


def test_unwritable_out_refused_before_any_render(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(SystemExit) as exc:
        # the C binary does not exist either: --out must be the complaint, i.e. checked first
        main(["hunt", "--c-bin", str(tmp_path / "no-such-nanobragg"), "--out", str(tmp_path / "afile" / "out"),
              *ARGS])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert "--out" in err and err.count("\n") == 1 and "Traceback" not in err


def test_closed_stdout_pipe_does_not_turn_agree_into_diverge(tmp_path):
    import os
    import subprocess

    r, w = os.pipe()
    os.close(r)  # like `nbtrace hunt ... | head -0`: the reader is gone before the report
    try:
        port = f"{sys.executable} {FAKE} --port"
        p = subprocess.run([sys.executable, "-m", "nbtrace", "hunt", "--c-bin", str(FAKE), "--port-cmd", port, *ARGS],
                           stdout=w, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(w)
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr and "Broken pipe" not in p.stderr


def test_unknown_option_before_double_dash_is_a_hunt_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["hunt", "--c-bin", str(FAKE), "--roi", "1", "2", "3", "4", *ARGS])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1
    # hunt's own mistake, said by hunt, with where the flag belongs; never "fake: error: unknown flag"
    assert "hunt has no option --roi" in err and "after `--`" in err and "unknown flag" not in err


# A producer wrapper that behaves like nanoBragg under -roi: pixels outside it are never computed,
# so tracing or dumping them is refused; otherwise it hands over to the stand-in producer.
_ROI_WRAPPER = """
import os, sys
argv = sys.argv[1:]
i = argv.index("-roi")
x0, x1, y0, y1 = (int(v) for v in argv[i + 1:i + 5])
del argv[i:i + 5]
for k, a in enumerate(argv):
    if a == "-trace_pixel":
        s, f = int(argv[k + 1]), int(argv[k + 2])
        if not (x0 <= f <= x1 and y0 <= s <= y1):
            sys.exit(f"wrapper: error: -trace_pixel ({s}, {f}) is outside the -roi")
    if a == "-trace_roi":
        r = [int(v) for v in argv[k + 1:k + 5]]
        if r[0] < x0 or r[1] > x1 or r[2] < y0 or r[3] > y1:
            sys.exit(f"wrapper: error: -trace_roi {r} is outside the -roi")
os.execv(sys.executable, [sys.executable, FAKE, *argv])
"""


@pytest.mark.parametrize("inject", [None, "svec-scale"])
def test_roi_run_traces_only_pixels_inside_the_roi(tmp_path, inject):
    wrapper = tmp_path / "roi_producer.py"
    wrapper.write_text(f"#!{sys.executable}\nFAKE = {str(FAKE)!r}\n" + _ROI_WRAPPER)
    wrapper.chmod(0o755)
    port = f"{sys.executable} {wrapper} --port" + (f" --inject {inject}" if inject else "")
    r = CliRunner().invoke(cli, ["hunt", "--c-bin", str(wrapper), "--port-cmd", port, "--json", "--maps",
                                 "--", "-detpixels", "48", "-roi", "10", "30", "5", "20"], standalone_mode=False)
    if r.exception:
        raise r.exception
    doc = json.loads(r.stdout)
    pixels = [tuple(p["pixel"]) for p in doc["traced_pixels"]]
    assert all(10 <= f <= 30 and 5 <= s <= 20 for s, f in pixels), pixels
    assert {(5, 10), (20, 30), (13, 10)} <= set(pixels)  # the ROI's corners and the middle of its fast-min edge
    assert doc["maps"]["roi"] == [10, 30, 5, 20]
    assert r.return_value == (0 if inject is None else 1)
    if inject:
        assert doc["root_cause"]["tap"] == "scattering_vec_A_inv" and len(pixels) > 4


def test_roi_helpers():
    from nbtrace.run.hunt import fixed_pixels, image_pixels
    from nbtrace.engine.images import roi_from_nb_args
    from nbtrace.engine.maps import dump_roi_for

    assert roi_from_nb_args(["-detpixels", "48"], (48, 48)) is None
    # last -roi wins; clipped to the detector
    assert roi_from_nb_args(["-roi", "0", "1", "0", "1", "-roi", "10", "99", "-3", "20"], (48, 48)) == (10, 47, 0, 20)
    from nbtrace.errors import UsageError
    with pytest.raises(UsageError, match="selects no pixel"):
        roi_from_nb_args(["-roi", "60", "70", "0", "5"], (48, 48))
    with pytest.raises(UsageError, match="needs 4 pixel indices"):
        roi_from_nb_args(["-roi", "1", "2"], (48, 48))
    assert [c.pixel for c in fixed_pixels((48, 48), (10, 20, 30, 40))] == [(35, 15), (35, 10), (30, 10), (40, 20)]
    a = np.ones((48, 48))
    a[0, 0] = 1e6  # brightest and most different pixel of the frame, but outside the ROI
    b = a.copy()
    b[0, 0] = 0.0
    b[33, 12] = 7.0
    chosen = image_pixels(a, b, 3, roi=(10, 20, 30, 40))
    assert chosen[0].pixel == (33, 12) and chosen[0].b_value == 7.0
    assert all(10 <= c.pixel[1] <= 20 and 30 <= c.pixel[0] <= 40 for c in chosen)
    assert dump_roi_for((1024, 1024), within=(100, 199, 300, 399)) == (100, 199, 300, 399)
    xmin, xmax, ymin, ymax = dump_roi_for((1024, 1024), within=(0, 1023, 100, 899))
    assert (xmin, xmax) == (0, 1023) and 100 <= ymin < 500 < ymax <= 899 and (ymax - ymin + 1) * 1024 <= 256 * 256


def test_non_positive_timeout_refused_before_rendering(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["hunt", "--c-bin", str(FAKE), "--timeout", "0", *ARGS])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "--timeout" in err and "[1/4]" not in err and err.count("\n") == 1


def test_stray_word_before_double_dash_is_not_sent_to_the_producers(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["hunt", "--c-bin", str(FAKE), "roi", *ARGS])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "unexpected argument(s) 'roi' before `--`" in err and "[1/4]" not in err


# --- the built-in PyTorch port renders and then, in the same process, traces the pixels chosen
# from the images (-trace_pixels_after, issue 5). These run the real C reference and simulator.
_SMALL_REAL = ("-lambda", "0.5", "-cell", "100", "100", "100", "90", "90", "90", "-N", "5", "-default_F", "100",
               "-distance", "500", "-detpixels", "48", "-pixel", "0.4")


def _started(monkeypatch):
    """Record every live render hunt starts."""
    import nbtrace.run.capture as capture_mod

    made = []
    real = capture_mod.start_live_render

    def spy(*a, **kw):
        made.append(real(*a, **kw))
        return made[-1]
    monkeypatch.setattr(capture_mod, "start_live_render", spy)
    return made


def test_the_ports_render_run_traces_the_chosen_pixels_as_a_second_run_would(tmp_path, monkeypatch):
    from nbtrace.run.capture import read_meta
    from nbtrace.run.hunt import HuntOptions, hunt

    made = _started(monkeypatch)
    one = hunt(HuntOptions(nb_args=_SMALL_REAL, inject=("svec-inverse-angstrom",), out_dir=tmp_path / "one"))
    assert len(made) == 1 and made[0]._proc.returncode == 0 and not made[0]._work.exists()
    meta = read_meta(tmp_path / "one" / "render_py.trace")
    assert meta["argv"][-2:] == ["-trace_pixels_after", "-"]
    assert not (tmp_path / "one" / "pixels_py.trace").exists()  # no second port run
    extra = [p.pixel for p in one.pixels[: len(one.pixels) - 4]]
    fixed = [p.pixel for p in one.pixels[len(one.pixels) - 4:]]
    assert extra and meta["pixels_traced"] == [list(p) for p in fixed + extra]
    # the same hunt through --port-cmd (no live run): the classic second run per side
    two = hunt(HuntOptions(nb_args=_SMALL_REAL, inject=("svec-inverse-angstrom",),
                           port_cmd=f"{sys.executable} -m nbtrace.sim", out_dir=tmp_path / "two"))
    assert len(made) == 1 and (tmp_path / "two" / "pixels_py.trace").exists()
    assert one.root is not None and one.root.tap == two.root.tap and one.root.kind == two.root.kind
    assert [(p.pixel, p.root_tap, p.root_factor) for p in one.pixels] == \
        [(p.pixel, p.root_tap, p.root_factor) for p in two.pixels]
    assert "by the port's own render run" in "\n".join(report_lines(one))


def test_the_ports_render_run_ends_with_the_fixed_pixels_when_the_images_agree(tmp_path, monkeypatch):
    from nbtrace.run.capture import read_meta
    from nbtrace.run.hunt import HuntOptions, hunt

    made = _started(monkeypatch)
    res = hunt(HuntOptions(nb_args=_SMALL_REAL, out_dir=tmp_path))
    assert res.agrees and len(made) == 1
    assert made[0]._proc.returncode == 0 and not made[0]._work.exists()
    assert len(read_meta(tmp_path / "render_py.trace")["pixels_traced"]) == 4


def test_the_ports_render_run_is_stopped_when_a_render_fails(tmp_path, monkeypatch):
    from nbtrace.errors import ProducerError
    from nbtrace.run.hunt import HuntOptions, hunt

    made = _started(monkeypatch)
    with pytest.raises(ProducerError):
        hunt(HuntOptions(nb_args=(*_SMALL_REAL, "-distance", "abc"), out_dir=tmp_path))
    assert len(made) == 1 and made[0]._proc.returncode is not None and not made[0]._work.exists()


def test_the_ports_render_run_is_killed_when_the_c_side_fails(tmp_path, monkeypatch):
    from nbtrace.errors import ProducerError
    from nbtrace.run.hunt import HuntOptions, hunt

    made = _started(monkeypatch)
    false = shutil.which("false")
    with pytest.raises(ProducerError, match="exited with code 1"):
        hunt(HuntOptions(nb_args=_SMALL_REAL, c_bin=false, out_dir=tmp_path))
    assert len(made) == 1 and made[0]._proc.returncode is not None and not made[0]._work.exists()


def test_a_daemonizing_build_leaves_no_process_behind(tmp_path):
    """Every producer run of a hunt (renders, pixel traces) is a process group killed at its end."""
    from test_capture import wait_dead

    pids = tmp_path / "pids"
    wrapper = tmp_path / "build"
    wrapper.write_text(f'#!/bin/sh\nsleep 300 &\necho $! >> "{pids}"\nexec {sys.executable} {FAKE} "$@"\n')
    wrapper.chmod(0o755)
    r = CliRunner().invoke(cli, ["hunt", "--c-bin", str(wrapper), "--port-cmd", f"{wrapper} --port", *ARGS],
                           standalone_mode=False)
    if r.exception:
        raise r.exception
    started = [int(x) for x in pids.read_text().split()]
    assert len(started) >= 2 and wait_dead(started) == []


def test_pixel_table_never_says_agrees_for_a_pixel_with_immaterial_differences():
    # issue 12: a pixel whose only differences are immaterial is not "agrees"
    from nbtrace.report.hunt import pixel_verdict
    from nbtrace.run.hunt import PixelOutcome

    base = dict(pixel=(1, 2), reason="brightest", a_value=1.0, b_value=1.0, root_kind=None, root_factor=None)
    assert pixel_verdict(PixelOutcome(root_tap=None, n_divergent=0, **base)) == "agrees"
    assert pixel_verdict(PixelOutcome(root_tap=None, n_divergent=1, **base)) == "immaterial only"
    assert pixel_verdict(PixelOutcome(root_tap=None, n_divergent=0, n_incomplete=2, **base)) == "incomplete"
    assert pixel_verdict(PixelOutcome(root_tap="F_latt", n_divergent=3, **{**base, "root_factor": 2.0})) == "F_latt ×2"
