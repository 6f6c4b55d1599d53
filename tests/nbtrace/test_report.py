"""Renderers only read the frozen result: console opens with the root cause, md and json agree."""

from __future__ import annotations

import dataclasses
import json

import pytest

from nbtrace.engine.diff import diff_traces
from nbtrace.errors import UsageError
from nbtrace.report import render
from nbtrace.testing import make_trace

REF = [("dist_meters", 0.5), ("q_vec", (1000.0, 2000.0, 3000.0)), ("intensity", 42.5)]
PORT = [("dist_meters", 0.5), ("q_vec", (1e-7, 2e-7, 3e-7)), ("intensity", 40.0)]


@pytest.fixture(scope="module")
def result():
    return diff_traces(make_trace(REF, pixel=(3, 4), path="a.log"),
                       make_trace(PORT, pixel=(3, 4), path="b.log", prefix="TRACE_PY"))


def test_result_is_frozen(result):
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.headline = "x"


def test_console_opens_with_root_cause_then_totals_then_taps(result):
    out = render(result, "console", width=120)
    opening, rest = out.split("\n\n", 1)
    head, explanation = opening.split("\n", 1)
    # one short line, verdict word first; the engine's whole sentence below it (backticks dropped)
    assert head == "DIVERGE: root cause q_vec: port = reference × 1e-10 in all 3 components"
    assert len(head) <= 120 and "`" not in out
    assert " ".join(explanation.split()) == result.headline.replace("`", "").replace("`q_vec` is the first divergence: ", "").replace("q_vec is the first divergence: p", "P")
    lines = rest.splitlines()
    assert lines[0].startswith("3 taps compared over 3 matched records: 1 introduced, 1 inherited, 1 agree")
    table = [ln.split() for ln in lines if ln.split()[:1] in (["agree"], ["introduced"], ["inherited"])]
    assert [row[:2] for row in table] == [["agree", "dist_meters"], ["introduced", "q_vec"], ["inherited", "intensity"]]
    assert "Mismatched elements: 3 / 3 (100.0%)" in out


def test_console_keeps_brackets(result):
    ref = [(("k_frac", {"phi_tic": 0}), 0.5)]
    prt = [(("k_frac", {"phi_tic": 0}), 0.7)]
    r = diff_traces(make_trace(ref, pixel=(1, 1)), make_trace(prt, pixel=(1, 1)))
    assert "k_frac[phi_tic]" in render(r, "console", width=100)


def test_markdown_has_table_and_details(result):
    md = render(result, "md")
    assert md.startswith("# nbtrace diff\n\n**DIVERGE** — " + result.headline)
    assert "| introduced | `q_vec` | scale ×1e-10 |" in md
    assert "### `q_vec` (introduced)" in md and "### `intensity` (inherited)" in md


def test_json_render_is_the_contract(result):
    assert json.loads(render(result, "json")) == json.loads(json.dumps(result.to_json()))


def test_unknown_format_is_a_usage_error(result):
    with pytest.raises(UsageError):
        render(result, "html")


def test_console_lists_only_what_needs_attention_unless_all(result):
    short = render(result, "console", width=120, all_rows=False)
    rows = [ln.split()[0] for ln in short.splitlines() if ln.split()[:1] in (["agree"], ["introduced"], ["inherited"])]
    assert rows == ["introduced", "inherited"]
    assert "1 agreeing tap(s) not listed; --all lists every tap" in short


@pytest.mark.parametrize("no_color, coloured", [(None, True), ("1", False)])
def test_colour_on_a_terminal_unless_no_color(result, monkeypatch, capsys, no_color, coloured):
    from nbtrace.report.console import emit

    monkeypatch.setenv("FORCE_COLOR", "1")  # rich treats stdout as a terminal
    monkeypatch.setenv("COLUMNS", "100")
    if no_color:
        monkeypatch.setenv("NO_COLOR", no_color)
    else:
        monkeypatch.delenv("NO_COLOR", raising=False)
    emit(result)
    out = capsys.readouterr().out
    assert ("\x1b[" in out) is coloured
    assert out.lstrip("\x1b[0123456789;m").startswith("DIVERGE")


def test_headline_is_cut_whole_outside_parentheses():
    from nbtrace.report.common import first_clause, fit

    text = ("additive offset of exactly +½ pixel along fast (port − reference = (0, 0, 5e-05) m, pixel 0.0001 m): "
            "a beam-centre convention")
    what = first_clause(text)
    assert what.endswith("pixel 0.0001 m)")  # the ': ' inside nothing, the parentheses kept whole
    head = fit("DIVERGE: root cause pix0_vector_meters: ", what, limit=90)
    assert head == "DIVERGE: root cause pix0_vector_meters: additive offset of exactly +½ pixel along fast"
    assert first_clause("a (b: c) d: e") == "a (b: c) d"
    assert fit("X: ", "short") == "X: short"


def _counts(line: str) -> tuple[int, dict]:
    """'N taps compared over M matched records: 1 introduced, 2 agree; ...' -> (N, {status: n})."""
    import re

    head, _, rest = line.partition(": ")
    total = int(head.split()[0])
    counts = {m[2]: int(m[1]) for m in re.finditer(r"(?:^|, )(\d+) ([a-z]+)", rest.split(";")[0])}
    return total, counts


def test_totals_count_immaterial_taps_and_add_up():
    # issue 12: an immaterial tap was counted in the total but in no count
    from nbtrace.engine.spec import default_spec
    from nbtrace.report.common import totals

    setup_c = [("detector_convention", "MOSFLM"), ("Fbeam_m", 0.05125), ("pix0_vector", (0.1, 0.05125, -0.05125))]
    setup_py = [("detector_convention", "MOSFLM"), ("Fbeam_m", 0.0512), ("pix0_vector", (0.1, 0.05125, -0.05125))]
    taps = [("pix0_vector_meters", (0.1, 0.05125, -0.05125)), ("pixel_pos_meters", (0.1, 0.0, 0.006)),
            ("I_pixel_final", 12.5)]
    r = diff_traces(make_trace(taps, pixel=(1, 1), setup=setup_c),
                    make_trace(taps, pixel=(1, 1), setup=setup_py, prefix="TRACE_PY"), default_spec())
    assert [f.verdict.tap for f in r.immaterial] == ["Fbeam_m"]
    total, counts = _counts(totals(r))
    assert counts["immaterial"] == 1 and counts["introduced"] == counts["inherited"] == 0
    assert sum(counts.values()) == total
    assert "1 immaterial" in render(r, "console", width=200)


def test_totals_name_incomplete_taps_apart_from_the_compared_ones():
    from nbtrace.report.common import totals

    r = diff_traces(make_trace([("x", 1.0), ("only_ref", 2.0)], pixel=(1, 1)), make_trace([("x", 1.0)], pixel=(1, 1)))
    line = totals(r)
    total, counts = _counts(line)
    assert (total, counts) == (1, {"introduced": 0, "inherited": 0, "agree": 1})
    assert "; 1 tap(s) incomplete (printed by one side only, or more times on one side);" in line
