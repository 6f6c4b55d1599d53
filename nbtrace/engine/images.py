"""Detector images: comparison metrics (reading raw float32, SMV and .npy is re-exported).

Images are numpy float64 arrays of shape (spixels, fpixels) — slow rows, fast columns —
holding photons per pixel. Pixel coordinates everywhere are (slow, fast), the order of
``-trace_pixel``; ROIs follow nanoBragg's ``-roi`` (fast min, fast max, slow min, slow max),
inclusive on both ends.

Reading images and the shape/ROI implied by nanoBragg arguments live in
:mod:`nbtrace.engine.image_io`; this module holds the metrics and re-exports the readers, so
``nbtrace.engine.images`` stays the one import for callers.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from nbtrace.errors import ImageError, UsageError
from nbtrace.engine.image_io import (  # noqa: F401  (re-exported)
    SMV_MIN_HEADER, read_image, read_npy, read_raw, read_smv, roi_from_nb_args, shape_from_nb_args, sniff_format,
)


# --------------------------------------------------------------------------- ROI


@dataclass(frozen=True)
class Roi:
    """Inclusive pixel box in nanoBragg -roi order: fast min, fast max, slow min, slow max."""

    xmin: int
    xmax: int
    ymin: int
    ymax: int

    def check(self, shape: tuple[int, int]) -> Roi:
        spix, fpix = shape
        if not (0 <= self.xmin <= self.xmax < fpix and 0 <= self.ymin <= self.ymax < spix):
            raise UsageError(
                f"--roi {self.xmin} {self.xmax} {self.ymin} {self.ymax} is outside the {spix}x{fpix} image",
                "--roi", f"fast in 0..{fpix - 1}, slow in 0..{spix - 1}, min <= max (inclusive)",
            )
        return self

    def slices(self) -> tuple[slice, slice]:
        return slice(self.ymin, self.ymax + 1), slice(self.xmin, self.xmax + 1)

    def __str__(self) -> str:
        return f"fast {self.xmin}..{self.xmax}, slow {self.ymin}..{self.ymax} (inclusive)"


# --------------------------------------------------------------------------- metrics


@dataclass(frozen=True)
class PeakMatch:
    n_a: int
    n_b: int
    matched: int
    mean_offset_px: float | None  # mean Euclidean distance of matched pairs


@dataclass(frozen=True)
class ImageMetrics:
    """Comparison of B (port) against A (reference); every field is JSON-ready."""

    shape: tuple[int, int]
    roi: tuple[int, int, int, int] | None
    n_pixels: int
    sum_a: float
    sum_b: float
    sum_ratio: float | None  # B/A; None when sum A is 0
    correlation: float | None  # Pearson; None when either image has zero variance
    correlation_note: str | None
    rmse: float
    max_abs_diff: float
    max_abs_diff_at: tuple[int, int]  # (slow, fast) in full-image coordinates
    max_a: float
    max_b: float
    nonfinite_a: int
    nonfinite_b: int
    peaks: PeakMatch
    # pixels non-finite on one side only (or NaN vs ±inf): a disagreement, not a pixel to skip
    nonfinite_mismatch: int = 0
    nonfinite_mismatch_at: tuple[int, int] | None = None  # first one, (slow, fast) full-image

    def to_json(self) -> dict:
        return asdict(self)


def pearson(a: np.ndarray, b: np.ndarray) -> tuple[float | None, str | None]:
    """Pearson correlation of two equal-shape arrays, or (None, why) when undefined."""
    da = a - a.mean()
    db = b - b.mean()
    va = float(np.dot(da.ravel(), da.ravel()))
    vb = float(np.dot(db.ravel(), db.ravel()))
    if va == 0.0 or vb == 0.0:
        which = " and ".join(n for n, v in (("A", va), ("B", vb)) if v == 0.0)
        return None, f"correlation undefined: {which} has zero variance (constant image)"
    return float(np.dot(da.ravel(), db.ravel()) / math.sqrt(va * vb)), None


def local_maxima(img: np.ndarray, n: int) -> np.ndarray:
    """Top-n strict-ish local maxima (≥ all 8 neighbours, > 0) as int array (k, 2) of (slow, fast)."""
    if n <= 0 or img.size == 0:
        return np.zeros((0, 2), dtype=int)
    pad = np.pad(img, 1, mode="constant", constant_values=-np.inf)
    centre = pad[1:-1, 1:-1]
    is_max = centre > 0
    for ds in (-1, 0, 1):
        for df in (-1, 0, 1):
            if ds == 0 and df == 0:
                continue
            nb = pad[1 + ds: pad.shape[0] - 1 + ds, 1 + df: pad.shape[1] - 1 + df]
            is_max &= centre >= nb
    idx = np.argwhere(is_max)
    if len(idx) > n:
        vals = img[idx[:, 0], idx[:, 1]]
        idx = idx[np.argsort(-vals, kind="stable")[:n]]
    return idx


def match_peaks(pa: np.ndarray, pb: np.ndarray, radius: float = 1.0) -> PeakMatch:
    """One-to-one greedy matching (closest pairs first, ties in (A, B) index order) of two peak
    lists within ``radius`` px. Peaks sit on whole pixels, so only B peaks in the box of
    offsets up to ``radius`` around each A peak are candidates: no A×B distance matrix, which
    for ``--peaks 40000`` would need gigabytes."""
    if len(pa) == 0 or len(pb) == 0:
        return PeakMatch(len(pa), len(pb), 0, None)
    at_b: dict[tuple[int, int], list[int]] = {}
    for j, (s, f) in enumerate(np.asarray(pb, dtype=int).tolist()):
        at_b.setdefault((s, f), []).append(j)
    reach = int(math.floor(radius + 1e-9))
    offsets = [(ds, df) for ds in range(-reach, reach + 1) for df in range(-reach, reach + 1)
               if math.hypot(ds, df) <= radius + 1e-9]
    pairs = []
    for i, (s, f) in enumerate(np.asarray(pa, dtype=int).tolist()):
        for ds, df in offsets:
            for j in at_b.get((s + ds, f + df), ()):
                pairs.append((math.hypot(ds, df), i, j))
    pairs.sort()
    used_a: set[int] = set()
    used_b: set[int] = set()
    dists = []
    for d, i, j in pairs:
        if i in used_a or j in used_b:
            continue
        used_a.add(i)
        used_b.add(j)
        dists.append(d)
    return PeakMatch(len(pa), len(pb), len(dists), float(np.mean(dists)) if dists else None)


def compare_images(a: np.ndarray, b: np.ndarray, *, roi: Roi | None = None, peaks: int = 20) -> ImageMetrics:
    """Metrics of B against A over the ROI (whole image when None). Non-finite pixels are
    counted and excluded from every metric; those non-finite on one side only are counted
    apart (``failures`` treats them as a disagreement)."""
    if a.shape != b.shape:
        raise ImageError(f"images differ in shape: A is {a.shape[0]}x{a.shape[1]}, B is {b.shape[0]}x{b.shape[1]}",
                         None, "compare images of the same detector")
    s_off, f_off = 0, 0
    if roi is not None:
        roi.check(a.shape)
        ys, xs = roi.slices()
        a, b = a[ys, xs], b[ys, xs]
        s_off, f_off = roi.ymin, roi.xmin
    finite = np.isfinite(a) & np.isfinite(b)
    if not finite.any():
        raise ImageError("no pixel is finite in both images", None, "a producer failed")
    fa = np.where(finite, a, 0.0)
    fb = np.where(finite, b, 0.0)
    av, bv = fa[finite], fb[finite]
    corr, note = pearson(av, bv)
    diff = np.abs(fb - fa)
    k = int(np.argmax(diff))
    sa, sb = float(av.sum()), float(bv.sum())
    mismatch = _nonfinite_mismatch(a, b, finite)
    first = np.argwhere(mismatch)[0] if mismatch.any() else None
    return ImageMetrics(
        shape=tuple(int(x) for x in a.shape) if roi is None else (int(a.shape[0]), int(a.shape[1])),
        roi=None if roi is None else (roi.xmin, roi.xmax, roi.ymin, roi.ymax),
        n_pixels=int(finite.sum()),
        sum_a=sa,
        sum_b=sb,
        sum_ratio=None if sa == 0.0 else sb / sa,
        correlation=corr,
        correlation_note=note,
        rmse=float(np.sqrt(np.mean((bv - av) ** 2))),
        max_abs_diff=float(diff.flat[k]),
        max_abs_diff_at=(int(k // a.shape[1]) + s_off, int(k % a.shape[1]) + f_off),
        max_a=float(av.max()),
        max_b=float(bv.max()),
        nonfinite_a=int((~np.isfinite(a)).sum()),
        nonfinite_b=int((~np.isfinite(b)).sum()),
        peaks=match_peaks(local_maxima(fa, peaks), local_maxima(fb, peaks)),
        nonfinite_mismatch=int(mismatch.sum()),
        nonfinite_mismatch_at=None if first is None else (int(first[0]) + s_off, int(first[1]) + f_off),
    )


def _nonfinite_mismatch(a: np.ndarray, b: np.ndarray, finite: np.ndarray) -> np.ndarray:
    """bool mask: pixels where the two sides are not the same non-finite value (NaN on both
    sides, or the same infinity, is the same outcome; a number vs NaN/inf is not)."""
    with np.errstate(invalid="ignore"):
        same = (np.isnan(a) & np.isnan(b)) | (a == b)
    return ~finite & ~same


@dataclass(frozen=True)
class Thresholds:
    """corr_min: Pearson correlation needed, in [-1, 1]; sum_tol: allowed |sum(B)/sum(A) - 1|, >= 0."""

    corr_min: float = 0.999
    sum_tol: float = 5e-3

    def __post_init__(self):
        # an unreachable threshold would make every comparison fail (or pass) for a typo
        if not (math.isfinite(self.corr_min) and -1.0 <= self.corr_min <= 1.0):
            raise UsageError(f"{self.corr_min} is not a correlation (outside [-1, 1])", "--corr-min",
                             "give a number in [-1, 1], e.g. 0.999")
        if not (math.isfinite(self.sum_tol) and self.sum_tol >= 0.0):
            raise UsageError(f"{self.sum_tol} is not a tolerance (must be finite and >= 0)", "--sum-tol",
                             "give a relative tolerance such as 0.005")


def failures(m: ImageMetrics, t: Thresholds) -> list[str]:
    """Reasons the metrics are outside the thresholds; [] when within."""
    out = []
    if m.correlation is None:
        # two identical constant images agree; a constant vs anything else cannot be judged
        if m.max_abs_diff > 0:
            out.append(m.correlation_note or "correlation undefined")
    elif m.correlation < t.corr_min:
        out.append(f"correlation {m.correlation:.6f} < {t.corr_min}")
    if m.sum_ratio is None:
        if m.sum_b != 0.0:
            out.append("sum of A is 0 but sum of B is not")
    elif abs(m.sum_ratio - 1.0) > t.sum_tol:
        out.append(f"|sum ratio - 1| = {abs(m.sum_ratio - 1):.3g} > {t.sum_tol}")
    if m.nonfinite_mismatch:
        s, f = m.nonfinite_mismatch_at
        out.append(f"{m.nonfinite_mismatch} pixel(s) non-finite on one side only, first at (slow {s}, fast {f})")
    return out


# --------------------------------------------------------------------------- comparison of two files


@dataclass(frozen=True)
class ImageComparison:
    """Everything ``nbtrace compare`` judged: the full frame first, then each ROI."""

    path_a: str
    path_b: str
    full: ImageMetrics
    rois: tuple[ImageMetrics, ...]
    thresholds: Thresholds
    failures: tuple[str, ...]  # prefixed with the region ("frame: ...", "roi fast 0..9 ...: ...")

    def __bool__(self) -> bool:
        return not self.failures

    def to_json(self) -> dict:
        return {
            "verdict": "agree" if self else "diverge",
            "a": self.path_a,
            "b": self.path_b,
            "thresholds": asdict(self.thresholds),
            "failures": list(self.failures),
            "frame": self.full.to_json(),
            "rois": [m.to_json() for m in self.rois],
        }


def compare_arrays(a: np.ndarray, b: np.ndarray, *, names=("A", "B"), rois=(), thresholds=Thresholds(),
                   peaks: int = 20) -> ImageComparison:
    full = compare_images(a, b, peaks=peaks)
    per_roi = tuple(compare_images(a, b, roi=r, peaks=peaks) for r in rois)
    fails = [f"frame: {f}" for f in failures(full, thresholds)]
    for r, m in zip(rois, per_roi):
        fails += [f"roi {r}: {f}" for f in failures(m, thresholds)]
    return ImageComparison(str(names[0]), str(names[1]), full, per_roi, thresholds, tuple(fails))


def _fmt(x: float | None, spec: str = ".6g") -> str:
    return "undefined" if x is None else format(x, spec)


def metrics_lines(m: ImageMetrics, t: Thresholds, indent: str = "  ") -> list[str]:
    """Human lines for one metrics block (renderer: reads the frozen result only)."""
    corr = m.correlation_note if m.correlation is None else f"{m.correlation:.6f}   (>= {t.corr_min} required)"
    ratio = "undefined (sum of A is 0)" if m.sum_ratio is None else (
        f"{m.sum_ratio:.6g}   (|ratio - 1| <= {t.sum_tol:g} required)")
    p = m.peaks
    off = "" if p.mean_offset_px is None else f", mean offset {p.mean_offset_px:.2f} px"
    lines = [
        f"{indent}correlation      {corr}",
        f"{indent}sum ratio B/A    {ratio}   (sums {m.sum_a:.6g} / {m.sum_b:.6g} photons)",
        f"{indent}RMSE             {m.rmse:.6g} photons",
        f"{indent}max |B - A|      {m.max_abs_diff:.6g} photons at (slow {m.max_abs_diff_at[0]}, "
        f"fast {m.max_abs_diff_at[1]})",
        f"{indent}peaks            {p.matched} of {min(p.n_a, p.n_b)} matched one-to-one within 1 px "
        f"(top {p.n_a} in A, {p.n_b} in B){off}",
    ]
    if m.nonfinite_a or m.nonfinite_b:
        lines.append(f"{indent}non-finite       {m.nonfinite_a} in A, {m.nonfinite_b} in B (excluded from the metrics)")
    if m.nonfinite_mismatch:
        s, f = m.nonfinite_mismatch_at
        lines.append(f"{indent}one side only    {m.nonfinite_mismatch} pixel(s) finite in one image, not in the "
                     f"other (first at slow {s}, fast {f}): a disagreement")
    return lines
