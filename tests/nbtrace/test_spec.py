"""nbtrace.engine.spec: the shipped specs, the lookup API, and spec errors at exact file:line:col."""

from __future__ import annotations

from pathlib import Path

import pytest

from nbtrace.errors import SpecError
from nbtrace.engine.parse import parse_text, read_trace
from nbtrace.engine.scaffold import scaffold_spec
from nbtrace.engine.spec import default_spec, load_spec, parse_spec, shipped_spec, spec_for

WILD = Path(__file__).resolve().parents[1] / "data" / "wild"

# CONTRACTS.md 2.2: the per-pixel chain then the scaling block, in print order.
PIXEL_CHAIN = [
    "pix0_vector_meters", "fdet_vec", "sdet_vec", "pixel_pos_meters", "R_distance_meters", "omega_pixel_sr",
    "close_distance_meters", "obliquity_factor", "diffracted_vec", "incident_vec", "lambda_meters",
    "lambda_angstroms", "scattering_vec_A_inv", "rot_a_angstroms", "rot_b_angstroms", "rot_c_angstroms",
    "rot_a_star_A_inv", "rot_b_star_A_inv", "rot_c_star_A_inv", "hkl_frac", "hkl_rounded", "F_latt_a",
    "F_latt_b", "F_latt_c", "F_latt", "F_cell",
]
SCALING = [
    "I_before_scaling", "r_e_meters", "r_e_sqr", "fluence_photons_per_m2", "steps", "oversample_thick",
    "oversample_polar", "oversample_omega", "capture_fraction", "polar", "omega_pixel", "cos_2theta",
    "I_pixel_final", "floatimage_accumulated",
]


# ----------------------------------------------------------------------------- shipped specs


def test_default_spec_holds_the_c_chain_in_print_order():
    # One deliberate exception: the static reciprocal vectors are declared before the real-space
    # ones (the C prints them after), because the real vectors are generated from them (§2.4).
    # The pipeline order is topological, so a tap printed before one of its own inputs follows
    # that input: the C prints omega_pixel_sr before close_distance_meters, which omega uses.
    spec = default_spec()
    order = spec.order()
    stars = ["rot_a_star_A_inv", "rot_b_star_A_inv", "rot_c_star_A_inv"]
    chain = [n for n in PIXEL_CHAIN + SCALING if n not in stars + ["omega_pixel_sr"]]
    positions = [order.index(n) for n in chain]
    assert positions == sorted(positions)
    assert "close_distance_meters" in spec.ancestors("omega_pixel_sr")
    assert order.index("close_distance_meters") < order.index("omega_pixel_sr") < order.index("obliquity_factor")
    # issue 9: the printed reciprocal vectors are regenerated from the real ones (physics §2.4),
    # so they come after them (the edge used to point the other way)
    assert min(order.index(n) for n in stars) > order.index("rot_c_angstroms")
    assert {"rot_b_angstroms", "rot_c_angstroms"} <= spec.ancestors("rot_a_star_A_inv")
    assert not set(stars) & spec.ancestors("rot_a_angstroms")


def test_default_spec_units_are_what_the_values_hold():
    spec = default_spec()
    assert spec.get("scattering_vec_A_inv").unit == "m^-1"
    assert spec.get("scattering_vec_A_inv").dimension == "inverse_length"
    assert spec.get("rot_a_star_A_inv").unit == "A^-1"
    assert spec.get("rot_a_angstroms").unit == "A"
    assert spec.get("lambda_meters").range == (1.0e-13, 1.0e-7)
    assert spec.get("fluence_photons_per_m2").dimension == "fluence"
    assert spec.get("pixel_pos_meters").shape == (3,) and spec.get("R_total").shape == (3, 3)


def test_default_spec_aliases_for_port_renamings():
    spec = default_spec()
    assert spec.canonical("F_cell_interpolated", "b") == "F_cell"
    assert spec.canonical("I_before_scaling_pre_polar", "b") == "I_before_scaling"
    assert spec.canonical("incident_beam_direction") == "incident_vec"
    assert spec.canonical("fluence", "a") == "fluence_photons_per_m2"
    assert spec.canonical("polarization", "b") == "polar"
    assert spec.canonical("omega") == "omega_pixel_sr"
    assert spec.canonical("no_such_tap") is None
    # either side may print it (issue 9: a self-diff of a log with `Oversample` was asymmetric)
    assert spec.canonical("Oversample", "a") == "oversample" == spec.canonical("Oversample", "b")


def test_default_spec_dag():
    spec = default_spec()
    assert {"pix0_vector_meters", "fdet_vec", "sdet_vec"} <= set(spec.get("pixel_pos_meters").after)
    assert {"diffracted_vec", "incident_vec", "lambda_meters"} == set(spec.get("scattering_vec_A_inv").after)
    up = spec.ancestors("I_pixel_final")
    assert {"I_before_scaling", "F_cell", "hkl_frac", "scattering_vec_A_inv", "pixel_pos_meters",
            "steps", "polar", "omega_pixel", "fluence_photons_per_m2"} <= up
    assert "floatimage_accumulated" not in up
    assert spec.ancestors("fdet_vec") >= {"fdet_after_twotheta", "R_total", "Rx"}


def test_default_spec_hints_and_tolerances():
    spec = default_spec()
    assert "Å where metres" in spec.get("hkl_frac").hints[1e10]
    assert "Å⁻¹ where the reference holds m⁻¹" in spec.get("scattering_vec_A_inv").hints[1e-10]
    assert "squared" in spec.get("fluence_photons_per_m2").hints[1e6]
    hkl = spec.get("hkl_frac")
    assert (hkl.rtol, hkl.atol) == (1e-9, 1e-9)
    assert spec.get("F_cell").rtol == 1e-9  # from the defaults
    assert spec.defaults == {"rtol": 1e-9, "atol": 1e-300}


def test_default_spec_loop_and_setup_semantics():
    spec = default_spec()
    assert spec.get("k_frac").loop == "phi_tic" and spec.get("source_weight").loop == "source"
    assert spec.get("pix0_vector").semantics == "setup"
    assert spec.get("omega_pixel").semantics == "first-value"
    assert spec.get("polar").semantics == "last-value"
    assert spec.get("pixel_pos_meters").semantics == "per-subpixel"


@pytest.mark.parametrize("log", sorted(p.name for p in WILD.glob("*.log")))
def test_shipped_spec_covers_every_wild_tap(log):
    spec = default_spec()
    trace = read_trace(WILD / log)
    side = "a" if trace.prefix == "TRACE_C" else "b"
    assert [n for n in trace.names() if spec.canonical(n, side) is None] == []


def test_focused_specs_load():
    scaling = shipped_spec("scaling.yaml")
    assert scaling.order() == SCALING
    loops = shipped_spec("phi_loop.yaml")
    assert {t.loop for t in loops.taps} == {"phi_tic", "source"}
    assert loops.get("F_latt").after == ("F_latt_a", "F_latt_b", "F_latt_c")


def test_spec_for_picks_the_default_for_nanobragg_traces():
    c = read_trace(WILD / "phi_c_trace_phi.log")
    py = read_trace(WILD / "phi_trace_py_spec_per_phi.log")
    assert spec_for(c, py).name == "nanobragg"
    other = parse_text("MY_REF: energy 1\nMY_REF: charge 2\n")
    assert spec_for(other, other) is None


def test_scaffold_from_a_real_trace_loads_and_keeps_order():
    trace = read_trace(WILD / "phi_c_trace_phi.log")
    text = scaffold_spec(trace)
    spec = parse_spec(text, "scaffold.yaml")
    # every printed tap, in pipeline order (issue 12: the shipped DAG, not the print order)
    assert sorted(spec.order()) == sorted(trace.names())
    assert spec.get("pixel_pos_meters").unit == "m" and spec.get("pixel_pos_meters").shape == (3,)
    assert spec.get("rot_a_star_A_inv").unit == "A^-1"
    assert spec.get("k_frac").loop == "phi_tic"
    assert spec.get("detector_convention").unit == "string"
    assert spec.get("fdet_vec").after == ("fdet_after_twotheta",)  # as tap_specs/nanobragg.yaml
    assert text.startswith("# Tap spec scaffolded by `nbtrace taps init`")
    tilted = parse_spec(scaffold_spec(read_trace(WILD / "tilted_trace.log")), "t.yaml")
    assert tilted.get("R_total").shape == (3, 3) and tilted.get("R_total").semantics == "setup"


def test_scaffold_from_json_lines_uses_declared_units_and_skips_odd_names():
    trace = parse_text('{"name": "pos", "values": [1, 2, 3], "unit": "mm"}\n{"name": "a b", "values": 1}\n'
                       '{"name": "z_meters", "values": 2, "unit": "furlong"}\n', "port.jsonl")
    text = scaffold_spec(trace)
    spec = parse_spec(text, "s.yaml")
    assert spec.name == "port" and spec.order() == ["pos", "z_meters"]
    assert spec.get("pos").unit == "mm" and spec.get("z_meters").unit == "m"  # unknown unit: guessed
    assert "# not declared (names must be identifiers): 'a b'" in text


# ----------------------------------------------------------------------------- errors with file:line:col


def spec_error(text: str) -> SpecError:
    with pytest.raises(SpecError) as exc:
        parse_spec(text, "s.yaml")
    assert "\n" not in exc.value.one_line()
    return exc.value


@pytest.mark.parametrize("text, where, what", [
    ("taps:\n  - name: a\n    unit: [m\n", "s.yaml:4:1", "YAML syntax error"),
    ("taps:\n  - name: a\n    unti: m\n", "s.yaml:3:5", "unknown key 'unti' in a tap"),
    ("spec: x\ntap:\n  - name: a\n", "s.yaml:2:1", "unknown key 'tap' in the spec"),
    ("taps:\n  - name: a\n  - name: a\n", "s.yaml:3:11", "duplicate tap 'a' (first declared at line 2)"),
    ("taps:\n  - name: a\n    unit: furlong\n", "s.yaml:3:11", "unknown unit 'furlong'"),
    ("taps:\n  - name: a\n    rtol: 1e-9\n", "s.yaml:3:11", "rtol without atol"),
    ("taps:\n  - name: a\n    atol: 0\n", "s.yaml:3:11", "atol without rtol"),
    ("defaults: {rtol: 1.0e-9}\ntaps:\n  - name: a\n", "s.yaml:1:11", "defaults give only one of rtol/atol"),
    ("taps:\n  - name: a\n    after: [bb]\n  - name: b\n", "s.yaml:3:13", "'after' of 'a' names unknown tap 'bb'"),
    ("taps:\n  - name: a\n    after: [b]\n  - name: b\n    after: [a]\n", "s.yaml:5:12",
     "'after' edges form a cycle: a -> b -> a"),
    ("taps:\n  - name: a\n    after: [a]\n", "s.yaml:3:12", "cycle"),
    ("taps:\n  - name: a\n    shape: [0]\n", "s.yaml:3:13", "shape entries must be positive integers"),
    ("taps:\n  - name: a\n    shape: vector\n", "s.yaml:3:12", "bad shape 'vector'"),
    ("taps:\n  - name: a\n    range: [5, 1]\n", "s.yaml:3:12", "range [5, 1] is not 0 <= min <= max"),
    ("taps:\n  - name: a\n    range: [1]\n", "s.yaml:3:12", "range needs two numbers"),
    ("taps:\n  - name: a\n    rtol: x\n    atol: 0\n", "s.yaml:3:11", "rtol must be a number, got 'x'"),
    ("taps:\n  - name: a\n    rtol: -1\n    atol: 0\n", "s.yaml:3:11", "rtol must be a finite number >= 0"),
    ("taps:\n  - name: a\n    aliases: {b: [x]}\n  - name: b\n    aliases: {any: [x]}\n", "s.yaml:5:14",
     "alias 'x' of 'b' is also an alias of 'a'"),
    ("taps:\n  - name: a\n  - name: b\n    aliases: [a]\n", "s.yaml:4:14", "alias 'a' of 'b' is itself a declared tap"),
    ("taps:\n  - name: a\n    aliases: {c: [x]}\n", "s.yaml:3:15", "unknown alias side 'c'"),
    ("taps:\n  - name: a\n    semantics: per_pixel\n", "s.yaml:3:16", "unknown semantics 'per_pixel'"),
    ("taps:\n  - name: 3a\n", "s.yaml:2:11", "tap name '3a' is not a name"),
    ("taps:\n  - unit: m\n", "s.yaml:2:5", "a tap without 'name:'"),
    ("taps:\n  - name: a\n    hints: {0: zero}\n", "s.yaml:3:13", "hint factor must be finite and non-zero"),
    ("taps:\n  - name: a\n    unit: m\n    unit: A\n", "s.yaml:4:5", "duplicate key 'unit'"),
    ("taps: []\n", "s.yaml:1:7", "'taps:' is empty"),
    ("- a\n- b\n", "s.yaml:1:1", "the spec must be a mapping"),
    ("taps:\n  - name: a\n    when: {pivot: {after: []}}\n", "s.yaml:3:12", "'when' condition 'pivot' is not key=VALUE"),
    ("taps:\n  - name: a\n    when: {pivot=SAMPLE: {aftr: []}}\n", "s.yaml:3:27", "unknown key 'aftr'"),
    ("taps:\n  - name: a\n    when: {pivot=SAMPLE: {}}\n", "s.yaml:3:26", "'when' pivot=SAMPLE without 'after:'"),
    ("taps:\n  - name: a\n    when: {pivot=SAMPLE: {after: [zz]}}\n", "s.yaml:3:35",
     "'after' of 'a' names unknown tap 'zz'"),
    ("taps:\n  - name: a\n    when: {pivot=SAMPLE: {after: []}, pivot=sample: {after: []}}\n", "s.yaml:3:39",
     "given twice"),
    ("taps:\n  - name: a\n    after: [b]\n  - name: b\n    when: {pivot=SAMPLE: {after: [a]}}\n", "s.yaml:5:11",
     "'after' edges form a cycle when pivot=SAMPLE"),
])
def test_spec_errors_point_at_file_line_col(text, where, what):
    err = spec_error(text)
    assert err.where == where
    assert what in err.what
    assert err.hint


def test_did_you_mean_in_hints():
    assert spec_error("taps:\n  - name: a\n    unti: m\n").hint == "did you mean 'unit'?"
    assert spec_error("taps:\n  - name: a\n    semantics: last_value\n").hint == "did you mean 'last-value'?"
    assert spec_error("taps:\n  - name: abc\n    after: [abd]\n  - name: abd2\n").hint == "did you mean 'abd2'?"


def test_after_naming_an_alias_says_use_the_canonical_name():
    err = spec_error("taps:\n  - name: a\n    aliases: [aa]\n  - name: b\n    after: [aa]\n")
    assert err.hint == "'after' takes canonical names: use 'a'"


def test_empty_and_unreadable_spec_files(tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(SpecError, match="empty tap spec"):
        load_spec(empty)
    with pytest.raises(SpecError, match="cannot read tap spec"):
        load_spec(tmp_path / "missing.yaml")
    with pytest.raises(SpecError, match="is a directory"):
        load_spec(tmp_path)
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"taps:\n  - name: \xff\n")
    with pytest.raises(SpecError, match="not UTF-8"):
        load_spec(binary)


def test_yaml_1_1_exponent_without_dot_is_a_number():
    spec = parse_spec("defaults: {rtol: 1e-9, atol: 1e-12}\ntaps:\n  - name: a\n", "s.yaml")
    assert spec.get("a").rtol == 1e-9 and spec.get("a").atol == 1e-12


def test_loc_is_the_line_of_the_tap():
    spec = parse_spec("spec: x\ntaps:\n  - name: a\n  - name: b\n    unit: m\n", "s.yaml")
    assert str(spec.get("b").loc) == "s.yaml:4"
    assert spec.name == "x" and spec.path == "s.yaml"


def test_fit_trace_every_shipped_name_and_shape_fits_the_wild_logs():
    from nbtrace.engine.spec import fit_trace

    spec = default_spec()
    for log in sorted(WILD.glob("*.log")):
        trace = read_trace(log)
        fit = fit_trace(spec, trace, "a" if trace.prefix == "TRACE_C" else "b")
        assert fit, (log.name, fit)
    fit = fit_trace(spec, parse_text("TRACE_C: hkl_frac 1 2\nTRACE_C: hkl_frac 1 2\n"), "a")
    assert not fit and fit.shape_mismatches == (("hkl_frac", (3,), 2, "<string>:1"),)


# ----------------------------------------------------------------------------- conditional edges, order


WHEN = """taps:
  - {name: pivot, unit: string, shape: any, semantics: setup}
  - {name: beam, when: {pivot=SAMPLE: {after: [pix0]}}}
  - {name: pix0, after: [beam], when: {pivot=SAMPLE: {after: [angles]}}}
  - {name: angles}
"""


def test_when_edges_replace_after_under_their_condition():
    spec = parse_spec(WHEN, "w.yaml")
    assert spec.condition_keys() == ("pivot",)
    assert spec.ancestors("pix0") == {"beam"}
    assert spec.order() == ["pivot", "beam", "pix0", "angles"]
    sample = spec.specialize({"pivot": " sample "})  # as printed: case and blanks do not matter
    assert sample.ancestors("beam") == {"pix0", "angles"}
    assert sample.ancestors("pix0") == {"angles"}
    assert sample.order() == ["pivot", "angles", "pix0", "beam"]
    assert spec.specialize({"pivot": "BEAM"}) is spec
    assert spec.specialize({}) is spec


def test_order_is_topological_for_forward_references():
    spec = parse_spec("taps:\n  - {name: x, after: [y]}\n  - {name: z}\n  - {name: y}\n", "f.yaml")
    assert spec.order() == ["z", "y", "x"]


def test_conditions_are_read_from_the_reference_setup_block_first():
    from nbtrace.engine.spec import conditions_of
    from nbtrace.testing import make_trace

    spec = parse_spec(WHEN, "w.yaml")
    a = make_trace([("beam", 1.0)], pixel=(0, 0), setup=[("pivot", "SAMPLE")])
    b = make_trace([("beam", 1.0)], pixel=(0, 0), setup=[("pivot", "BEAM")], prefix="TRACE_PY")
    silent = make_trace([("beam", 1.0)], pixel=(0, 0))
    assert conditions_of(spec, a, b) == {"pivot": "SAMPLE"}
    assert conditions_of(spec, silent, b) == {"pivot": "BEAM"}
    assert conditions_of(spec, silent, silent) == {}


def test_shipped_spec_pivot_edges():
    spec = default_spec()
    beam, sample = spec.specialize({"pivot": "BEAM"}), spec.specialize({"pivot": "SAMPLE"})
    assert "Fbeam_m" in beam.ancestors("pix0_vector") and "pix0_vector" in beam.ancestors("Fclose_m")
    assert "pix0_vector" in sample.ancestors("Fbeam_m") and "Fbeam_m" not in sample.ancestors("pix0_vector")
    assert "Fclose_m" in sample.ancestors("pix0_vector")
    for s in (beam, sample):
        order = s.order()
        assert sorted(order) == sorted(t.name for t in spec.taps)
        for tap in s.taps:  # every edge points backwards in the pipeline order
            assert all(order.index(up) < order.index(tap.name) for up in tap.after), tap.name


def test_sample_pivot_beam_centre_is_computed_from_the_distance_too():
    # issue 9: under pivot=SAMPLE, Fbeam/Sbeam = (distance·beam − pix0)·f/s: distance_m is an input
    spec = default_spec().specialize({"pivot": "SAMPLE"})
    for tap in ("Fbeam_m", "Sbeam_m"):
        assert "distance_m" in spec.get(tap).after and "pix0_vector" in spec.get(tap).after
    beam = default_spec().specialize({"pivot": "BEAM"})
    assert "distance_m" not in beam.get("Fbeam_m").after


def test_reciprocal_taps_are_computed_from_the_real_ones_not_the_reverse():
    spec = default_spec()
    assert spec.get("rot_a_angstroms").after == ()
    assert set(spec.get("rot_a_star_A_inv").after) == {"rot_b_angstroms", "rot_c_angstroms"}
