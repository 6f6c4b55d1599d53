"""Figures (matplotlib): the files they write, their sizes, closed-form geometry, paging of the
per-tap maps, and that matplotlib is imported only when a picture is asked for."""

from __future__ import annotations

import math
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nbtrace.engine.diff import diff_traces
from nbtrace.engine.maps import Dump, compare_dumps
from nbtrace.figures.images import (
    Geometry, geometry_from_nb_args, geometry_from_setup, image_figures, radial_profiles, worst_pixel, zoom_figure,
)
from nbtrace.figures.maps import PER_PAGE, maps_figures, tap_pages
from nbtrace.figures.taps import tap_errors_figure
from nbtrace.testing import make_trace

ROOT = Path(__file__).resolve().parents[2]
CLI = ROOT / "tests" / "data" / "incidents" / "cli"


def png_size(path: Path) -> tuple[int, int]:
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", data[16:24])


def _images():
    rng = np.random.default_rng(7)
    a = rng.uniform(0.5, 2.0, (40, 60))
    a[20, 30] = 500.0  # a spot
    b = a.copy()
    b[21, 33] *= 3.0  # the port differs at one pixel
    return a, b


def test_image_figures_written_with_sizes(tmp_path):
    a, b = _images()
    figs = image_figures(a, b, tmp_path, names=("C", "port"), marks=[(20, 30), (0, 0)],
                         geometry=Geometry(0.1, 1e-4, 0.002, 0.003))
    names = [p.name for _, p in figs]
    assert names == ["images.png", "zoom.png", "radial.png"]
    for _, p in figs:
        w, h = png_size(p)
        assert w >= 600 and h >= 400, (p.name, w, h)
    assert "against 2θ" in figs[2][0]


def test_zoom_needs_a_difference(tmp_path):
    a, _ = _images()
    assert zoom_figure(a, a.copy(), tmp_path / "z.png") is None and not (tmp_path / "z.png").exists()
    a2, b2 = _images()
    assert worst_pixel(a2, b2) == (21, 33)


def test_large_images_are_reduced_but_drawn(tmp_path):
    a = np.zeros((2100, 1500))
    b = a.copy()
    b[1999, 7] = 1.0  # a single hot pixel must survive the block reduction (kept by its block's max)
    figs = image_figures(a + 1e-3, b + 1e-3, tmp_path)
    assert [p.name for _, p in figs] == ["images.png", "zoom.png", "radial.png"]


def test_two_theta_closed_form():
    g = Geometry(distance_m=0.1, pixel_m=1e-4, beam_s_m=0.00105, beam_f_m=0.00205)
    tt = g.two_theta_deg((30, 40))
    # pixel (10, 20) has its centre on the beam: 2θ = 0
    assert tt[10, 20] == pytest.approx(0.0, abs=1e-12)
    # 3 px along slow and 4 along fast: r = 5 px = 0.5 mm, 2θ = atan(0.5 mm / 100 mm)
    assert tt[13, 24] == pytest.approx(math.degrees(math.atan(5e-4 / 0.1)), rel=1e-12)


def test_geometry_from_args_matches_the_setup_block():
    # the C reference printed Fbeam_m = Sbeam_m = 0.0258 for this configuration (MOSFLM convention)
    g = geometry_from_nb_args(["-distance", "500", "-detpixels", "256", "-pixel", "0.2"], (256, 256))
    s = geometry_from_setup({"distance_m": "0.5", "pixel_size_m": "0.0002", "Fbeam_m": "0.0258", "Sbeam_m": "0.0258"})
    assert g.distance_m == pytest.approx(s.distance_m) and g.pixel_m == pytest.approx(s.pixel_m)
    assert g.beam_f_m == pytest.approx(s.beam_f_m) and g.beam_s_m == pytest.approx(s.beam_s_m)
    assert geometry_from_setup({"distance_m": "0.5"}) is None


def test_radial_profile_of_a_flat_image_is_flat():
    a = np.full((50, 50), 3.0)
    x, ma, mb, label = radial_profiles(a, 2 * a, Geometry(0.1, 1e-4, 0.0025, 0.0025))
    assert label == "2θ (degrees)" and np.all(np.diff(x) > 0)
    assert np.allclose(ma, 3.0) and np.allclose(mb / ma, 2.0)
    _, _, _, label = radial_profiles(a, a, None)
    assert label == "radius from the image centre (px)"


def _dump(path, arrays):
    return Dump(path, (0, 9, 0, 7), {k: np.asarray(v, dtype=np.float64) for k, v in arrays.items()}, {})


def test_every_divergent_tap_is_drawn_paged(tmp_path):
    n = PER_PAGE + 6
    base = {f"tap_{i:02d}": np.full((8, 10), 1.0 + i) for i in range(n)}
    port = {k: v * (1 + 1e-3 * (i + 1)) for i, (k, v) in enumerate(base.items())}
    res = compare_dumps(_dump("a.npz", base), _dump("b.npz", port))
    assert len(res.divergent()) == n
    pages = tap_pages(res, tmp_path)
    assert [p.name for _, p in pages] == ["maps_taps_1.png", "maps_taps_2.png"]
    assert f"taps 1–{PER_PAGE} of {n}" in pages[0][0] and f"taps {PER_PAGE + 1}–{n} of {n}" in pages[1][0]
    figs = maps_figures(res, tmp_path)
    assert figs[0][1].name == "maps_first_divergent.png" and len(figs) == 3
    for _, p in figs:
        assert min(png_size(p)) > 200


def test_agreeing_maps_have_no_tap_pages(tmp_path):
    same = {"x": np.ones((8, 10))}
    res = compare_dumps(_dump("a.npz", same), _dump("b.npz", same))
    assert tap_pages(res, tmp_path) == []


def test_tap_chart(tmp_path):
    r = diff_traces(make_trace([("q", (1.0, 2.0)), ("i", 3.0)], pixel=(1, 1)),
                    make_trace([("q", (1.0, 2.5)), ("i", 3.0)], pixel=(1, 1)))
    p = tap_errors_figure(r, tmp_path / "taps.png")
    assert p is not None and png_size(p)[0] > 500
    empty = diff_traces(make_trace([("q", 1.0)], pixel=(1, 1)), make_trace([("z", 1.0)], pixel=(1, 1)))
    assert tap_errors_figure(empty, tmp_path / "none.png") is None


_PROBE = """
import sys
from nbtrace.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print("MATPLOTLIB", "matplotlib" in sys.modules, file=sys.stderr)
"""


@pytest.mark.parametrize("extra, imported", [([], False), (["--png", "{tmp}/figs"], True),
                                              (["--out", "{tmp}/out"], True)])
def test_matplotlib_only_when_a_picture_is_asked_for(tmp_path, extra, imported):
    args = [a.format(tmp=tmp_path) for a in extra]
    p = subprocess.run([sys.executable, "-c", _PROBE, "diff", str(CLI / "a.log"), str(CLI / "b.log"), *args],
                       capture_output=True, text=True, timeout=120)
    assert f"MATPLOTLIB {imported}" in p.stderr, p.stderr
    if imported:
        d = tmp_path / ("figs" if "--png" in extra else "out")
        assert png_size(d / "taps.png")[0] > 500
