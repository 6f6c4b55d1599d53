"""Figures of region maps (nbtrace.engine.maps.MapsResult): the first divergent tap of every
pixel, and one panel per divergent tap showing the size of its relative error on a log scale,
paged so that every divergent tap is shown however many there are.

Arrays are (slow, fast) over the region; axes are full-detector pixel coordinates.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from nbtrace.figures import pyplot, save

PER_PAGE = 12  # 3 rows of 4 panels per page of per-tap maps
COLUMNS = 4
# a categorical palette for "first divergent tap" (agree is grey, not one of these)
PALETTE = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45",
           "#fabed4", "#469990", "#dcbeff", "#9a6324", "#fffac8", "#800000", "#aaffc3", "#808000")
AGREE = "#30363d"


def _extent(roi):
    xmin, xmax, ymin, ymax = roi
    return (xmin - 0.5, xmax + 0.5, ymax + 0.5, ymin - 0.5)


def first_divergent_figure(res, path) -> Path:
    """Colour per tap where it is the first to diverge, dark grey where every tap agrees."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    plt = pyplot()
    counts = res.first_counts()
    names = [n for n, _ in counts]
    colours = [PALETTE[i % len(PALETTE)] for i in range(len(names))]
    index = {res.order.index(n): i for i, n in enumerate(names)}
    shown = np.full(res.first_label.shape, -1, dtype=np.int32)
    for label, i in index.items():
        shown[res.first_label == label] = i
    cmap = ListedColormap([AGREE] + colours)
    ny, nx = shown.shape
    aspect = ny / max(nx, 1)
    fig, ax = plt.subplots(figsize=(10, max(3.0, min(9.0, 7.0 * aspect)) + 0.4 * len(names) / 2),
                           layout="constrained")
    ax.imshow(shown + 1, cmap=cmap, vmin=0, vmax=len(names), extent=_extent(res.roi), interpolation="nearest",
              aspect="equal")
    xmin, xmax, ymin, ymax = res.roi
    ax.set_title(f"first divergent tap per pixel (fast {xmin}..{xmax}, slow {ymin}..{ymax})")
    ax.set_xlabel("fast (px)")
    ax.set_ylabel("slow (px)")
    agree_n = int((res.first_label < 0).sum())
    handles = [Patch(color=c, label=f"{n}: first divergent in {k:,} pixels") for (n, k), c in zip(counts, colours)]
    handles.append(Patch(color=AGREE, label=f"every tap agrees: {agree_n:,} pixels"))
    fig.legend(handles=handles, loc="outside lower center", ncols=2 if len(handles) > 3 else 1, fontsize=9)
    return save(fig, path)


def _rel_shown(tap) -> np.ndarray:
    """log10 of the relative error, NaN where it is exactly zero (nothing to show on a log scale)."""
    rel = tap.rel if tap.rel is not None else np.where(tap.mask, 1.0, 0.0)
    rel = np.nan_to_num(np.asarray(rel, dtype=np.float64), nan=np.inf)
    rel = np.where(np.isinf(rel), np.finfo(float).max, rel)
    with np.errstate(divide="ignore"):
        return np.where(rel > 0, np.log10(rel), np.nan)


def tap_pages(res, out_dir, stem: str = "maps_taps") -> list[tuple[str, Path]]:
    """Every divergent tap's log relative error, ``PER_PAGE`` panels a page; [(caption, path)].

    The colour scale is shared by all pages; the tap's tolerance is drawn on the colour bar
    and pixels out of tolerance are outlined, so magnitude and verdict read together."""
    taps = res.divergent()
    if not taps:
        return []
    shown = [_rel_shown(t) for t in taps]
    finite = np.concatenate([s[np.isfinite(s)].ravel() for s in shown]) if shown else np.array([])
    # the top 0.1% may be "1e308" stand-ins for a one-sided NaN: they would flatten the scale
    lo, hi = (float(finite.min()), float(np.percentile(finite, 99.9))) if finite.size else (-16.0, 0.0)
    lo = max(lo, hi - 16)  # 16 decades cover float64; below that is noise
    if hi - lo < 1:
        lo -= 0.5
        hi += 0.5
    pages = math.ceil(len(taps) / PER_PAGE)
    out = []
    for p in range(pages):
        chunk = list(range(p * PER_PAGE, min(len(taps), (p + 1) * PER_PAGE)))
        name = f"{stem}.png" if pages == 1 else f"{stem}_{p + 1}.png"
        path = _tap_page(res, [taps[i] for i in chunk], [shown[i] for i in chunk], (lo, hi), Path(out_dir) / name,
                         (p + 1, pages))
        first, last = chunk[0] + 1, chunk[-1] + 1
        out.append((f"relative error of each divergent tap, log scale (taps {first}–{last} of {len(taps)}"
                    f"{'' if pages == 1 else f', page {p + 1} of {pages}'})", path))
    return out


def _tap_page(res, taps, shown, limits, path, page) -> Path:
    import matplotlib

    plt = pyplot()
    cols = min(COLUMNS, len(taps))
    rows = math.ceil(len(taps) / cols)
    ny, nx = res.first_label.shape
    panel_h = max(1.4, min(3.4, 3.4 * ny / max(nx, 1))) + 0.6
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols + 1.2, panel_h * rows + 0.6), squeeze=False,
                             layout="constrained")
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="#f6f8fa")
    im = None
    for ax, t, s in zip(axes.flat, taps, shown):
        im = ax.imshow(s, cmap=cmap, vmin=limits[0], vmax=limits[1], extent=_extent(res.roi),
                       interpolation="nearest", aspect="equal")
        if t.mask.any() and not t.mask.all():
            ax.contour(t.mask.astype(float), levels=[0.5], colors="#ff2d55", linewidths=0.8,
                       extent=(res.roi[0], res.roi[1], res.roi[2], res.roi[3]), origin="upper")
        ax.set_title(f"{t.name}\n{t.n_divergent:,} of {t.n_pixels:,} px out of tolerance", fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(taps):]:
        ax.set_visible(False)
    bar = fig.colorbar(im, ax=axes, shrink=0.8, label="log10 relative error |B − A| / |A|")
    bar.ax.tick_params(labelsize=8)
    head = "where each divergent tap is out of tolerance (red outline) and by how much"
    fig.suptitle(head + (f" — page {page[0]} of {page[1]}" if page[1] > 1 else ""), fontsize=11)
    return save(fig, path)


def maps_figures(res, out_dir, prefix: str = "maps_") -> list[tuple[str, Path]]:
    """The first-divergent map and every per-tap page; [(caption, path), ...]."""
    d = Path(out_dir)
    out = [("first divergent tap per pixel", first_divergent_figure(res, d / f"{prefix}first_divergent.png"))]
    return out + tap_pages(res, d, stem=f"{prefix}taps")
