"""Renderers of a DiffResult. They only read the frozen result; nothing here computes a verdict."""

from __future__ import annotations

FORMATS = ("console", "md", "json")


def render(result, fmt: str = "console", *, width: int = 80, all_rows: bool = True) -> str:
    """The report of ``result`` as text: fmt "console" (plain text laid out by rich), "md", "json".
    ``all_rows`` False lists only the taps that diverge, are immaterial or missing."""
    if fmt == "console":
        from nbtrace.report.console import render_console

        return render_console(result, width=width, all_rows=all_rows)
    if fmt == "md":
        from nbtrace.report.markdown import render_markdown

        return render_markdown(result)
    if fmt == "json":
        from nbtrace.report.jsonfmt import render_json

        return render_json(result)
    from nbtrace.errors import UsageError

    raise UsageError(f"unknown report format {fmt!r}", hint="use one of: " + ", ".join(FORMATS))
