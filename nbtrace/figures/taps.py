"""The figure of a trace diff: each tap's greatest relative error in pipeline order (log scale),
coloured by its status, with the tolerance it was judged against, so the step where the error
jumps reads at a glance."""

from __future__ import annotations

import math
from pathlib import Path

from nbtrace.figures import STATUS_COLOURS, pyplot, save

FLOOR = 1e-18  # an exact agreement is drawn at this height on the log axis


def tap_errors_figure(result, path) -> Path | None:
    """One bar per compared tap; None when nothing was compared."""
    from matplotlib.patches import Patch

    rows = [f for f in result.findings if f.status != "missing" and f.verdict.max_rel is not None]
    if not rows:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, 1.4 + 0.22 * len(rows)), layout="constrained")
    y = list(range(len(rows)))
    finite = [float(f.verdict.max_rel) for f in rows if _finite(f.verdict.max_rel)]
    cap = max(finite + [1.0]) * 100  # an infinite or NaN error is drawn past every finite one
    values = [max(float(f.verdict.max_rel), FLOOR) if _finite(f.verdict.max_rel) else cap for f in rows]
    colours = [STATUS_COLOURS.get(f.status, "#57606a") for f in rows]
    ax.barh(y, values, color=colours, left=FLOOR, height=0.7)
    ax.scatter([max(f.verdict.tolerance, FLOOR) for f in rows], y, marker="|", color="#24292f", s=90, zorder=3,
               label="tolerance")
    ax.set_xscale("log")
    ax.set_yticks(y, [f.verdict.label + ("" if _finite(f.verdict.max_rel) else " (not finite)") for f in rows],
                  fontsize=8)
    ax.invert_yaxis()  # pipeline order reads top to bottom
    ax.set_xlabel("greatest relative error |B − A| / |A| (log scale)")
    root = result.root_cause
    if root is not None:
        for i, f in enumerate(rows):
            if f.verdict.tap == root.tap and tuple(f.verdict.loop) == tuple(root.loop):
                ax.annotate("root cause", (values[i], i), xytext=(6, 0), textcoords="offset points",
                            va="center", fontsize=8, fontweight="bold", color=STATUS_COLOURS["introduced"])
    present = [s for s in STATUS_COLOURS if any(f.status == s for f in rows)]
    handles = [Patch(color=STATUS_COLOURS[s], label=s) for s in present]
    handles += ax.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="lower right", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    ax.set_title("each tap's greatest relative error, in pipeline order")
    return save(fig, path)


def _finite(x) -> bool:
    try:
        return x is not None and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def diff_figures(result, out_dir, prefix: str = "") -> list[tuple[str, Path]]:
    p = tap_errors_figure(result, Path(out_dir) / f"{prefix}taps.png")
    return [] if p is None else [("each tap's greatest relative error in pipeline order", p)]
