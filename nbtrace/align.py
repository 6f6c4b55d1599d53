"""Align two traces: every record of both sides ends up in exactly one of matched pair,
only-in-A, only-in-B.

The key of a record is (canonical name, pixel, loop indices, occurrence). Canonical names come
from the spec's aliases (without a spec, identical printed names). Nothing is ever matched by
position: a record with no partner under its key is reported as unmatched, never paired with
"the next one".

Speed matters (traces of millions of lines): keys are built with C-level zip/map over the
records and matched with dict-view set operations; the only per-record Python work is one
list comprehension over the matched keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import attrgetter
from typing import NamedTuple

import numpy as np

from nbtrace.model import TapIndex, TapRecord, Trace

_name = attrgetter("name")
_index = attrgetter("index")


@dataclass(frozen=True)
class TapGroup:
    """All matched pairs of one tap.

    tap: canonical name; loop: the loop key names of its records (() for non-loop taps).
    ia, ib: int arrays of record positions in trace A / trace B, pairwise matched, in A order.
    """

    tap: str
    loop: tuple[str, ...]
    ia: np.ndarray
    ib: np.ndarray


class CountMismatch(NamedTuple):
    """A tap printed a different number of times for one (pixel, loop index) on the two sides."""

    tap: str
    pixel: tuple[int, int] | None
    loop: tuple
    n_a: int
    n_b: int


@dataclass(frozen=True)
class Alignment:
    """groups: matched pairs per tap, in order of first appearance in A.
    only_a / only_b: positions of records without a partner, in trace order.
    canon_a / canon_b: canonical name of every record (parallel to the trace records).
    """

    groups: tuple[TapGroup, ...]
    only_a: tuple[int, ...]
    only_b: tuple[int, ...]
    canon_a: tuple[str, ...]
    canon_b: tuple[str, ...]
    count_mismatch: tuple[CountMismatch, ...] = ()

    @property
    def matched(self) -> int:
        return sum(len(g.ia) for g in self.groups)


def canonical_names(records: tuple[TapRecord, ...], spec, side: str) -> list[str]:
    """Canonical name of each record: the spec's alias resolution, else the printed name."""
    names = list(map(_name, records))
    if spec is None:
        return names
    table = {}
    for n in set(names):
        c = spec.canonical(n, side)
        table[n] = c if c is not None else n
    return list(map(table.__getitem__, names))


def _remap(index: TapIndex, pixel_map: dict) -> TapIndex:
    if index.pixel in pixel_map:
        return TapIndex(pixel_map[index.pixel], index.loop, index.occurrence)
    return index


def _keys(records, canon: list[str], pixel_map: dict | None) -> list[tuple]:
    indices = list(map(_index, records))
    if pixel_map:
        indices = [_remap(i, pixel_map) for i in indices]
    keys = list(zip(canon, indices))
    if len(dict.fromkeys(keys)) != len(keys):
        keys = _renumber(canon, indices)
    return keys


def _renumber(canon: list[str], indices: list[TapIndex]) -> list[tuple]:
    """Recount occurrences after aliasing: two printed names of one canonical tap (or a pixel
    remap) can make keys collide; the n-th record of a (tap, pixel, loop) gets occurrence n."""
    seen: dict[tuple, int] = {}
    out = []
    for c, i in zip(canon, indices):
        slot = (c, i.pixel, i.loop)
        n = seen.get(slot, 0)
        seen[slot] = n + 1
        out.append((c, TapIndex(i.pixel, i.loop, n)))
    return out


def _loop_names(key: tuple) -> tuple[str, ...]:
    return tuple(k for k, _ in key[1].loop)


def align(a: Trace, b: Trace, spec=None, *, pixel_map_a: dict | None = None,
          pixel_map_b: dict | None = None) -> Alignment:
    """Match the records of ``a`` (reference) and ``b`` (port).

    pixel_map_a / pixel_map_b: optional {pixel: pixel} renames applied before matching (used
    when the caller forces a diff of traces of different pixels, or one side has no header).
    """
    canon_a = canonical_names(a.records, spec, "a")
    canon_b = canonical_names(b.records, spec, "b")
    ka = _keys(a.records, canon_a, pixel_map_a)
    kb = _keys(b.records, canon_b, pixel_map_b)
    da = dict(zip(ka, range(len(ka))))
    db = dict(zip(kb, range(len(kb))))
    common = da.keys() & db.keys()
    uncommon_a, uncommon_b = da.keys() - db.keys(), db.keys() - da.keys()
    counts = _count_mismatches(ka, kb, uncommon_a, uncommon_b, common)
    if counts:
        # Occurrence k of a per-subpixel tap is subpixel k only if both sides printed the same
        # number of subpixel blocks; otherwise pairing by occurrence would compare different
        # subpixels, so none of that (tap, pixel, loop) is paired.
        bad = {(c.tap, c.pixel, c.loop) for c in counts}
        moved = {k for k in common if (k[0], k[1].pixel, k[1].loop) in bad}
        common = common - moved
        uncommon_a, uncommon_b = uncommon_a | moved, uncommon_b | moved
    ia = sorted(map(da.__getitem__, common))
    ib = [db[ka[i]] for i in ia]
    only_a = sorted(map(da.__getitem__, uncommon_a))
    only_b = sorted(map(db.__getitem__, uncommon_b))
    groups = _group(ka, ia, ib)
    return Alignment(groups, tuple(only_a), tuple(only_b), tuple(canon_a), tuple(canon_b), counts)


def _count_mismatches(ka, kb, uncommon_a, uncommon_b, common) -> tuple[CountMismatch, ...]:
    """Slots (tap, pixel, loop) printed a different number of times by the two sides.

    Occurrences are numbered densely from 0, so a slot with unmatched records on one side and
    records on the other side too has different counts. Only unmatched keys are inspected: this
    stays cheap when the traces mostly align.
    """
    def slot(k):
        return (k[0], k[1].pixel, k[1].loop)

    suspects = {slot(k) for k in uncommon_a} | {slot(k) for k in uncommon_b}
    if not suspects:
        return ()
    n_a: dict = {}
    n_b: dict = {}
    for keys, n in ((ka, n_a), (kb, n_b)):
        for k in keys:
            sl = slot(k)
            if sl in suspects:
                n[sl] = n.get(sl, 0) + 1
    out = [CountMismatch(sl[0], sl[1], sl[2], n_a[sl], n_b[sl])
           for sl in suspects if sl in n_a and sl in n_b]
    return tuple(sorted(out, key=lambda c: (c.tap, str(c.pixel), c.loop)))


def _group(ka: list[tuple], ia: list[int], ib: list[int]) -> tuple[TapGroup, ...]:
    """Split the matched pairs by (canonical name, loop key names), keeping A order."""
    if not ia:
        return ()
    gid_of: dict[tuple, int] = {}
    loop_cache: dict[tuple, tuple[str, ...]] = {}
    gids = np.empty(len(ia), dtype=np.int64)
    for n, i in enumerate(ia):
        key = ka[i]
        loop = key[1].loop
        names = loop_cache.get(loop)
        if names is None:
            names = loop_cache[loop] = tuple(k for k, _ in loop)
        gids[n] = gid_of.setdefault((key[0], names), len(gid_of))
    order = np.argsort(gids, kind="stable")
    ia_arr = np.asarray(ia, dtype=np.int64)[order]
    ib_arr = np.asarray(ib, dtype=np.int64)[order]
    bounds = np.searchsorted(gids[order], np.arange(len(gid_of) + 1))
    out = []
    for (tap, loop), g in gid_of.items():
        lo, hi = bounds[g], bounds[g + 1]
        out.append(TapGroup(tap, loop, ia_arr[lo:hi], ib_arr[lo:hi]))
    return tuple(out)
