"""``nbtrace compare A B``: image metrics of a port's image (B) against the reference (A)."""

from __future__ import annotations

import json

import click

from nbtrace.cli import PassThroughCommand
from nbtrace.cli.options import out_option, png_option, probe_dir

# the nanoBragg flags compare reads after `--` (detector shape and geometry) and how many values
# each takes; any other word is refused rather than silently ignored
READS = {"-detpixels": 1, "-detpixels_f": 1, "-detpixels_x": 1, "-detpixels_s": 1, "-detpixels_y": 1,
         "-detsize": 1, "-detsize_f": 1, "-detsize_s": 1, "-pixel": 1, "-pixel_size": 1, "-distance": 1,
         "-Xbeam": 1, "-Ybeam": 1}


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
@png_option
@out_option("metrics.json")
@click.option("--json", "as_json", is_flag=True, help="Print every metric as JSON.")
def command(image_a, image_b, nb_args, shape, rois, corr_min, sum_tol, peaks, png_dir, out_dir, as_json):
    """Compare image B (port) against A (reference): raw float32, SMV (.img) or .npy.

    Exit 0 when the frame and every --roi are within the thresholds, 1 when not, 2 on bad
    input. Raw files need a shape: --shape SLOW FAST, or the detector's nanoBragg args after
    `--` (e.g. `nbtrace compare c.bin py.bin -- -detpixels 256 -pixel 0.2 -distance 500`):
    -detpixels[_f|_s|_x|_y], -detsize[_f|_s], -pixel, -distance, -Xbeam, -Ybeam; the
    figures' radial profiles use the distance and beam centre.
    """
    from nbtrace.cli import record_verdict
    from nbtrace.errors import UsageError
    from nbtrace.engine.images import Roi, Thresholds, compare_arrays, metrics_lines, read_image, shape_from_nb_args

    if nb_args and not all(isinstance(a, str) for a in nb_args):
        raise UsageError("nanoBragg args must be words", "command line")
    if shape is not None and nb_args:
        raise UsageError("give --shape or nanoBragg args, not both", "command line")
    if shape is not None and min(shape) < 1:
        raise UsageError(f"--shape {shape[0]} {shape[1]} must be positive", "--shape")
    _check_words(list(nb_args))
    for d, opt in ((png_dir, "--png"), (out_dir, "--out")):
        if d:  # refused before any reading
            probe_dir(d, opt)
    if shape is None and nb_args:
        shape = shape_from_nb_args(list(nb_args))
    t = Thresholds(corr_min=corr_min, sum_tol=sum_tol)  # validates the ranges before any reading
    a = read_image(image_a, shape)
    b = read_image(image_b, shape)
    roi_objs = tuple(Roi(*r) for r in rois)
    res = compare_arrays(a, b, names=(image_a, image_b), rois=roi_objs, thresholds=t, peaks=peaks)
    written = _outputs(res, a, b, (image_a, image_b), list(nb_args), png_dir, out_dir)
    code = record_verdict(0 if res else 1)
    if as_json:
        doc = res.to_json()
        doc["figures"] = [str(p) for p in written]
        click.echo(json.dumps(doc, indent=2))
        return code
    s, f = res.full.shape
    head = "AGREE: the images agree" if res else "DIVERGE: the images disagree"
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
    for p in written:
        click.echo(f"wrote {p}")
    return code


def _check_words(words: list[str]) -> None:
    """Every word after `--` is a flag compare reads, followed by its value."""
    from nbtrace.errors import UsageError

    i = 0
    while i < len(words):
        w = words[i]
        if w not in READS:
            raise UsageError(f"compare does not read {w!r} after `--`", "command line",
                             "it reads only the detector's shape and geometry: " + " ".join(READS))
        n = READS[w]
        if i + n >= len(words):
            raise UsageError(f"{w} needs a value", "command line", f"e.g. {w} 256")
        i += n + 1


def _outputs(res, a, b, paths, nb_args, png_dir, out_dir) -> list:
    """Figures into --png, and the whole report into --out; the paths written."""
    from pathlib import Path

    if not png_dir and not out_dir:
        return []
    from nbtrace.figures.images import geometry_from_nb_args, image_figures
    from nbtrace.report.progress import Steps

    names = (f"A: {Path(paths[0]).name}", f"B: {Path(paths[1]).name}")
    geometry = geometry_from_nb_args(nb_args, a.shape) if "-distance" in nb_args else None
    written = []
    with Steps(keep=False) as steps:
        steps("compare: drawing the figures")
        if png_dir:
            written += [p for _, p in image_figures(a, b, png_dir, names=names, geometry=geometry)]
        if out_dir:
            from nbtrace.report.html import compare_page
            from nbtrace.run.provenance import run_metadata

            import sys

            d = Path(out_dir)
            figures = image_figures(a, b, d, names=names, geometry=geometry)
            (d / "metrics.json").write_text(json.dumps(res.to_json(), indent=2) + "\n", encoding="utf-8")
            (d / "run_metadata.json").write_text(json.dumps(run_metadata(list(sys.argv), {"a": paths[0], "b": paths[1]}),
                                                            indent=2) + "\n", encoding="utf-8")
            (d / "report.html").write_text(compare_page(res, figures, paths, d), encoding="utf-8")
            written += [p for _, p in figures] + [d / "metrics.json", d / "run_metadata.json", d / "report.html"]
    return written
