"""Console report: a one-line verdict and root cause, the long explanation below it, totals,
then the taps that need attention (``--all``: every tap) in pipeline order.

rich lays it out; markup and highlighting are off because trace indices contain brackets
(``k_frac[phi_tic]``) that rich would otherwise eat or colour. Colour comes from styles set
here, only on a terminal, and never when NO_COLOR is set (rich reads it).
"""

from __future__ import annotations

import io
import sys

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from nbtrace.engine.results import DiffResult
from nbtrace.report.common import below_headline, fmt_num, plain, short_headline, shown, sides, totals, verdict_word, where

STYLES = {"introduced": "bold red", "inherited": "yellow", "immaterial": "magenta", "missing": "bright_black",
          "agree": "green", "setup": "cyan"}


class _Console(Console):
    def on_broken_pipe(self) -> None:
        # rich would exit 1 here, which means "diverge": let the CLI end with the verdict's code
        raise BrokenPipeError


def console(file=None, *, width: int | None = None, colour: bool | None = None) -> Console:
    """A rich Console for reports: the real terminal width (COLUMNS when set; 80 when piped),
    colour on a terminal unless NO_COLOR; ``colour=False`` forces plain text."""
    kw = {} if colour is None else {"no_color": not colour, "force_terminal": colour}
    return _Console(file=file if file is not None else sys.stdout, width=width, markup=False, highlight=False,
                   emoji=False, soft_wrap=False, **kw)


def verdict_text(line: str) -> Text:
    """The headline with its verdict word (AGREE, OK, DIVERGE, INVALID, ...) in colour."""
    word, sep, rest = line.partition(":")
    good = word.startswith("AGREE") or word == "OK"
    style = "bold green" if good else "bold red"
    if not sep or not word.isupper() and not good:
        return Text(line, style=style)
    return Text.assemble((word, style), (sep + rest, "bold"))


def print_console(r: DiffResult, con: Console, *, all_rows: bool = False) -> None:
    head = short_headline(r)
    con.print(verdict_text(head))
    rest = below_headline(head, r.headline)
    if rest:  # the long explanation, below the one-line headline
        con.print(rest)
    for p in r.patterns:
        con.print(f"  pattern: {plain(p.text)}")
    con.print()
    con.print(totals(r))
    for line in sides(r):
        con.print(line)
    if r.warnings:
        con.print()
        con.print("Warnings:")
        for w in r.warnings:
            con.print(f"  - {plain(w)}")
    rows = [f for f in r.findings if shown(f, all_rows)]
    hidden = len(r.findings) - len(rows)
    if rows:
        con.print()
        con.print(_table(rows))
    if hidden:
        con.print(f"{hidden} agreeing tap(s) not listed; --all lists every tap")
    detail = [f for f in r.findings if f.status == "introduced"]
    if detail:
        con.print()
        for f in detail:
            con.print(plain(f.verdict.message))
            con.print()


def render_console(r: DiffResult, *, width: int = 80, all_rows: bool = True) -> str:
    """The console report as plain text (no colour) at ``width`` columns."""
    buf = io.StringIO()
    print_console(r, console(buf, width=width, colour=False), all_rows=all_rows)
    # rich pads wrapped lines and table cells with spaces; trailing blanks only hurt diffs
    lines = [ln.rstrip() for ln in buf.getvalue().rstrip("\n").split("\n")]
    return "\n".join(lines) + "\n"


def _table(findings) -> Table:
    t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, title=None)
    t.add_column("status", no_wrap=True)
    t.add_column("tap", no_wrap=True, overflow="fold")
    t.add_column("verdict", overflow="fold")
    t.add_column("max rel", justify="right", no_wrap=True)
    t.add_column("first at", overflow="fold")
    for f in findings:
        style = STYLES.get(f.status, "")
        t.add_row(Text(f.status, style=style), f.verdict.label, verdict_word(f), fmt_num(f.verdict.max_rel), where(f))
    return t


def emit(r: DiffResult, *, all_rows: bool = False) -> None:
    """Print the console report on stdout: in colour on a terminal, else as plain text without
    trailing blanks (what pipes, files and pinned tests see)."""
    con = console()
    if con.is_terminal and not con.no_color:
        print_console(r, con, all_rows=all_rows)
    else:
        con.file.write(render_console(r, width=con.width, all_rows=all_rows))
