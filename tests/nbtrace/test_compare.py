"""compare: tolerances, printed-precision floor, and every verdict class, on small hand-made taps."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nbtrace.engine.align import TapGroup, align
from nbtrace.engine.diff import diff_traces
from nbtrace.engine.compare import (CompareSettings, ComparerBug, Geometry, compare_group, mismatch_message,
                             plausibility, precision_floor)
from nbtrace.engine.spec import parse_spec
from nbtrace.testing import make_trace
from nbtrace.engine.units import NamedFactor

SPEC = parse_spec(
    """spec: t
taps:
  - {name: scattering_vec_A_inv, shape: [3], unit: m^-1, range: [0, 1.0e12]}
  - {name: pix0_vector_meters, shape: [3], unit: m, range: [0, 10]}
  - {name: lambda_meters, unit: m, range: [1.0e-13, 1.0e-7]}
  - {name: steps, unit: count}
  - {name: I_before_scaling, unit: F^2}
  - {name: hkl_frac, shape: [3], unit: "1"}
""",
    "<test>",
)


def verdict(name, va, vb, *, settings=None, sig_a=17, sig_b=17, spec=SPEC, n=1):
    a = make_trace([(name, v) for v in (va if n > 1 else [va])], pixel=(7, 9), sigdigits=sig_a)
    b = make_trace([(name, v) for v in (vb if n > 1 else [vb])], pixel=(7, 9), sigdigits=sig_b, prefix="TRACE_PY")
    [g] = align(a, b).groups
    return compare_group(g, a, b, spec.get(name) if spec else None, settings)


S = (-2895410.53906661, 0.0, 96600468.9160431)


def test_identical_values_agree():
    v = verdict("scattering_vec_A_inv", S, S)
    assert v.kind == "agree" and v.n_mismatched == 0 and v.max_abs == 0


def test_scale_names_the_unit():
    v = verdict("scattering_vec_A_inv", S, tuple(x * 1e-10 for x in S))
    assert v.kind == "scale" and v.factor == 1e-10
    assert "Å⁻¹ where m⁻¹ was expected" in v.message
    assert "Mismatched elements: 2 / 3 (66.7%)" in v.message


def test_unexplained_constant_ratio_is_still_a_scale_but_says_so():
    v = verdict("scattering_vec_A_inv", S[:1] + (1.0, 2.0), tuple(x * 3.3 for x in S[:1] + (1.0, 2.0)))
    assert v.kind == "scale" and v.factor == pytest.approx(3.3)
    assert "not a known unit or run factor" in v.message


def test_run_factor_from_context_explains_a_ratio():
    s = CompareSettings(run_factors=(NamedFactor(1 / 125, "×1/N³ overall"),))
    v = verdict("I_before_scaling", 1.0e6, 8.0e3, settings=s)
    assert v.kind == "scale" and "×1/N³ overall" in v.message


def test_sign_flip():
    v = verdict("scattering_vec_A_inv", S, tuple(-x for x in S))
    assert v.kind == "sign" and v.factor == -1.0


def test_permutation_names_the_swap():
    v = verdict("hkl_frac", (0.1, 0.2, 0.3), (0.1, 0.3, 0.2))
    assert v.kind == "permutation"
    assert "y↔z" in v.message and "= reference (x, z, y)" in v.message


def test_half_pixel_offset_along_fast():
    g = Geometry(pixel_size=1e-4, fdet=(0.0, 0.0, 1.0), sdet=(0.0, -1.0, 0.0))
    p0 = (0.1, 0.00505, -0.00505)
    v = verdict("pix0_vector_meters", p0, (0.1, 0.00505, -0.00505 + 5e-5), settings=CompareSettings(geometry=g))
    assert v.kind == "offset"
    assert "exactly +½ pixel along fast" in v.message


def test_one_pixel_offset_along_slow_is_not_called_half():
    g = Geometry(pixel_size=1e-4, fdet=(0.0, 0.0, 1.0), sdet=(0.0, -1.0, 0.0))
    p0 = (0.1, 0.00505, -0.00505)
    v = verdict("pix0_vector_meters", p0, (0.1, 0.00505 - 1e-4, -0.00505), settings=CompareSettings(geometry=g))
    assert v.kind == "offset" and "+1 pixel along slow" in v.message and "exactly" not in v.message


def test_rotation_same_norm():
    p0 = np.array([0.1, 0.00505, -0.00505])
    c, s = math.cos(0.05), math.sin(0.05)
    p1 = (p0[0], c * p0[1] - s * p0[2], s * p0[1] + c * p0[2])
    v = verdict("pix0_vector_meters", tuple(p0), p1)
    assert v.kind == "rotation" and "same norm" in v.message


def test_nonfinite_on_one_side():
    v = verdict("lambda_meters", 1e-10, float("nan"))
    assert v.kind == "nonfinite"
    assert verdict("lambda_meters", float("inf"), float("inf")).kind == "agree"


def test_integer_count_only_for_count_taps():
    v = verdict("steps", 2, 4)
    assert v.kind == "integer_count" and "4 vs 2" in v.message and v.factor == 2.0
    # an integral double in a non-count tap is not a count
    v = verdict("I_before_scaling", 40000, 10000, settings=CompareSettings(
        run_factors=(NamedFactor(0.25, "= 1/oversample² (1/4)"),)))
    assert v.kind == "scale" and v.factor == 0.25


def test_different_quantity_reports_per_component_ratios():
    v = verdict("hkl_frac", (0.5, 1.2, -2.0), (800.0, 2.0, 3.0))
    assert v.kind == "different_quantity"
    assert "per-component ratios port/reference = (1600, 1.66667, -1.5)" in v.message


def test_precision_only_when_a_side_is_float32():
    a = 2117.55880649785
    b = float(np.float32(a))
    assert verdict("I_before_scaling", a, b).kind == "out_of_tolerance"
    v = verdict("I_before_scaling", a, b, settings=CompareSettings(float32_side="b"))
    assert v.kind == "precision" and "float32 noise" in v.message
    # a 0.5 % error is never precision, float32 or not
    v = verdict("I_before_scaling", a, a * 1.005, settings=CompareSettings(float32_side="b"))
    assert v.kind == "out_of_tolerance" and "not precision" in v.message


def test_printed_precision_floor_of_either_side():
    # %g prints 6 digits: the port's 0.0289541 is as good as it can be
    assert verdict("hkl_frac", (-0.0289541053906661, 0.0, 0.966004689160431),
                   (-0.0289541, 0.0, 0.966005), sig_b=6).kind == "agree"
    assert verdict("hkl_frac", (-0.0289541053906661, 0.0, 0.966004689160431),
                   (-0.0289541, 0.0, 0.966005), sig_b=17).kind != "agree"
    assert precision_floor(np.array([6]))[0] == pytest.approx(5e-6)


def test_message_prints_the_tolerance_that_would_pass():
    v = verdict("lambda_meters", 1.0e-10, 1.000001e-10)
    assert v.kind == "out_of_tolerance"
    assert v.would_pass == pytest.approx(1e-6, rel=1e-3)
    assert "Would pass with rtol=1e-06 (relative to max(|a|, |b|, ‖row‖); used rtol=1e-09" in v.message
    assert "The failure occurred for item lambda_meters at pixel (7, 9)" in v.message


def test_vectors_are_judged_against_their_size():
    # 6e-17 vs 0 in a unit vector is rounding, not a divergence
    v = verdict("hkl_frac", (1.0, 6.12323e-17, 0.0), (1.0, 0.0, 0.0))
    assert v.kind == "agree"


def test_strings_compare_as_text():
    a = make_trace([], setup=[("detector_convention", "MOSFLM")])
    b = make_trace([], setup=[("detector_convention", "XDS")])
    [g] = align(a, b).groups
    v = compare_group(g, a, b)
    assert v.kind == "out_of_tolerance" and "'MOSFLM'" in v.message and "'XDS'" in v.message
    c = make_trace([], setup=[("detector_convention", " MOSFLM ")])
    assert compare_group(align(a, c).groups[0], a, c).kind == "agree"


def test_arity_mismatch_is_a_different_quantity():
    v = verdict("hkl_frac", (1.0, 2.0, 3.0), (1.0,))
    assert v.kind == "different_quantity" and "3 component(s)" in v.message


def test_comparer_bug_raises_instead_of_reporting_a_mismatch():
    a = make_trace([("steps", 1)], pixel=(1, 1))
    bad = TapGroup("steps", (), np.array([0]), np.array([], dtype=np.int64))
    with pytest.raises(ComparerBug):
        compare_group(bad, a, a)


def test_plausibility_says_which_unit_it_looks_like():
    t = make_trace([("lambda_meters", 0.5)], pixel=(1, 1))
    msg = plausibility("lambda_meters", SPEC.get("lambda_meters"), "b", t.records)
    assert msg.startswith("`lambda_meters` holds 0.5 in the port (B)")
    assert msg.endswith("looks like Å, not m")
    ok = make_trace([("lambda_meters", 5e-11)], pixel=(1, 1))
    assert plausibility("lambda_meters", SPEC.get("lambda_meters"), "a", ok.records) is None


def test_mismatch_message_layout():
    msg = mismatch_message("tap", "headline", n_mis=1, n_el=4, worst_abs=(2.0, "pixel (1, 2)", 0.5),
                           worst_rel=(0.1, "pixel (1, 2), component 1", 1e-9), would_pass=0.1,
                           rtol=1e-9, atol=0.0, path="tap at pixel (1, 2)")
    assert msg.splitlines() == [
        "tap: headline",
        "Mismatched elements: 1 / 4 (25.0%)",
        "Greatest absolute difference: 2 at pixel (1, 2) (up to 0.5 allowed)",
        "Greatest relative difference: 0.1 at pixel (1, 2), component 1 (up to 1e-09 allowed)",
        "Would pass with rtol=0.1 (relative to max(|a|, |b|, ‖row‖); used rtol=1e-09, atol=0)",
        "The failure occurred for item tap at pixel (1, 2)",
    ]


def test_many_pairs_are_compared_at_once_and_the_worst_is_located():
    vals = [(float(i), 1.0, 2.0) for i in range(1, 50)]
    port = list(vals)
    port[30] = (31.0, 1.0, 2.5)
    v = verdict("hkl_frac", vals, port, n=49)
    assert v.n_pairs == 49 and v.n_mismatched == 1
    assert v.index.occurrence == 30
    assert "occurrence 30, component 2" in v.message


def test_scalar_length_offset_in_pixels():
    g = Geometry(pixel_size=1e-4)
    v = verdict("pix0_vector_meters", 0.00505, 0.00500, settings=CompareSettings(geometry=g), spec=SPEC)
    # a scalar under a vector tap's name is still judged as a length
    assert v.kind == "offset" and "exactly −½ pixel" in v.message


def test_divergence_confined_to_some_pixels_says_where():
    from nbtrace.engine.model import Trace

    def multi(values):
        recs = []
        for i, val in enumerate(values):
            t = make_trace([("lambda_meters", val)], pixel=(0, i))
            recs.extend(t.records)
        return Trace("<m>", tuple(recs), "TRACE_C", "space", tuple((0, i) for i in range(len(values))))

    a = multi([1e-10] * 5)
    b = multi([1e-10, 1e-10, 1e-10, 1.1e-10, 1.2e-10])
    [g] = align(a, b).groups
    v = compare_group(g, a, b, SPEC.get("lambda_meters"))
    assert "confined to 2 of 5 pixels: (0, 3), (0, 4)" in v.message


from hypothesis import HealthCheck, given, settings as hsettings, strategies as st  # noqa: E402

# a loaded 2-core machine must not turn the timing health check into a failure
_CALM = [HealthCheck.too_slow]

from nbtrace.engine.results import KINDS  # noqa: E402

_vals = st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64), min_size=3, max_size=3)


@hsettings(max_examples=200, deadline=None, derandomize=True, database=None, suppress_health_check=_CALM)
@given(st.lists(st.tuples(_vals, _vals), min_size=1, max_size=6), st.booleans())
def test_any_values_get_a_verdict_and_identical_values_agree(rows, f32):
    s = CompareSettings(float32_side="b" if f32 else None,
                        geometry=Geometry(pixel_size=1e-4, fdet=(0.0, 0.0, 1.0), sdet=(0.0, -1.0, 0.0)))
    va = [tuple(a) for a, _ in rows]
    vb = [tuple(b) for _, b in rows]
    n = len(rows)
    v = verdict("pix0_vector_meters", va if n > 1 else va[0], vb if n > 1 else vb[0], settings=s, n=n)
    assert v.kind in KINDS
    assert (v.kind == "agree") == (v.n_mismatched == 0)
    same = verdict("pix0_vector_meters", va if n > 1 else va[0], va if n > 1 else va[0], settings=s, n=n)
    assert same.kind == "agree"


# float32 precision class: plain noise, amplified noise (conditioning), and a real bug above it.
import pytest as _pytest

from nbtrace.engine.diff import diff_traces as _diff_traces
from nbtrace.testing import make_trace as _make_trace


@_pytest.mark.parametrize("rel, kind", [(2e-7, "precision"), (1.5e-4, "precision"), (5e-3, "out_of_tolerance")])
def test_float32_port_noise_is_precision_up_to_the_amplified_limit(rel, kind):
    ref = _make_trace([("F_latt_b", 3.2360804930056273)], pixel=(2, 4))
    port = _make_trace([("F_latt_b", 3.2360804930056273 * (1 + rel))], pixel=(2, 4), prefix="TRACE_PY")
    res = _diff_traces(ref, port, context={"dtype": "float32"})
    (finding,) = [f for f in res.findings if f.verdict.tap == "F_latt_b"]
    assert finding.verdict.kind == kind
    assert (res.root_cause is None) == (kind == "precision")


def test_amplified_float32_rule_needs_a_float32_side():
    ref = _make_trace([("F_latt_b", 3.2360804930056273)], pixel=(2, 4))
    port = _make_trace([("F_latt_b", 3.2360804930056273 * (1 + 1.5e-4))], pixel=(2, 4), prefix="TRACE_PY")
    res = _diff_traces(ref, port)
    assert res.root_cause is not None and res.root_cause.kind == "out_of_tolerance"


@pytest.mark.parametrize("a, b", [
    (1.0, 1.8),  # need 0.44444: three digits rounded to nearest (0.444) would still fail
    ((1000.0, 2000.0, 3000.0), (1e-7, 2e-7, 3e-7)),  # ×1e-10: relative difference 1, need 0.8018
    ((0.1, 0.0, 0.006), (0.1, 1e-3, 0.0061)),
    (2.5e-30, 2.50049e-30),
])
def test_printed_would_pass_rtol_really_passes(a, b):
    ta, tb = make_trace([("x", a)], pixel=(1, 1)), make_trace([("x", b)], pixel=(1, 1))
    v = diff_traces(ta, tb).findings[0].verdict
    assert v.kind != "agree" and v.would_pass is not None
    assert f"Would pass with rtol={v.would_pass:.3g} " in v.message
    assert float(f"{v.would_pass:.3g}") == v.would_pass  # what is printed is what was checked
    assert diff_traces(ta, tb, rtol=v.would_pass, atol=v.atol)


# ------------------------------------------------------------------ arithmetic that cannot overflow
# (issue 11: past ~1e154 the row norm overflowed, the tolerance became inf and anything agreed)

from fractions import Fraction  # noqa: E402

from nbtrace.engine.arith import compare_arrays, passing_rtol  # noqa: E402
from nbtrace.testing import assert_traces_match  # noqa: E402


@pytest.mark.parametrize("tap, a, b", [
    ("F_cell", 100.0, 2e154),
    ("F_cell", 1e308, -1e308),
    ("F_cell", 1.7976931348623157e308, 8.98846567431158e307),
    ("scattering_vec_A_inv", (8.7e7, 1.0, 2.0), (1e200, 1.0, 2.0)),
    ("scattering_vec_A_inv", (1e300, 1e300, 1e300), (1e300, 1e300, -1e300)),
    ("F_cell", math.inf, -math.inf),
    ("F_subnormal", 5e-324, 1e-323),  # no spec tap: relative only, so subnormals count
])
def test_huge_and_tiny_values_never_agree_when_they_differ(tap, a, b):
    ta = make_trace([(tap, a)], pixel=(1, 1))
    tb = make_trace([(tap, b)], pixel=(1, 1), prefix="TRACE_PY")
    r = diff_traces(ta, tb)
    assert r.verdict == "diverge", r.headline
    with pytest.raises(AssertionError):
        assert_traces_match(ta, tb)
    (f,) = r.findings
    assert math.isfinite(f.verdict.tolerance)


@pytest.mark.parametrize("a", [1e308, -1e308, 1.7976931348623157e308, 5e-324, -0.0, math.inf, -math.inf, math.nan])
def test_extreme_values_agree_with_themselves(a):
    ta = make_trace([("F_cell", a)], pixel=(1, 1))
    assert diff_traces(ta, make_trace([("F_cell", a)], pixel=(1, 1), prefix="TRACE_PY"))


def test_signed_zeros_agree():
    assert diff_traces(make_trace([("x", (0.0, -0.0, 1.0))], pixel=(1, 1)),
                       make_trace([("x", (-0.0, 0.0, 1.0))], pixel=(1, 1)))


_any_double = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.floats(min_value=-1e-300, max_value=1e-300, allow_subnormal=True),  # subnormals and zeros
    st.sampled_from([0.0, -0.0, 5e-324, -5e-324, 1.7976931348623157e308, -1.7976931348623157e308,
                     2.2250738585072014e-308, 1e154, 1e155]),
)


def _one(a: float, b: float, rtol: float, atol: float):
    one = np.array([[a]]), np.array([[b]])
    return compare_arrays(*one, np.array([17]), np.array([17]), rtol, atol)


@hsettings(max_examples=600, deadline=None, derandomize=True, database=None, suppress_health_check=_CALM)
@given(_any_double, _any_double, st.sampled_from([0.0, 1e-15, 1e-9, 1e-3, 0.5]),
       st.sampled_from([0.0, 1e-300, 1e-12, 1.0]))
def test_scalar_comparison_is_exact_over_the_whole_double_range(a, b, rtol, atol):
    """ok ⇔ |a − b| ≤ atol + rtol·max(|a|, |b|), decided with exact rationals; the tolerance and
    the magnitude stay finite everywhere. Within a relative 1e-9 of the boundary either answer
    is acceptable (the comparison itself is in floating point)."""
    x = _one(a, b, rtol, atol)
    assert np.all(np.isfinite(x.tol)) and np.all(np.isfinite(x.tol_n)) and np.all(np.isfinite(x.mag_n))
    rt = max(rtol, 0.5 * 10.0 ** -16)  # the printed-precision floor of 17 digits
    d = abs(Fraction(a) - Fraction(b))
    t = Fraction(atol) + Fraction(rt) * max(abs(Fraction(a)), abs(Fraction(b)))
    ok = bool(x.ok[0, 0])
    if d <= t * Fraction(999_999_999, 1_000_000_000):
        assert ok, (a, b, rtol, atol)
    elif d >= t * Fraction(1_000_000_001, 1_000_000_000):
        assert not ok, (a, b, rtol, atol)
    assert ok == bool(_one(b, a, rtol, atol).ok[0, 0])  # symmetric


_row = st.lists(_any_double, min_size=3, max_size=3)


@hsettings(max_examples=400, deadline=None, derandomize=True, database=None, suppress_health_check=_CALM)
@given(_row, _row, st.sampled_from([0.0, 1e-9, 1e-3]))
def test_vector_tolerance_is_finite_and_identical_rows_agree(a, b, rtol):
    A, B = np.array([a]), np.array([b])
    x = compare_arrays(A, B, np.array([17]), np.array([17]), rtol, 0.0)
    assert np.all(np.isfinite(x.tol_n)) and np.all(np.isfinite(x.mag_n))
    assert np.all(compare_arrays(A, A, np.array([17]), np.array([17]), rtol, 0.0).ok)
    # a component that differs by more than the whole row's size can never pass at rtol < 1
    big = max(max(abs(v) for v in a), max(abs(v) for v in b))
    for i in range(3):
        if abs(Fraction(a[i]) - Fraction(b[i])) > 2 * Fraction(big) * Fraction(max(rtol, 1e-15)) * 2:
            assert not x.ok[0, i]
    need = float(np.max((x.diff_n - x.atol_n) / np.where(x.mag_n > 0, x.mag_n, 1.0)))
    r = passing_rtol(x, max(need, 0.0))
    assert math.isfinite(r)


def test_an_offset_past_the_double_range_in_pixels_is_no_pixel_offset():
    # found by the property test above: 1e304 m / 1e-4 m per pixel is inf pixels
    v = verdict("pix0_vector_meters", (0.0, 0.0, 0.0), (0.0, 0.0, 1.0972248137583544e304),
                settings=CompareSettings(geometry=Geometry(pixel_size=1e-4, fdet=(0.0, 0.0, 1.0), sdet=(0.0, -1.0, 0.0))))
    assert v.kind != "offset" and v.kind != "agree"


def test_passing_rtol_of_a_non_finite_need_is_inf_not_a_valueerror():
    x = _one(1.0, 2.0, 0.0, 0.0)
    assert passing_rtol(x, math.nan) == math.inf and passing_rtol(x, math.inf) == math.inf


@pytest.mark.parametrize("kw", [dict(rtol=-1e-9, atol=0.0), dict(rtol=math.nan, atol=0.0),
                                dict(rtol=1e-9, atol=-1.0), dict(rtol=1e-9, atol=math.inf),
                                dict(default_rtol=math.nan), dict(default_atol=-0.5)])
def test_compare_settings_refuse_negative_and_non_finite_tolerances(kw):
    from nbtrace.errors import UsageError

    with pytest.raises(UsageError, match="must be a finite number ≥ 0"):
        CompareSettings(**kw)


# ------------------------------------------------------------------ issue 9: always say the factor,
# and name it only when the meaning fits the tap's declared dimension

from nbtrace.engine.spec import default_spec  # noqa: E402

NB = default_spec()
PX = Geometry(pixel_size=1e-4, fdet=(0.0, 0.0, 1.0), sdet=(0.0, -1.0, 0.0))


def nb_verdict(name, va, vb, settings=None):
    return verdict(name, va, vb, spec=NB, settings=settings)


def test_a_power_of_ten_outside_the_unit_table_is_a_number_not_a_unit_prefix():
    # r_e_sqr holds m² (an area): 1e-16 is no ratio of two areas in the unit table
    v = nb_verdict("r_e_sqr", 7.94e-30, 7.94e-46)
    assert "unit prefix" not in v.message and "1e-16" in v.message
    assert v.ratio == pytest.approx(1e-16)
    # a dimensionless tap gets no "unit prefix" either (hkl's Å-in-a-product hint is the spec's)
    v = nb_verdict("F_latt", 115.0, 1.15e-14)
    assert "unit prefix" not in v.message and v.ratio == pytest.approx(1e-16)
    # while a length slip within the table is named
    v = nb_verdict("pix0_vector_meters", (0.1, 0.02, -0.03), (100.0, 20.0, -30.0))
    assert v.kind == "scale" and "mm where m was expected" in v.message


def test_a_run_factor_explains_only_taps_of_its_kind():
    s = CompareSettings(run_factors=run_factors_for_lambda(0.5))
    # a source count ×2 is not "the wavelength factor" (1/λ at λ = 0.5 Å is 2)
    v = nb_verdict("steps", 2, 4, settings=s)
    assert v.kind == "integer_count" and "wavelength" not in v.message and "ratio 2" in v.message
    # the reciprocal vectors are: 1/λ is their kind
    v = nb_verdict("rot_a_star_A_inv", (0.01, 0.0, 0.0), (0.02, 0.0, 0.0), settings=s)
    assert v.kind == "scale" and "wavelength factor" in v.message


def run_factors_for_lambda(lam_a: float):
    from nbtrace.engine.align import align as _align
    from nbtrace.engine.runfacts import run_factors

    t = make_trace([("lambda_meters", lam_a * 1e-10)], pixel=(1, 1))
    return run_factors(t, t, _align(t, t), {}, {})


def test_a_lattice_vector_one_percent_off_is_a_ratio_not_a_pixel_offset():
    s = CompareSettings(geometry=PX)
    v = nb_verdict("rot_a_angstroms", (100.0, 0.0, 0.0), (101.0, 0.0, 0.0), settings=s)
    head = v.message.split("\n", 1)[0]
    assert v.kind != "offset" and "pixel" not in head
    assert "port = reference ×1.01" in head and v.ratio == pytest.approx(1.01)  # one component: a ratio
    v = nb_verdict("rot_a_angstroms", (100.0, 3.0, 4.0), (101.0, 3.03, 4.04), settings=s)
    head = v.message.split("\n", 1)[0]
    assert v.kind == "scale" and v.factor == pytest.approx(1.01) and "pixel" not in head


def test_the_half_pixel_hint_only_at_half_a_pixel():
    s = CompareSettings(geometry=PX)
    p0 = (0.1, 0.00505, -0.00505)
    far = nb_verdict("pix0_vector_meters", p0, (0.1, 0.00505, -0.00505 + 769e-4), settings=s)
    assert far.kind == "offset" and "+769 pixel along fast" in far.message
    assert "MOSFLM" not in far.message
    half = nb_verdict("pix0_vector_meters", p0, (0.1, 0.00505, -0.00505 + 0.5e-4), settings=s)
    assert "exactly +½ pixel along fast" in half.message and "MOSFLM +½ pixel" in half.message


def test_a_large_gap_without_a_named_factor_still_says_the_ratio():
    # issue 9: fluence ×7.9e-10 and I_before_scaling ×5.4e-7 read "out of tolerance by 1"
    v = nb_verdict("fluence_photons_per_m2", 1.0e24, 7.9e14)
    assert "port = reference ×7.9e-10" in v.message and v.ratio == pytest.approx(7.9e-10)
    v = nb_verdict("I_before_scaling", 1.333e8, 1.333e8 * 5.4e-7)
    assert "×5.4e-07" in v.message
