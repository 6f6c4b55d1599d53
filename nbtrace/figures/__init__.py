"""Figures (matplotlib, Agg backend) of images, tap maps and trace diffs.

matplotlib is imported by :func:`pyplot` only, i.e. only when a picture is asked for: ``nbtrace
diff`` without ``--png``/``--out`` never pays for it. Every figure function writes PNG files and
returns ``[(title, path), ...]`` so reports can caption and embed them.
"""

from __future__ import annotations

from pathlib import Path

# status -> colour, shared by the tap chart, the maps legend and the HTML pipeline drawing
STATUS_COLOURS = {
    "agree": "#2da44e",
    "introduced": "#cf222e",
    "inherited": "#fb8f44",
    "immaterial": "#8250df",
    "missing": "#8c959f",
    "setup": "#54aeff",
}
DPI = 110


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed, nothing interactive)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: str | Path) -> Path:
    """Write ``fig`` as PNG and free it; UsageError (one line, with the path) when refused."""
    from nbtrace.errors import UsageError

    plt = pyplot()
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(p, dpi=DPI)
    except OSError as exc:
        raise UsageError(f"cannot write the figure ({exc.strerror or exc})", str(p), "choose a writable path") from None
    finally:
        plt.close(fig)
    return p
