"""``nbtrace hunt``: render both images, compare, trace chosen pixels, name the root cause."""

from __future__ import annotations

import json

import click

from nbtrace.cli import PassThroughCommand
from nbtrace.cli.options import out_option, png_option, probe_dir, spec_option

_DEFAULT_HELP = ("-lambda 0.5 -cell 100 100 100 90 90 90 -N 5 -default_F 100 -distance 500 "
                 "-detpixels 256 -pixel 0.2")


@click.command(cls=PassThroughCommand,
               epilog=f"Built-in default configuration (used when no nanoBragg args follow --): {_DEFAULT_HELP}")
@click.argument("nb_args", nargs=-1, type=click.UNPROCESSED)
@click.option("--c-bin", default=None, metavar="PATH",
              help="Your nanoBragg C build (else NB_C_BIN, else the C reference built by nbtrace).")
@click.option("--port-cmd", default=None, metavar="CMD",
              help="Your port's command (shell words; args appended). Default: the PyTorch simulator.")
@click.option("--inject", multiple=True, metavar="NAME",
              help="Fault to inject into the PyTorch simulator (repeatable; see python -m nbtrace.sim --list-injections).")
@click.option("--replay", multiple=True, metavar="TAP",
              help="Trace the chosen pixels with the port taking TAP's values from the C trace of the same "
                   "pixels (repeatable; the images are rendered without replay). Isolates the stages after TAP.")
@click.option("--npixels", type=click.IntRange(5, 64), default=7, show_default=True,
              help="How many pixels to trace: 4 fixed ones (centre, edge, corners) traced in the render pass, the rest (at least 1) chosen from the images and traced in one more run per side.")
@click.option("--maps", is_flag=True,
              help="Also dump every tap over a region (full frame up to 256x256, else a full-width band "
                   "through the centre) and map where each diverges.")
@out_option("both images, one diffable trace per side (c.trace, port.trace) with sidecars, summary.md, "
            "metrics.json, run_metadata.json")
@png_option
@click.option("--corr-min", type=float, default=0.999, show_default=True, help="Image correlation needed.")
@click.option("--sum-tol", type=float, default=5e-3, show_default=True, help="Allowed |sum ratio - 1|.")
@spec_option
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=900, show_default=True, help="Seconds per producer run.")
@click.option("--dtype", type=click.Choice(["float64", "float32"]), default=None,
              help="The port's compute dtype (passed to it as -dtype); float32 lets differences within float32 "
                   "noise be classed as precision, not as a bug.")
@click.option("--json", "as_json", is_flag=True, help="Print the diff JSON contract plus image metrics and traced pixels.")
@click.option("--max-pixels", type=int, default=None, metavar="N", help="Raise the cap on detector pixels (see capture).")
@click.option("--max-steps", type=int, default=None, metavar="N", help="Raise the cap on sub-steps per pixel (see capture).")
def command(nb_args, c_bin, port_cmd, inject, replay, npixels, maps, out_dir, png_dir, corr_min, sum_tol, spec_path, timeout,
            dtype, as_json, max_pixels, max_steps):
    """Find where the port stops agreeing with the C reference, starting from the images.

    Renders both images (in parallel), compares them, traces the pixels that matter on both
    sides in one run each, compares the inputs each side read, diffs the traces with the
    engine and names the root cause with its evidence. Progress goes to stderr.
    Exit 0 agree, 1 diverge, 2 bad input.

    Example: nbtrace hunt --inject svec-two-pi -- -lambda 1 -cell 50 50 50 90 90 90 -N 3 -default_F 10 -detpixels 64
    """
    import contextlib
    import tempfile
    from pathlib import Path

    from nbtrace.cli import record_verdict, require_sim
    from nbtrace.cli.options import load_spec_arg
    from nbtrace.engine.images import Thresholds
    from nbtrace.report.console import console, verdict_text
    from nbtrace.report.hunt import report_lines, to_json
    from nbtrace.report.progress import Steps
    from nbtrace.run.hunt import HuntOptions, hunt

    if port_cmd is None:
        require_sim("hunt")
    thresholds = Thresholds(corr_min, sum_tol)  # validates the ranges before any rendering
    for d, opt in ((out_dir, "--out"), (png_dir, "--png")):
        if d:  # before the renders: a refused directory must not cost the whole hunt
            probe_dir(d, opt)
    spec = load_spec_arg(spec_path)  # a bad spec is refused before the renders too

    with contextlib.ExitStack() as stack, Steps(label_prefix="hunt:") as steps:
        work, say = Path(out_dir) if out_dir else None, steps
        if png_dir and not out_dir:
            # the figures need the images after the hunt: keep its files until they are drawn
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="nbtrace-hunt-"))
            work, say = Path(tmp), _without_dir(tmp, steps)
        opts = HuntOptions(nb_args=tuple(nb_args), c_bin=c_bin, port_cmd=port_cmd, inject=tuple(inject),
                           replay=tuple(replay), npixels=npixels, maps=maps, out_dir=work, thresholds=thresholds,
                           spec_path=spec.path if spec is not None else None, timeout=timeout, dtype=dtype,
                           **{k: v for k, v in (("max_pixels", max_pixels), ("max_steps", max_steps))
                              if v is not None})
        result = hunt(opts, progress=say)
        if out_dir:
            from nbtrace.report.hunt_files import write_outputs

            written = write_outputs(result, Path(out_dir), progress=steps)
            steps(f"hunt: wrote {len(written)} files to {out_dir} (open {Path(out_dir) / 'report.html'})")
        if png_dir:
            from nbtrace.report.hunt_files import hunt_figures

            if out_dir and Path(png_dir).resolve() == Path(out_dir).resolve():
                figures = []  # already drawn there
            else:
                steps("hunt: drawing the figures")
                figures = hunt_figures(result, Path(png_dir))
            for _, p in figures:
                steps(f"figure: {p}")
    code = record_verdict(0 if result.agrees else 1)
    if as_json:
        click.echo(json.dumps(to_json(result), indent=2))
        return code
    con = console()
    lines = report_lines(result, width=con.width)
    con.print(verdict_text(lines[0]), soft_wrap=True)
    for line in lines[1:]:
        con.print(line, soft_wrap=True)  # the terminal wraps; the text stays the text
    return code


def _without_dir(tmp: str, say):
    """Progress that does not point into a temporary directory removed at exit."""
    prefix = tmp.rstrip("/") + "/"
    return lambda m: say(m.replace(prefix, "") + (" (temporary; --out keeps the files)" if prefix in m else ""))
