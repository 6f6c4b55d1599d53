"""`nbtrace isolate`: every independent bug of a port in one run, by replaying each stage's inputs."""

from __future__ import annotations

import json

import click

from nbtrace.cli import PassThroughCommand, record_verdict


def render(result) -> str:
    """The console report: the bugs first (each with its factor and meaning), then the taps that
    only inherited, then what first-divergence alone would have said."""
    b = result.baseline
    if result.verdict == "agree":
        return f"AGREE: the port agrees with the reference at {len(result.pixels)} traced pixel(s); nothing to isolate.\n"
    bugs = result.bugs
    stages = result.stages
    groups = result.bug_groups()
    lines = [f"ISOLATE: {len(groups)} independent bug(s) among {len(stages)} divergent tap(s) "
             f"({len(result.runs)} run(s) of the port, {len(result.pixels)} traced pixel(s))"]
    for group in groups:
        s = group[0]
        label = ", ".join(g.label for g in group)
        how = (f"with the reference's {', '.join(s.replayed)}" if s.replayed
               else "no input of it is tapped on both sides" if s.status == "bug-no-inputs"
               else "its inputs agree")
        lines.append(f"  BUG {label}: {s.explanation}  [{how}]")
        if s.not_replayed:
            lines.append(f"      (inputs the port does not tap, not replayed: {', '.join(s.not_replayed)})")
    inherited = [s.label for s in stages if s.status == "inherited"]
    if inherited:
        lines.append(f"  inherited only (agree once their inputs are the reference's): {', '.join(inherited)}")
    unknown = [s for s in stages if s.status == "inconclusive"]
    for s in unknown:
        lines.append(f"  INCONCLUSIVE {s.label}: {s.explanation or 'none of its inputs is tapped on both sides'}")
    if not bugs:
        lines.append("  no stage diverges on its own: the divergence enters through taps the port does not print")
    root = b.root_cause
    lines.append(f"first divergence alone: {root.tap if root else 'none'}"
                 + (f" ({len(groups) - 1} more bug(s) found by isolating)" if root and len(groups) > 1 else ""))
    return "\n".join(lines) + "\n"


@click.command(cls=PassThroughCommand)
@click.argument("reference", type=click.Path(dir_okay=False))
@click.option("--cmd", "cmd", metavar="TEMPLATE",
              help="The port's command, run once as it is and once per stage with NBTRACE_PIXELS, NBTRACE_OUT, "
                   "NBTRACE_REPLAY, NBTRACE_REPLAY_TAPS set; {pixels} {out} {replay} {replay_taps} in it are "
                   "replaced too.")
@click.option("--sim", is_flag=True, help="The port is the built-in PyTorch simulator (nanoBragg arguments after --).")
@click.option("--inject", multiple=True, metavar="NAME",
              help="With --sim: a fault injection (repeatable; nbsim --list-injections).")
@click.option("--spec", "spec_path", help="Tap spec (YAML or shipped name) whose after: edges give each tap's inputs "
                                           "(default: the shipped spec that fits).")
@click.option("--prefix", help="The reference's tap prefix when its file holds two.")
@click.option("--timeout", type=float, default=600.0, show_default=True, help="Seconds per run of the port.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.argument("nb_args", nargs=-1, type=click.UNPROCESSED)
def command(reference, cmd, sim, inject, spec_path, prefix, timeout, as_json, nb_args):
    """Name every independent bug of a port in one run: for each divergent tap (pipeline order),
    re-run the port with the reference's values of that tap's inputs and see whether it still
    diverges (a bug in this stage) or agrees (it only inherited).

    Exit 0: the port agrees; 1: it diverges (bugs listed); 2: bad input.
    """
    from nbtrace.errors import UsageError
    from nbtrace.run.isolate import isolate

    if cmd and sim:
        raise UsageError("--cmd and --sim both name the port", hint="give one of them")
    if not (cmd or sim):
        raise UsageError("give the port's command", "--cmd",
                         "nbtrace isolate REF.log --cmd 'python my_port.py' (or --sim -- <nanoBragg args>)")
    if inject and not sim:
        raise UsageError("--inject is for the built-in simulator", hint="add --sim, or drop --inject")
    if nb_args and not sim:
        raise UsageError("arguments after -- are the built-in simulator's",
                         hint="a --cmd port takes its arguments inside the template: --cmd 'python my_port.py ARGS'")
    if sim:
        from nbtrace.run.isolate import simulator_command

        cmd = simulator_command(nb_args, inject)
    result = isolate(reference, cmd, spec=spec_path, timeout=timeout, prefix=prefix, simulator=sim,
                     progress=lambda m: click.echo(m, err=True))
    code = record_verdict(result.exit_code())
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        click.echo(render(result), nl=False)
    return code
