"""``nbtrace hunt``: render both images, compare, trace chosen pixels, name the root cause."""

from __future__ import annotations

import json

import click

from nbtrace.cli import PassThroughCommand

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
@click.option("--npixels", type=click.IntRange(5, 64), default=7, show_default=True,
              help="How many pixels to trace: 4 fixed ones (centre, edge, corners) traced in the render pass, the rest (at least 1) chosen from the images and traced in one more run per side.")
@click.option("--maps", is_flag=True,
              help="Also dump every tap over a region (full frame up to 256x256, else a full-width band "
                   "through the centre) and map where each diverges.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Write summary.md, metrics.json, run_metadata.json, images.png, maps and report.html here.")
@click.option("--corr-min", type=float, default=0.999, show_default=True, help="Image correlation needed.")
@click.option("--sum-tol", type=float, default=5e-3, show_default=True, help="Allowed |sum ratio - 1|.")
@click.option("--spec", "spec_path", type=click.Path(dir_okay=False), default=None,
              help="Tap spec (YAML); default: the shipped nanoBragg spec.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=900, show_default=True, help="Seconds per producer run.")
@click.option("--dtype", type=click.Choice(["float64", "float32"]), default=None,
              help="The port's compute dtype (passed to it as -dtype); float32 lets differences within float32 "
                   "noise be classed as precision, not as a bug.")
@click.option("--json", "as_json", is_flag=True, help="Print the diff JSON contract plus image metrics and traced pixels.")
def command(nb_args, c_bin, port_cmd, inject, npixels, maps, out_dir, corr_min, sum_tol, spec_path, timeout, dtype, as_json):
    """Find where the port stops agreeing with the C reference, starting from the images.

    Renders both images (in parallel), compares them, traces the pixels that matter on both
    sides in one run each, compares the inputs each side read, diffs the traces with the
    engine and names the root cause with its evidence. Progress goes to stderr.
    Exit 0 agree, 1 diverge, 2 bad input.

    Example: nbtrace hunt --inject svec-two-pi -- -lambda 1 -cell 50 50 50 90 90 90 -N 3 -default_F 10 -detpixels 64
    """
    from pathlib import Path

    from nbtrace.cli import ensure_output_dir, record_verdict, require_sim
    from nbtrace.run.hunt import HuntOptions, hunt
    from nbtrace.report.hunt import report_lines, to_json
    from nbtrace.engine.images import Thresholds

    if port_cmd is None:
        require_sim("hunt")
    thresholds = Thresholds(corr_min, sum_tol)  # validates the ranges before any rendering
    if out_dir:  # before the renders: a refused --out must not cost the whole hunt
        ensure_output_dir(out_dir, "--out")

    opts = HuntOptions(nb_args=tuple(nb_args), c_bin=c_bin, port_cmd=port_cmd, inject=tuple(inject),
                       npixels=npixels, maps=maps, out_dir=Path(out_dir) if out_dir else None,
                       thresholds=thresholds, spec_path=spec_path, timeout=timeout, dtype=dtype)
    result = hunt(opts, progress=lambda m: click.echo(m, err=True))
    if out_dir:
        from nbtrace.report.html import write_outputs

        written = write_outputs(result, Path(out_dir))
        click.echo(f"hunt: wrote {', '.join(p.name for p in written)} to {out_dir}", err=True)
    code = record_verdict(0 if result.agrees else 1)
    if as_json:
        click.echo(json.dumps(to_json(result), indent=2))
    else:
        for line in report_lines(result):
            click.echo(line)
    return code
