"""`nbtrace diff A B`: A is the reference (e.g. the C build), B the port.

Exit 0 when every compared tap agrees, 1 on a divergence (or when nothing could be compared, or
the comparison is one-sided: see nbtrace.engine.diff.Coverage.one_sided), 2 on bad input or usage. Never imports torch: this command must start in a fraction of a second.
"""

from __future__ import annotations

import gc
import os
import sys

import click

from nbtrace.cli.options import all_option, out_option, png_option, probe_dir, spec_option
from nbtrace.errors import UsageError

FORMATS = ("console", "md", "json")
# traces larger than this together (bytes) take a second or more to read and diff: show a spinner
BIG_TRACES = 20_000_000


def parse_context(items: tuple[str, ...]) -> dict:
    """["N=5,5,5", "oversample=2", "dtype=float32"] -> {"N": (5.0, 5.0, 5.0), "oversample": 2.0, ...}."""
    out: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key or not value.strip():
            raise UsageError(f"--context {item!r} is not KEY=VALUE", where="--context",
                             hint="e.g. --context N=5,5,5 --context oversample=2")
        parts = [p.strip() for p in value.split(",")]
        try:
            nums = tuple(float(p) for p in parts)
        except ValueError:
            out[key] = value.strip()
            continue
        out[key] = nums if len(nums) > 1 else nums[0]
    return out


def select_pixel(trace, pixel: tuple[int, int]):
    """Only the setup taps and the records of ``pixel`` (slow, fast) of a multi-pixel trace."""
    from dataclasses import replace

    import numpy as np

    cols = trace.columns()  # only the kept records are built, not the whole trace
    used = np.unique(cols.context).tolist()
    present = {cols.contexts[c][0] for c in used if cols.contexts[c][0] is not None} | set(trace.pixels)
    if pixel not in present:
        have = ", ".join(f"({s}, {f})" for s, f in sorted(present)) or "none"
        raise UsageError(f"pixel (slow={pixel[0]}, fast={pixel[1]}) is not in this trace (it has: {have})",
                         where=trace.path, hint="--pixel takes slow then fast")
    keep = [c for c in used if cols.contexts[c][0] in (None, pixel)]
    positions = np.flatnonzero(np.isin(cols.context, keep)).tolist()
    records = tuple(trace.records[i] for i in positions)
    return replace(trace, records=records, pixels=(pixel,))


def _with_unread_notes(result, *sides, dialect: str):
    """A forced dialect silently drops every line of the other forms: the report says how many,
    per side (the files are read once more, sniffed, to count them; only under --dialect)."""
    from dataclasses import replace

    from nbtrace.engine.diff import unread_note
    from nbtrace.errors import NbtraceError
    from nbtrace.engine.parse import read_trace

    notes = []
    for path, forced, prefix, side in sides:
        try:
            sniffed = read_trace(path, prefix=prefix)
        except NbtraceError:
            sniffed = None  # the file only reads under the forced dialect: count ignored lines
        note = unread_note(forced, sniffed, dialect, side)
        if note:
            notes.append(note)
    return replace(result, warnings=tuple(notes) + result.warnings) if notes else result


def _spec(spec_path, a, b):
    from nbtrace.engine import spec as spec_mod

    if spec_path:
        from nbtrace.engine.diff import resolve_spec

        return resolve_spec(spec_path)
    return spec_mod.spec_for(a, b)


@click.command("diff", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("trace_a", metavar="A", type=click.Path(dir_okay=False))
@click.argument("trace_b", metavar="B", type=click.Path(dir_okay=False))
@spec_option
@click.option("--dialect", default=None, help="Force a trace dialect (default: sniffed).")
@click.option("--force", is_flag=True, help="Diff even traces of different pixels.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="console", show_default=True)
@out_option("summary.md, metrics.json, run_metadata.json")
@png_option
@all_option
@click.option("--rtol", type=float, default=None, help="Relative tolerance for every tap (with --atol).")
@click.option("--atol", type=float, default=None, help="Absolute tolerance for every tap (with --rtol).")
@click.option("--context", "context_items", multiple=True, metavar="KEY=VALUE",
              help="Run facts the traces may not print: N=5,5,5  oversample=2  pixel_size=1e-4 (m).")
@click.option("--dtype", type=click.Choice(["float64", "float32"]), default=None,
              help="The port computed in this dtype (float32 allows the precision class).")
@click.option("--pixel", nargs=2, type=int, default=None, metavar="S F",
              help="Diff only this pixel (slow, fast) of multi-pixel traces.")
@click.option("--prefix-a", default=None, metavar="PREFIX",
              help="Read only A's taps with this prefix (e.g. TRACE_C), for a log holding two producers.")
@click.option("--prefix-b", default=None, metavar="PREFIX",
              help="Read only B's taps with this prefix (e.g. TRACE_PY); A and B may be the same file.")
def command(trace_a, trace_b, spec_path, dialect, force, fmt, out_dir, png_dir, all_rows, rtol, atol, context_items,
            dtype, pixel, prefix_a, prefix_b):
    """Diff trace A (reference) against trace B (port) and name the root cause.

    The report opens with a verdict word (AGREE or DIVERGE) and the root cause on one line,
    the explanation below it, then the taps that diverge, are immaterial or missing (--all: every tap).
    """
    from nbtrace.report.progress import Steps

    with Steps(live=None if _size(trace_a) + _size(trace_b) > BIG_TRACES else False, keep=False) as steps:
        return _run(trace_a, trace_b, spec_path, dialect, force, fmt, out_dir, png_dir, all_rows, rtol, atol,
                    context_items, dtype, pixel, prefix_a, prefix_b, steps)


def _size(path) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0  # the reader reports the missing file in its own words


def _run(trace_a, trace_b, spec_path, dialect, force, fmt, out_dir, png_dir, all_rows, rtol, atol, context_items,
         dtype, pixel, prefix_a, prefix_b, steps):
    from nbtrace.engine.parse import read_traces

    if (rtol is None) != (atol is None):
        raise UsageError("--rtol and --atol go together", hint="give both, or neither")
    # A short-lived process that builds millions of small objects while parsing: the cyclic GC
    # would rescan them over and over and has nothing to free.
    gc.disable()
    context = parse_context(context_items)
    if dtype:
        context["dtype"] = dtype
    for d, opt in ((out_dir, "--out"), (png_dir, "--png")):
        if d:  # refused before the traces are read
            probe_dir(d, opt)
    steps("diff: reading A and B")
    a, b = read_traces(trace_a, trace_b, dialect=dialect, prefix_a=prefix_a, prefix_b=prefix_b)
    steps("diff: comparing")
    # imported after the parse: B's parse worker is forked without waiting for these modules
    from nbtrace.engine.diff import diff_traces
    from nbtrace.report import render

    if pixel:
        a, b = select_pixel(a, tuple(pixel)), select_pixel(b, tuple(pixel))
    spec = _spec(spec_path, a, b)
    result = diff_traces(a, b, spec, force=force, context=context, rtol=rtol, atol=atol)
    if dialect and dialect != "auto":
        result = _with_unread_notes(result, (trace_a, a, prefix_a, "A"), (trace_b, b, prefix_b, "B"), dialect=dialect)
    from nbtrace.cli import record_verdict

    code = record_verdict(0 if result else 1)  # a closed pipe must not change the verdict
    if png_dir or out_dir:
        steps("diff: drawing the figures")
        from nbtrace.figures.taps import diff_figures

        figures = diff_figures(result, png_dir) if png_dir else []
        if out_dir:
            from nbtrace.report.html import write_diff_outputs

            same = png_dir and os.path.realpath(png_dir) == os.path.realpath(out_dir)
            inside = figures if same else diff_figures(result, out_dir)
            write_diff_outputs(result, spec, out_dir, list(sys.argv),
                               {"a": trace_a, "b": trace_b, "spec": spec_path}, inside)
    steps.__exit__(None, None, None)  # the spinner stops before the report prints
    if fmt == "console":
        from nbtrace.report.console import emit

        emit(result, all_rows=all_rows)
    else:
        click.echo(render(result, fmt), nl=False)
    return code
