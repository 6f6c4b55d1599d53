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
