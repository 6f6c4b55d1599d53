import json
import struct

import numpy as np
import pytest
from click.testing import CliRunner

from nbtrace.cli import cli
from nbtrace.errors import ImageError, UsageError
from nbtrace.engine.maps import compare_dumps, divergence_mask, dump_roi_for, load_dump

N = 48


def _write(path, shift_edge=0.0, band=4, roi=(0, N - 1, 0, N - 1), extra=None):
    xmin, xmax, ymin, ymax = roi
    s, f = np.mgrid[ymin:ymax + 1, xmin:xmax + 1].astype(float)
    pos = np.stack([np.full(s.shape, 0.5), 1e-3 + f * 1e-4, -1e-3 - s * 1e-4], -1)
    edge = np.minimum(np.minimum(s, N - 1 - s), np.minimum(f, N - 1 - f)) < band
    pos[edge, 1] += shift_edge
    r = np.linalg.norm(pos, axis=-1)
    meta = np.frombuffer(json.dumps({"argv": ["-detpixels", str(N)]}).encode(), np.uint8)
    arrays = dict(roi=np.array(roi), meta_json=meta, pixel_pos_meters=pos, R_distance_meters=r, steps=np.ones(s.shape))
    arrays.update(extra or {})
    np.savez(path, **arrays)
    return path


def test_identical_dumps_agree(tmp_path):
    a = load_dump(_write(tmp_path / "a.npz"))
    res = compare_dumps(a, load_dump(_write(tmp_path / "b.npz")))
    assert res and res.summary() == ["all 3 taps agree in all 2,304 pixels of the region"]
    assert (res.first_label == -1).all()


def test_edge_fault_is_located_and_first_tap_named(tmp_path):
    a = load_dump(_write(tmp_path / "a.npz"))
    b = load_dump(_write(tmp_path / "b.npz", shift_edge=1e-5, band=4))
    res = compare_dumps(a, b)
    assert not res
    pos = res.taps[0]
    assert pos.name == "pixel_pos_meters"
    assert pos.n_divergent == N * N - (N - 8) ** 2
    assert pos.edge_band == 4 and pos.central_agrees
    assert "all within 4 px of the detector edge; the central region agrees" in res.summary()[0]
    # pixel_pos comes first in the dump order, so it owns every divergent pixel
    assert res.first_counts() == [("pixel_pos_meters", N * N - (N - 8) ** 2)]
    assert res.first_label[N // 2, N // 2] == -1 and res.first_label[0, 0] == 0


def test_sub_roi_coordinates_are_full_detector(tmp_path):
    roi = (40, 47, 10, 20)
    res = compare_dumps(load_dump(_write(tmp_path / "a.npz", roi=roi)),
                        load_dump(_write(tmp_path / "b.npz", shift_edge=1e-5, roi=roi)))
    assert res.taps[0].bbox == (44, 47, 10, 20)


def test_nan_semantics():
    a = np.array([1.0, np.nan, np.nan, 0.0])
    b = np.array([1.0, np.nan, 2.0, 0.0])
    mask, _ = divergence_mask(a, b, 1e-9, 0.0)
    assert mask.tolist() == [False, False, True, False]


def test_bad_dumps(tmp_path):
    (tmp_path / "x.npz").write_bytes(b"not a zip")
    with pytest.raises(ImageError, match="not a readable .npz"):
        load_dump(tmp_path / "x.npz")
    np.savez(tmp_path / "noroi.npz", steps=np.ones((2, 2)))
    with pytest.raises(ImageError, match="no 'roi'"):
        load_dump(tmp_path / "noroi.npz")
    a = load_dump(_write(tmp_path / "a.npz"))
    b = load_dump(_write(tmp_path / "b.npz", roi=(0, 9, 0, 9)))
    with pytest.raises(UsageError, match="different regions"):
        compare_dumps(a, b)


def test_dump_roi_bounded():
    assert dump_roi_for((256, 256)) == (0, 255, 0, 255)
    xmin, xmax, ymin, ymax = dump_roi_for((1024, 1024))
    assert (xmin, xmax) == (0, 1023) and (ymax - ymin + 1) * 1024 <= 256 * 256 and ymin < 512 < ymax


def test_maps_cli_json_and_png(tmp_path):
    _write(tmp_path / "a.npz")
    _write(tmp_path / "b.npz", shift_edge=1e-5)
    r = CliRunner().invoke(cli, ["maps", str(tmp_path / "a.npz"), str(tmp_path / "b.npz"), "--json",
                                 "--png", str(tmp_path / "png")], standalone_mode=False)
    assert r.return_value == 1, r.output
    doc = json.loads(r.output)
    assert doc["verdict"] == "diverge" and doc["first_divergent_counts"]["pixel_pos_meters"] > 0
    assert doc["figures"] == [str(tmp_path / "png" / "maps_first_divergent.png"), str(tmp_path / "png" / "maps_taps.png")]
    width, height = png_size(tmp_path / "png" / "maps_first_divergent.png")
    assert width > 400 and height > 300


def _main_err(argv, capsys):
    from nbtrace.cli import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    return exc.value.code, capsys.readouterr().err


@pytest.mark.parametrize("content,needle", [
    (b"", "dump file is empty"),
    (None, "this is a .npy array, not a .npz region dump"),
    (b"PK\x03\x04 truncated", "not a readable .npz dump"),
])
def test_cli_wrong_kind_of_file_is_one_line_exit_2(tmp_path, capsys, content, needle):
    good = _write(tmp_path / "a.npz")
    bad = tmp_path / "bad.npy"
    if content is None:
        np.save(bad, np.ones((3, 3)))
    else:
        bad.write_bytes(content)
    code, err = _main_err(["maps", str(good), str(bad)], capsys)
    assert code == 2 and needle in err and err.count("\n") == 1 and "Traceback" not in err


def test_cli_unwritable_png_dir_is_checked_before_reading(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    code, err = _main_err(["maps", str(tmp_path / "missing_a.npz"), str(tmp_path / "missing_b.npz"),
                           "--png", str(tmp_path / "afile" / "png")], capsys)
    assert code == 2 and "--png" in err and err.count("\n") == 1


def test_library_eof_is_not_an_abort_but_ctrl_c_is(tmp_path, monkeypatch, capsys):
    import nbtrace.engine.maps

    good = str(_write(tmp_path / "a.npz"))

    def eof(*_a, **_k):
        raise EOFError("No data left in file")

    monkeypatch.setattr(nbtrace.engine.maps, "compare_dumps", eof)
    with pytest.raises(EOFError):  # an internal failure with its traceback, never "aborted"/130
        from nbtrace.cli import main
        main(["maps", good, good])

    def interrupt(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(nbtrace.engine.maps, "compare_dumps", interrupt)
    code, err = _main_err(["maps", good, good], capsys)
    assert code == 130 and "aborted" in err


@pytest.mark.parametrize("members,needle", [
    ({"roi": np.array([0, 0, 0, 0]), "I": np.array([["x"]])}, "holds <U1 values, not real numbers"),
    ({"roi": np.array([0, 1, 0, 1]), "I": np.ones((2, 2), complex)}, "holds complex128 values"),
    ({"roi": np.array(["0", "1.5", "0", "a"]), "I": np.ones((2, 2))}, "not 4 whole pixel indices"),
    ({"roi": np.array([-5, 3, 0, 3]), "I": np.ones((4, 9))}, "with 0 <= min <= max"),
])
def test_malformed_dump_members_are_image_errors(tmp_path, members, needle):
    np.savez(tmp_path / "d.npz", **members)
    with pytest.raises(ImageError, match=needle.replace("(", r"\(")):
        load_dump(tmp_path / "d.npz")


def png_size(path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_maps_cli_out_writes_report(tmp_path):
    _write(tmp_path / "a.npz")
    _write(tmp_path / "b.npz", shift_edge=1e-5)
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["maps", str(tmp_path / "a.npz"), str(tmp_path / "b.npz"), "--out", str(out)],
                           standalone_mode=False)
    assert r.return_value == 1, r.output
    assert r.output.startswith("DIVERGE: the region diverges")
    assert {p.name for p in out.iterdir()} == {"maps_first_divergent.png", "maps_taps.png", "metrics.json",
                                               "run_metadata.json", "report.html"}
    html = (out / "report.html").read_text()
    assert '<span class="word">DIVERGE</span>' in html and html.count("data:image/png;base64,") == 2
