"""Detector images: reading (raw float32, SMV, .npy) and comparison metrics.

Images are numpy float64 arrays of shape (spixels, fpixels) — slow rows, fast columns —
holding photons per pixel. Pixel coordinates everywhere are (slow, fast), the order of
``-trace_pixel``; ROIs follow nanoBragg's ``-roi`` (fast min, fast max, slow min, slow max),
inclusive on both ends.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from nbtrace.errors import ImageError, UsageError

SMV_MIN_HEADER = 512
_SMV_TYPES = {
    "unsigned_short": "u2",
    "signed_short": "i2",
    "unsigned_int": "u4",
    "signed_int": "i4",
    "unsigned_long": "u4",
    "signed_long": "i4",
    "float": "f4",
}


# --------------------------------------------------------------------------- shape from args


def _number_after(args: list[str], i: int) -> float:
    if i + 1 >= len(args):
        raise UsageError(f"{args[i]} needs a number", "nanoBragg args", f"write {args[i]} VALUE")
    try:
        value = float(args[i + 1])
    except ValueError:
        raise UsageError(
            f"{args[i]} needs a number, got {args[i + 1][:40]!r}", "nanoBragg args", f"write {args[i]} VALUE"
        ) from None
    # float() takes nan and inf; no detector is NaN or infinitely many pixels wide
    if not math.isfinite(value) or value <= 0:
        raise UsageError(f"{args[i]} needs a finite number > 0, got {args[i + 1][:40]!r}", "nanoBragg args",
                         f"write {args[i]} VALUE")
    return value


def shape_from_nb_args(args: list[str]) -> tuple[int, int]:
    """(spixels, fpixels) that a nanoBragg run with ``args`` renders (physics.md §5.1).

    Pixel counts win over sizes: ``detsize = pixel · count`` on an axis with a count, then
    ``n = ceil(detsize / pixel − 0.5)``. Defaults: pixel 0.1 mm, detsize 102.4 mm.
    """
    pixel_mm = 0.1
    size = {"f": 102.4, "s": 102.4}
    count: dict[str, float] = {}
    aliases = {
        "-detpixels": "fs", "-detpixels_f": "f", "-detpixels_x": "f", "-detpixels_s": "s", "-detpixels_y": "s",
    }
    size_aliases = {"-detsize": "fs", "-detsize_f": "f", "-detsize_s": "s"}
    for i, tok in enumerate(args):
        if tok in ("-pixel", "-pixel_size"):
            pixel_mm = _number_after(args, i)
        elif tok in aliases:
            for axis in aliases[tok]:
                count[axis] = _number_after(args, i)
        elif tok in size_aliases:
            for axis in size_aliases[tok]:
                size[axis] = _number_after(args, i)
    for axis, n in count.items():
        size[axis] = pixel_mm * n
    # the C rounds this way: a detsize that is not a pixel multiple loses the partial pixel
    ratios = (size["s"] / pixel_mm - 0.5, size["f"] / pixel_mm - 0.5)
    if not all(math.isfinite(r) for r in ratios):  # -detsize 1e300 -pixel 1e-300
        raise UsageError("these detector flags ask for more pixels than a float can count", "nanoBragg args",
                         "check -detpixels, -detsize and -pixel")
    spix, fpix = (math.ceil(r) for r in ratios)
    if spix < 1 or fpix < 1:
        raise UsageError(f"detector of {fpix}x{spix} pixels from these args", "nanoBragg args",
                         "-pixel and -detsize are in mm: check them against -detpixels")
    return spix, fpix


def roi_from_nb_args(args: list[str], shape: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """The pixels a nanoBragg run with ``args`` computes: its ``-roi xmin xmax ymin ymax`` (fast
    min, fast max, slow min, slow max, inclusive; the last one given wins) clipped to the
    (spixels, fpixels) detector, or None without -roi. Pixels outside it are never computed,
    so they cannot be traced."""
    where = [i for i, tok in enumerate(args) if tok == "-roi"]
    if not where:
        return None
    i = where[-1]
    words = args[i + 1: i + 5]
    try:
        xmin, xmax, ymin, ymax = (int(float(w)) for w in words)
    except ValueError:
        raise UsageError(f"-roi needs 4 pixel indices, got {' '.join(words)!r}", "nanoBragg args",
                         "write -roi XMIN XMAX YMIN YMAX (fast min, fast max, slow min, slow max)") from None
    spix, fpix = shape
    box = max(xmin, 0), min(xmax, fpix - 1), max(ymin, 0), min(ymax, spix - 1)
    if box[0] > box[1] or box[2] > box[3]:
        raise UsageError(f"-roi {xmin} {xmax} {ymin} {ymax} selects no pixel of the {spix}x{fpix} detector",
                         "nanoBragg args", f"fast in 0..{fpix - 1}, slow in 0..{spix - 1}, min <= max (inclusive)")
    return box


# --------------------------------------------------------------------------- reading


def _parse_smv_header(head: bytes, path: Path) -> dict[str, str]:
    end = head.find(b"}")
    if not head.startswith(b"{") or end < 0:
        raise ImageError("not an SMV header (no '{ ... }' block)", str(path), "pass a .img SMV file")
    text = head[1:end].decode("ascii", errors="replace")
    fields: dict[str, str] = {}
    # DIALS_ORIGIN has no semicolon in nanoBragg's header: split on newlines as well
    for item in re.split(r"[;\n]", text):
        if "=" in item:
            key, _, value = item.partition("=")
            fields[key.strip().upper()] = value.strip()
    return fields


def _smv_int(fields: dict[str, str], key: str, path: Path, minimum: int) -> int:
    if key not in fields:
        raise ImageError(f"SMV header has no {key}", str(path), "is this file truncated or not SMV?")
    text = fields[key]
    # ASCII digits only, and few of them: int() also takes '1_000', superscripts and 5,000-digit numbers
    if not re.fullmatch(r"[+-]?[0-9]{1,18}", text):
        raise ImageError(f"SMV header {key}={text[:40]!r} is not an integer", str(path),
                         "is this file damaged or not SMV?")
    value = int(text)
    if value < minimum:
        raise ImageError(f"SMV header {key}={value} must be >= {minimum}", str(path), "is this file damaged?")
    return value


def read_smv(path: Path) -> np.ndarray:
    """An SMV (.img) image as float64 (spixels, fpixels) in stored units (ADUs)."""
    data = path.read_bytes()
    fields = _parse_smv_header(data[:8192], path)
    header_bytes = _smv_int(fields, "HEADER_BYTES", path, 0)
    fpix = _smv_int(fields, "SIZE1", path, 1)
    spix = _smv_int(fields, "SIZE2", path, 1)
    order = fields.get("BYTE_ORDER", "little_endian").lower()
    kind = fields.get("TYPE", "unsigned_short").lower()
    if kind not in _SMV_TYPES:
        raise ImageError(f"SMV TYPE={kind} is not supported", str(path), f"one of {', '.join(_SMV_TYPES)}")
    endian = ">" if order.startswith("big") else "<"
    dtype = np.dtype(endian + _SMV_TYPES[kind])
    need = header_bytes + fpix * spix * dtype.itemsize
    if len(data) < need:
        raise ImageError(
            f"SMV file holds {len(data)} bytes, header says {need} ({fpix}x{spix} {kind} + {header_bytes})",
            str(path), "the file is truncated",
        )
    arr = np.frombuffer(data, dtype=dtype, count=fpix * spix, offset=header_bytes)
    return arr.reshape(spix, fpix).astype(np.float64)


def read_raw(path: Path, shape: tuple[int, int] | None) -> np.ndarray:
    """A raw little-endian float32 file (nanoBragg -floatfile) as float64 (spixels, fpixels)."""
    size = path.stat().st_size
    if shape is None:
        raise ImageError(
            f"raw float32 file of {size} bytes needs a shape", str(path),
            "give --shape SLOW FAST or the nanoBragg args after --",
        )
    spix, fpix = shape
    if size != 4 * spix * fpix:
        got = f"{size // 4} float32 values" if size % 4 == 0 else f"{size} bytes (not a multiple of 4)"
        side = math.isqrt(size // 4) if size % 4 == 0 else 0
        hint = f"it would be {side}x{side} if square" if side * side * 4 == size else "check the shape"
        raise ImageError(
            f"holds {got}, shape {spix}x{fpix} needs {spix * fpix}", str(path), hint,
        )
    return np.fromfile(path, dtype="<f4").reshape(spix, fpix).astype(np.float64)


def read_npy(path: Path) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:  # numpy raises EOFError on a short file
        raise ImageError(f"not a readable .npy file ({exc})", str(path)) from None
    if not isinstance(arr, np.ndarray):  # a .npz archive: several arrays, which one is the image?
        arr.close()
        raise ImageError("this is a .npz archive, not one .npy image", str(path),
                         "save the image alone with numpy.save (region dumps go to nbtrace maps)")
    if arr.ndim != 2:
        raise ImageError(f".npy array has shape {arr.shape}, expected 2-D (slow, fast)", str(path))
    if not np.issubdtype(arr.dtype, np.number):
        raise ImageError(f".npy dtype {arr.dtype} is not numeric", str(path))
    if np.issubdtype(arr.dtype, np.complexfloating):  # the imaginary part would be dropped silently
        raise ImageError(f".npy dtype {arr.dtype} is complex; an image holds real photon counts", str(path),
                         "save abs(x)**2 or the real part explicitly")
    return arr.astype(np.float64)


def sniff_format(path: Path) -> str:
    """'npy', 'smv' or 'raw', from the magic bytes first and the extension second."""
    with path.open("rb") as fh:
        head = fh.read(1024)
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head.startswith(b"{") and b"HEADER_BYTES" in head:
        return "smv"
    # a .npz is a zip of arrays: read as raw float32 it would be garbage of the right size by chance
    if path.suffix.lower() in (".npy", ".npz"):
        return "npy"
    if path.suffix.lower() in (".img", ".smv"):
        return "smv"
    return "raw"


def read_image(path: str | Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Any supported image as float64 (spixels, fpixels); raises ImageError on bad input."""
    p = Path(path)
    if not p.exists():
        raise ImageError("no such file", str(p), "check the path")
    if not p.is_file():
        raise ImageError("not a regular file", str(p))
    if p.stat().st_size == 0:
        raise ImageError("file is empty", str(p), "did the producer fail?")
    fmt = sniff_format(p)
    try:
        arr = {"npy": read_npy, "smv": read_smv}.get(fmt, lambda q: read_raw(q, shape))(p)
    except PermissionError:
        raise ImageError("permission denied", str(p)) from None
    if fmt != "raw" and shape is not None and arr.shape != tuple(shape):
        raise ImageError(f"{fmt} image is {arr.shape[0]}x{arr.shape[1]}, --shape says {shape[0]}x{shape[1]}", str(p))
    if not np.isfinite(arr).any():
        raise ImageError("image holds no finite value (all NaN/inf)", str(p), "the producer failed")
    return arr


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
