"""Divergence maps: where on the detector each tap of two region dumps disagrees.

A region dump (docs/CONTRACTS.md §4) holds every per-pixel tap over an inclusive ROI as
arrays of shape (ny, nx) or (ny, nx, 3), ny along slow and nx along fast. This module compares
the reference dump (A) with the port's (B) element-wise within the spec's tolerances, finds
for every pixel the FIRST divergent tap in pipeline (spec) order, and describes the region a
tap diverges in, so a fault confined to the detector edges (incident 21) is shown, not missed.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nbtrace.errors import ImageError, UsageError

# Used when the spec declares no tolerance for a tap: both producers compute in float64, so
# disagreement beyond ~1e-9 relative is not rounding. The magnitude floor keeps components that
# pass through zero (e.g. scattering-vector components) from failing on absolute noise.
FALLBACK_RTOL = 1e-9
MAGNITUDE_FLOOR = 1e-9
# Above this many pixels a full-frame dump costs hundreds of MB per side (~70 float64 per pixel).
MAX_DUMP_PIXELS = 256 * 256


@dataclass(frozen=True, eq=False)
class Dump:
    """One side's region dump. roi = (xmin, xmax, ymin, ymax) inclusive; arrays keyed by tap."""

    path: str
    roi: tuple[int, int, int, int]
    arrays: dict
    meta: dict

    @property
    def shape(self) -> tuple[int, int]:
        xmin, xmax, ymin, ymax = self.roi
        return ymax - ymin + 1, xmax - xmin + 1


def load_dump(path: str | Path) -> Dump:
    """Read a ``.npz`` region dump; ImageError (one line, with the path) on anything malformed."""
    p = Path(path)
    if not p.is_file():
        raise ImageError("no such dump file", str(p), "produce it with -trace_roi ... -trace_dump FILE.npz")
    head = _head(p)
    if not head:
        raise ImageError("dump file is empty", str(p), "did the producer fail? re-run it with -trace_dump FILE.npz")
    if head.startswith(b"\x93NUMPY"):
        raise ImageError("this is a .npy array, not a .npz region dump", str(p),
                         "give the FILE.npz written by -trace_roi ... -trace_dump FILE.npz; images go to nbtrace compare")
    if not head.startswith(b"PK"):
        raise ImageError("not a readable .npz dump (not a zip archive)", str(p),
                         "give the FILE.npz written by -trace_roi ... -trace_dump FILE.npz")
    try:
        loaded = np.load(p, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:  # numpy raises EOFError on short files
        raise ImageError(f"not a readable .npz dump ({exc})", str(p), "is it a -trace_dump output?") from None
    try:
        with loaded as z:
            arrays = {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ImageError(f"not a readable .npz dump ({exc})", str(p), "is it a -trace_dump output?") from None
    if "roi" not in arrays:
        raise ImageError("dump has no 'roi' member", str(p), "a -trace_dump file holds roi=[xmin,xmax,ymin,ymax]")
    raw_roi = np.asarray(arrays.pop("roi")).ravel()
    if not (np.issubdtype(raw_roi.dtype, np.integer) or
            (np.issubdtype(raw_roi.dtype, np.floating) and np.all(np.isfinite(raw_roi)) and
             np.all(raw_roi == np.round(raw_roi)))):
        raise ImageError(f"dump roi {raw_roi.tolist()} is not 4 whole pixel indices", str(p),
                         "a -trace_dump file holds roi=[xmin,xmax,ymin,ymax]")
    roi = tuple(int(v) for v in raw_roi)
    if len(roi) != 4 or roi[1] < roi[0] or roi[3] < roi[2] or roi[0] < 0 or roi[2] < 0:
        raise ImageError(f"dump roi {list(roi)} is not [xmin, xmax, ymin, ymax] with 0 <= min <= max", str(p))
    meta = {}
    if "meta_json" in arrays:
        raw = arrays.pop("meta_json")
        try:
            meta = json.loads(bytes(np.asarray(raw).astype(np.uint8).ravel()).decode("utf-8"))
        except (ValueError, TypeError, UnicodeDecodeError, RecursionError) as exc:
            raise ImageError(f"dump member meta_json is not JSON ({str(exc)[:80]})", str(p),
                             "a -trace_dump file holds its provenance as a JSON object") from None
        if not isinstance(meta, dict):
            raise ImageError(f"dump member meta_json holds a JSON {type(meta).__name__}, not an object", str(p),
                             "a -trace_dump file holds its provenance as a JSON object")
    dump = Dump(str(p), roi, {}, meta)
    ny, nx = dump.shape
    for name, arr in arrays.items():
        if arr.shape[:2] != (ny, nx):
            raise ImageError(f"tap {name} has shape {arr.shape}, roi says ({ny}, {nx}, ...)", str(p))
        if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
            raise ImageError(f"tap {name} holds {arr.dtype} values, not real numbers", str(p),
                             "is it a -trace_dump output?")
        dump.arrays[name] = np.asarray(arr, dtype=np.float64)
    if not dump.arrays:
        raise ImageError("dump holds no tap arrays", str(p), "was the region empty?")
    return dump


def _head(p: Path) -> bytes:
    try:
        with open(p, "rb") as fh:
            return fh.read(8)
    except OSError as exc:
        raise ImageError(f"cannot read the dump ({exc.strerror or exc})", str(p), "check its permissions") from None


@dataclass(frozen=True, eq=False)
class TapMap:
    """Where one tap diverges. Coordinates are full-detector (slow, fast); bbox is inclusive
    (xmin, xmax, ymin, ymax). mask: bool (ny, nx), True where the tap is out of tolerance."""

    name: str
    rtol: float
    atol: float
    n_pixels: int
    n_divergent: int
    bbox: tuple[int, int, int, int] | None
    worst_at: tuple[int, int] | None
    worst_rel: float | None
    edge_band: int | None  # every divergent pixel is within this many px of the detector edge
    central_agrees: bool | None
    where: str
    mask: np.ndarray = field(repr=False)
    rel: np.ndarray | None = field(default=None, repr=False)  # relative error per pixel (figures show it)

    def to_json(self) -> dict:
        return {
            "tap": self.name, "rtol": self.rtol, "atol": self.atol, "n_pixels": self.n_pixels,
            "n_divergent": self.n_divergent, "bbox": list(self.bbox) if self.bbox else None,
            "worst_at": list(self.worst_at) if self.worst_at else None, "worst_rel": self.worst_rel,
            "edge_band_px": self.edge_band, "central_agrees": self.central_agrees, "where": self.where,
        }


@dataclass(frozen=True, eq=False)
class MapsResult:
    """first_label: int (ny, nx) — index into ``order`` of each pixel's first divergent tap, −1 agree."""

    roi: tuple[int, int, int, int]
    detector_shape: tuple[int, int] | None
    order: tuple[str, ...]
    taps: tuple[TapMap, ...]
    only_in_a: tuple[str, ...]
    only_in_b: tuple[str, ...]
    first_label: np.ndarray = field(repr=False)

    def __bool__(self) -> bool:
        return not self.divergent() and not self.only_in_a and not self.only_in_b

    def divergent(self) -> list[TapMap]:
        return [t for t in self.taps if t.n_divergent]

    def first_counts(self) -> list[tuple[str, int]]:
        counts = np.bincount(self.first_label[self.first_label >= 0].ravel(), minlength=len(self.order))
        return [(self.order[i], int(c)) for i, c in enumerate(counts) if c]

    def summary(self) -> list[str]:
        """One sentence per divergent tap (pipeline order), or the agreement sentence."""
        n = int(self.first_label.size)
        if not self.divergent():
            return [f"all {len(self.taps)} taps agree in all {n:,} pixels of the region"]
        return [f"{t.name} diverges in {t.n_divergent:,} of {t.n_pixels:,} pixels, {t.where}" for t in self.divergent()]

    def to_json(self) -> dict:
        return {
            "verdict": "agree" if self else "diverge",
            "roi": list(self.roi),
            "detector_shape": list(self.detector_shape) if self.detector_shape else None,
            "order": list(self.order),
            "first_divergent_counts": dict(self.first_counts()),
            "only_in_a": list(self.only_in_a),
            "only_in_b": list(self.only_in_b),
            "taps": [t.to_json() for t in self.taps],
            "summary": self.summary(),
        }


def _tolerance(spec, name: str) -> tuple[float, float]:
    tap = spec.get(name) if spec is not None else None
    rtol = tap.rtol if tap is not None and tap.rtol is not None else None
    atol = tap.atol if tap is not None and tap.atol is not None else None
    if rtol is None and atol is None and spec is not None:
        rtol, atol = spec.defaults.get("rtol"), spec.defaults.get("atol")
    return (FALLBACK_RTOL if rtol is None else float(rtol)), (0.0 if atol is None else float(atol))


def divergence_mask(a: np.ndarray, b: np.ndarray, rtol: float, atol: float) -> tuple[np.ndarray, np.ndarray]:
    """(mask, relative error) per pixel; vectors diverge when any component does. A NaN on one
    side only diverges; NaN on both agrees (the same zero-weight source, say)."""
    scale = max(float(np.nanmax(np.abs(a))) if np.isfinite(a).any() else 0.0, 0.0)
    floor = MAGNITUDE_FLOOR * scale
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.abs(b - a)
        allowed = atol + rtol * np.maximum(np.abs(a), floor)
        bad = err > allowed
        both_nan = np.isnan(a) & np.isnan(b)
        one_nonfinite = (~np.isfinite(a) | ~np.isfinite(b)) & ~both_nan & ~(a == b)
        bad = (bad | one_nonfinite) & ~both_nan
        rel = np.where(np.isfinite(err), err / np.maximum(np.abs(a), floor if floor > 0 else 1e-300), np.inf)
    if bad.ndim == 3:
        return bad.any(-1), np.nanmax(np.where(both_nan, 0.0, rel), -1)
    return bad, np.where(both_nan, 0.0, rel)


def _edge_distance(roi, det_shape) -> np.ndarray:
    xmin, xmax, ymin, ymax = roi
    s = np.arange(ymin, ymax + 1)[:, None]
    f = np.arange(xmin, xmax + 1)[None, :]
    S, F = det_shape
    return np.minimum(np.minimum(s, S - 1 - s), np.minimum(f, F - 1 - f))


def _describe(mask, roi, det_shape) -> tuple[tuple | None, int | None, bool | None, str]:
    """bbox, edge band, whether the centre agrees, and a phrase saying where."""
    if not mask.any():
        return None, None, None, "nowhere"
    ys, xs = np.nonzero(mask)
    xmin, _, ymin, _ = roi
    bbox = (int(xs.min() + xmin), int(xs.max() + xmin), int(ys.min() + ymin), int(ys.max() + ymin))
    if mask.all():
        return bbox, None, None, "everywhere in the region"
    if det_shape is None:
        return bbox, None, None, f"within fast {bbox[0]}..{bbox[1]}, slow {bbox[2]}..{bbox[3]}"
    dist = _edge_distance(roi, det_shape)
    band = int(dist[mask].max()) + 1
    inner = dist >= band
    central = bool(inner.any() and not mask[inner].any())
    if central and band <= min(det_shape) // 4:
        return bbox, band, True, f"all within {band} px of the detector edge; the central region agrees"
    return bbox, None, central, f"within fast {bbox[0]}..{bbox[1]}, slow {bbox[2]}..{bbox[3]}"


def _detector_shape(dump: Dump) -> tuple[int, int] | None:
    argv = dump.meta.get("argv")
    if isinstance(argv, str):
        argv = argv.split()
    if not isinstance(argv, list):
        return None
    from nbtrace.engine.images import shape_from_nb_args

    try:
        return shape_from_nb_args([str(x) for x in argv])
    except UsageError:
        return None


def _order(spec, names_a, names_b) -> tuple[list[str], dict[str, str], dict[str, str]]:
    """Pipeline order over the taps both dumps hold: spec order first, then dump order."""
    def canon(name, side):
        c = spec.canonical(name, side) if spec is not None else None
        return c or name

    ca = {canon(n, "a"): n for n in names_a}
    cb = {canon(n, "b"): n for n in names_b}
    rank = {n: i for i, n in enumerate(spec.order())} if spec is not None else {}
    common = [n for n in ca if n in cb]
    common.sort(key=lambda n: (rank.get(n, len(rank)), list(ca).index(n)))
    return common, ca, cb


def compare_dumps(a: Dump, b: Dump, spec=None) -> MapsResult:
    """Per-tap divergence masks and the first-divergent-tap map of B (port) against A.

    When either dump says it was computed in float32 (meta "dtype"), differences up to the
    engine's float32 limit (nbtrace.engine.compare.FLOAT32_AMPLIFIED) are precision, not divergence —
    the same rule the trace diff applies.
    """
    from nbtrace.engine.compare import FLOAT32_AMPLIFIED

    float32 = "float32" in (str(a.meta.get("dtype")), str(b.meta.get("dtype")))
    if a.roi != b.roi:
        raise UsageError(f"dumps cover different regions: A roi {list(a.roi)}, B roi {list(b.roi)}",
                         f"{a.path} vs {b.path}", "dump the same -trace_roi on both sides")
    order, ca, cb = _order(spec, a.arrays, b.arrays)
    if not order:
        raise UsageError("the two dumps share no tap name", f"{a.path} vs {b.path}",
                         f"A has {sorted(a.arrays)[:5]}..., B has {sorted(b.arrays)[:5]}...")
    det = _detector_shape(a) or _detector_shape(b)
    ny, nx = a.shape
    first = np.full((ny, nx), -1, dtype=np.int32)
    maps = []
    for i, name in enumerate(order):
        arr_a, arr_b = a.arrays[ca[name]], b.arrays[cb[name]]
        if arr_a.shape != arr_b.shape:
            raise UsageError(f"tap {name} has shape {arr_a.shape} in A and {arr_b.shape} in B",
                             f"{a.path} vs {b.path}")
        rtol, atol = _tolerance(spec, name)
        if float32:
            rtol = max(rtol, FLOAT32_AMPLIFIED)
        mask, rel = divergence_mask(arr_a, arr_b, rtol, atol)
        first[(first < 0) & mask] = i
        maps.append(_tap_map(name, rtol, atol, mask, rel, a.roi, det))
    only_a = tuple(sorted(set(ca) - set(cb)))
    only_b = tuple(sorted(set(cb) - set(ca)))
    return MapsResult(a.roi, det, tuple(order), tuple(maps), only_a, only_b, first)


def _tap_map(name, rtol, atol, mask, rel, roi, det) -> TapMap:
    bbox, band, central, where = _describe(mask, roi, det)
    worst_at, worst_rel = None, None
    if mask.any():
        r = np.where(mask, np.nan_to_num(rel, nan=np.inf, posinf=np.finfo(float).max), -1.0)
        k = int(np.argmax(r))
        worst_at = (int(k // mask.shape[1]) + roi[2], int(k % mask.shape[1]) + roi[0])
        worst_rel = float(r.flat[k])
    return TapMap(name, rtol, atol, int(mask.size), int(mask.sum()), bbox, worst_at, worst_rel, band, central,
                  where, mask, rel)


def dump_roi_for(shape: tuple[int, int], max_pixels: int = MAX_DUMP_PIXELS,
                 within: tuple[int, int, int, int] | None = None) -> tuple[int, int, int, int]:
    """The ROI ``hunt --maps`` dumps for a (spixels, fpixels) detector: the full frame when it has at
    most ``max_pixels`` pixels, else a full-width band of rows through the detector centre, so the
    left and right edges, the centre and the beam all lie in it while memory stays bounded.
    ``within``: the run's own -roi (xmin, xmax, ymin, ymax inclusive); only pixels in it are
    computed, so the dump is the same choice made over that box."""
    x0, y0 = (within[0], within[2]) if within else (0, 0)
    spix, fpix = (within[3] - within[2] + 1, within[1] - within[0] + 1) if within else shape
    if spix * fpix <= max_pixels:
        return x0, x0 + fpix - 1, y0, y0 + spix - 1
    rows = max(1, min(spix, max_pixels // fpix))
    top = max(0, spix // 2 - rows // 2)
    return x0, x0 + fpix - 1, y0 + top, y0 + min(spix - 1, top + rows - 1)
