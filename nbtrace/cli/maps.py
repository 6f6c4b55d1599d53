"""``nbtrace maps A.npz B.npz``: where on the detector each tap of two region dumps diverges."""

from __future__ import annotations

import json

import click


@click.command()
@click.argument("dump_a", type=click.Path(dir_okay=False))
@click.argument("dump_b", type=click.Path(dir_okay=False))
@click.option("--spec", "spec_path", type=click.Path(dir_okay=False), default=None,
              help="Tap spec (YAML) giving order and tolerances; default: the shipped nanoBragg spec.")
@click.option("--png", "png_dir", type=click.Path(file_okay=False), default=None,
              help="Directory for first_divergent.png (legend included) and taps.png.")
@click.option("--json", "as_json", is_flag=True, help="Print the per-tap maps summary as JSON.")
def command(dump_a, dump_b, spec_path, png_dir, as_json):
    """Compare two region dumps (-trace_roi ... -trace_dump FILE.npz): A reference, B port.

    For each tap (pipeline order) it says in how many pixels it is out of tolerance and where,
    and maps the FIRST divergent tap of every pixel. Exit 0 when every tap agrees everywhere,
    1 otherwise, 2 on bad input.
    """
    from nbtrace.cli import ensure_output_dir, record_verdict
    from nbtrace.engine.maps import compare_dumps, load_dump

    out = ensure_output_dir(png_dir, "--png") if png_dir else None
    spec = _spec(spec_path)
    res = compare_dumps(load_dump(dump_a), load_dump(dump_b), spec)
    written = write_pngs(res, out) if out else []
    code = record_verdict(0 if res else 1)
    if as_json:
        doc = res.to_json()
        doc["png"] = [str(p) for p in written]
        click.echo(json.dumps(doc, indent=2))
        return code
    for line in render_text(res):
        click.echo(line)
    for p in written:
        click.echo(f"map: {p}")
    return code


def _spec(path):
    from nbtrace.engine import spec as spec_mod
    from nbtrace.errors import NbtraceError

    if path:
        return spec_mod.load_spec(path)
    try:
        return spec_mod.default_spec()
    except (NbtraceError, OSError, ImportError):  # shipped spec absent in a partial install: fall back to dump order
        return None


def render_text(res) -> list[str]:
    xmin, xmax, ymin, ymax = res.roi
    head = "region agrees" if res else "region DIVERGES"
    lines = [f"{head}: fast {xmin}..{xmax}, slow {ymin}..{ymax} (inclusive), {res.first_label.size:,} pixels, "
             f"{len(res.order)} taps compared"]
    lines += [f"  {s}" for s in res.summary()]
    counts = res.first_counts()
    if counts:
        lines.append("first divergent tap per pixel (pipeline order):")
        lines += [f"  {name:<26} {c:>9,} pixels" for name, c in counts]
    for side, names in (("A", res.only_in_a), ("B", res.only_in_b)):
        if names:
            lines.append(f"  only in {side}: {', '.join(names)}")
    return lines


def write_pngs(res, out_dir) -> list:
    from pathlib import Path

    from nbtrace.engine.maps import first_divergent_png, per_tap_png
    from nbtrace.figures.png import write_png

    from nbtrace.cli import ensure_output_dir

    d = ensure_output_dir(str(out_dir), "--png")
    paths = [write_png(d / "first_divergent.png", first_divergent_png(res))]
    taps = per_tap_png(res)
    if taps is not None:
        paths.append(write_png(d / "taps.png", taps))
    return paths
