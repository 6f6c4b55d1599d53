"""The line forms real logs use beyond the clean ones (issue 9): text, labelled and matrix values in
the space form, `name = value`, auxiliary prefix families, the C's crystal narrative, and what
is not read (reported, never a refusal)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nbtrace.engine.parse import parse_text, read_trace
from nbtrace.errors import TraceError

WILD = Path(__file__).resolve().parents[1] / "data" / "wild"
CORPUS = WILD / "corpus"


def by_name(t, name):
    return [r for r in t.records if r.name == name]


def _fields(r):
    return r.name, r.values, r.kind, r.text, r.labels, r.shape


@pytest.mark.parametrize("value", ["MOSFLM", "X:6.45e-06 Y:6.45e-06 pixel_mm:0.1",
                                   "[1 0 0; 0 0.996194698091746 -0.0871557427476582; 0 1 0]",
                                   "rotx:0.0872664625997165 roty:0 rotz:0 twotheta:0.26",
                                   "Fbeam←Ybeam_mm(+0.5px),Sbeam←Xbeam_mm(+0.5px),beam_vec=[1 0 0]"])
def test_space_form_values_read_as_the_eq_form_reads_them(value):
    space = parse_text(f"TRACE_PY: tap {value}\nTRACE_PY: steps 1\n").records[0]
    eq = parse_text(f"TRACE_PY:tap={value}\nTRACE_PY: steps 1\n").records[0]
    assert _fields(space) == _fields(eq) and space.dialect == "space" and eq.dialect == "eq"


def test_the_port_setup_block_reads_from_its_first_line():
    # every port trace of the 0.72-correlation investigation was refused on this first line
    t = read_trace(CORPUS / "641__reports__2026-01-vectorization-parity__phase_e0__20251010T115342Z__py_taps__"
                            "pixel_2048_2048.log")
    assert t.prefix == "TRACE_PY"
    assert by_name(t, "detector_convention")[0].text == "MOSFLM"
    beam = by_name(t, "beam_center_m")[0]
    assert beam.kind == "labelled" and beam.labels == ("X", "Y", "pixel_mm")
    assert by_name(t, "Rx")[0].shape == (3, 3)


def test_name_equals_value_and_attached_forms():
    t = parse_text("TRACE_PY: F_cell = 100\nTRACE_PY:steps 4\nTRACE_PY: polar=0.5\n")
    assert [(r.name, r.values) for r in t.records] == [("F_cell", (100.0,)), ("steps", (4.0,)), ("polar", (0.5,))]


def test_name_value_runs():
    t = parse_text("TRACE_C: F_cell 1\nTRACE_C_HKL_BOUNDS: h_min -24 h_max 24\n")
    assert [(r.name, r.values) for r in t.records] == [("F_cell", (1.0,)), ("HKL_BOUNDS_h_min", (-24.0,)),
                                                      ("HKL_BOUNDS_h_max", (24.0,))]


def test_auxiliary_families_of_the_producer():
    text = ("TRACE_C: F_cell 100\nTRACE_C: steps 1\nTRACE_C: polar 1\n"
            "TRACE_C_SOURCE2: incident_vec 0 0 1\n"      # a loop index: source 2
            "TRACE_C_TAP5: F_cell 7\n"                    # an auxiliary family: qualified
            "TRACE_C_PHI phi_tic=1 k_frac=0.5\n"          # a loop line, as before
            "TRACE_ROTATE:input_vector=[1 0 0]\n")        # the same run's own helper
    t = parse_text(text)
    assert t.prefix == "TRACE_C" and t.meta["warnings"] == []
    assert by_name(t, "incident_vec")[0].index.loop == (("source", 2),)
    assert [r.values for r in by_name(t, "TAP5_F_cell")] == [(7.0,)]
    assert by_name(t, "F_cell")[0].values == (100.0,) and len(by_name(t, "F_cell")) == 1
    assert by_name(t, "k_frac")[0].index.loop == (("phi_tic", 1),)
    assert by_name(t, "TRACE_ROTATE_input_vector")[0].values == (1.0, 0.0, 0.0)


def test_the_real_c_log_with_its_helper_families():
    t = read_trace(CORPUS / "018__comparison_N1__c_stdout.txt")
    assert t.prefix == "TRACE_C" and t.meta["warnings"] == []
    assert by_name(t, "TRACE_ROTATE_final_output")[0].values == (1.0, 0.0, 0.0)
    assert by_name(t, "pix0_vector")


def test_a_stray_line_of_another_producer_is_named():
    text = "TRACE_PY: F_cell 100\nTRACE_PY: steps 1\nTRACE_C: F_cell 999\n"
    t = parse_text(text, "p.log")
    assert t.prefix == "TRACE_PY" and len(t) == 2
    assert t.meta["warnings"] == ["p.log: 1 line(s) with prefix 'TRACE_C' ignored (the taps are 'TRACE_PY'; "
                                  "first at line 3): p.log:3"]


def test_two_real_producers_are_refused():
    text = "".join(f"{p}: {n} 1\n" for p in ("TRACE_C", "TRACE_PY") for n in ("a", "b", "c"))
    with pytest.raises(TraceError, match="mixes two tap prefixes"):
        parse_text(text)
    assert len(parse_text(text, prefix="TRACE_PY")) == 3


def test_a_loop_line_of_the_free_prefix_beside_another_prefix():
    # a KeyError once: the TRACE_PHI line became a record of the free-text group
    t = parse_text("TRACE_C: F_cell 1\nTRACE_PHI phi_tic=0 k_frac=1\n")
    assert t.names() == ["F_cell"] and t.context[0][1] == "TRACE_PHI phi_tic=0 k_frac=1"


def test_the_crystal_narrative_is_read_when_the_log_has_nothing_else():
    t = read_trace(CORPUS / "110__parallel_test_outputs_20250919_074637__AT-PARALLEL-004_XDS__c_stdout.txt")
    assert t.prefix == "TRACE" and {r.dialect for r in t.records} == {"free"}
    a_star = by_name(t, "a_star")
    assert a_star[0].values == (0.01, 0.0, 0.0) and a_star[0].sigdigits == 6
    # "a" in Å and "After conversion: a" in metres are two taps, never one
    assert by_name(t, "a")[0].values[0] == 100
    assert by_name(t, "a_after_conversion")[0].values[0] == pytest.approx(1e-8)
    assert by_name(t, "V_cell")[0].values == (1e6,) and by_name(t, "V_star")[0].values == (1e-6,)


def test_the_crystal_narrative_is_context_beside_prefixed_taps():
    t = read_trace(WILD / "tilted_trace.log")
    assert {r.dialect for r in t.records} <= {"eq", "space", "loop"}
    assert any("a_star = [" in c[1] for c in t.context)


@pytest.mark.parametrize("line", ["TRACE:   Copying vectors to a0, b0, c0 (phi=0 mosaic=0 reference):",
                                  "TRACE: Intensity calculation chain:",
                                  "TRACE:   After conversion: a = [1e-08, 6.12323e-25, 6.12323e-25"])
def test_narrative_lines_without_a_value_stay_context(line):
    t = parse_text(line + "\nTRACE: hkl_frac 1 2 3\n")
    assert t.names() == ["hkl_frac"] and t.context[0][1] == line


def test_a_text_value_where_a_number_is_expected_is_text_and_a_bad_number_is_not_read():
    t = parse_text("TRACE_PY: I_before_scaling NOT_EXTRACTED\nTRACE_PY: F_cell 1.5.2\nTRACE_PY: steps 1\n", "p.log")
    assert by_name(t, "I_before_scaling")[0].text == "NOT_EXTRACTED"
    assert not by_name(t, "F_cell")
    assert t.meta["warnings"] == ["1 line(s) not read: p.log:2 (tap 'F_cell' has a non-numeric value '1.5.2')"]
    assert t.meta["unread_lines"] == 1


def test_many_unread_lines_are_counted_and_the_first_named():
    text = "TRACE_C: steps 1\n" + "".join(f"TRACE_C: F_{i} 1x\n" for i in range(8))
    w = parse_text(text, "p.log").meta["warnings"]
    assert len(w) == 1 and w[0].startswith("8 line(s) not read: p.log:2 (") and w[0].endswith(", and 3 more")


def test_banners_with_a_colon_are_not_producers():
    t = parse_text("Note: using default F\nWARNING: auto-generating odet_vector\nTRACE_C: F_cell 1\n")
    assert t.names() == ["F_cell"] and t.meta["warnings"] == [] and t.meta["ignored_lines"] == 2


def test_utf16_log_is_read(tmp_path):
    p = tmp_path / "u16.log"
    p.write_bytes("TRACE_C: F_cell 100\nTRACE_C: detector_convention MOSFLM\n".encode("utf-16"))
    t = read_trace(p)
    assert t.names() == ["F_cell", "detector_convention"] and t.records[1].text == "MOSFLM"


def test_a_line_not_read_is_kept_as_context_and_every_line_is_counted():
    text = "TRACE_C: F_cell 1\nTRACE_C: steps 1x\nTRACE_C: v 1 2\nTRACE_C: v 1\nWARNING: auto-generating\n\n"
    t = parse_text(text, "p.log")
    m = t.meta
    assert [c[1] for c in t.context] == ["TRACE_C: steps 1x", "TRACE_C: v 1"]
    assert m["unread_lines"] == 2 and m["ignored_lines"] == 1 and m["blank_lines"] == 1
    record_lines = len({r.loc.line for r in t.records})
    assert record_lines + m["context_lines"] + m["header_lines"] + m["ignored_lines"] + m["blank_lines"] \
        == m["lines"] == 6


def test_a_chosen_family_member_is_its_own_producer():
    text = "TRACE_C: a 1\nTRACE_C_TAP4: x 1 y 2\nTRACE_C_TAP4: x 3 y 4\n"
    t = parse_text(text, "p.log", prefix="TRACE_C_TAP4")
    assert t.prefix == "TRACE_C_TAP4" and [r.name for r in t.records] == ["x", "y", "x", "y"]
    assert "1 line(s) with prefix 'TRACE_C' ignored" in t.meta["warnings"][0]
    assert parse_text(text, prefix="TRACE_C").names() == ["a", "TAP4_x", "TAP4_y"]


def test_a_flood_of_made_up_prefixes_gives_one_summary_line():
    text = "TRACE_C: F_cell 1\nTRACE_C: steps 1\n" + "".join(f"P{i}: x {i}\n" for i in range(2000))
    t = parse_text(text, "p.log")
    assert t.names() == ["F_cell", "steps"] and t.meta["ignored_lines"] == 2000
    assert len(t.meta["warnings"]) == 6 and t.meta["warnings"][-1] == "p.log: 1995 more line(s) with 1995 other prefixes ignored"
