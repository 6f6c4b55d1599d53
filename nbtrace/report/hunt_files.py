"""Files a hunt leaves in ``--out``: c.trace and port.trace (one diffable trace per side, with
sidecars), summary.md, metrics.json, run_metadata.json, the figures and a self-contained
report.html. Renderers only read the frozen HuntResult."""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

# the hunt's own files that c.trace / port.trace replace (render pass + follow-up run per side)
SPLIT = {"c": ("render_c.trace", "pixels_c.trace"), "port": ("render_py.trace", "pixels_py.trace")}


def run_metadata(result, out: Path | None = None) -> dict:
    """Provenance of the hunt itself; nbtrace.run.provenance adds machine/git details."""
    doc = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "nb_args": list(result.nb_args),
        "built_in_default": result.default_config,
        "inject": list(result.options.inject),
        "timings_s": {k: round(v, 4) for k, v in result.timings.items()},
        "producers": result.meta,
    }
    from nbtrace.run.provenance import run_metadata as collect

    inputs = {k: v for k, v in result.files.items() if k.startswith("trace_") or k.startswith("image_")}
    if out is not None:  # the split traces were merged into one per side
        inputs.update({k: str(out / n) for k, n in (("trace_c", "c.trace"), ("trace_py", "port.trace"))
                       if (out / n).is_file()})
    doc.update(collect(["nbtrace", "hunt", *sys.argv[1:]], inputs))
    return doc


def summary_markdown(result) -> str:
    from nbtrace.report.hunt import report_lines

    lines = report_lines(result)
    blank = lines.index("")
    explain = "".join(f"{ln}\n\n" for ln in lines[1:blank])
    return f"# nbtrace hunt\n\n**{lines[0]}**\n\n{explain}```\n" + "\n".join(lines[blank + 1:]) + "\n```\n"


def _pixel_block_start(trace) -> int:
    """The first line (1-based) after the setup block: where the pixel records' lines begin."""
    setup = [r.loc.line for r in trace.records if r.index.pixel is None and r.loc is not None]
    pixel = [r.loc.line for r in trace.records if r.index.pixel is not None and r.loc is not None]
    if not pixel:
        return 0
    first = min(pixel)
    return max([ln for ln in setup if ln < first], default=0) + 1


def merge_side(out: Path, side: str) -> Path | None:
    """One diffable trace of a side: the render pass's trace, then the pixel records of the
    follow-up run (its setup block repeats the render's, so it is not copied twice). The split
    files are removed: the merged one holds every line of both but the repeated setup."""
    from nbtrace.engine.parse import read_trace

    first, second = (out / n for n in SPLIT[side])
    if not first.is_file():
        return None
    target = out / f"{side}.trace"
    text = first.read_text(encoding="utf-8", errors="replace")
    meta = _sidecar(first)
    extra = _sidecar(second) if second.is_file() else {}
    again = {tuple(p) for p in extra.get("pixels_traced") or []}
    if second.is_file() and again and again >= {tuple(p) for p in meta.get("pixels_traced") or []}:
        # a replayed hunt traces every pixel again (hunt --replay): that run alone is the trace
        text, meta = second.read_text(encoding="utf-8", errors="replace"), dict(extra, render_pass=first.name)
        env = meta.get("env") or {}
        if Path(env.get("NBTRACE_REPLAY") or "").name == SPLIT["c"][1]:  # renamed below: keep the note true
            env["NBTRACE_REPLAY"] = str(Path(env["NBTRACE_REPLAY"]).with_name("c.trace"))
    elif second.is_file():
        start = _pixel_block_start(read_trace(second))
        lines = second.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
        if start:
            text = text + ("" if text.endswith("\n") or not text else "\n") + "".join(lines[start - 1:])
        meta["pixels_traced"] = list(meta.get("pixels_traced") or []) + list(extra.get("pixels_traced") or [])
        meta["merged_from"] = [first.name, second.name]
        meta["follow_up_run"] = {k: extra.get(k) for k in ("argv", "captured_utc", "wall_s", "returncode")}
    target.write_text(text, encoding="utf-8")
    if meta:
        meta.pop("sha256", None)  # the render trace's checksum no longer describes this file
        (out / f"{side}.trace.meta.json").write_text(json.dumps(meta, indent=2, default=str) + "\n", encoding="utf-8")
    for p in (first, second):
        p.unlink(missing_ok=True)
        Path(str(p) + ".meta.json").unlink(missing_ok=True)
    return target


def _sidecar(trace: Path) -> dict:
    p = Path(str(trace) + ".meta.json")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def write_outputs(result, out: Path, progress=None) -> list[Path]:
    """Write every hunt output into ``out``; returns the paths written. UsageError (one line,
    naming the directory) when the file system refuses."""
    from nbtrace.errors import UsageError

    try:
        return _write_outputs(result, Path(out), progress or (lambda _m: None))
    except OSError as exc:
        where = exc.filename if exc.filename is not None else str(out)
        raise UsageError(f"cannot write the hunt report ({exc.strerror or exc})", str(where),
                         "choose a writable --out directory") from None


def hunt_figures(result, out: Path) -> list[tuple[str, Path]]:
    """The image figures (traced pixels numbered as in the report's pixel table), the maps and
    the tap chart of the diff."""
    from nbtrace.engine.images import read_image
    from nbtrace.figures.images import geometry_from_setup, image_figures

    figures = []
    try:
        a = read_image(result.files["image_c"], result.shape)
        b = read_image(result.files["image_py"], result.shape)
    except (KeyError, OSError):
        a = b = None
    if a is not None:
        setup = (result.meta.get("c") or {}).get("setup") or {}
        figures += image_figures(a, b, out, names=("C reference", "port"), marks=[p.pixel for p in result.pixels],
                                 geometry=geometry_from_setup(setup))
    if result.maps is not None:
        from nbtrace.figures.maps import maps_figures

        figures += maps_figures(result.maps, out)
    d = result.diff if result.diff is not None and result.diff.root_cause is not None else result.region_diff
    d = d if d is not None else result.diff
    if d is not None:
        from nbtrace.figures.taps import diff_figures

        figures += diff_figures(d, out)
    return figures


def _write_outputs(result, out: Path, say) -> list[Path]:
    from nbtrace.report.hunt import to_json
    from nbtrace.report.hunt_html import hunt_page

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for side in ("c", "port"):
        merged = merge_side(out, side)
        if merged is not None:
            written.append(merged)
            say(f"hunt: {' and '.join(SPLIT[side])} (where present) merged into {merged.name}, "
                f"diffable as is: nbtrace diff {out / 'c.trace'} {out / 'port.trace'}" if side == "port" else
                f"hunt: {' and '.join(SPLIT[side])} (where present) merged into {merged.name}")
    (out / "summary.md").write_text(summary_markdown(result), encoding="utf-8")
    (out / "metrics.json").write_text(json.dumps(to_json(result), indent=2) + "\n", encoding="utf-8")
    (out / "run_metadata.json").write_text(json.dumps(run_metadata(result, out), indent=2, default=str) + "\n",
                                           encoding="utf-8")
    written += [out / "summary.md", out / "metrics.json", out / "run_metadata.json"]
    say("hunt: drawing the figures")
    figures = hunt_figures(result, out)
    written += [p for _, p in figures]
    say("hunt: writing report.html")
    (out / "report.html").write_text(hunt_page(result, figures, out), encoding="utf-8")
    written.append(out / "report.html")
    return written
