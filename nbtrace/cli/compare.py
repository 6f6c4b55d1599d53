"""``nbtrace compare A B``: image metrics of a port's image (B) against the reference (A)."""

from __future__ import annotations

import json

import click

from nbtrace.cli import PassThroughCommand


@click.command(cls=PassThroughCommand)
@click.argument("image_a", type=click.Path(dir_okay=False))
@click.argument("image_b", type=click.Path(dir_okay=False))
@click.argument("nb_args", nargs=-1, type=click.UNPROCESSED)
@click.option("--shape", nargs=2, type=int, default=None, metavar="SLOW FAST",
              help="Shape of raw float32 files (spixels fpixels). Or give the nanoBragg args after --.")
@click.option("--roi", "rois", nargs=4, type=int, multiple=True, metavar="XMIN XMAX YMIN YMAX",
              help="Also judge this region: fast min, fast max, slow min, slow max, INCLUSIVE on both "
                   "ends (like nanoBragg -roi). Repeatable.")
@click.option("--corr-min", type=float, default=0.999, show_default=True, help="Pearson correlation needed.")
@click.option("--sum-tol", type=float, default=5e-3, show_default=True, help="Allowed |sum(B)/sum(A) - 1|.")
@click.option("--peaks", type=click.IntRange(0), default=20, show_default=True,
              help="Top-N local maxima of each image to match one-to-one within 1 px.")
@click.option("--png", "png_path", type=click.Path(dir_okay=False), default=None,
              help="Write a panel: A, B and the signed log difference.")
@click.option("--json", "as_json", is_flag=True, help="Print every metric as JSON.")
def command(image_a, image_b, nb_args, shape, rois, corr_min, sum_tol, peaks, png_path, as_json):
    """Compare image B (port) against A (reference): raw float32, SMV (.img) or .npy.

    Exit 0 when the frame and every --roi are within the thresholds, 1 when not, 2 on bad
    input. Raw files need a shape: --shape SLOW FAST, or the producer's nanoBragg args after
    `--` (e.g. `nbtrace compare c.bin py.bin -- -detpixels 256 -pixel 0.2`).
    """
    from nbtrace.cli import check_output_file, record_verdict
    from nbtrace.errors import UsageError
    from nbtrace.engine.images import Roi, Thresholds, compare_arrays, metrics_lines, read_image, shape_from_nb_args

    if nb_args and not all(isinstance(a, str) for a in nb_args):
        raise UsageError("nanoBragg args must be words", "command line")
    if shape is not None and nb_args:
        raise UsageError("give --shape or nanoBragg args, not both", "command line")
    if shape is not None and min(shape) < 1:
        raise UsageError(f"--shape {shape[0]} {shape[1]} must be positive", "--shape")
    if png_path:
        check_output_file(png_path, "--png")
    if shape is None and nb_args:
        shape = shape_from_nb_args(list(nb_args))
    t = Thresholds(corr_min=corr_min, sum_tol=sum_tol)  # validates the ranges before any reading
    a = read_image(image_a, shape)
    b = read_image(image_b, shape)
    roi_objs = tuple(Roi(*r) for r in rois)
    res = compare_arrays(a, b, names=(image_a, image_b), rois=roi_objs, thresholds=t, peaks=peaks)
    if png_path:
        from pathlib import Path

        from nbtrace.figures.png import image_panel, write_png

        write_png(png_path, image_panel(a, b, names=(Path(image_a).name, Path(image_b).name)))
    code = record_verdict(0 if res else 1)
    if as_json:
        click.echo(json.dumps(res.to_json(), indent=2))
        return code
    s, f = res.full.shape
    head = "images agree" if res else "images DISAGREE"
    click.echo(f"{head}: B {image_b} vs A {image_a}, {s}x{f} pixels (slow x fast)")
    for why in res.failures:
        click.echo(f"  outside threshold: {why}")
    click.echo("frame:")
    for line in metrics_lines(res.full, t):
        click.echo(line)
    for r, m in zip(roi_objs, res.rois):
        click.echo(f"roi {r}:")
        for line in metrics_lines(m, t):
            click.echo(line)
    if png_path:
        click.echo(f"panel: {png_path}")
    return code
