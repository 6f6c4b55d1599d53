"""Closed-form checks of the lattice transform (physics.md §2.8)."""

import math

import pytest
import torch

from nbtrace.sim.lattice import lattice_factor, sincg, square


@pytest.mark.parametrize("N", [(5, 5, 5), (3, 7, 2), (10, 1, 4)])
@pytest.mark.parametrize("hkl", [(0, 0, 0), (1, -2, 3), (7, 4, -5)])
def test_flatt_at_integer_hkl_is_NaNbNc(N, hkl):
    # sin(Nπn)/sin(πn) is a ratio of two rounding-level numbers exactly at a nonzero integer
    # (the C has no special case there), so approach the integer to 1e-6, where the
    # closed-form value is reached to (Nπε)²/6 < 2e-10
    eps = 0.0 if hkl == (0, 0, 0) else 1e-6
    h, k, l = (torch.tensor([float(x) + eps], dtype=torch.float64) for x in hkl)
    f = square(h, k, l, N)
    # sin(Nπn)/sin(πn) is ±N; the sign is (−1)^((N−1)n) per axis
    sign = 1
    for n, x in zip(N, hkl):
        if n > 1:
            sign *= (-1) ** (((n - 1) * x) % 2)
    assert f.total.item() == pytest.approx(sign * N[0] * N[1] * N[2], rel=1e-8)


def test_sincg_exact_N_only_at_zero():
    x = torch.tensor([0.0, 1e-300, math.pi], dtype=torch.float64)
    out = sincg(x, 5)
    assert out[0].item() == 5.0
    assert out[1].item() == pytest.approx(5.0)
    # at π the C has no special case: a ratio of two tiny sines, not exactly 5
    assert out[2].item() == pytest.approx(5.0, rel=1e-9)


def test_axis_with_N_one_contributes_exactly_one():
    h = torch.tensor([0.37], dtype=torch.float64)
    f = square(h, h, h, (1, 4, 1))
    assert f.a.item() == 1.0 and f.c.item() == 1.0
    assert f.total.item() == f.b.item()


def test_tophat_and_round_peak_values():
    z = torch.zeros(1, dtype=torch.float64)
    stars = [torch.tensor([0.01, 0, 0], dtype=torch.float64)] * 3
    assert lattice_factor("tophat", z, z, z, (2, 3, 4), 1.0, *stars).total.item() == 24.0
    rnd = lattice_factor("round", z, z, z, (2, 3, 4), 1.0, *stars).total.item()
    assert rnd == pytest.approx(24 * 0.723601254558268)
    gauss = lattice_factor("gauss", z + 1, z, z, (2, 3, 4), 1.0, *stars).total.item()
    assert gauss == 24.0  # integral h: Δ = 0, exp(0)


def test_flatt_normalization_injection_divides_each_axis_by_N():
    h = torch.tensor([0.21], dtype=torch.float64)
    clean = square(h, h, h, (5, 3, 2))
    divided = square(h, h, h, (5, 3, 2), divided=True)
    assert divided.a.item() == pytest.approx(clean.a.item() / 5)
    assert divided.total.item() == pytest.approx(clean.total.item() / 30)
