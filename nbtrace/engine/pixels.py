"""Which pixels each trace holds, and refusing to diff traces of different pixels (incident 19:
a transposed -trace_pixel sent people after a false "Y/Z swap" for a day)."""

from __future__ import annotations

import numpy as np

from nbtrace.engine.align import Alignment
from nbtrace.engine.model import Trace
from nbtrace.engine.runfacts import first_record
from nbtrace.errors import UsageError


def trace_pixels(t: Trace) -> tuple[tuple[int, int], ...]:
    """Pixels a trace announces (TRACE_CONFIG headers), else those its records carry."""
    if t.pixels:
        return tuple(t.pixels)
    seen: dict = {}
    for r in t.records:
        if r.index.pixel is not None:
            seen.setdefault(r.index.pixel, None)
    return tuple(seen)


def _fmt_pixels(ps) -> str:
    if len(ps) == 1:
        return f"(slow={ps[0][0]}, fast={ps[0][1]})"
    return ", ".join(f"({s}, {f})" for s, f in ps)


def pixel_maps(a, b, pa, pb, force, warnings):
    """Pixel renames for align: (map_a, map_b, remapped), remapped True when B's pixels are
    compared with different pixels of A (only ever under ``force``)."""
    if not pa or not pb:
        return (*_one_sided_pixel_maps(pa, pb, warnings), False)
    if set(pa) == set(pb):
        return None, None, False
    transposed = set(pb) == {(f, s) for s, f in pa}
    why = " — slow/fast transposed? (-trace_pixel takes slow fast, -printout_pixel fast slow)" if transposed else ""
    what = f"these traces are of different pixels: A traced {_fmt_pixels(pa)}, B traced {_fmt_pixels(pb)}{why}"
    if not force:
        raise UsageError(what, where=f"{a.path} vs {b.path}", hint="trace the same pixel on both sides, or use --force to diff anyway")
    if len(pa) != len(pb):
        warnings.append(f"{what}; forced, but the pixel counts differ ({len(pa)} vs {len(pb)}): only common pixels align")
        return None, None, False
    warnings.append(f"{what}; forced: B's pixels are compared with A's in the order traced")
    return None, dict(zip(pb, pa)), True


def _one_sided_pixel_maps(pa, pb, warnings):
    """One side names no pixel (no header, records without a pixel): when the other traced
    exactly one, both are aligned as that pixel (the named side's pixel is dropped from its
    keys, so its records meet the unnamed side's)."""
    if not pa and not pb:
        return None, None
    side, other, ps = ("A", "B", pa) if pa else ("B", "A", pb)
    if len(ps) == 1:
        warnings.append(f"{other} names no pixel; assumed ({ps[0][0]}, {ps[0][1]}), the pixel {side} traced")
        strip = {ps[0]: None}
        return (strip, None) if pa else (None, strip)
    warnings.append(f"{other} has no pixel header while {side} traced {len(ps)} pixels: per-pixel taps cannot be aligned")
    return None, None


# Taps whose agreement shows both sides used one detector frame: then a whole-pixel shift of
# pixel_pos_meters is a different pixel, not a geometry bug.
FRAME_TAPS = ("pix0_vector_meters", "fdet_vec", "sdet_vec")


def refuse_shifted_pixels(a: Trace, b: Trace, al: Alignment, g) -> None:
    """Incident 19 without pixel headers: the pixel positions differ by whole pixels along fast
    and slow while the detector frame (pix0, fdet, sdet) agrees — the traces are of different
    pixels (a transposed -trace_pixel), and diffing them sends people after a false swap."""
    if not g.pixel_size or g.fdet is None or g.sdet is None:
        return
    pos = [first_record(t, first, "pixel_pos_meters") for t, first in ((a, al.first_a), (b, al.first_b))]
    if any(r is None or len(r.values) != 3 for r in pos):
        return
    for name in FRAME_TAPS:
        ra, rb = first_record(a, al.first_a, name), first_record(b, al.first_b, name)
        if ra is None or rb is None or not _same_vector(ra.values, rb.values):
            return
    d = np.subtract(pos[1].values, pos[0].values)
    fast = float(d @ np.asarray(g.fdet)) / g.pixel_size
    slow = float(d @ np.asarray(g.sdet)) / g.pixel_size
    resid = d - (fast * np.asarray(g.fdet) + slow * np.asarray(g.sdet)) * g.pixel_size
    if not (np.isfinite(slow) and np.isfinite(fast)):  # nan/inf positions (fuzz): no whole-pixel shift
        return
    ds, df = round(slow), round(fast)
    whole = abs(slow - ds) < 1e-3 and abs(fast - df) < 1e-3 and np.linalg.norm(resid) < 1e-3 * g.pixel_size
    if not whole or max(abs(ds), abs(df)) < 1:
        return
    why = " — slow/fast transposed?" if ds == -df else ""
    raise UsageError(
        f"these traces appear to be of different pixels: pixel_pos_meters differs by (Δslow, Δfast) = "
        f"({ds}, {df}) whole pixels while pix0/fdet/sdet agree{why} (use --force to diff anyway)",
        where=f"{pos[0].loc} vs {pos[1].loc}",
        hint="trace the same pixel on both sides (-trace_pixel takes slow fast, -printout_pixel fast slow)")


def _same_vector(u, v) -> bool:
    if len(u) != 3 or len(v) != 3:
        return False
    scale = max(np.linalg.norm(u), np.linalg.norm(v), 1e-300)
    return bool(np.all(np.abs(np.subtract(u, v)) <= 1e-6 * scale))
