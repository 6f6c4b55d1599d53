"""nbtrace.engine.parse on text exactly as real builds print it (trace-format.md, the wild logs)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from nbtrace.errors import TraceError
from nbtrace.engine.model import TapIndex
from nbtrace.engine.parse import parse_text, read_trace

DATA = Path(__file__).resolve().parents[1] / "data"
WILD = DATA / "wild"
DIALECTS = DATA / "dialects"

# The space-form lines of trace-format.md, verbatim.
SPACE_FORM = """\
TRACE_CONFIG: tracing pixel (spixel=200, fpixel=300)
TRACE_C: pix0_vector_meters 0.5 0.01285 -0.01285
TRACE_C: pixel_pos_meters 0.5 0.002825 0.002175
TRACE_C: R_distance_meters 0.500012711088428
TRACE_C: scattering_vec_A_inv -508430.61171868 112997127.367044 86997788.326839
TRACE_C: hkl_rounded 0 1 1
TRACE_C: steps 1
"""

# The = form lines of trace-format.md, verbatim (non-ASCII arrows included).
EQ_FORM = """\
TRACE_C:detector_convention=MOSFLM
TRACE_C:angles_rad=rotx:0.0872664625997165 roty:0.0523598775598299 rotz:0.0349065850398866 twotheta:0.261799387799149
TRACE_C:beam_center_m=X:6.12e-05 Y:6.12e-05 pixel_mm:0.1
TRACE_C:Rx=[1 0 0; 0 0.996194698091746 -0.0871557427476582; 0 0.0871557427476582 0.996194698091746]
TRACE_C:pix0_vector=0.112087366299472 0.0653100408232811 -0.0556023303792543
TRACE_C:convention_mapping=Fbeam←Ybeam_mm(+0.5px),Sbeam←Xbeam_mm(+0.5px),beam_vec=[1 0 0]
"""


def by_name(trace, name):
    return [r for r in trace.records if r.name == name]


# ----------------------------------------------------------------------------- space form


def test_space_form_values_pixel_and_locations():
    t = parse_text(SPACE_FORM, "c.log")
    assert t.prefix == "TRACE_C"
    assert t.pixels == ((200, 300),)
    assert [r.name for r in t.records] == ["pix0_vector_meters", "pixel_pos_meters", "R_distance_meters",
                                          "scattering_vec_A_inv", "hkl_rounded", "steps"]
    svec = by_name(t, "scattering_vec_A_inv")[0]
    assert svec.values == (-508430.61171868, 112997127.367044, 86997788.326839)
    assert svec.index == TapIndex((200, 300), (), 0)
    assert str(svec.loc) == "c.log:5"
    assert svec.sigdigits == 15 and svec.kind == "number" and svec.dialect == "space"
    hkl = by_name(t, "hkl_rounded")[0]
    assert hkl.values == (0.0, 1.0, 1.0) and hkl.kind == "int" and hkl.sigdigits == 17
    assert by_name(t, "R_distance_meters")[0].sigdigits == 15


def test_non_finite_values_are_values():
    t = parse_text("TRACE_C: I_source inf -inf nan -nan\n")
    v = t.records[0].values
    assert v[0] == math.inf and v[1] == -math.inf and math.isnan(v[2]) and math.isnan(v[3])
    assert t.records[0].sigdigits == 17


def test_any_prefix_pair():
    t = parse_text("MYSIM_REF: energy_J 1.5e-19\nMYSIM_REF: counts 3\n")
    assert t.prefix == "MYSIM_REF"
    assert [r.values for r in t.records] == [(1.5e-19,), (3.0,)]


def test_fortran_d_exponents():
    t = parse_text("FORT_REF: energy 1.5D+00 -2.25d-3\nFORT_REF: n 3\n")
    assert t.records[0].values == (1.5, -0.00225) and t.records[0].sigdigits == 3
    t = parse_text("FORT_REF: energy 1.5D+00 1.5x\nFORT_REF: n 3\n", "f.log")  # not read, reported
    assert t.names() == ["n"] and "f.log:1 (tap 'energy' has a non-numeric value '1.5x')" in t.meta["warnings"][0]


def test_crlf_line_endings(tmp_path):
    t = read_trace(DIALECTS / "crlf.log")
    assert [r.values for r in t.records] == [(0.5, 0.01285, -0.01285), (0.500012711088428,)]
    assert not t.meta["warnings"]


def test_oversample_two_repeats_counted_by_occurrence():
    t = read_trace(DIALECTS / "oversample2.log")
    first = [r for r in t.records if r.index.pixel == (10, 20)]
    pos = [r for r in first if r.name == "pixel_pos_meters"]
    assert [r.index.occurrence for r in pos] == [0, 1, 2, 3]
    assert pos[3].values == (0.5, 0.0006375, 0.0010625)
    assert [r.index.occurrence for r in first if r.name == "steps"] == [0]
    # a new pixel restarts the count
    second = [r for r in t.records if r.index.pixel == (11, 20) and r.name == "pix0_vector_meters"]
    assert [r.index.occurrence for r in second] == [0]
    assert t.pixels == ((10, 20), (11, 20))
    # setup taps before any header have no pixel
    assert by_name(t, "oversample")[0].index.pixel is None
    assert t.meta["ignored_lines"] == 4  # banner, 2 progress lines, "writing ..."
    assert t.meta["blank_lines"] == 1


def test_other_pixel_header_forms():
    t = parse_text("TRACE_CONFIG: tracing pixel (slow=64, fast=79)\nTRACE_PY: F_cell 100\n")
    assert t.records[0].index.pixel == (64, 79)
    t = parse_text("=== TRACE: Pixel (64, 79) [slow, fast] ===\nTRACE_PY: F_cell 100\n")
    assert t.records[0].index.pixel == (64, 79)
    t = parse_text("=== TRACE: Pixel (79, 64) [fast, slow] ===\nTRACE_PY: F_cell 100\n")
    assert t.records[0].index.pixel == (64, 79)


# ----------------------------------------------------------------------------- = form


def test_eq_form_vectors_matrices_labels_strings():
    t = parse_text(EQ_FORM, "setup.log")
    conv = by_name(t, "detector_convention")[0]
    assert conv.kind == "string" and conv.text == "MOSFLM" and conv.values == ()
    angles = by_name(t, "angles_rad")[0]
    assert angles.kind == "labelled" and angles.labels == ("rotx", "roty", "rotz", "twotheta")
    assert angles.values[3] == 0.261799387799149
    beam = by_name(t, "beam_center_m")[0]
    assert beam.labels == ("X", "Y", "pixel_mm") and beam.values == (6.12e-05, 6.12e-05, 0.1)
    rx = by_name(t, "Rx")[0]
    assert rx.kind == "matrix" and rx.shape == (3, 3) and len(rx.values) == 9
    assert rx.values[5] == -0.0871557427476582 and rx.values[7] == 0.0871557427476582
    pix0 = by_name(t, "pix0_vector")[0]
    assert pix0.values == (0.112087366299472, 0.0653100408232811, -0.0556023303792543)
    assert pix0.dialect == "eq" and pix0.index.pixel is None
    mapping = by_name(t, "convention_mapping")[0]
    assert mapping.kind == "string" and mapping.text.startswith("Fbeam←Ybeam_mm(+0.5px)")


def test_same_setup_name_twice_is_two_occurrences():
    """Quirk 6: the BEAM pivot prints fdet_after_rotz before and after two-theta."""
    t = parse_text("TRACE_C:fdet_after_rotz=0 0 1\nTRACE_C:fdet_after_rotz=0.03 -0.09 0.99\n")
    recs = by_name(t, "fdet_after_rotz")
    assert [r.index.occurrence for r in recs] == [0, 1]
    assert recs[1].values == (0.03, -0.09, 0.99)


# ----------------------------------------------------------------------------- loop lines


def test_loop_lines_of_trace_format():
    text = ("TRACE_C_PHI phi_tic=1 phi_deg=0.1 k_frac=1.13507640580991 F_latt_b=2.06933186712399 "
            "F_latt=19.4926072713658\n")
    t = parse_text(text)
    assert t.prefix == "TRACE_C"
    assert [r.name for r in t.records] == ["phi_deg", "k_frac", "F_latt_b", "F_latt"]
    k = by_name(t, "k_frac")[0]
    assert k.index.loop == (("phi_tic", 1),) and k.values == (1.13507640580991,) and k.dialect == "loop"


def test_indexed_source_loop_line():
    t = parse_text("TRACE_PY_SOURCE 2: source_weight 1\n")
    r = t.records[0]
    assert t.prefix == "TRACE_PY"
    assert r.name == "source_weight" and r.index.loop == (("source", 2),) and r.values == (1.0,)


def test_mosaic_line_has_two_loop_keys():
    t = parse_text("TRACE_C_MOS mos_tic=3 phi_tic=0 h_frac=1.5 k_frac=2 l_frac=3 F_latt=4\n")
    assert t.records[0].index.loop == (("mos_tic", 3), ("phi_tic", 0))
    assert len(t.records) == 4


def test_wild_phi_logs_c_and_port():
    c = read_trace(WILD / "phi_c_trace_phi.log")
    assert c.prefix == "TRACE_C" and c.pixels == ((685, 1039),)
    k = [r for r in c.records if r.name == "k_frac"]
    assert [r.index.loop for r in k] == [(("phi_tic", i),) for i in range(10)]
    assert k[0].values == (-0.607255839576692,)
    assert k[0].index.pixel == (685, 1039)
    assert str(k[0].loc).endswith("phi_c_trace_phi.log:274")
    # the per-pixel F_latt and the 10 per-phi F_latt are told apart by their loop index
    flatt = [r for r in c.records if r.name == "F_latt"]
    assert len(flatt) == 11 and flatt[0].index.loop == () and flatt[0].values == (-2.38319665299058,)
    port = read_trace(WILD / "phi_trace_py_spec_per_phi.log")
    assert port.prefix == "TRACE_PY" and len(port) == 40
    assert [r for r in port.records if r.name == "k_frac"][0].values == (-0.589139352775903,)


# ----------------------------------------------------------------------------- free text


def test_free_text_narrative_and_prose_are_read():
    text = ("TRACE:   a = [100, 6.12323e-15, 6.12323e-15] |a| = 100\n"
            "TRACE: hkl_frac -2.895410539067e-02 5.915072752708e-17 9.660046891604e-01\n"
            "TRACE: scattering_vec_A_inv = -2.895410539067e-04 0.000000000000e+00 9.660046891604e-03\n"
            "TRACE: Final intensity = 2.121363563786e+03\n")
    t = parse_text(text)
    assert t.prefix == "TRACE"
    # the C's narrative step (indented) is read too, with the %g precision it is printed with
    # ... and so is the earlier port's prose, named by its words, at the precision it shows
    assert [r.name for r in t.records] == ["a", "hkl_frac", "scattering_vec_A_inv", "Final_intensity"]
    assert t.records[3].values == (2121.363563786,) and t.records[3].sigdigits == 13
    assert by_name(t, "scattering_vec_A_inv")[0].values == (-2.895410539067e-04, 0.0, 9.660046891604e-03)
    assert t.records[1].sigdigits == 13 and t.records[1].dialect == "free"
    assert t.records[0].values == (100, 6.12323e-15, 6.12323e-15) and t.records[0].sigdigits == 6
    assert tuple(t.context) == ()


def test_free_text_taps_become_context_beside_a_real_prefix():
    t = parse_text("TRACE: hkl_frac 1 2 3\nTRACE_C: hkl_frac 1.5 2 3\n")
    assert t.prefix == "TRACE_C" and len(t) == 1
    assert t.context[0][1] == "TRACE: hkl_frac 1 2 3"


def test_wild_c_log_with_banners_and_progress_lines():
    t = read_trace(WILD / "at002_c_trace_pixel_64_79.log")
    assert t.prefix == "TRACE_C"
    assert t.pixels == ()  # this build printed no TRACE_CONFIG header
    assert len(t) == 47
    assert t.meta["dialects"] == {"eq": 25, "space": 22}
    assert by_name(t, "fluence")[0].values == (1.25932015286227e+29,)
    assert by_name(t, "beam_center_m")[0].labels == ("X", "Y", "pixel_mm")
    assert by_name(t, "R_total")[0].shape == (3, 3)
    # every line is accounted for
    m = t.meta
    n_record_lines = len({r.loc.line for r in t.records})
    assert n_record_lines + m["ignored_lines"] + m["context_lines"] + m["blank_lines"] + m["header_lines"] \
        == m["lines"] == 294
    assert m["context_lines"] == 46 and m["ignored_lines"] == 199
    # the %.15g space taps and the short %g-like setup values are told apart per dialect
    assert m["format_digits"] == {"eq": 3, "space": 15}
    assert m["prefixes"] == {"TRACE_C": 47}


def test_wild_port_log_earlier_port_dialect():
    t = read_trace(WILD / "at002_py_trace_FIXED_pixel_64_79.log")
    assert t.prefix == "TRACE" and t.pixels == ((64, 79),)
    assert by_name(t, "hkl_frac")[0].values == (-2.895410539067e-02, 5.915072752708e-17, 9.660046891604e-01)
    assert by_name(t, "F_cell")[0].index == TapIndex((64, 79), (), 0)
    assert by_name(t, "Omega_solid_angle")[0].values == (1.591398717363e-05,)  # its prose, read
    buggy = read_trace(WILD / "at002_py_trace_pixel_64_79.log")
    assert buggy.names() == ["Final_intensity", "Normalized_intensity", "Position_m", "Position_Å", "Airpath_m",
                             "a_first", "Omega_solid_angle", "r_e_2", "Fluence", "Oversample"]


def test_wild_tilted_setup_blocks():
    c = read_trace(WILD / "tilted_trace.log")
    py = read_trace(WILD / "tilted_py_trace_fixed.log")
    assert c.names() == py.names()
    assert by_name(c, "pix0_vector")[0].values == (0.112087366299472, 0.0653100408232811, -0.0556023303792543)
    assert by_name(py, "pix0_vector")[0].values == (0.0983465378387818, 0.052294833982483, -0.0501561701251796)


# ----------------------------------------------------------------------------- mixed prefixes


def test_prefix_selects_one_producer():
    t = read_trace(DIALECTS / "two_prefixes.log", prefix="TRACE_PY")
    assert t.prefix == "TRACE_PY" and [str(r.loc).rsplit(":", 1)[1] for r in t.records] == ["4", "5", "6"]
    assert t.meta["ignored_lines"] == 3 and "TRACE_C" in t.meta["warnings"][0]


def test_a_stray_line_of_another_prefix_is_ignored_with_a_warning():
    t = parse_text(SPACE_FORM + "TRACE_PY: F_cell 100\n")
    assert t.prefix == "TRACE_C" and len(t) == 6
    assert any("TRACE_PY" in w for w in t.meta["warnings"])


# ----------------------------------------------------------------------------- dialect forcing, JSON Lines


def test_forcing_a_dialect_reads_only_that_form():
    t = read_trace(WILD / "phi_c_trace_phi.log", dialect="loop")
    assert {r.dialect for r in t.records} == {"loop"} and len(t) == 40
    t = read_trace(WILD / "phi_c_trace_phi.log", dialect="eq")
    assert {r.dialect for r in t.records} == {"eq"} and len(t) == 24


def test_indented_colon_lines_in_banners_are_not_taps():
    t = parse_text("  Mean: 1.288e+01\n  seed: -1\nTRACE_PY: F_cell 100\n")
    assert t.names() == ["F_cell"] and t.meta["ignored_lines"] == 2


def test_jsonl_dialect_sniffed():
    t = read_trace(DIALECTS / "port.jsonl")
    assert t.dialect == "jsonl" and t.prefix is None and t.meta["producer"] == "toy-port 0.1"
    pix0 = t.records[0]
    assert pix0.values == (0.5, 0.01285, -0.01285) and pix0.unit == "m" and pix0.index.pixel == (200, 300)
    assert [r.index.occurrence for r in by_name(t, "F_cell")] == [0, 1]
    assert by_name(t, "k_frac")[0].index.loop == (("phi_tic", 0),)
    steps = by_name(t, "steps")[0]
    assert math.isnan(steps.values[0]) and steps.sigdigits == 6
    assert by_name(t, "detector_convention")[0].text == "MOSFLM"
    assert t.pixels == ((200, 300),)


# ----------------------------------------------------------------------------- properties

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True)
_values = st.lists(st.floats(allow_nan=False, allow_infinity=True, width=64), min_size=1, max_size=4)
_taps = st.lists(st.tuples(_names, _values), min_size=1, max_size=30)


@settings(max_examples=30, deadline=None)
@given(_taps, st.sampled_from(["%.17g", "%r"]))
def test_space_form_round_trip(taps, fmt):
    """Whatever a %.17g / repr producer prints comes back as the same floats, in order, with the
    right occurrence numbers."""
    arity = {}
    taps = [(n, v) for n, v in taps if arity.setdefault(n, len(v)) == len(v)]
    lines = []
    for name, values in taps:
        printed = " ".join((fmt % v) if fmt != "%r" else repr(v) for v in values)
        lines.append(f"TRACE_PY: {name} {printed}")
    t = parse_text("\n".join(lines) + "\n", "p.log")
    assert [(r.name, r.values) for r in t.records] == [(n, tuple(v)) for n, v in taps]
    seen: dict[str, int] = {}
    for r in t.records:
        assert r.index.occurrence == seen.get(r.name, 0)
        seen[r.name] = r.index.occurrence + 1
    assert [r.loc.line for r in t.records] == list(range(1, len(taps) + 1))


@settings(max_examples=40, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False), st.integers(1, 17))
def test_sigdigits_never_exceeds_the_printed_precision(value, digits):
    t = parse_text(f"TRACE_C: x {value:.{digits}g}\n")
    rec = t.records[0]
    assert rec.sigdigits <= digits or rec.kind == "int"
    assert rec.values[0] == float(f"{value:.{digits}g}")


def test_reads_a_pipe_without_losing_its_start(tmp_path):
    """`nbtrace diff <(producer) ...` hands over a pipe: sniffing must not consume it."""
    import os
    import threading

    fifo = tmp_path / "trace.fifo"
    os.mkfifo(fifo)
    text = (WILD / "phi_c_trace_phi.log").read_bytes()

    def write():
        with open(fifo, "wb") as fh:
            fh.write(text)

    writer = threading.Thread(target=write)
    writer.start()
    t = read_trace(fifo)
    writer.join(timeout=10)
    assert len(t) == 104 and t.records[0].name == "detector_convention"
    assert t.meta["lines"] == 342


_LINE_KINDS = {
    "space": lambda i: f"TRACE_C: tap{i % 5} {i * 0.5!r} {i}",
    "eq": lambda i: f"TRACE_C:setup{i % 3}=X:{i} Y:{i + 1}",
    "loop": lambda i: f"TRACE_C_PHI phi_tic={i} k_frac={i / 7!r} F_latt={i}",
    "header": lambda i: f"TRACE_CONFIG: tracing pixel (spixel={i}, fpixel={i + 1})",
    "context": lambda i: f"TRACE:   a = [{i}, 0, 0] |a| = {i}",
    "progress": lambda i: f"{i % 100}% done",
    "banner": lambda i: f"  Kahn polarization factor: {i}.000000",
    "blank": lambda i: "",
}


@settings(max_examples=30, deadline=None)
@given(st.lists(st.sampled_from(sorted(_LINE_KINDS)), min_size=1, max_size=60))
def test_every_line_is_accounted_for(kinds):
    """Nothing is lost silently: each line is a record line, context, a header, ignored or blank."""
    if "space" not in kinds:
        kinds = ["space"] + kinds
    text = "\n".join(_LINE_KINDS[k](i) for i, k in enumerate(kinds)) + "\n"
    t = parse_text(text)
    m = t.meta
    record_lines = len({r.loc.line for r in t.records})
    assert record_lines + m["context_lines"] + m["header_lines"] + m["ignored_lines"] + m["blank_lines"] \
        == m["lines"] == len(kinds)
    assert record_lines == sum(k in ("space", "eq", "loop") for k in kinds)
    assert m["context_lines"] == kinds.count("context")


def test_byte_order_mark_is_not_part_of_the_first_line(tmp_path):
    p = tmp_path / "bom.log"
    p.write_bytes(b"\xef\xbb\xbfTRACE_C: F_cell 100\n")
    assert read_trace(p).records[0].name == "F_cell"
    assert parse_text("\ufeffTRACE_C: F_cell 100\n").records[0].loc.line == 1


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(_names, st.lists(st.floats(allow_nan=False), min_size=1, max_size=3),
                          st.one_of(st.none(), st.tuples(st.integers(0, 999), st.integers(0, 999))),
                          st.dictionaries(st.sampled_from(["phi_tic", "mos_tic", "source"]),
                                          st.integers(0, 50), max_size=2)),
                min_size=1, max_size=20))
def test_jsonl_round_trip(rows):
    import json

    text = "\n".join(json.dumps({"name": n, "values": v, "pixel": list(p) if p else None, "loop": loop})
                     for n, v, p, loop in rows) + "\n"
    t = parse_text(text, "p.jsonl")
    assert [(r.name, r.values, r.index.pixel, dict(r.index.loop)) for r in t.records] \
        == [(n, tuple(v), p, loop) for n, v, p, loop in rows]
    assert all(r.sigdigits == 17 and r.dialect == "jsonl" for r in t.records)


def test_the_pivot_nanobragg_states_in_words_is_kept_in_meta():
    # the spec's pivot-conditional edges need it; nanoBragg prints no pivot= line
    assert read_trace(WILD / "phi_c_trace_phi.log").meta["pivot"] == "SAMPLE"
    assert read_trace(WILD / "tilted_trace.log").meta["pivot"] == "BEAM"
    assert "pivot" not in read_trace(WILD / "at002_py_trace_pixel_64_79.log").meta
    from nbtrace.engine.spec import conditions_of, default_spec

    t = read_trace(WILD / "phi_c_trace_phi.log")
    assert conditions_of(default_spec(), t, read_trace(WILD / "tilted_trace.log")) == {"pivot": "SAMPLE"}
