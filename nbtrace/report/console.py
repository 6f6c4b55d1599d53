"""Console report: root-cause sentence, totals, then every tap in pipeline order.

rich lays out the table; markup and highlighting are off because trace indices contain
brackets (``k_frac[phi_tic]``) that rich would otherwise eat or colour.
"""

from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table
from rich import box

from nbtrace.report.common import fmt_num, sides, totals, verdict_word, where
from nbtrace.engine.results import DiffResult


def render_console(r: DiffResult, *, width: int = 80) -> str:
    buf = io.StringIO()
    con = Console(file=buf, width=width, markup=False, highlight=False, emoji=False,
                  no_color=True, force_terminal=False, soft_wrap=False)
    con.print(r.headline)
    for p in r.patterns:
        con.print(f"  pattern: {p.text}")
    con.print()
    con.print(totals(r))
    for line in sides(r):
        con.print(line)
    if r.warnings:
        con.print()
        con.print("Warnings:")
        for w in r.warnings:
            con.print(f"  - {w}")
    if r.findings:
        con.print()
        con.print(_table(r))
    detail = [f for f in r.findings if f.status == "introduced"]
    if detail:
        con.print()
        for f in detail:
            con.print(f.verdict.message)
            con.print()
    # rich pads wrapped lines and table cells with spaces; trailing blanks only hurt diffs
    lines = [ln.rstrip() for ln in buf.getvalue().rstrip("\n").split("\n")]
    return "\n".join(lines) + "\n"


def _table(r: DiffResult) -> Table:
    t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, title=None)
    t.add_column("status", no_wrap=True)
    t.add_column("tap", no_wrap=True, overflow="fold")
    t.add_column("verdict", overflow="fold")
    t.add_column("max rel", justify="right", no_wrap=True)
    t.add_column("first at", overflow="fold")
    for f in r.findings:
        t.add_row(f.status, f.verdict.label, verdict_word(f), fmt_num(f.verdict.max_rel), where(f))
    return t
