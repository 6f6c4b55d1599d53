"""Bad trace input: one TraceError line naming file:line and a hint, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from nbtrace.errors import TraceError, UsageError
from nbtrace.engine.parse import parse_text, read_trace

DIALECTS = Path(__file__).resolve().parents[1] / "data" / "dialects"


def error_of(path, **kw) -> str:
    with pytest.raises(TraceError) as exc:
        read_trace(path, **kw)
    msg = exc.value.one_line()
    assert "\n" not in msg and "(hint: " in msg
    return msg


def test_missing_file():
    msg = error_of(DIALECTS / "nope.log")
    assert msg.startswith(f"{DIALECTS / 'nope.log'}: no such file")


def test_directory():
    assert "is a directory" in error_of(DIALECTS)


def test_unreadable_path():
    # a path through a regular file cannot be opened, even by root
    msg = error_of(DIALECTS / "crlf.log" / "x.log")
    assert msg.startswith(f"{DIALECTS / 'crlf.log' / 'x.log'}: cannot read: Not a directory")


def test_empty_file():
    assert error_of(DIALECTS / "empty.log").startswith(f"{DIALECTS / 'empty.log'}: empty file")


def test_only_blank_lines():
    assert "empty trace" in error_of(DIALECTS / "blank.log")


def test_binary_content_names_the_line():
    msg = error_of(DIALECTS / "binary.log")
    assert msg.startswith(f"{DIALECTS / 'binary.log'}:2: binary content")


def test_undecodable_bytes_name_the_line():
    msg = error_of(DIALECTS / "latin1.log")
    assert msg.startswith(f"{DIALECTS / 'latin1.log'}:2: not UTF-8")


def test_no_trace_lines_says_which_dialects_were_tried():
    msg = error_of(DIALECTS / "no_taps.log")
    assert "no trace lines found" in msg
    assert "space (PREFIX: name v1 ...)" in msg and "eq (PREFIX:name=value)" in msg and "loop" in msg


# A line that cannot be read never refuses the file (issue 9): it is counted, kept out of the
# records and named in one warning; a text value is a text tap, as in the = form.


def test_a_text_value_is_a_text_tap_naming_its_line():
    t = read_trace(DIALECTS / "nonnumeric.log")
    f_cell = [r for r in t.records if r.name == "F_cell"][0]
    assert (f_cell.kind, f_cell.text, f_cell.loc.line) == ("string", "abc", 7)


def test_tap_without_value_is_not_read_and_reported():
    t = parse_text("TRACE_C: steps 1\nTRACE_C: F_cell\nTRACE_C: polar 1\n", "t.log")
    assert t.names() == ["steps", "polar"]
    assert t.meta["warnings"] == ["1 line(s) not read: t.log:2 (tap 'F_cell' has no value)"]


def test_wrong_arity_within_a_trace_is_not_read_and_reported():
    text = "TRACE_C: pixel_pos_meters 0.5 0.1 0.2\nTRACE_C: pixel_pos_meters 0.5 0.1\nTRACE_C: steps 1\n"
    t = parse_text(text, "t.log")
    assert [(r.name, r.loc.line) for r in t.records] == [("pixel_pos_meters", 1), ("steps", 3)]
    assert "t.log:2 (tap 'pixel_pos_meters' has 2 value(s) here but 3 at line 1)" in t.meta["warnings"][0]


def test_non_numeric_loop_value_is_reported_the_rest_read():
    t = parse_text("TRACE_C_PHI phi_tic=0 k_frac=oops F_latt=1\n", "t.log")
    assert t.names() == ["F_latt"]
    assert "t.log:1 (loop tap 'k_frac' has a non-numeric value 'oops')" in t.meta["warnings"][0]


def test_junk_with_a_colon_is_not_an_error():
    t = parse_text("WARNING: something odd here\nTRACE_C: F_cell 100\n")
    assert len(t) == 1 and t.meta["ignored_lines"] == 1


def test_two_prefixes_refused_naming_both():
    msg = error_of(DIALECTS / "two_prefixes.log")
    assert msg.startswith(f"{DIALECTS / 'two_prefixes.log'}:4: the file mixes two tap prefixes, TRACE_C")
    assert "TRACE_PY" in msg and "prefix='TRACE_C'" in msg


def test_unknown_prefix_requested():
    msg = error_of(DIALECTS / "two_prefixes.log", prefix="TRACE_X")
    assert "no taps with prefix 'TRACE_X'" in msg and "TRACE_C, TRACE_PY" in msg


def test_unknown_dialect_is_a_usage_error():
    with pytest.raises(UsageError, match="unknown dialect 'xml'"):
        parse_text("TRACE_C: F_cell 1\n", dialect="xml")


# ----------------------------------------------------------------------------- truncation


def test_last_line_without_newline_is_kept_with_a_warning():
    t = read_trace(DIALECTS / "no_final_newline.log")
    assert t.records[-1].values == (0.50001,)
    assert t.meta["warnings"] == [f"{DIALECTS / 'no_final_newline.log'}:2: the last line has no newline; "
                                  "the trace may be truncated (the value was kept as printed)"]


def test_vector_cut_short_on_the_last_line_is_kept_with_a_warning():
    t = read_trace(DIALECTS / "truncated_vector.log")
    assert t.records[-1].values == (0.5, 0.0)
    warnings = " | ".join(t.meta["warnings"])
    assert "has 2 value(s) here but 3 at line 2" in warnings and "looks truncated" in warnings


def test_number_cut_mid_token_is_reported_not_read():
    path = DIALECTS / "truncated_number.log"
    t = read_trace(path)
    assert t.names() == ["pix0_vector_meters"]
    assert t.meta["warnings"] == [f"1 line(s) not read: {path}:2 (the file ends mid-line: "
                                  "tap 'F_cell' has a non-numeric value '1.2e')"]


# ----------------------------------------------------------------------------- JSON Lines


def test_malformed_json_line_has_line_and_column():
    msg = error_of(DIALECTS / "bad.jsonl")
    assert msg.startswith(f"{DIALECTS / 'bad.jsonl'}:2:30: malformed JSON line")


@pytest.mark.parametrize("line, expected", [
    ('[1, 2]', "must be an object"),
    ('{"values": [1]}', 'without a "name"'),
    ('{"name": "a"}', "has no \"values\""),
    ('{"name": "a", "values": ["x"]}', "non-numeric value 'x'"),
    ('{"name": "a", "values": [1], "pixel": [1]}', '"pixel" must be [slow, fast]'),
    ('{"name": "a", "values": [1], "loop": {"phi_tic": 1.5}}', '"loop" must map'),
    ('{"name": "a", "values": [1], "sigdigits": 40}', '"sigdigits" must be'),
    ('{"name": "a", "valeus": [1]}', "did you mean 'values'"),
])
def test_jsonl_bad_objects(line, expected):
    with pytest.raises(TraceError) as exc:
        parse_text('{"name": "ok", "values": [1]}\n' + line + "\n", "t.jsonl", dialect="jsonl")
    assert exc.value.where.startswith("t.jsonl:2")
    assert expected in exc.value.one_line()
