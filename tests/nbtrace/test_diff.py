"""diff_traces: pixels, provenance, run factors, missing taps, the JSON contract."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nbtrace.engine.diff import diff_traces, run_factors
from nbtrace.engine.align import align
from nbtrace.errors import TraceError, UsageError
from nbtrace.engine.parse import read_trace
from nbtrace.engine.spec import default_spec
from nbtrace.testing import make_trace


def test_nothing_matched_is_a_failure_listing_both_sides():
    r = diff_traces(make_trace([("x", 1.0)], pixel=(1, 1)), make_trace([("y", 1.0)], pixel=(1, 1)))
    assert not r and r.verdict == "diverge" and r.root_cause is None
    assert r.headline.startswith("Nothing was compared")
    assert "A had 1 records: x; B had 1: y" in r.headline
    doc = r.to_json()
    assert doc["verdict"] == "diverge" and doc["root_cause"] is None
    assert doc["only_a"] == ["x"] and doc["only_b"] == ["y"]


def test_rtol_without_atol_is_a_usage_error():
    t = make_trace([("x", 1.0)], pixel=(1, 1))
    with pytest.raises(UsageError):
        diff_traces(t, t, rtol=1e-3)


def test_explicit_tolerance_overrides():
    a = make_trace([("x", 1.0)], pixel=(1, 1))
    b = make_trace([("x", 1.001)], pixel=(1, 1))
    assert not diff_traces(a, b)
    assert diff_traces(a, b, rtol=1e-2, atol=0.0)


def test_different_pixels_refused_with_both_pixels_named():
    a = make_trace([("x", 1.0)], pixel=(64, 79))
    b = make_trace([("x", 1.0)], pixel=(10, 12))
    with pytest.raises(UsageError) as exc:
        diff_traces(a, b)
    assert "A traced (slow=64, fast=79), B traced (slow=10, fast=12)" in str(exc.value)
    assert "transposed" not in str(exc.value)
    assert diff_traces(a, b, force=True)


def test_one_side_without_header_is_assumed_same_pixel_with_a_warning():
    a = make_trace([("x", 1.0)], pixel=(64, 79))
    b = make_trace([("x", 1.0)])
    r = diff_traces(a, b)
    assert r.verdict == "agree" and r.matched == 1
    assert r.warnings == ("B names no pixel; assumed (64, 79), the pixel A traced",)


def test_a_tap_only_the_reference_printed_makes_the_port_incomplete():
    # issue 11: a port missing a tap the reference printed for a pixel is never "agree"
    a = make_trace([("x", 1.0), ("only_ref", 2.0)], pixel=(1, 1))
    b = make_trace([("x", 1.0)], pixel=(1, 1))
    r = diff_traces(a, b)
    assert r.verdict == "diverge"
    assert [(f.verdict.tap, f.status) for f in r.findings] == [("x", "agree"), ("only_ref", "incomplete")]
    assert "B never emitted 1 tap(s) that A printed: only_ref" in r.warnings
    assert "B never printed 1 tap(s) that A printed for a traced pixel: `only_ref`" in r.headline


def test_a_tap_only_the_port_printed_is_listed_not_divergent():
    a = make_trace([("x", 1.0)], pixel=(1, 1))
    b = make_trace([("x", 1.0), ("only_port", 2.0)], pixel=(1, 1))
    r = diff_traces(a, b)
    assert r.verdict == "agree"
    assert [(f.verdict.tap, f.status) for f in r.findings] == [("x", "agree"), ("only_port", "missing")]


def test_provenance_is_not_compared_but_kept():
    a = make_trace([("x", 1.0)], pixel=(1, 1), setup=[("producer", "c 1"), ("argv", "-N 5")])
    b = make_trace([("x", 1.0)], pixel=(1, 1), setup=[("producer", "py 2"), ("argv", "-N 5")])
    r = diff_traces(a, b)
    assert r.verdict == "agree"
    assert r.to_json()["provenance"] == {"a": {"producer": "c 1", "argv": "-N 5"},
                                         "b": {"producer": "py 2", "argv": "-N 5"}}


def test_run_factors_from_argv_and_context():
    a = make_trace([("lambda_meters", 6.2e-10)], pixel=(1, 1),
                   setup=[("argv", "-N 5 -oversample 2"), ("oversample", 2)])
    al = align(a, a)
    names = {round(f.factor, 9): f.meaning for f in run_factors(a, a, al, {}, {"argv": "-N 5 -oversample 2"})}
    assert "×1/N per axis (N = 5)" in names[0.2]
    assert "×1/N³ overall" in names[round(1 / 125, 9)]
    assert "oversample²" in names[4.0]
    assert "wavelength factor" in names[round(1 / 6.2, 9)]
    ctx = {round(f.factor, 9) for f in run_factors(a, a, al, {"N": (2, 3, 4)}, {})}
    assert round(1 / 24, 9) in ctx and 0.5 in ctx and round(1 / 3, 9) in ctx


def test_plausibility_warning_from_the_spec_range():
    from nbtrace.engine.spec import parse_spec

    spec = parse_spec("spec: s\ntaps:\n  - {name: lambda_meters, unit: m, range: [1.0e-13, 1.0e-7]}\n", "<s>")
    a = make_trace([("lambda_meters", 5e-11)], pixel=(1, 1))
    b = make_trace([("lambda_meters", 0.5)], pixel=(1, 1))
    r = diff_traces(a, b, spec)
    assert any(w.startswith("`lambda_meters` holds 0.5 in the port (B)") and w.endswith("looks like Å, not m")
               for w in r.warnings)


def test_json_is_serialisable_with_nonfinite_values():
    a = make_trace([("x", 1.0)], pixel=(1, 1))
    b = make_trace([("x", float("nan"))], pixel=(1, 1))
    doc = json.loads(json.dumps(diff_traces(a, b).to_json(), allow_nan=False))
    assert doc["root_cause"]["kind"] == "nonfinite"
    assert doc["taps"][0]["b"] == ["nan"]
    assert doc["counts"] == {"matched": 1, "only_a": 0, "only_b": 0, "divergent": 1, "immaterial": 0,
                             "incomplete": 0}


def test_input_difference_without_provenance_points_at_the_structure_factors():
    a = make_trace([("hkl_rounded", (1, 2, 3)), ("F_cell", 108.21)], pixel=(1, 1))
    b = make_trace([("hkl_rounded", (1, 2, 3)), ("F_cell", 100.0)], pixel=(1, 1))
    r = diff_traces(a, b)
    assert r.root_cause.tap == "F_cell"
    assert "all upstream taps agree: check the structure-factor input (a stale Fdump.bin?" in r.headline


def test_agreement_on_a_sliver_of_the_taps_says_so():
    a = make_trace([("x", 1.0), ("p", 1.0), ("q", 2.0)], pixel=(1, 1))
    b = make_trace([("x", 1.0), ("Final intensity", 3.0)], pixel=(1, 1))
    r = diff_traces(a, b)
    assert r.verdict == "diverge"  # B lacks p and q, which A printed (issue 11)
    assert r.headline.startswith("Only 1 of 4 taps could be compared (3 printed by one side only")


def test_setup_root_cause_says_the_runs_were_configured_differently():
    a = make_trace([("x", 1.0)], pixel=(1, 1), setup=[("distance_m", 0.1)])
    b = make_trace([("x", 2.0)], pixel=(1, 1), setup=[("distance_m", 0.2)])
    r = diff_traces(a, b, default_spec())  # the spec declares distance_m a setup tap
    assert r.root_cause.tap == "distance_m"
    assert "a setup value: the runs were configured differently" in r.headline


WILD = Path(__file__).resolve().parents[1] / "data" / "wild"
PER_PIXEL = [("pixel_pos_meters", (0.1, 0.0, 0.006)), ("R_distance_meters", 0.1), ("omega_pixel_sr", 1.6e-5),
             ("obliquity_factor", 0.998), ("hkl_frac", (0.1, 0.2, 0.3)), ("F_latt", 115.0),
             ("F_cell", 100.0), ("I_before_scaling", 1.3e8)]


def test_a_port_printing_one_of_eight_per_pixel_taps_is_a_one_sided_failure():
    a = make_trace(PER_PIXEL, pixel=(1, 1))
    b = make_trace(PER_PIXEL[-1:], pixel=(1, 1))
    r = diff_traces(a, b, default_spec())
    assert not r and r.verdict == "diverge" and r.root_cause is None
    assert r.headline.startswith("One-sided comparison: only 1 per-pixel tap(s) were printed by both sides "
                                 "(A printed 8, B printed 1;")
    assert "A had: pixel_pos_meters, R_distance_meters," in r.headline
    assert "B had: I_before_scaling." in r.headline


def test_a_port_printing_a_quarter_of_the_reference_taps_is_compared():
    a = make_trace(PER_PIXEL, pixel=(1, 1))
    b = make_trace(PER_PIXEL[-2:], pixel=(1, 1))
    r = diff_traces(a, b, default_spec())
    assert not r.nothing_compared and r.headline.startswith("Only 2 of 8 taps could be compared")
    assert r.verdict == "diverge" and len(r.incomplete) == 6  # the other six are missing from B


def test_setup_taps_do_not_count_toward_coverage():
    # 8 setup taps on both sides, per-pixel taps on one side only: one-sided
    setup = [("distance_m", 0.1), ("Fbeam_m", 0.02), ("Sbeam_m", 0.02), ("pixel_size_m", 1e-4)]
    a = make_trace(PER_PIXEL, pixel=(1, 1), setup=setup)
    b = make_trace([], pixel=(1, 1), setup=setup)
    r = diff_traces(a, b, default_spec())
    assert not r and "B had: no per-pixel tap" in r.headline


def test_headerless_reference_is_aligned_as_the_port_pixel_without_claiming_force():
    r = diff_traces(read_trace(WILD / "at002_c_trace_pixel_64_79.log"),
                    read_trace(WILD / "at002_py_trace_FIXED_pixel_64_79.log"), default_spec())
    assert "A names no pixel; assumed (64, 79), the pixel B traced" in r.warnings
    assert "forced" not in r.headline
    # scattering_vec_A_inv ×1e-10 is immaterial (hkl_frac agrees): not the root (issue 9)
    assert [f.verdict.tap for f in r.immaterial] == ["scattering_vec_A_inv"]
    assert r.root_cause.tap in ("F_latt_a", "F_latt_c")
    compared = [f for f in r.findings if f.status not in ("missing", "incomplete")]
    assert len(compared) == 15  # every per-pixel tap B printed, its prose lines ("Omega (solid angle) = …") included


def test_headerless_old_port_prose_trace_is_compared_through_the_spec_aliases():
    # the earlier port's trace before the fix prints prose ("Omega (solid angle) = ...", "Final
    # intensity = ..."): read under the spec's aliases, it shares 6 per-pixel taps with the C
    r = diff_traces(read_trace(WILD / "at002_c_trace_pixel_64_79.log"),
                    read_trace(WILD / "at002_py_trace_pixel_64_79.log"), default_spec())
    assert not r and r.to_json()["verdict"] == "diverge"
    assert r.root_cause.tap == "I_pixel_final" and not r.nothing_compared
    assert r.incomplete  # and says what the port never printed


def test_a_divergent_tap_without_pixel_is_not_called_a_setup_value():
    a = make_trace([("pixel_pos_meters", (0.1, 0.0, 0.006)), ("omega_pixel_sr", 1.6e-5)])
    b = make_trace([("pixel_pos_meters", (0.1, 0.0, 0.006)), ("omega_pixel_sr", 1.7e-5)])
    for spec in (default_spec(), None):
        r = diff_traces(a, b, spec)
        assert r.root_cause.tap == "omega_pixel_sr"
        assert "setup value" not in r.headline
        assert not any(f.verdict.is_setup for f in r.findings)


def test_arity_against_the_declared_shape_is_a_trace_error_naming_both_places():
    spec = default_spec()
    a = make_trace([("pixel_pos", (0.1, 0.0))], pixel=(1, 1), path="ref.log")
    b = make_trace([("pixel_pos_meters", (0.1, 0.0, 0.006))], pixel=(1, 1), path="port.log")
    with pytest.raises(TraceError) as exc:
        diff_traces(a, b, spec)
    where = spec.get("pixel_pos_meters").loc
    assert str(exc.value).startswith(f"ref.log:1: tap `pixel_pos` (`pixel_pos_meters` in the spec) has 2 value(s), "
                                     f"but the spec declares shape [3] at {where}")
    assert diff_traces(a, b, None).findings  # without a spec there is no declared shape to hold it to


def test_unread_note_without_a_sniffed_reading_counts_ignored_lines():
    from dataclasses import replace

    from nbtrace.engine.diff import unread_note

    t = make_trace([("x", 1.0)], pixel=(1, 1))
    assert unread_note(replace(t, meta={"ignored_lines": 7}), None, "eq", "A") == (
        "--dialect eq: 7 line(s) of A were not read as taps under the forced dialect")
    assert unread_note(replace(t, meta={"ignored_lines": 0}), None, "eq", "A") is None
    same = replace(t, meta={"dialects": {"eq": 3}, "ignored_lines": 2})
    assert unread_note(same, same, "eq", "B") is None


INCIDENTS = Path(__file__).resolve().parents[1] / "data" / "incidents"


@pytest.mark.parametrize("helper", ["works", "crashes"])
def test_comparing_in_two_processes_gives_the_serial_result(helper, monkeypatch):
    """Large traces are compared half here, half in a forked process: the verdicts (and the
    whole result) are the serial ones; a helper that fails is made up for here."""
    from types import SimpleNamespace

    import nbtrace.engine.diff as diff_mod

    a = read_trace(INCIDENTS / "r15_oversample_auto" / "reference.log")
    b = read_trace(INCIDENTS / "r15_oversample_auto" / "port.log")
    spec = default_spec()
    serial = diff_traces(a, b, spec)
    monkeypatch.setattr(diff_mod, "PARALLEL_COMPARE_MIN", 0)
    # the fork is refused while any other thread lives; pin that process-wide state, which an
    # earlier test may have changed (torch's compiler keeps a thread pool), so order never matters
    monkeypatch.setattr(diff_mod, "threading", SimpleNamespace(active_count=lambda: 1))
    forks = []
    real_fork = diff_mod._fork
    if helper == "crashes":
        def broken(run, part):
            return real_fork(lambda p: 1 / 0, part)
        monkeypatch.setattr(diff_mod, "_fork", lambda run, part: forks.append(1) or broken(run, part))
    else:
        monkeypatch.setattr(diff_mod, "_fork", lambda run, part: forks.append(1) or real_fork(run, part))
    parallel = diff_traces(a, b, spec)
    assert forks == [1]
    assert parallel.findings == serial.findings
    assert json.dumps(parallel.to_json(), sort_keys=True) == json.dumps(serial.to_json(), sort_keys=True)


def _polar_traces(tmp_path, port_polar):
    """Six pixels at growing 2θ; the reference applies P = (1 + cos²2θ)/2 (incident 8)."""
    import math

    paths = []
    for prefix, side in (("TRACE_C", "ref"), ("TRACE_PY", "port")):
        lines = []
        for k, tt in enumerate((1.0, 6.0, 12.0, 20.0, 30.0, 41.0)):
            c = math.cos(math.radians(tt))
            p = 0.5 * (1 + c * c)
            lines += [f"TRACE_CONFIG: tracing pixel (spixel={k}, fpixel={2 * k})",
                      f"{prefix}: cos_2theta {c!r}",
                      f"{prefix}: polar {port_polar(p, tt) if side == 'port' else p!r}",
                      f"{prefix}: I_pixel_final {100 * (port_polar(p, tt) if side == 'port' else p)!r}"]
        path = tmp_path / f"{side}.log"
        path.write_text("\n".join(lines) + "\n")
        paths.append(path)
    return diff_traces(read_trace(paths[0]), read_trace(paths[1]), default_spec())


def test_patterns_of_a_factor_left_at_one_over_the_traced_pixels(tmp_path):
    r = _polar_traces(tmp_path, lambda p, tt: 1.0)
    assert r.root_cause.tap == "polar"
    assert [p.kind for p in r.patterns] == ["unapplied", "radial"]
    assert "a radial trend" in r.headline and "the port holds 1" in r.headline
    doc = r.to_json()
    assert [p["kind"] for p in doc["root_cause_patterns"]] == ["unapplied", "radial"]


def test_no_pattern_for_a_constant_factor(tmp_path):
    r = _polar_traces(tmp_path, lambda p, tt: 2.0 * p)
    assert r.root_cause.tap == "polar" and r.root_cause.kind == "scale"
    assert r.patterns == () and r.to_json()["root_cause_patterns"] == []


def test_docs_json_lists_every_top_level_and_count_key():
    # docs/JSON.md is the contract: every key the document carries is documented there
    text = (Path(__file__).resolve().parents[2] / "docs" / "JSON.md").read_text(encoding="utf-8")
    a = make_trace([("x", 1.0), ("only_ref", 2.0)], pixel=(1, 1))
    b = make_trace([("x", 2.0), ("X", 2.0)], pixel=(1, 1))
    doc = diff_traces(a, b).to_json()
    for key in list(doc) + list(doc["counts"]) + list(doc["taps"][0]) + list(doc["incomplete"][0]):
        assert f"`{key}`" in text, key
    assert doc["causes"][0]["tap"] == "x" and doc["incomplete"][0]["tap"] == "only_ref"
    for key in doc["causes"][0]:
        assert f"`{key}`" in text, key
