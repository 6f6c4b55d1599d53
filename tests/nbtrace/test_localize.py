"""localize: the root cause is the first divergent tap whose upstream taps all agree."""

from __future__ import annotations

import pytest

from nbtrace.engine.diff import diff_traces
from nbtrace.engine.localize import pipeline_order
from nbtrace.engine.spec import parse_spec
from nbtrace.testing import make_trace

# a DAG where b and c both depend on a, d on c only
DAG = parse_spec(
    """spec: dag
taps:
  - {name: a}
  - {name: b, after: [a]}
  - {name: c, after: [a]}
  - {name: d, after: [c]}
  - {name: k_frac, loop: phi_tic, after: [a]}
""",
    "<dag>",
)

REF = [("a", 1.0), ("b", 2.0), ("c", 3.0), ("d", 4.0)]


def port(**changes):
    return [(n, changes.get(n, v)) for n, v in REF]


def run(ref, prt, spec=DAG):
    return diff_traces(make_trace(ref, pixel=(1, 1)), make_trace(prt, pixel=(1, 1), prefix="TRACE_PY"), spec)


def statuses(result):
    return {f.verdict.label: f.status for f in result.findings}


def test_downstream_of_a_divergence_is_inherited():
    r = run(REF, port(a=1.5, b=2.5, d=4.5))
    assert r.root_cause.tap == "a"
    # d's only input c agrees: a divergent far ancestor (a) explains nothing, so d introduces its
    # own divergence (issue 9: "inherited" needs a chain of divergent taps)
    assert statuses(r) == {"a": "introduced", "b": "inherited", "c": "agree", "d": "introduced"}
    assert "1 later tap inherits it" in r.headline


def test_inherited_needs_a_chain_of_divergent_taps():
    r = run(REF, port(a=1.5, c=3.5, d=4.5))
    assert statuses(r) == {"a": "introduced", "b": "agree", "c": "inherited", "d": "inherited"}
    assert "2 later taps inherit it" in r.headline


def test_independent_divergence_on_a_side_branch_is_introduced():
    # b diverges with its only ancestor (a) agreeing; d diverges while its ancestor c agrees
    r = run(REF, port(b=2.5, d=4.5))
    assert r.root_cause.tap == "b"
    assert statuses(r)["d"] == "introduced"
    assert "1 other tap(s) diverge with no divergent upstream tap: `d`" in r.headline


def test_dag_not_line_order_decides():
    # d printed before c: c still is d's ancestor, so a divergent c is the root, d inherits
    ref = [("a", 1.0), ("d", 4.0), ("c", 3.0)]
    prt = [("a", 1.0), ("d", 9.0), ("c", 7.0)]
    r = run(ref, prt)
    assert r.root_cause.tap == "c"
    assert statuses(r)["d"] == "inherited"


def test_without_spec_trace_order_is_the_dag():
    r = run(REF, port(b=2.5, d=4.5), spec=None)
    assert r.root_cause.tap == "b"
    assert statuses(r)["d"] == "inherited"


def test_loop_tap_names_first_divergent_iteration():
    ref = REF + [(("k_frac", {"phi_tic": i}), 0.1 * i + 0.05) for i in range(4)]
    prt = REF + [(("k_frac", {"phi_tic": i}), 0.1 * i + 0.05 + (0.02 if i >= 2 else 0.0)) for i in range(4)]
    r = run(ref, prt)
    assert r.root_cause.tap == "k_frac" and r.root_cause.loop == ("phi_tic",)
    assert r.root_cause.index.loop == (("phi_tic", 2),)
    assert "first divergent iteration: phi_tic 2 (2 of 4 iterations differ)" in r.headline


def test_precision_is_never_a_root_cause():
    ref = [("a", 2117.55880649785), ("b", 2.0)]
    prt = [("a", float(__import__("numpy").float32(2117.55880649785))), ("b", 2.0)]
    r = diff_traces(make_trace(ref, pixel=(1, 1)), make_trace(prt, pixel=(1, 1)), DAG, context={"dtype": "float32"})
    assert r.verdict == "agree"
    assert [f.verdict.kind for f in r.findings] == ["precision", "agree"]


def test_pipeline_order_puts_spec_taps_first_then_unknown_in_trace_order():
    r = run([("zz", 1.0), ("d", 4.0), ("a", 1.0)], [("zz", 1.0), ("d", 4.0), ("a", 1.0)])
    assert [f.verdict.tap for f in r.findings] == ["a", "d", "zz"]
    order = pipeline_order([f.verdict for f in r.findings][::-1], None)
    assert [v.tap for v in order] == ["zz", "d", "a"]


@pytest.mark.parametrize("spec", [DAG, None])
def test_agreeing_traces_have_no_root(spec):
    r = run(REF, REF, spec)
    assert r.root_cause is None and r.verdict == "agree"


def test_a_divergence_with_fully_compared_upstream_is_preferred_as_root():
    # b's upstream (a) could not be compared; c's upstream is compared and agrees: c is the root
    spec = parse_spec("""spec: s
taps:
  - {name: u}
  - {name: a}
  - {name: b, after: [a]}
  - {name: c, after: [u]}
""", "<s>")
    ref = [("u", 1.0), ("a", 1.0), ("b", 2.0), ("c", 3.0)]
    prt = [("u", 1.0), ("a", 1.0), ("a", 1.0), ("b", 2.5), ("c", 3.5)]
    r = run(ref, prt, spec)
    assert r.root_cause.tap == "c"
    assert statuses(r)["b"] == "introduced"
    assert any("A printed 1 and B printed 2 copies of 1 tap(s) (a)" in w for w in r.warnings)


def test_a_forward_reference_is_honoured():
    # declared first but computed from a tap printed later: the later one is the root cause
    spec = parse_spec("taps:\n  - {name: a, after: [b]}\n  - {name: b}\n", "<fwd>")
    r = diff_traces(make_trace([("a", 1.0), ("b", 2.0)], pixel=(1, 1)),
                    make_trace([("a", 9.0), ("b", 5.0)], pixel=(1, 1), prefix="TRACE_PY"), spec)
    assert r.root_cause.tap == "b"
    assert statuses(r) == {"b": "introduced", "a": "inherited"}


def test_a_unit_sized_factor_a_consumer_does_not_carry_is_not_inherited():
    # the earlier port printed S in Å⁻¹ (×1e-10, with real vectors in Å: consistent) and formed h
    # from the reciprocal vectors (×1e-4): h's factor is not S's, so h introduces it and the
    # ×1e-10 changes nothing downstream (immaterial)
    spec = parse_spec("""spec: s
taps:
  - {name: S, shape: [3]}
  - {name: h, shape: [3], after: [S]}
  - {name: F, after: [h]}
  - {name: I_pixel_final, after: [F]}
""", "<s>")
    ref = [("S", (1e6, 2e6, 3e6)), ("h", (0.01, 0.02, 0.03)), ("F", 4.8), ("I_pixel_final", 10.0)]
    prt = [("S", (1e-4, 2e-4, 3e-4)), ("h", (1e-6, 2e-6, 3e-6)), ("F", 5.0), ("I_pixel_final", 11.0)]
    r = run(ref, prt, spec)
    assert statuses(r) == {"S": "immaterial", "h": "introduced", "F": "inherited", "I_pixel_final": "inherited"}
    assert r.root_cause.tap == "h" and r.root_cause.factor == pytest.approx(1e-4)
    # the same h with S's factor carried through is S's heir
    prt = [("S", (1e-4, 2e-4, 3e-4)), ("h", (1e-12, 2e-12, 3e-12)), ("F", 5.0), ("I_pixel_final", 11.0)]
    r = run(ref, prt, spec)
    assert r.root_cause.tap == "S" and statuses(r)["h"] == "inherited"


def test_causes_are_ranked_by_their_effect_on_the_output():
    spec = parse_spec("""spec: s
taps:
  - {name: F_latt_a}
  - {name: fluence}
  - {name: I_pixel_final, after: [F_latt_a, fluence]}
""", "<s>")
    r = run([("F_latt_a", 4.8), ("fluence", 1e24), ("I_pixel_final", 10.0)],
            [("F_latt_a", 4.9), ("fluence", 7.9e14), ("I_pixel_final", 7.9e-9)], spec)
    assert [f.verdict.tap for f in r.causes] == ["fluence", "F_latt_a"]
    assert r.headline.startswith("`fluence` is the main divergence (the largest effect on the output)")
    assert "1 other tap(s) diverge with no divergent upstream tap: `F_latt_a` (×1.02)" in r.headline
    doc = r.to_json()
    assert [c["tap"] for c in doc["causes"]] == ["fluence", "F_latt_a"] and doc["immaterial"] == []


def test_a_missing_phi_iteration_is_never_agreement():
    ref = REF + [(("k_frac", {"phi_tic": i}), 0.5 + i) for i in range(4)]
    prt = REF + [(("k_frac", {"phi_tic": 0}), 0.5)]
    r = run(ref, prt)
    assert r.verdict == "diverge" and r.root_cause is None
    (gap,) = r.incomplete
    assert gap.verdict.kind == "missing_iterations" and gap.verdict.index.loop == (("phi_tic", 1),)
    assert "first loop iteration absent from B: pixel (1, 1), phi_tic 1" in r.headline


def test_a_beam_centre_printed_before_the_half_pixel_is_immaterial():
    # issue 9: the C prints Fbeam_m after adding the MOSFLM ½ pixel and the port before, yet
    # pix0 and everything after it agree: a print convention, listed, never the root cause
    from nbtrace.engine.spec import default_spec

    setup_c = [("detector_convention", "MOSFLM"), ("Fbeam_m", 0.05125), ("pix0_vector", (0.1, 0.05125, -0.05125))]
    setup_py = [("detector_convention", "MOSFLM"), ("Fbeam_m", 0.0512), ("pix0_vector", (0.1, 0.05125, -0.05125))]
    taps = [("pix0_vector_meters", (0.1, 0.05125, -0.05125)), ("pixel_pos_meters", (0.1, 0.0, 0.006)),
            ("I_pixel_final", 12.5)]
    r = diff_traces(make_trace(taps, pixel=(1, 1), setup=setup_c),
                    make_trace(taps, pixel=(1, 1), setup=setup_py, prefix="TRACE_PY"), default_spec())
    assert r.root_cause is None and r.verdict == "diverge"
    assert [f.verdict.tap for f in r.immaterial] == ["Fbeam_m"]
    assert r.headline.startswith("No divergence reaches the output, but the traces differ: 1 immaterial")
    assert r.to_json()["immaterial"][0]["tap"] == "Fbeam_m"
