"""``nbtrace maps A.npz B.npz``: where on the detector each tap of two region dumps diverges."""

from __future__ import annotations

import json

import click

from nbtrace.cli.options import out_option, png_option, probe_dir, spec_option


@click.command()
@click.argument("dump_a", type=click.Path(dir_okay=False))
@click.argument("dump_b", type=click.Path(dir_okay=False))
@spec_option
@png_option
@out_option("metrics.json")
@click.option("--json", "as_json", is_flag=True, help="Print the per-tap maps summary as JSON.")
def command(dump_a, dump_b, spec_path, png_dir, out_dir, as_json):
    """Compare two region dumps (-trace_roi ... -trace_dump FILE.npz): A reference, B port.

    For each tap (pipeline order) it says in how many pixels it is out of tolerance and where,
    and maps the FIRST divergent tap of every pixel. Figures: maps_first_divergent.png and
    maps_taps.png (every divergent tap's relative error; maps_taps_1.png, _2.png ... when more
    than 12 diverge). Exit 0 when every tap agrees everywhere, 1 otherwise, 2 on bad input.
    """
    from nbtrace.cli import record_verdict
    from nbtrace.engine.maps import compare_dumps, load_dump

    for d, opt in ((png_dir, "--png"), (out_dir, "--out")):
        if d:
            probe_dir(d, opt)
    spec = _spec(spec_path)
    res = compare_dumps(load_dump(dump_a), load_dump(dump_b), spec)
    written = write_pngs(res, png_dir) if png_dir else []
    if out_dir:
        written += _write_out(res, out_dir, (dump_a, dump_b))
    code = record_verdict(0 if res else 1)
    if as_json:
        doc = res.to_json()
        doc["figures"] = [str(p) for p in written]
        click.echo(json.dumps(doc, indent=2))
        return code
    for line in render_text(res):
        click.echo(line)
    for p in written:
        click.echo(f"wrote {p}")
    return code


def _spec(path):
    from nbtrace.engine import spec as spec_mod
    from nbtrace.errors import NbtraceError

    if path:
        from nbtrace.cli.options import load_spec_arg

        return load_spec_arg(path)
    try:
        return spec_mod.default_spec()
    except (NbtraceError, OSError, ImportError):  # shipped spec absent in a partial install: fall back to dump order
        return None


def render_text(res) -> list[str]:
    xmin, xmax, ymin, ymax = res.roi
    head = "AGREE: the region agrees" if res else "DIVERGE: the region diverges"
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
    from nbtrace.figures.maps import maps_figures
    from nbtrace.report.progress import Steps

    with Steps(keep=False) as steps:
        steps("maps: drawing the figures")
        return [p for _, p in maps_figures(res, out_dir)]


def _write_out(res, out_dir, dumps) -> list:
    """metrics.json, run_metadata.json, the figures and report.html."""
    import sys
    from pathlib import Path

    from nbtrace.report.html import maps_page
    from nbtrace.run.provenance import run_metadata

    d = Path(out_dir)
    from nbtrace.figures.maps import maps_figures

    figures = maps_figures(res, d)
    (d / "metrics.json").write_text(json.dumps(res.to_json(), indent=2) + "\n", encoding="utf-8")
    (d / "run_metadata.json").write_text(json.dumps(run_metadata(list(sys.argv), {"a": dumps[0], "b": dumps[1]}),
                                                    indent=2) + "\n", encoding="utf-8")
    (d / "report.html").write_text(maps_page(res, figures, render_text(res), d), encoding="utf-8")
    return [p for _, p in figures] + [d / "metrics.json", d / "run_metadata.json", d / "report.html"]
