"""Words and numbers every renderer shows the same way."""

from __future__ import annotations

from nbtrace.engine.results import DiffResult, index_text


def fmt_num(x) -> str:
    if x is None:
        return "-"
    if isinstance(x, str):
        return x
    if x == 0:
        return "0"
    return f"{x:.3g}"


def totals(r: DiffResult) -> str:
    counts = {"introduced": 0, "inherited": 0, "agree": 0, "missing": 0}
    for f in r.findings:
        counts[f.status] = counts.get(f.status, 0) + 1
    precision = sum(1 for f in r.findings if f.verdict.kind == "precision")
    compared = len(r.findings) - counts["missing"]
    text = (f"{compared} taps compared over {r.matched} matched records: "
            f"{counts['introduced']} introduced, {counts['inherited']} inherited, "
            f"{counts['agree']} agree")
    if precision:
        text += f" ({precision} within float32 noise)"
    text += (f"; only in A: {r.only_a} record(s) of {len(r.unmatched_a)} tap(s), "
             f"only in B: {r.only_b} record(s) of {len(r.unmatched_b)} tap(s).")
    return text


def sides(r: DiffResult) -> list[str]:
    out = []
    for side, path, pixels in (("A (reference)", r.path_a, r.pixels_a), ("B (port)", r.path_b, r.pixels_b)):
        px = ", ".join(f"({s}, {f})" for s, f in pixels[:4]) + (" …" if len(pixels) > 4 else "")
        out.append(f"{side}: {path}" + (f", pixels (slow, fast) {px}" if pixels else ", no pixel header"))
    return out


def where(f) -> str:
    v = f.verdict
    if v.kind in ("agree",):
        return ""
    return index_text(v.index)


def verdict_word(f) -> str:
    v = f.verdict
    if v.kind == "scale" and v.factor is not None:
        return f"scale ×{v.factor:.6g}"
    if v.kind == "integer_count" and v.factor is not None:
        return f"count ×{v.factor:.6g}"
    return v.kind.replace("_", " ")


HEADLINE_CHARS = 120


def plain(text: str) -> str:
    """Text for a console: the engine quotes tap names in markdown backticks; a terminal shows them literally."""
    return text.replace("`", "")


def clip(text: str, limit: int = HEADLINE_CHARS) -> str:
    """At most ``limit`` characters, cut at a word with an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text[:limit - 1].rsplit(" ", 1)[0].rstrip(",;:—- ")
    return cut + "…"


def first_clause(text: str) -> str:
    """The opening clause of an engine sentence (up to its first ': ', '; ' or ' — ')."""
    ends = [i for i in (text.find(": "), text.find("; "), text.find(" — ")) if i > 0]
    return text[:min(ends)] if ends else text


def lead_removed(text: str, tap: str, loop=()) -> str:
    """The engine's sentence without its lead-in naming the tap again (the headline already does)."""
    for lead in (f"`{tap}` (per {', '.join(loop)}) is the first divergence: ", f"`{tap}` is the first divergence: "):
        if text.startswith(lead):
            return text[len(lead):]
    return text


def place(index) -> str:
    """Where a value sits, for humans: a setup value has no pixel, so say so rather than 'no pixel'."""
    text = index_text(index)
    if index is not None and index.pixel is None:
        rest = text.split(", ", 1)[1] if ", " in text else ""
        return "the setup block (before any pixel)" + (f", {rest}" if rest else "")
    return text


def short_headline(r: DiffResult) -> str:
    """One line, verdict word first: the root cause and what kind of divergence it is."""
    rc = r.root_cause
    if rc is not None:
        label = f"{rc.tap}[{','.join(rc.loop)}]" if rc.loop else rc.tap
        what = first_clause(plain(lead_removed(rc.explanation, rc.tap, rc.loop))).rstrip(".")
        return clip(f"DIVERGE: root cause {label}: {what}")
    if r.nothing_compared or r.verdict != "agree":
        return clip("DIVERGE: " + first_clause(plain(r.headline)).rstrip("."))
    compared = sum(1 for f in r.findings if f.status != "missing")
    return clip(f"AGREE: {compared} taps agree over {r.matched} matched records")


def shown(f, all_rows: bool) -> bool:
    """Rows a report lists by default: what diverges, is immaterial or missing; --all adds the rest."""
    return all_rows or f.status in ("introduced", "inherited", "immaterial", "missing") or not f.verdict.agrees


def below_headline(short: str, long: str) -> str:
    """The long explanation without what the one-line headline already said."""
    long = plain(long)
    head = short.rstrip("…")
    if long.startswith(head):
        rest = long[len(head):].lstrip(":;,— ")
        return rest[:1].upper() + rest[1:] if rest else ""
    word = short.split(":", 1)[0]
    return long[len(word) + 1:].lstrip() if long.startswith(word + ":") else long
