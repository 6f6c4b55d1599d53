"""HTML reports and the pipeline drawing: layout by depth over the spec's ``after:`` edges,
statuses and the root cause marked, one self-contained file; a hunt's --out is diffable as is."""

from __future__ import annotations

import json
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from nbtrace.cli import cli, main
from nbtrace.engine.diff import diff_traces
from nbtrace.engine.spec import parse_spec
from nbtrace.report.pipeline import NODE_H, GAP_Y, layout, pipeline_svg, tap_statuses
from nbtrace.testing import make_trace

ROOT = Path(__file__).resolve().parents[2]
CLI = ROOT / "tests" / "data" / "incidents" / "cli"
FAKE = ROOT / "tests" / "data" / "hunt" / "fake_nanobragg.py"

SPEC = """
spec: tiny
defaults: {rtol: 1.0e-9, atol: 0}
taps:
  - {name: a}
  - {name: hidden, after: [a]}
  - {name: b, after: [hidden]}
  - {name: c, after: [a, b]}
  - {name: d, after: [c]}
"""


@pytest.fixture(scope="module")
def tiny():
    spec = parse_spec(SPEC, "tiny.yaml")
    ref = make_trace([("a", 1.0), ("b", 2.0), ("c", 3.0), ("d", 4.0)], pixel=(1, 2))
    port = make_trace([("a", 1.0), ("b", 2.5), ("c", 3.75), ("d", 5.0)], pixel=(1, 2))
    return spec, diff_traces(ref, port, spec)


def test_layout_rows_by_depth_bridging_unprinted_taps(tiny):
    spec, result = tiny
    nodes, edges, width, height = layout(spec, tap_statuses(result), "b")
    row = {n.name: round((n.y - nodes[0].y) / (NODE_H + GAP_Y)) for n in nodes}
    # `hidden` was never printed: it is not drawn and a -> hidden -> b is drawn a -> b
    assert row == {"a": 0, "b": 1, "c": 2, "d": 3}
    assert sorted(edges) == [("a", "b"), ("a", "c"), ("b", "c"), ("c", "d")]
    assert [n.name for n in nodes if n.root] == ["b"]
    assert {n.name: n.status for n in nodes} == {"a": "agree", "b": "introduced", "c": "inherited", "d": "inherited"}
    assert width > 0 and height > 3 * NODE_H


def test_svg_marks_root_and_colours(tiny):
    spec, result = tiny
    svg = pipeline_svg(spec, result)
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert svg.count('<g class="tap ') == 4 and "▼ root cause" in svg
    assert '<g class="tap introduced"><title>b — introduced' in svg
    assert pipeline_svg(None, result) == ""


class _Checker(HTMLParser):
    """Every opened element that must close is closed, in order."""

    VOID = {"meta", "img", "br", "hr", "input", "link", "path", "rect"}

    def __init__(self):
        super().__init__()
        self.stack, self.errors = [], []

    def handle_starttag(self, tag, attrs):
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        pass

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
        else:
            self.stack.pop()


def _well_formed(text: str) -> None:
    c = _Checker()
    c.feed(text)
    assert not c.errors and not c.stack, (c.errors, c.stack)


def test_diff_out_writes_a_self_contained_report(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    with pytest.raises(SystemExit) as exc:
        main(["diff", str(CLI / "a.log"), str(CLI / "b.log"), "--out", str(tmp_path)])
    assert exc.value.code == 1
    html = (tmp_path / "report.html").read_text()
    _well_formed(html)
    assert re.search(r'<span class="word">DIVERGE</span>: root cause q_vec', html)
    assert html.count("data:image/png;base64,") == 1  # the tap chart
    assert 'table class="sortable"' in html and html.count("<tr><td class=\"num\">") == 4  # every tap, not just the bad ones
    assert '<a href="summary.md">' in html and '<a href="metrics.json">' in html
    assert "`" not in html.split("<body>")[1].split("<script>")[0]  # backticks became <code>
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json", "report.html", "run_metadata.json",
                                                          "summary.md", "taps.png"]


def test_hunt_out_is_diffable_and_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    port = f"{sys.executable} {FAKE} --port --inject edge-geometry"
    r = CliRunner().invoke(cli, ["hunt", "--c-bin", str(FAKE), "--port-cmd", port, "--out", str(tmp_path),
                                 "--", "-detpixels", "48"], standalone_mode=False)
    if r.exception:
        raise r.exception
    assert r.return_value == 1
    names = {p.name for p in tmp_path.iterdir()}
    assert {"c.trace", "port.trace", "c.trace.meta.json", "port.trace.meta.json", "report.html", "images.png",
            "zoom.png", "radial.png", "taps.png"} <= names
    assert not names & {"render_c.trace", "pixels_c.trace", "render_py.trace", "pixels_py.trace"}
    # one trace per side holding every traced pixel: diffable without --force
    d = CliRunner().invoke(cli, ["diff", str(tmp_path / "c.trace"), str(tmp_path / "port.trace"), "--format", "json"],
                           standalone_mode=False)
    if d.exception:
        raise d.exception
    doc = json.loads(d.stdout)
    assert d.return_value == 1 and doc["root_cause"]["tap"] == "pixel_pos_meters"
    hunt_doc = json.loads((tmp_path / "metrics.json").read_text())
    assert doc["pixels"]["count_a"] == doc["pixels"]["count_b"] == len(hunt_doc["traced_pixels"])
    meta = json.loads((tmp_path / "c.trace.meta.json").read_text())
    assert meta["merged_from"] == ["render_c.trace", "pixels_c.trace"]
    html = (tmp_path / "report.html").read_text()
    _well_formed(html)
    assert "<svg" in html and "▼ root cause" in html and "<details" in html
    assert html.count("data:image/png;base64,") >= 4
    assert '<a href="c.trace">' in html and '<a href="port.trace">' in html


def test_hunt_without_out_prints_no_temporary_path(monkeypatch):
    port = f"{sys.executable} {FAKE} --port"
    r = CliRunner().invoke(cli, ["hunt", "--c-bin", str(FAKE), "--port-cmd", port, "--", "-detpixels", "48"],
                           standalone_mode=False)
    if r.exception:
        raise r.exception
    assert "nbtrace-hunt-" not in r.stderr and "nbtrace-hunt-" not in r.stdout
    assert "(temporary; --out keeps the files)" in r.stderr


def test_hunt_png_writes_figures_only_and_spec_by_name(tmp_path):
    port = f"{sys.executable} {FAKE} --port"
    r = CliRunner().invoke(cli, ["hunt", "--c-bin", str(FAKE), "--port-cmd", port, "--png", str(tmp_path / "figs"),
                                 "--spec", "nanobragg", "--", "-detpixels", "48"], standalone_mode=False)
    if r.exception:
        raise r.exception
    assert r.return_value == 0 and r.stdout.startswith("AGREE: ")
    # identical images: no zoom (nothing differs), but both images, the radial profile and the tap chart
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == ["images.png", "radial.png", "taps.png"]
    assert f"figure: {tmp_path / 'figs' / 'images.png'}" in r.stderr
