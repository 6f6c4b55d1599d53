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
    """The counts line. Every compared tap is in exactly one count, so they add up to the total;
    immaterial taps are named only when there are some (most diffs have none)."""
    counts: dict[str, int] = {}
    for f in r.findings:
        counts[f.status] = counts.get(f.status, 0) + 1
    precision = sum(1 for f in r.findings if f.verdict.kind == "precision")
    # gaps are not comparisons: "missing" is harmless, "incomplete" makes the verdict diverge
    gaps = counts.pop("missing", 0), counts.pop("incomplete", 0)
    compared = sum(counts.values())
    parts = [f"{counts.pop('introduced', 0)} introduced", f"{counts.pop('inherited', 0)} inherited"]
    if counts.get("immaterial"):
        parts.append(f"{counts.pop('immaterial')} immaterial")
    agree = counts.pop("agree", 0)
    parts += [f"{n} {status}" for status, n in counts.items() if n]  # any other status still counts
    parts.append(f"{agree} agree")
    text = f"{compared} taps compared over {r.matched} matched records: " + ", ".join(parts)
    if precision:
        text += f" ({precision} within float32 noise)"
    if gaps[1]:
        text += f"; {gaps[1]} tap(s) incomplete (printed by one side only, or more times on one side)"
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


def fit(lead: str, what: str, limit: int = HEADLINE_CHARS) -> str:
    """lead + what in about ``limit`` characters: when too long, ``what`` is cut before a
    parenthesis (up to 10 characters over the limit, so "i.e. Å⁻¹ where m⁻¹ was expected" is not
    lost for an aside), else before a comma; an ellipsis only as a last resort. The explanation
    below the headline repeats the sentence whole."""
    if len(lead) + len(what) <= limit:
        return lead + what
    room = limit - len(lead)
    parens, commas = _cuts(what)
    paren = max([i for i in parens if i <= room + 10], default=-1)
    if paren > room // 3:
        return lead + what[:paren]
    comma = max([i for i in commas if i <= room], default=-1)
    return lead + what[:comma] if comma > room // 3 else clip(lead + what, limit)


def _cuts(text: str) -> tuple[list[int], list[int]]:
    """Positions of " (" and ", " outside any parenthesis: where a sentence can be cut whole."""
    parens, commas, depth = [], [], 0
    for i, ch in enumerate(text):
        if ch == "(":
            if depth == 0 and i > 0 and text[i - 1] == " ":
                parens.append(i - 1)
            depth += 1
        elif ch == ")":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0 and text[i + 1:i + 2] == " ":
            commas.append(i)
    return parens, commas


def first_clause(text: str) -> str:
    """The opening clause of an engine sentence (up to its first ': ', '; ' or ' — ' outside
    parentheses)."""
    depth = 0
    for i, ch in enumerate(text):
        depth += (ch == "(") - (ch == ")" and depth > 0)
        if depth == 0 and i > 0 and (text[i:i + 2] in (": ", "; ") or text[i:i + 3] == " — "):
            return text[:i]
    return text


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
        return fit(f"DIVERGE: root cause {label}: ", what)
    word = "DIVERGE: " if r.nothing_compared or r.verdict != "agree" else "AGREE: "
    return fit(word, first_clause(plain(r.headline)).rstrip("."))


def shown(f, all_rows: bool) -> bool:
    """Rows a report lists by default: what diverges, is immaterial or missing; --all adds the rest."""
    return all_rows or f.status in ("introduced", "inherited", "immaterial", "missing") or not f.verdict.agrees


def below_headline(short: str, long: str) -> str:
    """The long explanation without what the one-line headline already said (all of it, minus
    the lead-ins, when the headline had to be cut)."""
    import re

    body = short.split(": ", 1)[1] if ": " in short else short
    body = re.sub(r"^root cause \S+: ", "", body)
    text = plain(long)
    text = re.sub(r"^(AGREE|DIVERGE)[^:]*: ", "", text)
    text = re.sub(r"^root cause \S+: ", "", text)
    text = re.sub(r"^\S+( \(per [^)]*\))? is the first divergence: ", "", text)
    if text.startswith(body) and not text[len(body):].strip(" ."):
        return ""  # the headline said it all
    # the headline carried a whole clause: say only what follows it; else repeat it all
    if not text.startswith(body) or text[len(body):len(body) + 2] not in (": ", "; ", " —", ". "):
        return text[:1].upper() + text[1:]
    rest = text[len(body):].lstrip(":;,.— ")
    return rest[:1].upper() + rest[1:]
