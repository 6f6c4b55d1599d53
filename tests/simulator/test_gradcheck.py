"""The image is differentiable in cell lengths and angles, misset, distance, beam centre and λ."""

import math

import torch

from nbtrace.sim.cli import parse_args
from nbtrace.sim.kernel import Kernel
from nbtrace.sim.setup import Params, build_setup

ARGS = ("-lambda 1 -cell 20 22 24 88 91 93 -misset 5 10 15 -N 3 -default_F 10 -distance 100 "
        "-detpixels 4 -pixel 1 -oversample 1 -polar 0.5 -fluence 1e30").split()


def _image(cell, misset, distance, xbeam, ybeam, lam_A):
    # λ enters in Å so that gradcheck's absolute finite-difference step suits it
    cfg = parse_args(ARGS)
    setup = build_setup(cfg, Params(cell, misset, distance, xbeam, ybeam, lam_A * 1e-10))
    s, f = torch.meshgrid(torch.arange(4), torch.arange(4), indexing="ij")
    return Kernel(setup).render(s.reshape(-1), f.reshape(-1))


def test_gradcheck_geometry_crystal_and_wavelength():
    t = lambda *x: torch.tensor(x if len(x) > 1 else x[0], dtype=torch.float64, requires_grad=True)  # noqa: E731
    deg = math.pi / 180
    inputs = (
        t(20.0, 22.0, 24.0, 88 * deg, 91 * deg, 93 * deg),
        t(5 * deg, 10 * deg, 15 * deg),
        t(0.1), t(2.1e-3), t(1.9e-3), t(1.0),
    )
    out = _image(*inputs)
    assert out.abs().max() > 0 and torch.isfinite(out).all()
    assert torch.autograd.gradcheck(_image, inputs, eps=1e-7, atol=1e-6, rtol=1e-4)


def test_every_input_moves_the_image():
    deg = math.pi / 180
    base = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (
        [20.0, 22.0, 24.0, 88 * deg, 91 * deg, 93 * deg], [5 * deg, 10 * deg, 15 * deg], 0.1, 2.1e-3, 1.9e-3, 1.0)]
    _image(*base).sum().backward()
    for x in base:
        assert x.grad is not None and float(x.grad.abs().sum()) > 0
