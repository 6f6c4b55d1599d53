"""The HTML page of a hunt: what the hunt concluded in plain words, then the pipeline drawing,
the figures, the tap table and collapsible evidence (traced pixels, root cause, loops, maps)."""

from __future__ import annotations

from pathlib import Path


def _spec(result):
    from nbtrace.engine import spec as spec_mod
    from nbtrace.errors import NbtraceError

    try:
        if result.options.spec_path:
            return spec_mod.load_spec(result.options.spec_path)
        return spec_mod.default_spec()
    except (NbtraceError, OSError, ImportError):
        return None


def _facts(r) -> list[tuple[str, str]]:
    from nbtrace.engine.images import metrics_lines

    facts = [("configuration", " ".join(r.nb_args) + ("  (built-in default)" if r.default_config else ""))]
    if r.options.inject:
        facts.append(("injected into the port", ", ".join(r.options.inject)))
    for d in r.input_differences:
        facts.append(("input " + ("DIFFERENT (decisive)" if d.decisive else "different"),
                      f"{d.key}: C {d.a!r} vs port {d.b!r}"))
    if not r.input_differences:
        facts.append(("inputs", "no difference: both sides were given and read the same"))
    for line in metrics_lines(r.images.full, r.images.thresholds):
        key, _, value = line.strip().partition("  ")
        facts.append((f"image {key.strip()}", value.strip()))
    return facts


def _sections(r) -> list[dict]:
    from nbtrace.report.hunt import pixel_verdict, report_lines

    pixels = {
        "title": f"Traced pixels ({len(r.pixels)}; numbered as in the figures)",
        "head": ["#", "(slow, fast)", "C photons", "port photons", "first divergent tap", "2θ (deg)", "why chosen"],
        "numeric": (1, 3, 4, 6), "open": True, "text": "",
        "rows": [[str(i), f"({p.pixel[0]}, {p.pixel[1]})", f"{p.a_value:.10g}", f"{p.b_value:.10g}",
                  pixel_verdict(p),
                  "" if p.two_theta_deg is None else f"{p.two_theta_deg:.4f}", p.reason]
                 for i, p in enumerate(r.pixels, 1)],
    }
    lines = report_lines(r, width=140)
    out = [pixels]
    for title, start in (("Root cause evidence", "root cause evidence:"),
                         ("Loop taps (per phi step / mosaic domain / source)", "loop taps"),
                         ("Region maps", "region maps")):
        block = _block(lines, start)
        if block:
            out.append({"title": title, "text": "\n".join(block), "rows": [], "head": [], "numeric": (),
                        "open": title.startswith("Root")})
    loops = _loop_rows(r)
    if loops:
        out.append({"title": f"Every loop tap ({len(loops)})", "head": ["status", "tap", "kind", "first divergent iteration",
                                                                        "max rel"],
                    "numeric": (5,), "rows": loops, "text": "", "open": False})
    out.append({"title": "The whole report as text", "text": "\n".join(lines), "rows": [], "head": [],
                "numeric": (), "open": False})
    return out


def _block(lines: list[str], start: str) -> list[str]:
    """The lines of one section of the text report: from its heading to the next blank line."""
    for i, ln in enumerate(lines):
        if ln.startswith(start):
            end = next((j for j in range(i + 1, len(lines)) if not lines[j].strip()), len(lines))
            return lines[i + 1:end]
    return []


def _loop_rows(r) -> list[list[str]]:
    from nbtrace.report.common import fmt_num

    rows = []
    for d in (r.diff, r.region_diff):
        for f in (d.findings if d is not None else ()):
            v = f.verdict
            if v.loop:
                first = ", ".join(f"{k} {i}" for k, i in (v.first_loop_iteration or ()))
                rows.append([f.status, v.label, v.kind.replace("_", " "), first, fmt_num(v.max_rel)])
    return rows


def hunt_page(r, figures, out: Path) -> str:
    from nbtrace.report.common import below_headline
    from nbtrace.report.html import data_uri, files_beside, render_page, tap_rows
    from nbtrace.report.hunt import headline, short_headline
    from nbtrace.report.pipeline import pipeline_svg

    head = short_headline(r)
    long = below_headline(head, headline(r))
    d = r.diff if r.diff is not None and r.diff.root_cause is not None else r.region_diff
    d = d if d is not None else r.diff
    explanation = [t for t in [long] + [p.text for p in r.patterns] if t]
    return render_page(command="hunt", verdict=r.verdict.upper(), agrees=r.agrees, headline=head,
                       explanation=explanation, facts=_facts(r),
                       pipeline=pipeline_svg(_spec(r), d) if d is not None else "",
                       figures=[(c, data_uri(p)) for c, p in figures],
                       taps=tap_rows(d) if d is not None else [], sections=_sections(r), files=files_beside(out))
