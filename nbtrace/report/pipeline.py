"""A drawing of the tap pipeline (the spec's DAG of ``after:`` edges) as inline SVG, each tap
coloured by what the diff found there, the root cause marked.

Only taps the traces hold are drawn; a tap the spec declares but nobody printed is skipped and
its edges are bridged (A → unprinted → B is drawn A → B), so the picture is the pipeline the
run actually exposed. Layout: a tap's row is its depth (longest path from a source), rows
wider than ``PER_ROW`` wrap, and taps in a row are ordered by the mean position of their
upstream taps, which keeps most edges short. No external tool is needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from nbtrace.figures import STATUS_COLOURS

# when a tap has several rows (loop iterations, pixels), the one shown is the most telling
RANK = {"introduced": 5, "inherited": 4, "immaterial": 3, "missing": 2, "agree": 1, "setup": 0}
PER_ROW = 7
NODE_W, NODE_H, GAP_X, GAP_Y, MARGIN = 168, 30, 16, 34, 16
LABEL_CHARS = 24


@dataclass(frozen=True)
class Node:
    name: str
    status: str
    x: float
    y: float
    root: bool
    detail: str


def tap_statuses(result) -> dict[str, tuple[str, str]]:
    """canonical tap -> (status, one-line detail), the most telling row of each tap."""
    out: dict[str, tuple[str, str]] = {}
    for f in result.findings:
        v = f.verdict
        detail = f"{f.status}: {v.kind.replace('_', ' ')}" + (f", max rel {v.max_rel:.3g}" if v.max_rel else "")
        old = out.get(v.tap)
        if old is None or RANK.get(f.status, 0) > RANK.get(old[0], 0):
            out[v.tap] = (f.status, detail)
    for side, unmatched in (("A", result.unmatched_a), ("B", result.unmatched_b)):
        for u in unmatched:
            if u.tap not in out:
                out[u.tap] = ("missing", f"missing: printed only by {side}")
    return out


def _edges(spec, drawn: set[str]) -> dict[str, list[str]]:
    """tap -> its nearest drawn upstream taps (bridging taps nobody printed)."""
    return {name: sorted(spec.nearest_upstream(spec.get(name).after if spec.get(name) else (), drawn))
            for name in drawn}


def layout(spec, statuses: dict[str, tuple[str, str]], root: str | None) -> tuple[list[Node], list[tuple[str, str]], float, float]:
    """(nodes, edges (upstream, downstream), width, height) in SVG pixels."""
    order = [n for n in spec.order() if n in statuses]
    drawn = set(order)
    parents = _edges(spec, drawn)
    depth: dict[str, int] = {}
    for n in order:  # spec.order() is topological: every parent is placed first
        depth[n] = 1 + max((depth[p] for p in parents[n] if p in depth), default=-1)
    rows: list[list[str]] = []
    xpos: dict[str, float] = {}
    for d in range(max(depth.values(), default=-1) + 1):
        layer = [n for n in order if depth[n] == d]
        layer.sort(key=lambda n: (sum(xpos[p] for p in parents[n]) / len(parents[n]) if parents[n] else -1,
                                  order.index(n)))
        for i in range(0, len(layer), PER_ROW):
            row = layer[i:i + PER_ROW]
            rows.append(row)
            for j, n in enumerate(row):
                xpos[n] = j - (len(row) - 1) / 2  # centred rows
    width = MARGIN * 2 + PER_ROW * NODE_W + (PER_ROW - 1) * GAP_X
    nodes = []
    for r, row in enumerate(rows):
        for n in row:
            x = width / 2 + xpos[n] * (NODE_W + GAP_X) - NODE_W / 2
            y = MARGIN + 18 + r * (NODE_H + GAP_Y)
            status, detail = statuses[n]
            nodes.append(Node(n, status, x, y, n == root, detail))
    height = MARGIN * 2 + 18 + len(rows) * (NODE_H + GAP_Y)
    edges = [(p, n) for n in order for p in parents[n]]
    return nodes, edges, width, height


def pipeline_svg(spec, result) -> str:
    """The whole drawing as an ``<svg>`` element ('' when there is no spec or nothing to draw)."""
    if spec is None:
        return ""
    statuses = tap_statuses(result)
    root = result.root_cause.tap if result.root_cause is not None else None
    nodes, edges, width, height = layout(spec, statuses, root)
    if not nodes:
        return ""
    at = {n.name: n for n in nodes}
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="pipeline" viewBox="0 0 {width:.0f} {height:.0f}" '
             f'style="width: 100%; max-width: {width:.0f}px; height: auto" role="img" aria-label="tap pipeline">',
             '<defs><marker id="arrow" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="6" markerHeight="6" '
             'orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="#8c959f"/></marker>'
             '<marker id="arrow-bad" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="6" markerHeight="6" '
             'orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="#cf222e"/></marker></defs>']
    for p, c in edges:
        a, b = at[p], at[c]
        x1, y1 = a.x + NODE_W / 2, a.y + NODE_H
        x2, y2 = b.x + NODE_W / 2, b.y
        bend = max(GAP_Y * 0.8, (y2 - y1) / 2)
        # the divergence travelling down the pipeline is drawn in red
        bad = a.status in ("introduced", "inherited") and b.status == "inherited"
        parts.append(f'<path d="M{x1:.1f},{y1:.1f} C{x1:.1f},{y1 + bend:.1f} {x2:.1f},{y2 - bend:.1f} {x2:.1f},{y2:.1f}" '
                     f'fill="none" stroke="{"#cf222e" if bad else "#afb8c1"}" stroke-width="{1.6 if bad else 1}" '
                     f'stroke-opacity="{0.9 if bad else 0.7 if a.status != "agree" else 0.35}" marker-end="url(#{"arrow-bad" if bad else "arrow"})"/>')
    for n in nodes:
        colour = STATUS_COLOURS.get(n.status, "#57606a")
        label = n.name if len(n.name) <= LABEL_CHARS else n.name[:LABEL_CHARS - 1] + "…"
        stroke = 'stroke="#1f2328" stroke-width="3"' if n.root else f'stroke="{colour}" stroke-width="1"'
        parts.append(f'<g class="tap {escape(n.status)}"><title>{escape(n.name)} — {escape(n.detail)}</title>'
                     f'<rect x="{n.x:.1f}" y="{n.y:.1f}" width="{NODE_W}" height="{NODE_H}" rx="6" '
                     f'fill="{colour}" fill-opacity="{0.95 if n.status != "agree" else 0.22}" {stroke}/>'
                     f'<text x="{n.x + NODE_W / 2:.1f}" y="{n.y + NODE_H / 2 + 4:.1f}" text-anchor="middle" '
                     f'font-size="11" font-family="ui-monospace, SFMono-Regular, Menlo, monospace" '
                     f'fill="{"#ffffff" if n.status in ("introduced", "immaterial") else "#1f2328"}">'
                     f'{escape(label)}</text></g>')
        if n.root:
            parts.append(f'<text x="{n.x + NODE_W / 2:.1f}" y="{n.y - 5:.1f}" text-anchor="middle" font-size="11" '
                         f'font-weight="bold" fill="#1f2328" font-family="system-ui, sans-serif">▼ root cause</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def legend() -> list[tuple[str, str, str]]:
    """(status, colour, meaning) for the drawing's legend."""
    meaning = {
        "agree": "within tolerance",
        "introduced": "diverges while every upstream tap agrees",
        "inherited": "diverges because an upstream tap does",
        "immaterial": "differs, but nothing downstream is changed by it",
        "missing": "printed by one side only",
        "setup": "a setup value",
    }
    return [(s, STATUS_COLOURS[s], meaning[s]) for s in STATUS_COLOURS]
