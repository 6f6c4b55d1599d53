"""Fast paths of the frame renderer: row-aligned tiles and the compiled (-compile) pass.

The tiles must give exactly the values of rendering the same pixels as one flat list; the
compiled pass must give the eager image to rounding (torch's eager double sqrt is not always
correctly rounded, the compiled kernel's is, so a few pixels differ in the last bits) and
must never be used where the order of chunks or the taps matter.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from simhelp import SMALL, run_cli, taps
from nbtrace.sim import kernel
from nbtrace.sim.cli import parse_args
from nbtrace.sim.setup import build_setup

MOSAIC = SMALL + "-mosaic 0.5 -mosaic_domains 3 -phi 0 -osc 0.2 -phisteps 2 -roi 3 29 2 30".split()


def _flat_render(setup) -> torch.Tensor:
    """The ROI as one flat pixel list, C order, scattered into a zero image (the reference)."""
    det = setup.detector
    xmin, xmax, ymin, ymax = setup.roi
    s = torch.arange(ymin, ymax + 1).repeat_interleave(xmax - xmin + 1)
    f = torch.arange(xmin, xmax + 1).repeat(ymax - ymin + 1)
    image = torch.zeros(det.spixels, det.fpixels, dtype=torch.float64)
    image[s, f] = kernel.Kernel(setup).render(s, f)
    return image


# untilted: each position component varies along one detector axis (the grid's cheap case);
# tilted: all along both; curved: positions are not a grid (flat indices)
GEOMETRIES = {"untilted": [], "tilted": "-detector_rotx 3 -detector_roty 2 -twotheta 5".split(),
              "curved": ["-curved_det"]}


@pytest.mark.parametrize("chunk", [1, 7, 27, 64, 100, 10_000])
@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("geometry", sorted(GEOMETRIES))
def test_tiles_reproduce_the_flat_pixel_list_exactly(chunk, workers, geometry):
    # chunk 7 and 27 cut each 27-pixel ROI row into pieces or exactly one row; 64 and 100
    # take several rows with a short last tile; 10 000 the whole ROI at once
    setup = build_setup(parse_args(MOSAIC + GEOMETRIES[geometry]))
    with torch.no_grad():
        ref = _flat_render(setup)
        got = kernel.render_frame(setup, chunk=chunk, workers=workers)
    assert torch.equal(got, ref)
    assert got[:2].abs().sum() == 0 and got[:, 30:].abs().sum() == 0  # outside the ROI stays 0


def test_full_frame_without_zero_fill_writes_every_pixel():
    setup = build_setup(parse_args(SMALL))
    with torch.no_grad():
        got = kernel.render_frame(setup, chunk=100)
        ref = _flat_render(setup)
    assert torch.equal(got, ref) and bool(torch.isfinite(got).all())


def test_progress_reports_pixels_in_c_order_up_to_the_total():
    setup = build_setup(parse_args(MOSAIC))
    seen = []
    with torch.no_grad():
        kernel.render_frame(setup, chunk=10, progress=lambda done, total: seen.append((done, total)))
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert seen[-1] == (27 * 29, 27 * 29)


def test_fusable_only_without_grad_taps_or_per_term_flags():
    setup = build_setup(parse_args(SMALL + ["-compile"]))
    with torch.no_grad():
        assert kernel.fusable(setup)
        assert not kernel.fusable(build_setup(parse_args(SMALL)))
        assert not kernel.fusable(build_setup(parse_args(SMALL + ["-compile", "-oversample_omega"])))
    assert not kernel.fusable(setup)  # autograd on: the eager pass keeps the graph


@pytest.fixture
def fresh_dynamo():
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    yield counters
    torch._dynamo.reset()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_compiled_pass_matches_eager_and_keeps_the_thread_count(fresh_dynamo, dtype):
    # 29 rows × 27 columns in tiles of 4 rows: the last tile (1 row) is padded by clamping
    args = MOSAIC + ["-dtype", dtype]
    eager = build_setup(parse_args(args))
    comp = build_setup(parse_args(args + ["-compile"]))
    threads = torch.get_num_threads()
    omp = kernel._openmp()
    dynamic = omp.omp_get_dynamic() if omp is not None else None
    with torch.no_grad():
        ref = kernel.render_frame(eager, chunk=108).numpy()
        got = kernel.render_frame(comp, chunk=108, workers=2).numpy()
    assert torch.get_num_threads() == threads
    assert (omp.omp_get_dynamic() if omp is not None else None) == dynamic
    assert fresh_dynamo["stats"]["unique_graphs"] >= 1, "the compiled pass did not run"
    assert sum(fresh_dynamo["graph_break"].values()) == 0
    rtol = 1e-10 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(got, ref, rtol=rtol, atol=0)
    assert (got > 0).sum() == 27 * 29


def test_traced_compiled_run_takes_the_eager_pass(capsys, tmp_path, fresh_dynamo):
    # the taps and the image come from one pass, so with a recorder nothing is compiled
    out = tmp_path / "img.bin"
    code, text, err = run_cli(capsys, SMALL + ["-compile", "-trace_pixel", "12", "20", "-floatfile", out])
    assert code == 0, err
    assert fresh_dynamo["stats"].get("unique_graphs", 0) == 0
    image = np.fromfile(out, dtype="<f4").reshape(32, 32)
    assert taps(text)["floatimage_accumulated"][0][0] == float(image[12, 20])


# --- exact shortcuts of the eager pass: each must equal the general computation bit for bit


def _bits_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Same shape, dtype and bits (torch.equal would call −0 equal to 0 and NaN unequal)."""
    ints = {torch.float64: torch.int64, torch.float32: torch.int32}
    return a.shape == b.shape and a.dtype == b.dtype and torch.equal(
        a.contiguous().view(ints[a.dtype]), b.contiguous().view(ints[b.dtype]))


@pytest.mark.parametrize("with_zero", [False, True])
@pytest.mark.parametrize("N", [(5, 5, 5), (1, 4, 3)])
def test_square_without_zero_tests_equals_the_checked_path(with_zero, N):
    from nbtrace.sim.lattice import square

    g = torch.Generator().manual_seed(3)
    h, k, l = (torch.randn(4096, dtype=torch.float64, generator=g) * 6 for _ in range(3))
    if with_zero:  # exact zeros (0/0 in the unchecked ratio), one of them −0
        h[17], k[99], l[5] = 0.0, -0.0, 0.0
    quick = square(h, k, l, N)
    checked = square(h, k, l, N, fused=True)  # always the select path
    for a, b in zip(quick, checked):
        assert _bits_equal(a, b)
    assert torch.isfinite(quick.total).all()


def test_incident_codes_only_special_case_exact_values():
    inc = torch.tensor([[1.0, 0.0, -0.0], [1.0, 0.0, -0.0]], dtype=torch.float64)
    assert kernel._incident_codes(inc) == ((False, True, False), (1, 0, 0))
    tilted = torch.tensor([[0.999, 0.0447, 0.0]], dtype=torch.float64)
    assert kernel._incident_codes(tilted) == ((False, False, True), (2, 2, 0))
    assert kernel._incident_codes(inc.clone().requires_grad_()) == ((False,) * 3, (2,) * 3)


@pytest.mark.parametrize("incident", [[[1.0, 0.0, 0.0]], [[1.0, 0.0, -0.0], [1.0, 0.0, 0.0]],
                                      [[0.99, 0.1, -0.0995], [0.0, 0.0, 1.0]]])
def test_unpolarized_factor_with_codes_equals_the_full_dot_product(incident):
    from nbtrace.sim.polarization import kahn_factor, polar_basis

    inc = torch.tensor(incident, dtype=torch.float64)
    inc = inc / inc.norm(dim=1, keepdim=True)
    g = torch.Generator().manual_seed(5)
    d = torch.randn(1000, 3, dtype=torch.float64, generator=g)
    d[0] = torch.tensor([0.0, 1.0, 0.0])  # perpendicular: cos2θ is a (signed) zero
    d = tuple((d / d.norm(dim=1, keepdim=True)).unbind(-1))
    basis = polar_basis(inc, torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
    codes = kernel._incident_codes(inc)[1]
    assert _bits_equal(kahn_factor(0.0, inc, d, basis, codes), kahn_factor(0.0, inc, d, basis))


@pytest.mark.parametrize("keep", [None, "some"])
def test_first_polarization_from_none_equals_from_zeros(keep):
    g = torch.Generator().manual_seed(7)
    pol = torch.rand(500, 3, dtype=torch.float64, generator=g)
    pol[::7, 0] = 0.0  # a factor of exactly 0 lets a later source set it
    mask = None if keep is None else torch.rand(500, 3, generator=g) > 0.4
    ref = kernel._first_polar(torch.zeros(500, dtype=torch.float64), pol, mask)
    assert _bits_equal(kernel._first_polar(None, pol, mask), ref)
