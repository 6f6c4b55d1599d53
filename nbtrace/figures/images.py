"""Figures of two detector images: A (reference) and B (port) on a shared log scale, B−A on a
symmetric log scale, B/A, a zoom on the largest |B−A| and radial profiles against 2θ.

Images are float arrays of shape (slow, fast) in photons; pixel coordinates are (slow, fast)
as ``-trace_pixel`` takes them; axes are drawn in pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nbtrace.figures import pyplot, save

# imshow of a 4096² frame costs seconds and shows no more than the screen has: larger images
# are reduced by blocks first, keeping each block's extreme so a single hot pixel stays visible
MAX_SHOWN = 640
ZOOM_HALF = 12  # the zoom shows (2·12+1)² pixels around the largest |B−A|
RADIAL_BINS = 120
# colour limits and profiles are statistics: on a large frame a regular sample of this many
# pixels gives the same picture in a fraction of the time (extremes are taken from every pixel)
SAMPLE = 1_000_000


def _sample(img: np.ndarray, size: int = SAMPLE) -> np.ndarray:
    step = max(1, math.ceil(math.sqrt(img.size / size)))
    return img[::step, ::step]


@dataclass(frozen=True)
class Geometry:
    """An untilted detector: distance_m (sample to detector, m), pixel_m (pixel side, m) and the
    beam centre beam_s_m, beam_f_m (m, from the corner of pixel (0, 0), as nanoBragg's Sbeam/Fbeam)."""

    distance_m: float
    pixel_m: float
    beam_s_m: float
    beam_f_m: float

    def two_theta_deg(self, shape: tuple[int, int], step: int = 1) -> np.ndarray:
        """2θ (degrees) of every ``step``-th pixel centre along each axis, shape (slow, fast)."""
        s = (np.arange(0, shape[0], step) + 0.5) * self.pixel_m - self.beam_s_m
        f = (np.arange(0, shape[1], step) + 0.5) * self.pixel_m - self.beam_f_m
        r = np.hypot(s[:, None], f[None, :])
        return np.degrees(np.arctan2(r, self.distance_m))


def geometry_from_setup(setup: dict) -> Geometry | None:
    """The geometry a producer printed in its setup block (distance_m, pixel_size_m, Fbeam_m, Sbeam_m)."""
    try:
        return Geometry(float(setup["distance_m"]), float(setup["pixel_size_m"]),
                        float(setup["Sbeam_m"]), float(setup["Fbeam_m"]))
    except (KeyError, TypeError, ValueError):
        return None


def geometry_from_nb_args(args: list[str], shape: tuple[int, int]) -> Geometry:
    """nanoBragg's defaults and MOSFLM beam convention: -distance and -pixel in mm (100, 0.1),
    -Xbeam/-Ybeam in mm (default: the detector centre), Fbeam = Ybeam + ½ px, Sbeam = Xbeam + ½ px."""
    def value(flag, default):
        if flag in args and args.index(flag) + 1 < len(args):
            try:
                return float(args[args.index(flag) + 1])
            except ValueError:
                return default
        return default

    pixel_mm = value("-pixel", 0.1)
    xbeam = value("-Xbeam", (shape[0] * pixel_mm + pixel_mm) / 2)
    ybeam = value("-Ybeam", (shape[1] * pixel_mm + pixel_mm) / 2)
    return Geometry(value("-distance", 100.0) / 1e3, pixel_mm / 1e3,
                    (xbeam + pixel_mm / 2) / 1e3, (ybeam + pixel_mm / 2) / 1e3)


def _reduce(img: np.ndarray, how: str) -> tuple[np.ndarray, int]:
    """(img reduced by k×k blocks, k); ``how`` "max" keeps the block maximum, "absmax" the value
    of largest magnitude (sign kept). NaN pixels are ignored; NaN-only blocks stay NaN. The last
    row and column of blocks may be narrower: the detector's edge pixels are never dropped."""
    k = max(1, math.ceil(max(img.shape) / MAX_SHOWN))
    if k == 1:
        return img, 1
    rows, cols = np.arange(0, img.shape[0], k), np.arange(0, img.shape[1], k)

    def blocks(ufunc):
        return ufunc.reduceat(ufunc.reduceat(img, rows, axis=0), cols, axis=1)

    with np.errstate(invalid="ignore"):
        top = blocks(np.fmax)
        if how == "max":
            return top, k
        bottom = blocks(np.fmin)
        return np.where(np.abs(bottom) > np.abs(top), bottom, top), k


def _show(ax, img, norm, cmap, how="max", origin=(0, 0)):
    """imshow in pixel coordinates (pixel centres on integers), reduced when large."""
    if how == "ratio":  # the most extreme ratio of each block, judged in log space
        small, k = _reduce(np.log(img), "absmax")
        small = np.exp(small)
    else:
        small, k = _reduce(img, how)
    s0, f0 = origin
    # the image's own bounds (a narrower last block is stretched by less than one block)
    extent = (f0 - 0.5, f0 + img.shape[1] - 0.5, s0 + img.shape[0] - 0.5, s0 - 0.5)
    return ax.imshow(small, norm=norm, cmap=cmap, extent=extent, interpolation="nearest", aspect="equal")


def _cmap(name: str, bad: str = "#d0d7de"):
    import matplotlib

    return matplotlib.colormaps[name].with_extremes(bad=bad)


def _mark(ax, marks, within=None):
    """Circle and number each traced pixel (1-based, the order of the report's pixel table)."""
    for i, (s, f) in enumerate(marks, 1):
        if within is not None:
            (s0, s1), (f0, f1) = within
            if not (s0 <= s <= s1 and f0 <= f <= f1):
                continue
        ax.plot([f], [s], marker="o", markersize=9, markerfacecolor="none", markeredgecolor="#00e5ff",
                markeredgewidth=1.4)
        ax.annotate(str(i), (f, s), xytext=(5, 5), textcoords="offset points", color="#00e5ff", fontsize=8,
                    fontweight="bold")


def _log_norm(a: np.ndarray, b: np.ndarray):
    from matplotlib.colors import LogNorm

    sa, sb = _sample(a), _sample(b)
    both = np.concatenate([sa[np.isfinite(sa) & (sa > 0)].ravel(), sb[np.isfinite(sb) & (sb > 0)].ravel()])
    with np.errstate(invalid="ignore"):
        peak = max(float(np.nanmax(np.where(np.isfinite(a), a, np.nan), initial=-np.inf)),
                   float(np.nanmax(np.where(np.isfinite(b), b, np.nan), initial=-np.inf)))
    if both.size == 0 or not peak > 0:
        return LogNorm(1e-3, 1.0)
    hi = peak
    lo = max(float(both.min()), hi * 1e-7)
    return LogNorm(lo, hi if hi > lo else lo * 10)


def _symlog_norm(d: np.ndarray):
    from matplotlib.colors import SymLogNorm

    finite = np.abs(d[np.isfinite(d)])
    top = float(finite.max()) if finite.size else 1.0
    top = top if top > 0 else 1.0
    nonzero = _sample(np.abs(np.where(np.isfinite(d), d, 0.0)))
    nonzero = nonzero[nonzero > 0]
    # linear within the smallest differences that matter: the 10th percentile of |B−A| ≠ 0
    lin = float(np.percentile(nonzero, 10)) if nonzero.size else top * 1e-3
    lin = min(max(lin, top * 1e-4), top / 10)
    return SymLogNorm(linthresh=lin, vmin=-top, vmax=top, base=10)


def _diff_colorbar(fig, im, ax, norm, **kw):
    """One tick per decade and 0: the default locator crowds labels where the scale turns linear."""
    lo, hi = math.ceil(math.log10(norm.linthresh)), math.floor(math.log10(norm.vmax))
    decades = [10.0 ** e for e in range(lo, hi + 1)] or [norm.vmax]
    ticks = [-t for t in reversed(decades)] + [0.0] + decades
    return fig.colorbar(im, ax=ax, ticks=ticks, label="B − A (photons, symmetric log)", **kw)


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((a != 0) & (b != 0) & np.isfinite(a) & np.isfinite(b), b / a, np.nan)


def _ratio_norm(q: np.ndarray):
    from matplotlib.colors import LogNorm

    q = _sample(q)
    logs = np.abs(np.log10(q[np.isfinite(q) & (q > 0)]))
    span = float(np.percentile(logs, 99.5)) if logs.size else 0.0
    span = max(span, 1e-3)
    return LogNorm(10 ** -span, 10 ** span)  # symmetric in log: B/A = 1 sits in the middle


def _axes_labels(ax):
    ax.set_xlabel("fast (px)")
    ax.set_ylabel("slow (px)")


def images_figure(a: np.ndarray, b: np.ndarray, path, *, names=("A (reference)", "B (port)"), marks=()) -> Path:
    """Four panels: A and B (shared log scale), B−A (symmetric log), B/A where both are nonzero."""
    plt = pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(11, 9.6), layout="constrained")
    norm = _log_norm(a, b)
    for ax, img, name in ((axes[0, 0], a, names[0]), (axes[0, 1], b, names[1])):
        im = _show(ax, np.where(img > 0, img, np.nan), norm, _cmap("magma", "#000000"))
        fig.colorbar(im, ax=ax, label="photons (log scale)", shrink=0.85)
        ax.set_title(f"{name}")
        _mark(ax, marks)
        _axes_labels(ax)
    d = b - a
    dn = _symlog_norm(d)
    im = _show(axes[1, 0], d, dn, _cmap("RdBu_r"), how="absmax")
    _diff_colorbar(fig, im, axes[1, 0], dn, shrink=0.85)
    axes[1, 0].set_title("B − A")
    _mark(axes[1, 0], marks)
    _axes_labels(axes[1, 0])
    q = _ratio(a, b)
    if np.isfinite(q).any():
        qn = _ratio_norm(q)
        with np.errstate(invalid="ignore", divide="ignore"):
            q = np.where(q > 0, q, np.nan)  # a sign flip has no place on a log scale: grey
        im = _show(axes[1, 1], q, qn, _cmap("PuOr_r"), how="ratio")
        fig.colorbar(im, ax=axes[1, 1], label="B / A (log scale)", shrink=0.85)
        axes[1, 1].set_title("B / A where both are nonzero (grey: a zero)")
    else:
        axes[1, 1].text(0.5, 0.5, "no pixel is nonzero on both sides", ha="center", va="center",
                        transform=axes[1, 1].transAxes)
        axes[1, 1].set_title("B / A")
    _mark(axes[1, 1], marks)
    _axes_labels(axes[1, 1])
    return save(fig, path)


def worst_pixel(a: np.ndarray, b: np.ndarray) -> tuple[int, int] | None:
    d = np.abs(np.nan_to_num(b - a, nan=0.0, posinf=0.0, neginf=0.0))
    if not d.any():
        return None
    k = int(np.argmax(d))
    return k // a.shape[1], k % a.shape[1]


def zoom_figure(a: np.ndarray, b: np.ndarray, path, *, names=("A (reference)", "B (port)"), marks=()) -> Path | None:
    """A, B and B−A around the pixel of largest |B−A| at full resolution; None when A == B."""
    at = worst_pixel(a, b)
    if at is None:
        return None
    s, f = at
    s0, s1 = max(0, s - ZOOM_HALF), min(a.shape[0] - 1, s + ZOOM_HALF)
    f0, f1 = max(0, f - ZOOM_HALF), min(a.shape[1] - 1, f + ZOOM_HALF)
    ca, cb = a[s0:s1 + 1, f0:f1 + 1], b[s0:s1 + 1, f0:f1 + 1]
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8), layout="constrained")
    norm = _log_norm(ca, cb)
    for ax, img, name in ((axes[0], ca, names[0]), (axes[1], cb, names[1])):
        im = _show(ax, np.where(img > 0, img, np.nan), norm, _cmap("magma", "#000000"), origin=(s0, f0))
        fig.colorbar(im, ax=ax, label="photons (log scale)", shrink=0.8)
        ax.set_title(name)
    d = cb - ca
    dn = _symlog_norm(d)
    im = _show(axes[2], d, dn, _cmap("RdBu_r"), how="absmax", origin=(s0, f0))
    _diff_colorbar(fig, im, axes[2], dn, shrink=0.8)
    axes[2].set_title("B − A")
    for ax in axes:
        ax.plot([f], [s], marker="s", markersize=14, markerfacecolor="none", markeredgecolor="#39ff14",
                markeredgewidth=1.5)
        _mark(ax, marks, within=((s0, s1), (f0, f1)))
        _axes_labels(ax)
    fig.suptitle(f"zoom on slow {s0}..{s1}, fast {f0}..{f1} (full resolution): the largest |B − A| = "
                 f"{abs(b[s, f] - a[s, f]):.6g} photons is at (slow {s}, fast {f}), boxed in green")
    return save(fig, path)


def radial_profiles(a: np.ndarray, b: np.ndarray, geometry: Geometry | None, bins: int = RADIAL_BINS):
    """(x, mean A, mean B, x label): azimuthal means in 2θ bins (degrees), or in radius from the
    image centre (px) when no geometry is known. Bins holding no pixel are dropped."""
    # a regular sample of at most 4·SAMPLE pixels: every bin still holds thousands of them
    step = max(1, math.ceil(math.sqrt(a.size / (4 * SAMPLE))))
    a, b = a[::step, ::step], b[::step, ::step]
    if geometry is not None:
        x = geometry.two_theta_deg((step * a.shape[0] - step + 1, step * a.shape[1] - step + 1), step)
        label = "2θ (degrees)"
    else:
        s = np.arange(0, a.shape[0] * step, step) - (a.shape[0] * step - 1) / 2
        f = np.arange(0, a.shape[1] * step, step) - (a.shape[1] * step - 1) / 2
        x = np.hypot(s[:, None], f[None, :])
        label = "radius from the image centre (px)"
    ok = np.isfinite(a) & np.isfinite(b)
    xs = x[ok]
    lo, hi = float(xs.min()), float(xs.max())
    edges = np.linspace(lo, hi + 1e-12, bins + 1)
    # equal-width bins: the index is arithmetic (np.digitize searches, 10x slower on 16M pixels)
    idx = np.minimum(((xs - lo) * (bins / max(hi + 1e-12 - lo, 1e-300))).astype(np.intp), bins - 1)
    n = np.bincount(idx, minlength=bins)
    ma = np.bincount(idx, weights=a[ok], minlength=bins)
    mb = np.bincount(idx, weights=b[ok], minlength=bins)
    keep = n > 0
    centre = (edges[:-1] + edges[1:]) / 2
    return centre[keep], ma[keep] / n[keep], mb[keep] / n[keep], label


def radial_figure(a: np.ndarray, b: np.ndarray, path, *, geometry: Geometry | None = None,
                  names=("A (reference)", "B (port)")) -> Path | None:
    """Mean intensity of A and B against 2θ (log), and their ratio B/A below; None when empty."""
    if not (np.isfinite(a) & np.isfinite(b)).any():
        return None
    x, ma, mb, label = radial_profiles(a, b, geometry)
    plt = pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6.4), sharex=True, layout="constrained",
                                      height_ratios=(2, 1))
    top.plot(x, ma, label=names[0], color="#0969da", linewidth=1.6)
    top.plot(x, mb, label=names[1], color="#cf222e", linewidth=1.2, linestyle="--")
    if (ma > 0).any() or (mb > 0).any():
        top.set_yscale("log")
    top.set_ylabel("mean photons per pixel")
    top.legend()
    top.grid(alpha=0.3)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(ma != 0, mb / ma, np.nan)
    bottom.plot(x, ratio, color="#6e40c9", linewidth=1.2)
    bottom.axhline(1.0, color="#57606a", linewidth=0.8)
    bottom.set_ylabel("B / A")
    bottom.set_xlabel(label)
    bottom.grid(alpha=0.3)
    where = "" if geometry is None else (f" (distance {geometry.distance_m * 1e3:.6g} mm, pixel "
                                         f"{geometry.pixel_m * 1e3:.6g} mm, beam at slow {geometry.beam_s_m * 1e3:.6g}"
                                         f" mm, fast {geometry.beam_f_m * 1e3:.6g} mm)")
    top.set_title("radial profiles" + where)
    return save(fig, path)


def image_figures(a: np.ndarray, b: np.ndarray, out_dir, *, names=("A (reference)", "B (port)"), marks=(),
                  geometry: Geometry | None = None, prefix: str = "") -> list[tuple[str, Path]]:
    """Every image figure into ``out_dir``: [(caption, path), ...]."""
    d = Path(out_dir)
    out = [(f"{names[0]} and {names[1]} on a shared log scale, B − A on a symmetric log scale, B / A"
            + (" — traced pixels circled and numbered" if marks else ""),
            images_figure(a, b, d / f"{prefix}images.png", names=names, marks=marks))]
    z = zoom_figure(a, b, d / f"{prefix}zoom.png", names=names, marks=marks)
    if z is not None:
        out.append(("zoom on the region of the largest |B − A|", z))
    r = radial_figure(a, b, d / f"{prefix}radial.png", geometry=geometry, names=names)
    if r is not None:
        out.append(("radial profiles of A and B and their ratio" + (" against 2θ" if geometry else ""), r))
    return out
