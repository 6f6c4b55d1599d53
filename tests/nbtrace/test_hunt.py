"""hunt end to end against a stand-in producer (tests/data/hunt/fake_nanobragg.py), so these
tests do not need the C build or the PyTorch simulator; tests/test_examples.py runs the real ones."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from nbtrace.cli import cli, main
from nbtrace.hunt import choose_pixels, compare_provenance

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
    from nbtrace.hunt import fixed_pixels, same_to_float32

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
    from nbtrace.hunt import DEFAULT_ARGS

    r = CliRunner().invoke(cli, ["hunt", "--help"], terminal_width=400)
    assert " ".join(DEFAULT_ARGS) in " ".join(r.output.split())


def test_agreement_console_output_pinned():
    r = _hunt()
    assert r.stdout == (
        "AGREE: the port reproduces the reference — bit-identical images (correlation 1.000000, sum ratio 1); "
        "4 traced pixels agree on all 35 matched tap records.\n"
        "\n"
        "configuration: -detpixels 48\n"
        "\n"
        "inputs (compared before any physics):\n"
        "  same: structure_factors=default_F:100, dtype=float64, detector_pixels=48 48, oversample=1, steps=1\n"
        "  no input difference: both sides were given and read the same\n"
        "\n"
        "image metrics (B = port vs A = C reference, 48x48):\n"
        "  correlation      1.000000   (>= 0.999 required)\n"
        "  sum ratio B/A    1   (|ratio - 1| <= 0.005 required)   (sums 86081.6 / 86081.6 photons)\n"
        "  RMSE             0 photons\n"
        "  max |B - A|      0 photons at (slow 0, fast 0)\n"
        "  peaks            20 of 20 matched one-to-one within 1 px (top 20 in A, 20 in B), mean offset 0.00 px\n"
        "\n"
        "traced pixels (4 fixed ones, traced in the render pass; the images are identical to float32 storage, "
        "so no pixel stands out to add):\n"
        "  (slow, fast)     C photons  port photons  first divergent tap      why chosen\n"
        "  (  24,   24)      982.424       982.424  agrees                   detector centre (near the direct beam)\n"
        "  (  24,    0)      1.03605       1.03605  agrees                   edge (middle of fast-min edge)\n"
        "  (   0,    0)            1             1  agrees                   corner (0, 0)\n"
        "  (  47,   47)            1             1  agrees                   opposite corner\n"
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
