"""Self-contained HTML reports (one file; figures inline as base64 so it can be mailed or
attached to an issue): verdict and root cause in plain words first, the pipeline drawing, the
figures, a sortable tap table, collapsible detail, links to the files beside it.

Renderers only read frozen results; the page is a jinja2 template shipped with the package
(templates/report.html.j2).
"""

from __future__ import annotations

import base64
import json
import math
import re
from pathlib import Path

from nbtrace.report.common import below_headline, fmt_num, place, plain, short_headline, verdict_word

TEMPLATE = "report.html.j2"
# what each kind of file beside a report is, for the links list
FILE_ROLES = (
    ("c.trace", "C reference trace (every traced pixel)"), ("port.trace", "port trace (every traced pixel)"),
    (".meta.json", "capture sidecar: command, producer, checksums"), ("summary.md", "this report as markdown"),
    ("metrics.json", "every number as JSON"), ("run_metadata.json", "versions, machine, inputs"),
    (".float", "image (raw float32)"), (".npz", "region dump (every tap over a region)"), (".png", "figure"),
)


def _codes(text) -> str:
    """Escape, then show `name` as code (the engine quotes tap names in backticks)."""
    from markupsafe import Markup, escape

    return Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", str(escape(str(text)))))


def environment():
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")),
                             autoescape=True, trim_blocks=True, lstrip_blocks=True,
                             undefined=jinja2.StrictUndefined)
    env.filters["codes"] = _codes
    return env


def data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _num_v(x) -> str:
    """A sort key for the table: finite numbers as they are, inf/nan last, none first."""
    if x is None:
        return "-1e308"
    try:
        x = float(x)
    except (TypeError, ValueError):
        return "-1e308"
    return repr(x) if math.isfinite(x) else "1e308"


def tap_rows(result) -> list[dict]:
    rows = []
    for f in result.findings:
        v = f.verdict
        rows.append({"status": f.status, "label": v.label, "kind": verdict_word(f),
                     "factor": fmt_num(v.factor), "factor_v": _num_v(v.factor),
                     "rel": fmt_num(v.max_rel), "rel_v": _num_v(v.max_rel),
                     "tol": fmt_num(v.tolerance), "tol_v": _num_v(v.tolerance),
                     "where": place(v.index) if not v.agrees else ""})
    return rows


def files_beside(out_dir: Path, exclude=("report.html",)) -> list[tuple[str, str]]:
    out = []
    for p in sorted(Path(out_dir).iterdir()):
        if not p.is_file() or p.name in exclude:
            continue
        role = next((what for suffix, what in FILE_ROLES if p.name.endswith(suffix)), "")
        out.append((p.name, role))
    return out


def split_headline(line: str) -> tuple[str, str]:
    word, sep, rest = line.partition(":")
    return (word, sep + rest) if sep and word.split()[0].isupper() else ("", line)


def render_page(**ctx) -> str:
    from nbtrace.report.pipeline import legend

    ctx.setdefault("legend", legend())
    for key in ("facts", "figures", "taps", "sections", "files", "explanation"):
        ctx.setdefault(key, [])
    ctx.setdefault("pipeline", "")
    word, rest = split_headline(ctx.pop("headline"))
    ctx.update(word=word, headline_rest=rest)
    return environment().get_template(TEMPLATE).render(**ctx)


def diff_page(result, spec, figures, out_dir: Path | None) -> str:
    from nbtrace.report.common import sides, totals
    from nbtrace.report.pipeline import pipeline_svg

    head = short_headline(result)
    explanation = [t for t in (below_headline(head, result.headline),) if t]
    explanation += [p.text for p in result.patterns]
    facts = [("totals", totals(result))] + [tuple(s.split(": ", 1)) for s in sides(result)]
    facts += [("warning", w) for w in result.warnings]
    sections = [{"title": f"{f.verdict.label} ({f.status}): the comparison in full", "text": plain(f.verdict.message),
                 "open": f.status == "introduced", "rows": [], "head": [], "numeric": ()}
                for f in result.findings if f.status in ("introduced", "inherited", "immaterial")]
    return render_page(command="diff", verdict=result.verdict.upper(), agrees=bool(result), headline=head,
                       explanation=explanation, facts=facts, pipeline=pipeline_svg(spec, result),
                       figures=[(c, data_uri(p)) for c, p in figures], taps=tap_rows(result), sections=sections,
                       files=_inputs(result) + (files_beside(out_dir) if out_dir else []))


def _inputs(result) -> list[tuple[str, str]]:
    """Links to the two traces that were diffed (they are not copied beside the report)."""
    out = []
    for path, what in ((result.path_a, "A, the reference trace"), (result.path_b, "B, the port's trace")):
        p = Path(path)
        if p.is_file():
            out.append((p.resolve().as_uri(), what))
            side = Path(str(p) + ".meta.json")
            if side.is_file():
                out.append((side.resolve().as_uri(), f"sidecar of {what.split(',')[0]}"))
    return out


def write_diff_outputs(result, spec, out_dir: str, argv, inputs, figures=()) -> list[Path]:
    """summary.md, metrics.json, run_metadata.json and report.html (figures already written into
    ``out_dir`` are embedded). UsageError (one line) when the directory cannot be written."""
    from nbtrace.errors import UsageError
    from nbtrace.report import render
    from nbtrace.run.provenance import run_metadata

    d = Path(out_dir)
    try:
        d.mkdir(parents=True, exist_ok=True)
        (d / "summary.md").write_text(render(result, "md"), encoding="utf-8")
        (d / "metrics.json").write_text(json.dumps(result.to_json(), indent=2, ensure_ascii=False) + "\n",
                                        encoding="utf-8")
        (d / "run_metadata.json").write_text(json.dumps(run_metadata(argv, inputs), indent=2) + "\n",
                                             encoding="utf-8")
        (d / "report.html").write_text(diff_page(result, spec, list(figures), d), encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write the report: {exc.strerror or exc}", where=str(out_dir),
                         hint="give --out a writable directory") from None
    return [d / n for n in ("summary.md", "metrics.json", "run_metadata.json", "report.html")]


def compare_page(res, figures, image_names, out_dir: Path) -> str:
    from nbtrace.engine.images import metrics_lines

    word = "AGREE" if res else "DIVERGE"
    head = f"{word}: image B {image_names[1]} {'agrees with' if res else 'differs from'} A {image_names[0]}"
    facts = [("outside threshold", w) for w in res.failures]
    for line in metrics_lines(res.full, res.thresholds):
        key, _, value = line.strip().partition("  ")
        facts.append((key.strip(), value.strip()))
    return render_page(command="compare", verdict=word, agrees=bool(res), headline=head, facts=facts,
                       figures=[(c, data_uri(p)) for c, p in figures], files=files_beside(out_dir))


def maps_page(res, figures, lines, out_dir: Path) -> str:
    word = "AGREE" if res else "DIVERGE"
    return render_page(command="maps", verdict=word, agrees=bool(res), headline=lines[0],
                       explanation=[ln.strip() for ln in lines[1:] if ln.startswith("  ") and not ln.startswith("   ")],
                       figures=[(c, data_uri(p)) for c, p in figures], files=files_beside(out_dir),
                       sections=[{"title": "The whole report as text", "text": "\n".join(lines), "rows": [],
                                  "head": [], "numeric": (), "open": False}])
