import math

import numpy as np
import pytest

from nbtrace.errors import ImageError, UsageError
from nbtrace.engine.images import (
    Roi, Thresholds, compare_arrays, compare_images, failures, local_maxima, match_peaks, pearson,
    read_image, shape_from_nb_args,
)


def _smv(path, img, order="little_endian", header=512):
    fields = f"{{\nHEADER_BYTES={header};\nDIM=2;\nBYTE_ORDER={order};\nTYPE=unsigned_short;\n" \
             f"SIZE1={img.shape[1]};\nSIZE2={img.shape[0]};\nDIALS_ORIGIN=1,2,3\n}}\f"
    head = fields.encode().ljust(header, b" ")
    dt = "<u2" if order == "little_endian" else ">u2"
    path.write_bytes(head + img.astype(dt).tobytes())


@pytest.mark.parametrize("args,shape", [
    ([], (1024, 1024)),
    (["-detpixels", "256", "-pixel", "0.2"], (256, 256)),
    (["-pixel", "0.2", "-detpixels_f", "100", "-detpixels_s", "50"], (50, 100)),
    (["-detsize", "51.2", "-pixel", "0.1"], (512, 512)),
    (["-detsize_f", "10.05", "-pixel", "0.1"], (1024, 100)),  # 100.5 - 0.5 -> ceil 100
    (["-detpixels_x", "30", "-detpixels_y", "20"], (20, 30)),
])
def test_shape_from_nb_args(args, shape):
    assert shape_from_nb_args(args) == shape


def test_shape_from_args_bad_number():
    with pytest.raises(UsageError, match="-detpixels needs a number"):
        shape_from_nb_args(["-detpixels", "abc"])


def test_read_raw_npy_smv_roundtrip(tmp_path):
    img = np.arange(12, dtype=np.float32).reshape(3, 4)
    img.tofile(tmp_path / "a.bin")
    np.save(tmp_path / "a.npy", img)
    _smv(tmp_path / "a.img", img)
    _smv(tmp_path / "big.img", img, order="big_endian", header=1024)
    for name in ("a.npy", "a.img", "big.img"):
        np.testing.assert_array_equal(read_image(tmp_path / name), img)
    np.testing.assert_array_equal(read_image(tmp_path / "a.bin", (3, 4)), img)


def test_raw_wrong_size_names_file_and_counts(tmp_path):
    np.zeros(12, np.float32).tofile(tmp_path / "a.bin")
    with pytest.raises(ImageError) as exc:
        read_image(tmp_path / "a.bin", (4, 4))
    msg = exc.value.one_line()
    assert "a.bin" in msg and "12 float32 values" in msg and "16" in msg


def test_truncated_smv_and_nan_only(tmp_path):
    img = np.ones((4, 4))
    _smv(tmp_path / "t.img", img)
    data = (tmp_path / "t.img").read_bytes()
    (tmp_path / "t.img").write_bytes(data[:-4])
    with pytest.raises(ImageError, match="truncated"):
        read_image(tmp_path / "t.img")
    np.full(4, np.nan, np.float32).tofile(tmp_path / "n.bin")
    with pytest.raises(ImageError, match="no finite value"):
        read_image(tmp_path / "n.bin", (2, 2))
    (tmp_path / "e.bin").write_bytes(b"")
    with pytest.raises(ImageError, match="empty"):
        read_image(tmp_path / "e.bin", (2, 2))


def test_pearson_zero_variance_is_named_not_nan():
    corr, note = pearson(np.ones(10), np.arange(10.0))
    assert corr is None and "A has zero variance" in note


def test_metrics_closed_form():
    a = np.zeros((5, 6))
    a[2, 3] = 4.0
    b = a * 2.0
    m = compare_images(a, b, peaks=5)
    assert m.sum_ratio == 2.0
    assert m.correlation == pytest.approx(1.0)
    assert m.max_abs_diff == 4.0 and m.max_abs_diff_at == (2, 3)
    assert m.rmse == pytest.approx(math.sqrt(16 / 30))
    assert m.peaks.matched == 1 and m.peaks.mean_offset_px == 0.0


def test_roi_inclusive_and_coordinates_are_full_frame():
    a = np.zeros((10, 10))
    b = a.copy()
    b[7, 3] = 1.0  # slow 7, fast 3
    roi = Roi(xmin=3, xmax=3, ymin=7, ymax=7)  # one pixel: inclusive on both ends
    m = compare_images(a + 1, b + 1, roi=roi)
    assert m.n_pixels == 1 and m.max_abs_diff_at == (7, 3)
    with pytest.raises(UsageError, match="outside"):
        compare_images(a, b, roi=Roi(0, 10, 0, 9))


def test_peaks_one_to_one_within_one_pixel():
    pa = np.array([[10, 10], [20, 20]])
    pb = np.array([[10, 11], [22, 20]])
    m = match_peaks(pa, pb)
    assert m.matched == 1 and m.mean_offset_px == 1.0
    # two A peaks near one B peak: only one may claim it
    assert match_peaks(np.array([[5, 5], [5, 6]]), np.array([[5, 5]])).matched == 1


def test_local_maxima_top_n_by_value():
    img = np.zeros((20, 20))
    img[3, 3], img[10, 10], img[15, 4] = 5, 9, 7
    assert local_maxima(img, 2).tolist() == [[10, 10], [15, 4]]


def test_failures_and_thresholds():
    a = np.arange(100.0).reshape(10, 10)
    res = compare_arrays(a, a * 1.01, thresholds=Thresholds(0.999, 5e-3))
    assert not res and any("sum ratio" in f for f in res.failures)
    assert compare_arrays(a, a * 1.01, thresholds=Thresholds(0.999, 0.02))
    assert failures(compare_images(np.ones((3, 3)), np.ones((3, 3))), Thresholds()) == []
    assert failures(compare_images(np.ones((3, 3)), np.eye(3)), Thresholds())


def test_nonfinite_on_one_side_only_is_a_disagreement():
    a = np.arange(1.0, 101.0).reshape(10, 10)
    b = a.copy()
    b[3, 4] = np.nan
    b[7, 1] = np.inf
    res = compare_arrays(a, b)
    assert not res
    assert res.full.nonfinite_mismatch == 2 and res.full.nonfinite_mismatch_at == (3, 4)
    assert any("2 pixel(s) non-finite on one side only, first at (slow 3, fast 4)" in f for f in res.failures)
    # the same non-finite value on both sides is the same outcome, still excluded from the metrics
    both = a.copy()
    both[3, 4] = np.nan
    both[5, 5] = -np.inf
    assert compare_arrays(both, both.copy())
    # NaN against inf at one pixel is not the same outcome
    other = both.copy()
    other[5, 5] = np.nan
    assert compare_images(both, other).nonfinite_mismatch == 1


@pytest.mark.parametrize("corr_min,sum_tol,option", [
    (2.0, 5e-3, "--corr-min"), (-1.5, 5e-3, "--corr-min"), (float("nan"), 5e-3, "--corr-min"),
    (0.999, -1.0, "--sum-tol"), (0.999, float("inf"), "--sum-tol"),
])
def test_thresholds_out_of_range_are_usage_errors(corr_min, sum_tol, option):
    with pytest.raises(UsageError, match=option):
        Thresholds(corr_min, sum_tol)


def test_npy_traps_are_image_errors_not_tracebacks(tmp_path):
    np.save(tmp_path / "c.npy", np.zeros((4, 4), complex))
    with pytest.raises(ImageError, match="complex"):  # astype(float) would drop the imaginary part
        read_image(tmp_path / "c.npy")
    np.savez(tmp_path / "d.npz", roi=np.array([0, 1, 0, 1]))
    for name in ("d.npz", "zip_named.npy"):
        if name == "zip_named.npy":
            (tmp_path / name).write_bytes((tmp_path / "d.npz").read_bytes())
        with pytest.raises(ImageError, match="is a .npz archive"):
            read_image(tmp_path / name, (4, 4))
    np.save(tmp_path / "ok.npy", np.ones((8, 8)))
    (tmp_path / "short.npy").write_bytes((tmp_path / "ok.npy").read_bytes()[:90])
    with pytest.raises(ImageError, match="not a readable .npy"):
        read_image(tmp_path / "short.npy")


def _match_peaks_by_matrix(pa, pb, radius=1.0):
    """The former all-pairs matching (A x B distance matrix), kept as the reference."""
    if len(pa) == 0 or len(pb) == 0:
        return len(pa), len(pb), 0, None
    d = np.sqrt(((pa[:, None, :] - pb[None, :, :]) ** 2).sum(-1))
    pairs = np.argwhere(d <= radius + 1e-9)
    order = np.argsort(d[pairs[:, 0], pairs[:, 1]], kind="stable")
    used_a, used_b, dists = set(), set(), []
    for i, j in pairs[order]:
        if i in used_a or j in used_b:
            continue
        used_a.add(int(i))
        used_b.add(int(j))
        dists.append(d[i, j])
    return len(pa), len(pb), len(dists), float(np.mean(dists)) if dists else None


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("radius", [1.0, 1.5, 2.0])
def test_peak_matching_equals_the_all_pairs_matching(seed, radius):
    rng = np.random.default_rng(seed)
    pa = rng.integers(0, 12, size=(rng.integers(0, 30), 2))
    pb = rng.integers(0, 12, size=(rng.integers(0, 30), 2))
    m = match_peaks(pa, pb, radius)
    ref = _match_peaks_by_matrix(pa, pb, radius)
    assert (m.n_a, m.n_b, m.matched) == ref[:3]
    assert (m.mean_offset_px is None) == (ref[3] is None)
    if ref[3] is not None:
        assert m.mean_offset_px == pytest.approx(ref[3], rel=1e-12)


def test_forty_thousand_peaks_match_without_an_all_pairs_matrix():
    # 40,000 x 40,000 float64 distances would be 12.8 GB; the neighbour lookup needs none
    s, f = np.divmod(np.arange(40_000), 200)
    pa = np.stack([s * 3, f * 3], axis=1)
    m = match_peaks(pa, pa + [0, 1])
    assert (m.n_a, m.n_b, m.matched, m.mean_offset_px) == (40_000, 40_000, 40_000, 1.0)
