"""Hunt reports as text and JSON (read-only views of a :class:`nbtrace.run.hunt.HuntResult`): the
headline sentence, the console/summary.md lines and the ``--json`` document."""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING

from nbtrace.run.hunt_pixels import FIXED_REASONS, FIXED_ROI_REASONS

if TYPE_CHECKING:
    from nbtrace.run.hunt import HuntResult


def fmt(x, spec):
    return "undefined" if x is None else format(x, spec)


def headline(r: HuntResult) -> str:
    """The verdict sentence every report opens with."""
    m = r.images.full
    img = f"image correlation {fmt(m.correlation, '.6f')}, sum ratio {fmt(m.sum_ratio, '.6g')}"
    if r.decisive_inputs:
        d = r.decisive_inputs[0]
        return (f"DIVERGE: the inputs differ ({d.key}: C {d.a!r} vs port {d.b!r}) — fix the input, not the "
                f"physics; {img}.")
    rc = r.root
    if rc is not None:
        where = "traced pixels" if r.diff is not None and r.diff.root_cause is not None else "pixels the maps found"
        agree_n = sum(1 for p in r.pixels if p.root_tap == rc.tap)
        tail = f"; {agree_n} of {len(r.pixels)} traced pixels name it" if where == "traced pixels" else \
            "; found by the region maps (the usual traced pixels agreed)"
        if r.options.replay:  # what the replay could not fix: a bug downstream of the replayed taps
            tail += f" (with {_replayed(r)} replayed from the C trace)"
        return f"DIVERGE: root cause {_tap_label(rc)}: {_short_explanation(rc)}{tail}; {img}."
    if r.maps is not None and not r.maps:
        return f"DIVERGE: {r.maps.summary()[0]}; {img}."
    if r.diff is not None and r.diff.verdict != "agree":
        # the traced pixels differ without a cause reaching the output (immaterial differences,
        # or taps the port never printed): the diff's own sentence says which
        return f"DIVERGE (the traces, not the images): {r.diff.headline[:-1]}; {img}."
    if r.options.replay and not r.images and r.diff is not None and r.diff.verdict == "agree":
        return (f"DIVERGE at or upstream of {_replayed(r)}: with {_replayed(r)} replayed from the C trace, every "
                f"traced tap agrees; the images (rendered without replay) show what the port computes itself; {img}.")
    if not r.images:
        return (f"DIVERGE: the images disagree ({'; '.join(r.images.failures)}) but no traced tap diverges; "
                f"{img}.")
    n_taps = r.diff.matched if r.diff is not None else 0
    precision = [] if r.diff is None else [f.verdict.tap for f in r.diff.findings if f.verdict.kind == "precision"]
    if r.maps is not None and r.maps_reason and "differ" in r.maps_reason and precision:
        return (f"AGREE at float32 precision: the port computes in float32; the images differ by at most "
                f"{m.max_abs_diff:.4g} photons and {len(precision)} traced taps differ only within float32 "
                f"noise (first: {precision[0]}); no tap diverges beyond it; {img}.")
    if r.maps is not None and r.maps_reason and "differ" in r.maps_reason:
        return (f"AGREE within the thresholds, with a caveat: the images differ beyond float32 storage "
                f"(max |B-A| {m.max_abs_diff:.4g} photons at (slow {m.max_abs_diff_at[0]}, fast {m.max_abs_diff_at[1]})) "
                f"but no traced or mapped tap diverges — the difference arises after the last tap; {img}.")
    if m.max_abs_diff == 0:
        img = "bit-identical images (" + img.replace("image correlation", "correlation") + ")"
    elif "pixels_capture_s" not in r.timings:
        img = "images identical to float32 storage (" + img.replace("image correlation", "correlation") + ")"
    return (f"AGREE: the port reproduces the reference — {img}; {len(r.pixels)} traced pixels agree on "
            f"all {n_taps} matched tap records.")


def _short_explanation(rc) -> str:
    """The engine's sentence without its lead-in naming the tap again (the headline already does)."""
    from nbtrace.report.common import lead_removed

    return lead_removed(rc.explanation, rc.tap, rc.loop).rstrip(".")


def short_headline(r: HuntResult) -> str:
    """One line (at most ~120 characters), verdict word first; :func:`headline` explains it below."""
    from nbtrace.report.common import clip, first_clause, fit, plain

    if r.decisive_inputs:
        return clip(f"DIVERGE: the inputs differ ({r.decisive_inputs[0].key}) — fix the input, not the physics")
    rc = r.root
    if rc is not None:
        return fit(f"DIVERGE: root cause {_tap_label(rc)}: ", first_clause(plain(_short_explanation(rc))))
    if r.maps is not None and not r.maps:
        return clip(f"DIVERGE: {r.maps.summary()[0]}")
    if r.options.replay and not r.images and r.diff is not None and r.diff.verdict == "agree":
        return clip(f"DIVERGE at or upstream of {_replayed(r)}: the traced pixels agree once it is replayed")
    if r.diff is not None and r.diff.verdict != "agree":
        # immaterial differences only, or taps the port never printed: exit 1, so never "AGREE"
        what = first_clause(plain(r.diff.headline)).rstrip(".")
        return fit("DIVERGE (the traces, not the images): ", what[:1].lower() + what[1:])
    if not r.images:
        return "DIVERGE: the images disagree, but no traced tap diverges"
    long = headline(r)
    if long.startswith("AGREE at float32 precision"):
        return "AGREE at float32 precision: no tap diverges beyond float32 noise"
    if long.startswith("AGREE within the thresholds, with a caveat"):
        return "AGREE within the thresholds, with a caveat: the images differ after the last traced tap"
    m = r.images.full
    how = ("bit-identical images" if m.max_abs_diff == 0 else "images identical to float32 storage"
           if "pixels_capture_s" not in r.timings else "images within the thresholds")
    return clip(f"AGREE: the port reproduces the reference ({how}, {len(r.pixels)} traced pixels agree)")


def _replayed(r) -> str:
    return " and ".join(r.options.replay)


def _tap_label(rc) -> str:
    return f"{rc.tap}[{','.join(rc.loop)}]" if getattr(rc, "loop", None) else rc.tap


def report_lines(r: HuntResult, width: int = 100) -> list[str]:
    """The console / markdown body (plain text, no markup): the one-line headline, the long
    explanation below it, then the evidence. ``width``: columns for the pixel table."""
    from nbtrace.engine.images import metrics_lines
    from nbtrace.report.common import below_headline, place, plain

    head = short_headline(r)
    lines = [head] + [t for t in (below_headline(head, headline(r)),) if t] + [""]
    cfg = " ".join(r.nb_args)
    lines.append(f"configuration: {cfg}" + ("   (built-in default)" if r.default_config else ""))
    if r.options.inject:
        lines.append(f"injected into the port: {', '.join(r.options.inject)}")
    if r.options.replay:
        lines.append(f"replayed: {', '.join(r.options.replay)} — the port's traced pixels took these taps' values "
                     "from the C trace of the same pixels (the images were rendered without replay)")
    lines.append("")
    lines.append("inputs (compared before any physics):")
    for d in r.input_differences:
        flag = "DIFFERENT (decisive)" if d.decisive else "different"
        lines.append(f"  {flag}: {d.key}: C {d.a!r} vs port {d.b!r}")
    if r.input_same:
        import textwrap

        same = ", ".join(f"{k}={_prov_text(v)}" for k, v in r.input_same if k != "argv")
        lines += textwrap.wrap("same: " + same, width=100, initial_indent="  ", subsequent_indent="        ")
    if not r.input_differences:
        lines.append("  no input difference: both sides were given and read the same")
    lines.append("")
    lines.append(f"image metrics (B = port vs A = C reference, {r.shape[0]}x{r.shape[1]}):")
    lines += metrics_lines(r.images.full, r.images.thresholds)
    lines.append("")
    n_fixed = sum(1 for p in r.pixels if p.reason in FIXED_REASONS + FIXED_ROI_REASONS)
    if r.options.replay:
        lines.append(f"traced pixels (all {len(r.pixels)} traced again after the renders, the C side first, then the "
                     f"port with {_replayed(r)} replayed from that C trace):")
    elif "pixels_capture_s" in r.timings:
        live = "-trace_pixels_after" in ((r.meta.get("py") or {}).get("argv") or [])
        how = ("by the port's own render run and one more C run" if live else "in one more run per side")
        lines.append(f"traced pixels ({n_fixed} fixed ones traced in the render pass, {len(r.pixels) - n_fixed} chosen "
                     f"from the images traced {how}):")
    else:
        lines.append(f"traced pixels ({n_fixed} fixed ones, traced in the render pass; the images are identical to "
                     "float32 storage, so no pixel stands out to add):")
    lines += pixel_table(r, width)
    rc = r.root
    if rc is not None:
        lines.append("")
        lines.append("root cause evidence:")
        lines.append(f"  tap          {_tap_label(rc)}   in {place(rc.index)}")
        lines.append(f"  kind         {rc.kind}" + (f", factor port/ref = {rc.factor!r}" if rc.factor is not None else ""))
        lines.append(f"  explanation  {plain(rc.explanation)}")
        named = [p.pixel for p in r.pixels if p.root_tap == rc.tap]
        agreeing = [p.pixel for p in r.pixels if pixel_verdict(p) == "agrees"]
        immaterial = [p.pixel for p in r.pixels if pixel_verdict(p) == "immaterial only"]
        if named:
            lines.append(f"  named by     {len(named)} of {len(r.pixels)} traced pixels: {_pix_list(named)}")
        if agreeing:
            lines.append(f"  unaffected   {_pix_list(agreeing)} agree on every tap")
        if immaterial:
            lines.append(f"  unaffected   {_pix_list(immaterial)} differ only in immaterial taps")
        for pat in r.patterns:
            lines.append(f"  {'pattern':<12} {pat.text}")
        ratios = [(p.pixel, p.root_ratio) for p in r.pixels if p.root_ratio is not None]
        # an offset is not a ratio, and a setup value is the same at every pixel: no per-pixel ratios then
        if ratios and rc.tap not in ("steps",) and rc.kind != "offset" and rc.index is not None \
                and rc.index.pixel is not None:
            lines.append("  port/ref     " + "; ".join(f"({s}, {f}) {_ratio_text(q)}" for (s, f), q in ratios[:8]))
        d = r.diff if r.diff is not None and r.diff.root_cause is not None else r.region_diff
        if d is not None:
            f0 = next((f for f in d.findings if f.verdict.tap == rc.tap and f.status == "introduced"), None)
            if f0 is not None and f0.verdict.a is not None:
                lines.append(f"  values       C {_vals(f0.verdict.a)}  port {_vals(f0.verdict.b)}")
                off = _offsets(f0.verdict.a, f0.verdict.b)
                if off and rc.kind == "offset":
                    lines.append(f"  offset       port − C = {off}")
            downstream = [f.verdict.label for f in d.findings if f.status == "inherited"]
            if downstream:
                lines.append(f"  downstream   {len(downstream)} taps inherit it: {', '.join(downstream[:8])}"
                             + (" ..." if len(downstream) > 8 else ""))
    loops = _loop_lines(r)
    if loops:
        lines.append("")
        lines.append("loop taps (per phi step / mosaic domain / source):")
        lines += loops
    if r.maps is not None:
        lines.append("")
        xmin, xmax, ymin, ymax = r.maps.roi
        lines.append(f"region maps ({r.maps_reason}); fast {xmin}..{xmax}, slow {ymin}..{ymax} inclusive:")
        firsts = dict(r.maps.first_counts())
        for t in r.maps.divergent():
            if t.name in firsts:
                lines.append(f"  {t.name} diverges in {t.n_divergent:,} of {t.n_pixels:,} pixels, {t.where}; "
                             f"first divergent tap in {firsts[t.name]:,} of them")
        later = [t.name for t in r.maps.divergent() if t.name not in firsts]
        if later:
            lines.append(f"  downstream, diverging only where an earlier tap does: {', '.join(later)}")
        if not r.maps.divergent():
            lines += [f"  {s}" for s in r.maps.summary()]
    return lines


def _prov_text(v: str) -> str:
    """A setup value for humans: numbers at 10 significant digits (the sides print %.17g)."""
    words = v.split()
    try:
        return " ".join(f"{float(w):.10g}" for w in words) if words else v
    except ValueError:
        return v


def _ratio_text(q: tuple[float, ...]) -> str:
    if all(math.isclose(x, q[0], rel_tol=1e-6) for x in q):
        return f"{q[0]:.4g}"
    return "[" + ", ".join(f"{x:.4g}" for x in q) + "]"


def _pix_list(pixels) -> str:
    return ", ".join(f"({s}, {f})" for s, f in pixels)


def _vals(v) -> str:
    """Values at full precision (shortest text that reads back the same float)."""
    if isinstance(v, str):
        return v
    return "[" + ", ".join(repr(float(x)) for x in v) + "]"


def _offsets(a, b) -> str | None:
    if isinstance(a, str) or isinstance(b, str) or not a or not b or len(a) != len(b):
        return None
    return "[" + ", ".join(repr(float(y) - float(x)) for x, y in zip(a, b)) + "]"


def pixel_verdict(p) -> str:
    """A traced pixel's word in the tables: its root-cause tap (and factor); "agrees" only when
    nothing at all differs there, never for a pixel whose only differences are immaterial."""
    if p.root_tap is not None:
        return p.root_tap + (f" ×{p.root_factor:.6g}" if p.root_factor is not None else "")
    if p.n_divergent:  # divergent taps without a root cause: none of them reaches the output
        return "immaterial only"
    return "incomplete" if p.n_incomplete else "agrees"


def pixel_table(r: HuntResult, width: int = 100) -> list[str]:
    """The traced pixels, numbered as in the figures. A long tap name or reason wraps inside its
    own column (the table keeps its shape at any width); numbers never wrap."""
    import textwrap

    verdicts = [pixel_verdict(p) for p in r.pixels]
    rows = [(str(i), f"({p.pixel[0]}, {p.pixel[1]})", f"{p.a_value:.6g}", f"{p.b_value:.6g}", v, p.reason)
            for i, (p, v) in enumerate(zip(r.pixels, verdicts), 1)]
    head = ("#", "(slow, fast)", "C photons", "port photons", "first divergent tap", "why chosen")
    fixed = [max(len(h), *(len(row[k]) for row in rows)) if rows else len(h) for k, h in enumerate(head[:4])]
    tap_w = min(28, max([len(head[4])] + [len(v) for v in verdicts]))
    why_w = max(16, width - 2 - sum(fixed) - tap_w - 2 * 5)
    widths = fixed + [tap_w, why_w]
    right = (True, False, True, True, False, False)

    def line(cells) -> list[str]:
        wrapped = [textwrap.wrap(c, w, break_long_words=True) or [""] if k >= 4 else [c]
                   for k, (c, w) in enumerate(zip(cells, widths))]
        out = []
        for n in range(max(len(w) for w in wrapped)):
            parts = [(w[n] if n < len(w) else "") for w in wrapped]
            out.append("  " + "  ".join(p.rjust(wd) if rt else p.ljust(wd)
                                        for p, wd, rt in zip(parts, widths, right)).rstrip())
        return out

    lines = line(head)
    for row in rows:
        lines += line(row)
    return lines

def _loop_lines(r: HuntResult) -> list[str]:
    """Loop taps: the one that introduced a divergence in full (with its first divergent
    iteration, incident 12), the ones inheriting it and the agreeing ones compactly."""
    out, inherited, agreeing = [], [], []
    for d in (r.diff, r.region_diff):
        if d is None:
            continue
        for f in d.findings:
            v = f.verdict
            if not v.loop:
                continue
            if v.agrees:
                agreeing.append(v)
            elif f.status == "introduced":
                first = ", ".join(f"{k} {i}" for k, i in (v.first_loop_iteration or ())) or "-"
                out.append(f"  {v.label:<28} {v.kind}: first divergent iteration {first}")
                out.append(f"  {'':<28} {v.message.splitlines()[0].replace('`', '')}")
            else:
                inherited.append(v)
    if inherited:
        firsts = sorted({", ".join(f"{k} {i}" for k, i in (v.first_loop_iteration or ())) for v in inherited} - {""})
        out.append(f"  {len(inherited)} loop taps diverge downstream ({', '.join(v.label for v in inherited[:6])}"
                   + (" ..." if len(inherited) > 6 else "") + ")"
                   + (f"; first divergent iteration: {'; '.join(firsts)}" if firsts else ""))
    if agreeing:
        loops = sorted({k for v in agreeing for k in v.loop})
        out.append(f"  {len(agreeing)} loop taps agree over every {'/'.join(loops)} iteration: "
                   + ", ".join(v.tap for v in agreeing[:8]) + (" ..." if len(agreeing) > 8 else ""))
    return out


def to_json(r: HuntResult) -> dict:
    """The diff JSON contract plus image metrics, traced pixels, provenance and maps."""
    doc = r.diff.to_json() if r.diff is not None else {}
    doc["verdict"] = r.verdict
    doc["headline"] = headline(r)
    doc["headline_short"] = short_headline(r)
    doc["replayed"] = list(r.options.replay)  # taps the port's traced pixels took from the C trace
    if r.root is not None:
        doc["root_cause"] = r.root.to_json()
    doc["root_cause_patterns"] = [p.to_json() for p in r.patterns]
    doc["image_metrics"] = r.images.to_json()
    doc["traced_pixels"] = [
        {"pixel": list(p.pixel), "reason": p.reason, "c_photons": p.a_value, "port_photons": p.b_value,
         "root_tap": p.root_tap, "root_kind": p.root_kind,
         "root_factor": p.root_factor if p.root_factor is None or math.isfinite(p.root_factor) else str(p.root_factor),
         "divergent_taps": p.n_divergent,
         "root_tap_ratio": None if p.root_ratio is None else [x if math.isfinite(x) else str(x) for x in p.root_ratio],
         "two_theta_deg": p.two_theta_deg}
        for p in r.pixels
    ]
    doc["provenance"] = {
        "differences": [dataclasses.asdict(d) for d in r.input_differences],
        "same": dict(r.input_same),
    }
    doc["config"] = {"nb_args": list(r.nb_args), "built_in_default": r.default_config,
                     "inject": list(r.options.inject)}
    doc["maps"] = r.maps.to_json() if r.maps is not None else None
    doc["region_pixels_diff"] = r.region_diff.to_json() if r.region_diff is not None else None
    doc["timings_s"] = {k: round(v, 4) for k, v in r.timings.items()}
    return doc
