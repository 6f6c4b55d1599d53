"""Markdown report (summary.md): the same content as the console, as a document."""

from __future__ import annotations

from nbtrace.report.common import fmt_num, sides, totals, verdict_word, where
from nbtrace.engine.results import DiffResult


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(r: DiffResult) -> str:
    lines = ["# nbtrace diff", "", f"**{r.verdict.upper()}** — {r.headline}", ""]
    lines += [f"- pattern: {_cell(p.text)}" for p in r.patterns] + ([""] if r.patterns else [])
    lines += [totals(r), ""]
    lines += [f"- {s}" for s in sides(r)]
    if r.warnings:
        lines += ["", "## Warnings", ""] + [f"- {_cell(w)}" for w in r.warnings]
    if r.findings:
        lines += ["", "## Taps in pipeline order", "",
                  "| status | tap | verdict | max rel | first at |", "|---|---|---|---:|---|"]
        for f in r.findings:
            lines.append(f"| {f.status} | `{f.verdict.label}` | {_cell(verdict_word(f))} | "
                         f"{fmt_num(f.verdict.max_rel)} | {_cell(where(f))} |")
    divergent = [f for f in r.findings if f.status in ("introduced", "inherited")]
    if divergent:
        lines += ["", "## Divergences", ""]
        for f in divergent:
            lines += [f"### `{f.verdict.label}` ({f.status})", "", "```", f.verdict.message, "```", ""]
    for side, un in (("A", r.unmatched_a), ("B", r.unmatched_b)):
        if un:
            lines += ["", f"## Only in {side}", ""]
            lines += [f"- `{u.tap}`: {u.count} record(s), first at {u.first_loc}"
                      + (" (never printed by the other side)" if u.whole_tap else "") for u in un]
    return "\n".join(lines).rstrip("\n") + "\n"
