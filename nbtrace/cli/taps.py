"""``nbtrace taps init|check|show``: scaffold, validate and list tap specs (never imports torch)."""

from __future__ import annotations

import json
import os

import click

from nbtrace.engine.parse import DIALECTS


def _load(spec_arg: str):
    """A spec file, or the name of a shipped one ("nanobragg", "scaling.yaml")."""
    from nbtrace.engine.spec import SHIPPED, load_spec, shipped_spec

    if not os.path.exists(spec_arg):
        shipped = spec_arg if spec_arg.endswith(".yaml") else spec_arg + ".yaml"
        if os.sep not in spec_arg and shipped in SHIPPED:
            return shipped_spec(shipped)
    return load_spec(spec_arg)


@click.group("taps")
def command():
    """Tap specs (YAML): scaffold one from a trace, check it, show it.

    SPEC is a path, or the name of a shipped spec: nanobragg, scaling, phi_loop.
    """


@command.command("init")
@click.argument("trace", type=click.Path(dir_okay=True))
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Write the spec here (default: stdout). An existing file is not overwritten.")
@click.option("--dialect", type=click.Choice(DIALECTS), default="auto", show_default=True,
              help="Force the trace dialect instead of sniffing it.")
@click.option("--prefix", default=None, help="Tap prefix to read in a file holding two (e.g. TRACE_C).")
@click.option("--force", is_flag=True, help="Overwrite OUTPUT if it exists.")
def init_cmd(trace, output, dialect, prefix, force):
    """Scaffold a spec from a real TRACE: names, shapes and units; after: edges from the shipped
    nanoBragg spec where the names match, else pipeline order; provenance keys never compared."""
    from nbtrace.errors import UsageError
    from nbtrace.engine.parse import read_trace
    from nbtrace.engine.scaffold import scaffold_spec
    from nbtrace.engine.spec import parse_spec

    parsed = read_trace(trace, dialect=dialect, prefix=prefix)
    text = scaffold_spec(parsed)
    parse_spec(text, output or "<scaffold>")  # a scaffold that does not load would be a bug here
    if output is None:
        click.echo(text, nl=False)
        return 0
    if os.path.exists(output) and not force:
        raise UsageError(f"{output} exists", output, "choose another -o path or add --force")
    with open(output, "w", encoding="utf-8") as fh:
        fh.write(text)
    n = len(parsed.names())
    click.echo(f"wrote {output}: {n} taps from {trace}; review units and after: edges "
               f"(see the comment at its top)", err=True)
    return 0


@command.command("check")
@click.argument("spec", type=click.Path(dir_okay=True))
@click.option("--trace", "trace_path", type=click.Path(dir_okay=True), default=None,
              help="Also check that this trace's names resolve and its records have the declared shapes "
                   "(exit 1 when not).")
@click.option("--side", type=click.Choice(["a", "b"]), default=None,
              help="Resolve the trace's names as side a (reference) or b (port); default: either.")
def check_cmd(spec, trace_path, side):
    """Validate SPEC; exit 0 with a one-line summary opening with OK:, 2 with the first problem at
    file:line:col. With --trace: OK: or INVALID: (exit 1) and what does not fit."""
    loaded = _load(spec)
    if trace_path is not None:
        return _check_trace(loaded, trace_path, side)
    edges = sum(len(t.after) for t in loaded.taps)
    aliased = sum(1 for t in loaded.taps if t.aliases)
    loops = sorted({t.loop for t in loaded.taps if t.loop})
    loop_text = f", loops: {', '.join(loops)}" if loops else ""
    click.echo(f"OK: {loaded.path}: spec {loaded.name!r}, {len(loaded)} taps, {aliased} with aliases, "
               f"{edges} after-edges{loop_text}")
    return 0


def _check_trace(loaded, trace_path: str, side: str | None) -> int:
    from nbtrace.engine.parse import read_trace
    from nbtrace.engine.spec import fit_trace

    fit = fit_trace(loaded, read_trace(trace_path), side)
    known = fit.n_names - len(fit.unknown)
    word = "OK" if fit else "INVALID"  # the trace does not fit the spec (exit 1); a bad spec is an error (2)
    click.echo(f"{word}: {trace_path}: {known} of {fit.n_names} tap names resolve in spec {loaded.name!r}")
    if fit.unknown:
        click.echo("  not in the spec: " + ", ".join(fit.unknown))
    for tap, shape, n, where in fit.shape_mismatches:
        click.echo(f"  {where}: {tap} prints {n} value(s), the spec declares shape {list(shape)}")
    return 0 if fit else 1


@command.command("show")
@click.argument("spec", type=click.Path(dir_okay=True))
@click.option("--json", "as_json", is_flag=True, help="Print the spec as JSON (for scripts).")
def show_cmd(spec, as_json):
    """List the taps of SPEC (after an OK: line naming it): name and aliases, shape, unit,
    tolerance, after."""
    from nbtrace.engine.spec import spec_to_json

    loaded = _load(spec)
    if as_json:
        click.echo(json.dumps(spec_to_json(loaded), indent=2, ensure_ascii=False))
        return 0
    from rich import box
    from rich.table import Table

    from nbtrace.report.console import console, verdict_text

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
    # Names, units and tolerances are read as tokens: never break them. Aliases go under the
    # canonical name (as "= alias (side)") so the table still fits 80 columns.
    longest = max(len(t.name) + (len(t.loop) + 3 if t.loop else 0) for t in loaded.taps)
    table.add_column("tap (= aliases)", overflow="fold", min_width=longest)
    for col in ("shape", "unit", "rtol/atol"):
        table.add_column(col, no_wrap=True)
    table.add_column("after", no_wrap=True)
    for tap in loaded.taps:
        cell = "\n".join([tap.name + (f" [{tap.loop}]" if tap.loop else "")] + _aliases(tap))
        table.add_row(cell, _shape(tap.shape), tap.unit, _tolerance(tap), "\n".join(tap.after))
    con = console()
    con.print(verdict_text(f"OK: {loaded.name} ({loaded.path}): {len(loaded)} taps"))
    con.print(table)
    return 0


def _aliases(tap) -> list[str]:
    return [f"  = {', '.join(names)} ({side})" for side, names in tap.aliases.items() if names]


def _shape(shape) -> str:
    if shape is None:
        return "any"
    return "-" if shape == () else "x".join(map(str, shape))


def _tolerance(tap) -> str:
    if tap.rtol is None:
        return "-"
    return f"{_short(tap.rtol)}/{_short(tap.atol)}"


def _short(x: float) -> str:
    return f"{x:g}".replace("e-0", "e-").replace("e+0", "e+")
