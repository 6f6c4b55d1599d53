"""nbtrace.engine.trends: a ratio that follows 2θ is a radial trend, a port value that never moves is
a factor left unapplied; constant factors and scatter are neither."""

from __future__ import annotations

import math

import pytest

from nbtrace.engine.trends import patterns, spearman

ANGLES = [0.8, 5.0, 11.0, 17.5, 24.0, 33.0, 42.6]


def _kahn_points():
    # the reference applies P = (1 + cos²2θ)/2, the port leaves it at 1 (incident 8)
    return [(t, 0.5 * (1 + math.cos(math.radians(t)) ** 2), 1.0) for t in ANGLES]


def test_an_unapplied_angle_factor_is_both_unapplied_and_radial():
    kinds = [p.kind for p in patterns(_kahn_points())]
    assert kinds == ["unapplied", "radial"]
    radial = patterns(_kahn_points())[1]
    assert "grows with 2θ" in radial.text and "0.8°" in radial.text and "42.6°" in radial.text
    assert "left at 1" in patterns(_kahn_points())[0].text


def test_a_constant_factor_is_no_pattern():
    assert patterns([(t, 2.0 + t, 1e10 * (2.0 + t)) for t in ANGLES]) == ()


def test_scatter_is_no_trend():
    ratios = [1.3, 0.7, 1.2, 0.8, 1.25, 0.75, 1.1]
    assert patterns([(t, 1.0 + 0.01 * i, r * (1.0 + 0.01 * i)) for i, (t, r) in enumerate(zip(ANGLES, ratios))]) == ()


def test_a_falling_ratio_is_radial_too_and_needs_enough_angles():
    pts = [(t, 1.0, 1.0 - 0.002 * t) for t in ANGLES]
    (p,) = patterns(pts)
    assert p.kind == "radial" and "falls with 2θ" in p.text
    assert patterns(pts[:3]) == ()  # three angles are too few
    assert patterns([(0.1 * i, 1.0, 1.0 - 0.01 * i) for i in range(7)]) == ()  # 0.6° span: too narrow


def test_no_angle_no_radial_but_unapplied_still_shows():
    pts = [(None, a, 1.0) for a in (0.8, 0.9, 0.95)]
    assert [p.kind for p in patterns(pts)] == ["unapplied"]
    assert patterns([(None, 1.0, 1.0)] * 3) == ()  # nothing varies anywhere


def test_non_finite_points_are_ignored():
    pts = _kahn_points() + [(50.0, float("nan"), 1.0), (55.0, 1.0, float("inf"))]
    assert [p.kind for p in patterns(pts)] == ["unapplied", "radial"]


@pytest.mark.parametrize("x,y,rho", [([1, 2, 3], [10, 20, 30], 1.0), ([1, 2, 3], [3, 2, 1], -1.0),
                                     ([1, 2, 3], [5, 5, 5], 0.0), ([1, 2, 2, 3], [1, 2, 2, 3], 1.0)])
def test_spearman(x, y, rho):
    assert spearman(x, y) == pytest.approx(rho)
