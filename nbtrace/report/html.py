"""Files a hunt leaves behind: summary.md, metrics.json, run_metadata.json, PNG panels and a
self-contained report.html (pictures inline as base64 data URIs, so it can be mailed or
attached to an issue as one file). Renderers only read the frozen HuntResult."""

from __future__ import annotations

import base64
import html
import json
import platform
import sys
from pathlib import Path

from nbtrace.engine.images import read_image


def _images_png(result, out: Path) -> Path | None:
    from nbtrace.figures.png import image_panel, write_png

    try:
        a = read_image(result.files["image_c"], result.shape)
        b = read_image(result.files["image_py"], result.shape)
    except (KeyError, OSError):
        return None
    return write_png(out / "images.png", image_panel(a, b, names=("C reference", "port")))


def _maps_pngs(result, out: Path) -> list[Path]:
    if result.maps is None:
        return []
    from nbtrace.engine.maps import first_divergent_png, per_tap_png
    from nbtrace.figures.png import write_png

    paths = [write_png(out / "maps_first_divergent.png", first_divergent_png(result.maps))]
    taps = per_tap_png(result.maps)
    if taps is not None:
        paths.append(write_png(out / "maps_taps.png", taps))
    return paths


def run_metadata(result) -> dict:
    """Provenance of the hunt itself; nbtrace.run.provenance (when present) adds machine/git details."""
    doc = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "nb_args": list(result.nb_args),
        "built_in_default": result.default_config,
        "inject": list(result.options.inject),
        "timings_s": {k: round(v, 4) for k, v in result.timings.items()},
        "producers": result.meta,
    }
    try:
        from nbtrace.run.provenance import run_metadata as collect  # A2's module: versions, git SHA, checksums
    except ImportError:
        return doc
    inputs = {k: v for k, v in result.files.items() if k.startswith("trace_") or k.startswith("image_")}
    doc.update(collect(["nbtrace", "hunt", *sys.argv[1:]], inputs))
    return doc


def summary_markdown(result) -> str:
    from nbtrace.report.hunt import report_lines

    lines = report_lines(result)
    return f"# nbtrace hunt\n\n**{lines[0]}**\n\n```\n" + "\n".join(lines[2:]) + "\n```\n"


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def report_html(result, pictures: list[tuple[str, Path]]) -> str:
    from nbtrace.report.hunt import report_lines

    lines = report_lines(result)
    colour = "#1a7f37" if result.agrees else "#b42318"
    figs = "\n".join(
        f'<figure><img alt="{html.escape(title)}" src="{_data_uri(p)}"><figcaption>{html.escape(title)}'
        f"</figcaption></figure>" for title, p in pictures
    )
    body = html.escape("\n".join(lines[2:]))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>nbtrace hunt: {result.verdict}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; max-width: 1100px; }}
h1 {{ font-size: 1.2em; color: {colour}; }}
pre {{ background: #f6f8fa; padding: 1em; overflow-x: auto; font-size: 0.85em; }}
figure {{ margin: 1em 0; }} img {{ max-width: 100%; image-rendering: pixelated; border: 1px solid #ddd; }}
</style></head><body>
<h1>{html.escape(lines[0])}</h1>
{figs}
<pre>{body}</pre>
</body></html>
"""


def write_outputs(result, out: Path) -> list[Path]:
    """Write every hunt output into ``out``; returns the paths written. UsageError (one line,
    naming the directory) when the file system refuses."""
    from nbtrace.errors import UsageError

    try:
        return _write_outputs(result, out)
    except OSError as exc:
        where = exc.filename if exc.filename is not None else str(out)
        raise UsageError(f"cannot write the hunt report ({exc.strerror or exc})", str(where),
                         "choose a writable --out directory") from None


def _write_outputs(result, out: Path) -> list[Path]:
    from nbtrace.report.hunt import to_json

    out.mkdir(parents=True, exist_ok=True)
    written = []
    (out / "summary.md").write_text(summary_markdown(result))
    written.append(out / "summary.md")
    (out / "metrics.json").write_text(json.dumps(to_json(result), indent=2) + "\n")
    written.append(out / "metrics.json")
    (out / "run_metadata.json").write_text(json.dumps(run_metadata(result), indent=2, default=str) + "\n")
    written.append(out / "run_metadata.json")
    pictures = []
    panel = _images_png(result, out)
    if panel is not None:
        pictures.append(("C reference, port and their signed log difference", panel))
        written.append(panel)
    for p in _maps_pngs(result, out):
        title = "first divergent tap per pixel" if "first" in p.name else "where each divergent tap is out of tolerance"
        pictures.append((title, p))
        written.append(p)
    (out / "report.html").write_text(report_html(result, pictures))
    written.append(out / "report.html")
    return written
