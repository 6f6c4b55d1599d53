"""A tap session: which pixels and region are traced, where the trace goes, what is replayed.

The session receives full vectorised arrays from :func:`nbtrace.tap.tap`, keeps the selected
pixels' values (formatted at once, in call order per pixel) and the region's first value per
pixel, and writes the canonical space dialect (docs/CONTRACTS.md §2) and the ``.npz`` region
dump (§4) when it closes.
"""

from __future__ import annotations

import io
import json
import math
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np

from nbtrace.errors import UsageError
from nbtrace.tap import arrays as A

# loop keys the trace parser reads as the loop index (every other key=value is a record)
_INDEX_KEYS = ("source", "mos", "phi", "layer", "subpixel")
_KIND_OF = {"phi_tic": "PHI", "mos_tic": "MOS", "source": "SOURCE"}


def fmt(x) -> str:
    """Full precision, round-trip text of a float (``repr`` = ``%.17g`` up to spelling)."""
    return repr(float(x))


def _fmt_values(vals: np.ndarray, integer: bool) -> str:
    if integer:
        return " ".join(str(int(v)) if math.isfinite(v) else fmt(v) for v in vals)
    return " ".join(fmt(v) for v in vals)


def _loop_parts(name: str, loop: dict | None):
    """(kind, printed labels, index tuple as the parser reads it) of a loop tap."""
    if not loop:
        return None, (), ()
    if not isinstance(loop, dict):
        raise UsageError(f"tap {name!r}: loop= must be a dict such as {{'phi_tic': 3}}, got {type(loop).__name__}")
    labels, index = [], []
    for k, v in loop.items():
        if not isinstance(k, str) or not k.isidentifier():
            raise UsageError(f"tap {name!r}: loop key {k!r} is not an identifier")
        is_int = isinstance(v, (int, np.integer)) and not isinstance(v, bool)
        labels.append(f"{k}={int(v) if is_int else fmt(v)}")
        if is_int and (k.endswith("_tic") or k in _INDEX_KEYS):
            index.append((k, int(v)))
    first = next(iter(loop))
    kind = _KIND_OF.get(first) or (first[:-4] if first.endswith("_tic") else first).upper()
    return kind, tuple(labels), tuple(sorted(index))


class _LoopLine(NamedTuple):
    kind: str
    labels: tuple
    parts: list

    def text(self, prefix: str) -> str:
        return " ".join((f"{prefix}_{self.kind}", *self.labels, *self.parts))


class Session:
    """One tracing session. Use :func:`nbtrace.tap.session` (a context manager) or the
    environment (``NBTRACE_PIXELS`` ...); see :mod:`nbtrace.tap`.

    pixels: (slow, fast) pixels whose taps are printed, in output order.
    roi: (xmin, xmax, ymin, ymax), inclusive, fast = x, slow = y: every tap over this region
        goes to the ``.npz`` dump ``dump`` (the first value each tap takes in each pixel).
    out: a path, "-" (stdout), a writable text stream, or None (kept in memory: :meth:`text`,
        :meth:`trace`).
    prefix: the tap prefix (``PREFIX: name v ...``).
    detector: (spixels, fpixels), needed only for a flat pixel axis given without ``pixels=``.
    replay: a :class:`~nbtrace.tap.replay.Reference` (or a path to a reference trace) and
        ``replay_taps`` the tap names whose values are replaced by the reference's at the
        traced pixels.
    """

    def __init__(self, pixels=(), *, roi=None, dump=None, out=None, prefix="TRACE_PY", detector=None,
                 replay=None, replay_taps=(), producer="nbtrace.tap", dtype=None):
        self.prefix = _check_prefix(prefix)
        self.pixels = tuple(_pixel(p) for p in pixels)
        self.roi = _roi(roi) if roi is not None else None
        self.dump = None if self.roi is None else Path(dump or "taps.npz")
        self.out = out
        self.detector = None if detector is None else _pixel(detector, "detector")
        self.producer, self.dtype = producer, dtype
        if replay is not None and not hasattr(replay, "value"):
            from nbtrace.tap.replay import Reference

            replay = Reference.load(replay)
        self.replay = replay
        self.replay_taps = frozenset(replay_taps)
        if self.replay_taps and replay is None:
            raise UsageError("replay taps given without a reference trace",
                             hint="give replay=REF.log (NBTRACE_REPLAY) with replay_taps (NBTRACE_REPLAY_TAPS)")
        if replay is not None and not self.pixels:
            self.pixels = replay.pixels  # replay happens at the traced pixels: the reference's
        keys = np.array([(s << 32) + f for s, f in self.pixels], dtype=np.int64)
        self._wanted = np.unique(keys)
        self._ps = np.array([p[0] for p in self.pixels], dtype=np.int64)
        self._pf = np.array([p[1] for p in self.pixels], dtype=np.int64)
        self._setup: list[str] = []
        self._lines: dict[tuple[int, int], list] = {}
        self._occ: dict[tuple, int] = {}
        self._region: dict[str, list] = {}
        self.replayed: set[str] = set()
        self._flat_cache: list = []
        self._window_cache: dict = {}
        self._region_cache: list = []
        self._names_ok: set = set()
        self._axes_cache: dict = {}
        self.closed = False
        self.wrapped = False
        self._text: str | None = None

    # ------------------------------------------------------------------ recording

    def setup_value(self, key: str, value) -> None:
        """A ``PREFIX:key=value`` line of the setup block (printed before every pixel)."""
        if isinstance(value, str):
            text = value
        else:
            kind = A.backend(value)
            vals = A.to_host(value, kind).reshape(-1)
            text = _fmt_values(vals, A.is_integer(value, kind))
        self._setup.append(f"{self.prefix}:{key}={text}")

    def tap(self, name, value, pixel_axes=(0, 1), pixels=None, origin=(0, 0), loop=None, integer=None,
            where=None, indexed=None):
        """See :func:`nbtrace.tap.tap`. ``indexed=(kind, i)`` prints ``PREFIX_KIND i: name v``
        (the indexed loop form, one line per value)."""
        if pixel_axes == (0, 1) and pixels is None and self.roi is None:
            # fast refusal: a detector window known to hold no traced pixel (most chunks of a frame)
            shp = getattr(value, "shape", None)
            if shp is not None and len(shp) >= 2:
                hit = self._window_cache.get((shp[0], shp[1], origin[0], origin[1]))
                if hit is not None and not hit[0]:
                    return value
        if name not in self._names_ok:
            if not isinstance(name, str) or not name or any(c.isspace() for c in name) or "=" in name:
                raise UsageError(f"tap name {name!r} is not one word", hint="tap names are identifiers such as hkl_frac")
            self._names_ok.add(name)
        kind = A.backend(value)
        nd = A.ndim(value, kind)
        static = pixel_axes is None or nd == 0
        if static:
            axes = ()
        else:
            key = (pixel_axes if isinstance(pixel_axes, (int, tuple)) else tuple(np.atleast_1d(pixel_axes).tolist()), nd)
            axes = self._axes_cache.get(key)
            if axes is None:
                axes = self._axes_cache[key] = _axes(name, pixel_axes, nd)
        if integer is None:
            integer = A.is_integer(value, kind)
        loop_kind, labels, loop_index = _loop_parts(name, loop)
        replay = name in self.replay_taps
        moved = value if static else A.front(value, axes, kind)
        sel_pixels, idx = self._select(name, value, moved, kind, static, axes, pixels, origin)
        if where is not None and sel_pixels:
            sel_pixels, idx = self._where(name, where, static, pixels, sel_pixels, idx)
        if sel_pixels:
            occs = [self._occ.get((name, loop_index, p), 0) for p in sel_pixels]
            if replay:
                vals = np.stack([self.replay.value(name, p, loop_index, o) for p, o in zip(sel_pixels, occs)])
                value, moved = self._patch(name, value, moved, kind, static, axes, idx, vals)
                self.replayed.add(name)
            elif static:
                one = A.to_host(value, kind).reshape(1, -1)
                vals = np.broadcast_to(one, (len(sel_pixels), one.shape[1]))
            elif len(idx) == 2 and len(sel_pixels) <= 16:
                vals = A.pick(moved, idx, kind).reshape(len(sel_pixels), -1)  # a few basic indexings
            else:
                vals = A.gather(moved, A.index_arrays(idx, moved, kind), kind).reshape(len(sel_pixels), -1)
            for p, o, v in zip(sel_pixels, occs, vals):
                self._occ[(name, loop_index, p)] = o + 1
                if indexed is not None:
                    self._lines.setdefault(p, []).append(
                        f"{self.prefix}_{indexed[0]} {indexed[1]}: {name} {_fmt_values(v, integer)}")
                else:
                    self._record(name, p, v, integer, loop_kind, labels)
        if self.roi is not None and loop_kind is None and indexed is None:
            self._record_region(name, value, moved, kind, static, axes, pixels, origin, where)
        return value

    def _where(self, name, where, static, pixels, sel_pixels, idx):
        """Keep the selected pixels whose ``where`` element is True (a mask over the pixel axes,
        or over ``pixels`` for a flat axis or a shared value)."""
        mask = _host_bool(where)
        if static and pixels is None:
            raise UsageError(f"tap {name!r}: where= needs the pixels it masks",
                             hint="give pixels=(slow_idx, fast_idx) with where=")
        keep = mask[idx[0], idx[1]] if len(idx) == 2 else mask.reshape(-1)[idx[0]]
        return [p for p, k in zip(sel_pixels, keep) if k], tuple(i[keep] for i in idx)

    def _select(self, name, value, moved, kind, static, axes, pixels, origin):
        """The traced pixels present in this array and their index tuple (host int64 arrays)."""
        if not self.pixels:
            return [], ()
        if pixels is not None:
            rows, keys = self._rows(pixels)
            return [(int(k >> 32), int(k & 0xFFFFFFFF)) for k in keys], (rows,)
        if static:
            return list(self.pixels), ()
        shp = A.shape(moved, kind)
        if len(axes) == 2:
            key = (shp[0], shp[1], origin[0], origin[1])
            hit = self._window_cache.get(key)
            if hit is None:  # a port taps many arrays of one window: the answer is kept per window
                o_s, o_f = int(origin[0]), int(origin[1])
                inside = [(p, p[0] - o_s, p[1] - o_f) for p in self.pixels
                          if 0 <= p[0] - o_s < shp[0] and 0 <= p[1] - o_f < shp[1]]
                hit = ([p for p, _, _ in inside], (np.array([s for _, s, _ in inside], dtype=np.int64),
                                                   np.array([f for _, _, f in inside], dtype=np.int64)))
                if len(self._window_cache) > 64:
                    self._window_cache.clear()
                self._window_cache[key] = hit
            return hit
        flat = self._flat_index(name, shp[0])
        return list(self.pixels), (flat,)

    def _flat_index(self, name, length):
        if self.detector is None:
            raise UsageError(f"tap {name!r}: a flat pixel axis needs pixels=(slow_idx, fast_idx), or the "
                             "session's detector=(spixels, fpixels) (NBTRACE_DETECTOR)")
        S, F = self.detector
        if length != S * F:
            raise UsageError(f"tap {name!r}: a flat pixel axis of {length} elements is not the "
                             f"{S}x{F} detector", hint="give pixels=(slow_idx, fast_idx) for a subset of pixels")
        return self._ps * F + self._pf

    def _rows(self, pixels):
        """Rows of a flat pixel axis (given by its index arrays) that hold traced pixels; the
        last few answers are kept, keyed by the index arrays' identity (a chunked port taps many
        arrays of one chunk with the same index arrays)."""
        s_idx, f_idx = pixels
        for ent in self._flat_cache:
            if ent[0] is s_idx and ent[1] is f_idx:
                return ent[2], ent[3]
        rows, keys = A.device_rows(s_idx, f_idx, self._wanted)
        self._flat_cache = [(s_idx, f_idx, rows, keys)] + self._flat_cache[:3]
        return rows, keys

    def _patch(self, name, value, moved, kind, static, axes, idx, vals):
        if static:
            first = vals[0]
            if any(not np.array_equal(first, v) for v in vals[1:]):
                raise UsageError(f"cannot replay static tap {name!r}: the reference holds different values "
                                 "at different pixels", hint="tap it with pixel_axes so each pixel gets its own")
            new = A.like(value, first.reshape(A.shape(value, kind)), kind)
            return new, new
        rest = A.shape(moved, kind)[len(idx):]
        n = len(vals)
        if vals.shape[1] != int(np.prod(rest, dtype=np.int64)):
            raise UsageError(f"cannot replay tap {name!r}: the reference prints {vals.shape[1]} value(s) per "
                             f"pixel, the port's array holds {int(np.prod(rest, dtype=np.int64))} (shape {rest})")
        patched = A.put(moved, A.index_arrays(idx, moved, kind), vals.reshape((n,) + rest), kind)
        return A.back(patched, axes, kind), patched

    def _record(self, name, pixel, vals, integer, loop_kind, labels):
        lines = self._lines.setdefault(pixel, [])
        if loop_kind is None:
            lines.append(f"{self.prefix}: {name} {_fmt_values(vals, integer)}")
            return
        if vals.size != 1:
            raise UsageError(f"loop tap {name!r} holds {vals.size} values per pixel; a loop line holds one "
                             "number per name", hint="tap each component under its own name (incident_x, ...)")
        # consecutive taps with the same loop labels share one line; the same labels later (the
        # next subpixel's φ loop) start a new one
        last = lines[-1] if lines else None
        if not (isinstance(last, _LoopLine) and last.kind == loop_kind and last.labels == labels):
            last = _LoopLine(loop_kind, labels, [])
            lines.append(last)
        last.parts.append(f"{name}={_fmt_values(vals, integer)}")

    def _record_region(self, name, value, moved, kind, static, axes, pixels, origin, where=None):
        xmin, xmax, ymin, ymax = self.roi
        ny, nx = ymax - ymin + 1, xmax - xmin + 1
        mask = None if where is None else _host_bool(where)
        if static:
            vals = A.to_host(value, kind).reshape(1, 1, -1)
            if pixels is None:
                self._store_region(name, slice(0, ny), slice(0, nx), np.broadcast_to(vals, (ny, nx, vals.shape[2])))
                return
            rows, s, f = self._region_rows(pixels)
            if mask is not None:
                s, f = s[mask.reshape(-1)[rows]], f[mask.reshape(-1)[rows]]
            self._store_points(name, s - ymin, f - xmin, np.broadcast_to(vals[0], (len(s), vals.shape[2])))
            return
        shp = A.shape(moved, kind)
        if len(axes) == 2:
            o_s, o_f = int(origin[0]), int(origin[1])
            y0, y1 = max(ymin, o_s), min(ymax, o_s + shp[0] - 1)
            x0, x1 = max(xmin, o_f), min(xmax, o_f + shp[1] - 1)
            if y1 < y0 or x1 < x0:
                return
            sl = (slice(y0 - o_s, y1 - o_s + 1), slice(x0 - o_f, x1 - o_f + 1))
            win = A.region(moved, sl, kind)
            self._store_region(name, slice(y0 - ymin, y1 - ymin + 1), slice(x0 - xmin, x1 - xmin + 1),
                               win.reshape(win.shape[0], win.shape[1], -1), None if mask is None else mask[sl])
            return
        if pixels is None:
            S, F = self.detector or (None, None)
            self._flat_index(name, shp[0])
            ss, ff = np.meshgrid(np.arange(ymin, ymax + 1), np.arange(xmin, xmax + 1), indexing="ij")
            rows = (ss * F + ff).reshape(-1)
            s, f = ss.reshape(-1), ff.reshape(-1)
        else:
            rows, s, f = self._region_rows(pixels)
        if mask is not None:
            keep = mask.reshape(-1)[rows]
            rows, s, f = rows[keep], s[keep], f[keep]
        if len(rows) == 0:
            self._slot(name, int(np.prod(A.shape(moved, kind)[1:], dtype=np.int64)))  # the member exists
            return
        vals = A.gather(moved, A.index_arrays((rows,), moved, kind), kind).reshape(len(rows), -1)
        self._store_points(name, s - ymin, f - xmin, vals)

    def _region_rows(self, pixels):
        """Rows of a flat pixel axis inside the region, with their (slow, fast); kept per index
        arrays (their identity), like :meth:`_rows`."""
        s_idx, f_idx = pixels
        for ent in self._region_cache:
            if ent[0] is s_idx and ent[1] is f_idx:
                return ent[2]
        xmin, xmax, ymin, ymax = self.roi
        keys = A.flat_keys(s_idx, f_idx).reshape(-1)
        s, f = keys >> 32, keys & 0xFFFFFFFF
        rows = np.nonzero((s >= ymin) & (s <= ymax) & (f >= xmin) & (f <= xmax))[0]
        out = (rows, s[rows], f[rows])
        self._region_cache = [(s_idx, f_idx, out)] + self._region_cache[:3]
        return out

    def _slot(self, name, ncomp):
        xmin, xmax, ymin, ymax = self.roi
        slot = self._region.get(name)
        if slot is None:
            shape = (ymax - ymin + 1, xmax - xmin + 1)
            slot = [np.full(shape + (ncomp,), np.nan), np.zeros(shape, dtype=bool)]
            self._region[name] = slot
        elif slot[0].shape[2] != ncomp:
            raise UsageError(f"tap {name!r} holds {ncomp} values per pixel here, {slot[0].shape[2]} before",
                             hint="one tap name, one shape")
        return slot

    def _store_region(self, name, ys, xs, vals, mask=None):
        data, written = self._slot(name, vals.shape[2])
        fresh = ~written[ys, xs]
        if mask is not None:
            fresh &= mask
        data[ys, xs][fresh] = vals[fresh]
        written[ys, xs] = True

    def _store_points(self, name, s, f, vals):
        data, written = self._slot(name, vals.shape[1])
        fresh = ~written[s, f]
        data[s[fresh], f[fresh]] = vals[fresh]
        written[s, f] = True

    # ------------------------------------------------------------------ output

    def text(self) -> str:
        """The trace text: setup block, then each traced pixel's header and taps."""
        if self._text is not None:
            return self._text
        out = list(self._setup)
        for p in dict.fromkeys(self.pixels):
            lines = self._lines.get(p)
            if not lines:
                continue
            out.append(f"TRACE_CONFIG: tracing pixel (spixel={p[0]}, fpixel={p[1]})")
            out += [ln if isinstance(ln, str) else ln.text(self.prefix) for ln in lines]
        return "\n".join(out) + "\n" if out else ""

    def lines_of(self, pixel) -> list[str] | None:
        """The tap lines recorded for one pixel (no header), or None if it was never tapped."""
        lines = self._lines.get(tuple(pixel))
        return None if lines is None else [ln if isinstance(ln, str) else ln.text(self.prefix) for ln in lines]

    def absorb(self, *others) -> None:
        """Take over the pixel lines of other sessions (None skipped): one trace for pixels
        recorded by different passes."""
        for other in others:
            if other is not None:
                self._lines.update(other._lines)

    def write_dump(self, meta: dict | None = None) -> None:
        """Write the region dump now (``meta``: the meta_json member; default producer, dtype, argv)."""
        self._write_dump(meta)

    def trace(self):
        """The trace as the diff engine's :class:`~nbtrace.engine.model.Trace` (in memory)."""
        from nbtrace.engine.parse import parse_text

        return parse_text(self.text(), path=f"<nbtrace.tap {self.prefix}>", prefix=self.prefix)

    def missing_pixels(self) -> list[tuple[int, int]]:
        return [p for p in dict.fromkeys(self.pixels) if p not in self._lines]

    def close(self) -> None:
        """Write the trace and the region dump; warn (stderr) about what was asked and never seen."""
        if self.closed:
            return
        self.closed = True
        text = self.text()
        self._text = text
        for p in self.missing_pixels():
            sys.stderr.write(f"nbtrace.tap: warning: pixel ({p[0]}, {p[1]}) was never tapped "
                             "(outside every tapped array?)\n")
        for name in sorted(self.replay_taps - self.replayed):
            sys.stderr.write(f"nbtrace.tap: warning: replay tap {name!r} was never tapped at a traced pixel\n")
        self._write_text(text)
        if self.roi is not None:
            self._write_dump()

    def _write_text(self, text: str) -> None:
        out = self.out
        if out is None:
            return
        if out == "-":
            sys.stdout.write(text)
            sys.stdout.flush()
        elif isinstance(out, io.IOBase) or hasattr(out, "write"):
            out.write(text)
            if hasattr(out, "flush"):
                out.flush()
        else:
            try:
                Path(out).write_text(text, encoding="utf-8")
            except OSError as exc:
                raise UsageError(f"cannot write the trace ({exc.strerror or exc})", str(out),
                                 "check that the folder exists and is writable") from None

    def _write_dump(self, meta: dict | None = None) -> None:
        xmin, xmax, ymin, ymax = self.roi
        arrays = {}
        for name, (data, _) in self._region.items():
            arrays[name] = data[:, :, 0] if data.shape[2] == 1 else data
        arrays["roi"] = np.array([xmin, xmax, ymin, ymax], dtype=np.int64)
        if meta is None:
            meta = {"producer": self.producer, "dtype": self.dtype, "argv": list(sys.argv)}
        arrays["meta_json"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
        try:
            with open(self.dump, "wb") as fh:
                np.savez(fh, **arrays)
        except OSError as exc:
            raise UsageError(f"cannot write the tap dump ({exc.strerror or exc})", str(self.dump),
                             "check that the folder exists and is writable") from None


def _host_bool(x) -> np.ndarray:
    kind = A.backend(x)
    if kind == "torch":
        return x.detach().cpu().numpy().astype(bool)
    return np.asarray(x, dtype=bool)


def _check_prefix(prefix) -> str:
    if not isinstance(prefix, str) or not prefix.isidentifier():
        raise UsageError(f"trace prefix {prefix!r} is not an identifier", hint="e.g. TRACE_PY or MYPORT")
    return prefix


def _pixel(p, what="pixel") -> tuple[int, int]:
    try:
        s, f = p
        s, f = int(s), int(f)
    except (TypeError, ValueError):
        raise UsageError(f"{what} {p!r} is not a (slow, fast) pair of integers") from None
    if s < 0 or f < 0:
        raise UsageError(f"{what} ({s}, {f}) has a negative index", hint="pixels are 0-based (slow, fast)")
    return s, f


def _roi(roi) -> tuple[int, int, int, int]:
    try:
        xmin, xmax, ymin, ymax = (int(v) for v in roi)
    except (TypeError, ValueError):
        raise UsageError(f"roi {roi!r} is not four integers (xmin, xmax, ymin, ymax)") from None
    if not (0 <= xmin <= xmax and 0 <= ymin <= ymax):
        raise UsageError(f"roi {[xmin, xmax, ymin, ymax]} is not 0 <= xmin <= xmax, 0 <= ymin <= ymax",
                         hint="inclusive bounds, fast (x) first, like -roi")
    return xmin, xmax, ymin, ymax


def _axes(name, pixel_axes, nd) -> tuple[int, ...]:
    axes = (pixel_axes,) if isinstance(pixel_axes, (int, np.integer)) else tuple(pixel_axes)
    if len(axes) not in (1, 2) or not all(isinstance(a, (int, np.integer)) for a in axes):
        raise UsageError(f"tap {name!r}: pixel_axes={pixel_axes!r} must be (slow_axis, fast_axis), one flat "
                         "axis, or None for a value shared by every pixel")
    out = []
    for a in axes:
        if not -nd <= a < nd:
            raise UsageError(f"tap {name!r}: pixel axis {a} does not exist in a {nd}-d array",
                             hint="pixel_axes=None for a value shared by every pixel")
        out.append(int(a) % nd)
    if len(set(out)) != len(out):
        raise UsageError(f"tap {name!r}: pixel_axes={pixel_axes!r} names one axis twice")
    return tuple(out)
