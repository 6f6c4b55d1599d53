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
_pix = attrgetter("pixel")
_loop = attrgetter("loop")
_occ = attrgetter("occurrence")


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


def _ids(values_a: list, values_b: list) -> tuple[dict, np.ndarray, np.ndarray]:
    """Small integer ids for hashable values shared by both sides (one hash per value)."""
    table = {v: i for i, v in enumerate(dict.fromkeys(values_a + values_b))}
    get = table.__getitem__
    ia = np.fromiter(map(get, values_a), dtype=np.int64, count=len(values_a))
    ib = np.fromiter(map(get, values_b), dtype=np.int64, count=len(values_b))
    return table, ia, ib


def _run_ids(values_a: list, values_b: list) -> tuple[dict, np.ndarray, np.ndarray]:
    """Like _ids, for values that come in runs (the pixel of consecutive records, their loop
    index): the parser reuses one object per run, so runs are found by object identity with
    numpy and only the first value of each run is hashed."""
    table: dict = {}
    setdefault = table.setdefault

    def side(vals: list) -> np.ndarray:
        n = len(vals)
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        oid = np.fromiter(map(id, vals), dtype=np.int64, count=n)
        starts = np.flatnonzero(np.concatenate(([True], oid[1:] != oid[:-1])))
        codes = np.fromiter((setdefault(vals[i], len(table)) for i in starts.tolist()),
                            dtype=np.int64, count=len(starts))
        return np.repeat(codes, np.diff(np.append(starts, n)))

    return table, side(values_a), side(values_b)


class _Coded(NamedTuple):
    """Each record's key as one int64 code; slot = code without the occurrence."""

    code_a: np.ndarray
    code_b: np.ndarray
    n_occ: int
    canon_id_a: np.ndarray
    canon_id_b: np.ndarray
    loop_id_a: np.ndarray
    loops: dict  # loop tuple -> id
    pixels: dict  # pixel -> id


def _indices(records, pixel_map):
    indices = list(map(_index, records))
    if pixel_map:
        indices = [_remap(i, pixel_map) for i in indices]
    return indices


def _renumbered(canon: list[str], indices: list[TapIndex]) -> list[int]:
    """Occurrences recounted: aliasing (two printed names of one canonical tap) or a pixel remap
    can make two records share a key; the n-th record of a (tap, pixel, loop) gets n."""
    seen: dict[tuple, int] = {}
    out = []
    for c, i in zip(canon, indices):
        slot = (c, i.pixel, i.loop)
        n = seen.get(slot, 0)
        seen[slot] = n + 1
        out.append(n)
    return out


def _occurrences(indices: list[TapIndex]) -> np.ndarray:
    return np.fromiter(map(_occ, indices), dtype=np.int64, count=len(indices))


def _has_duplicates(codes: np.ndarray) -> bool:
    s = np.sort(codes)
    return bool(np.any(s[1:] == s[:-1]))


def _encode(canon_a, canon_b, ia_idx, ib_idx, oa: np.ndarray, ob: np.ndarray) -> _Coded:
    _, ca, cb = _ids(canon_a, canon_b)
    pixels, pa, pb = _run_ids(list(map(_pix, ia_idx)), list(map(_pix, ib_idx)))
    loops, la, lb = _run_ids(list(map(_loop, ia_idx)), list(map(_loop, ib_idx)))
    n_occ = int(max(oa.max(initial=0), ob.max(initial=0))) + 1
    n_pix, n_loop = len(pixels) or 1, len(loops) or 1
    if (max(len(canon_a), len(canon_b)) + 1) * n_pix * n_loop * n_occ >= 2**62:
        raise OverflowError("too many distinct keys to encode")  # 4e18 keys: not a real trace

    def code(c, p, lo, o):
        return ((c * n_pix + p) * n_loop + lo) * n_occ + o

    return _Coded(code(ca, pa, la, oa), code(cb, pb, lb, ob), n_occ, ca, cb, la, loops, pixels)


def align(a: Trace, b: Trace, spec=None, *, pixel_map_a: dict | None = None,
          pixel_map_b: dict | None = None) -> Alignment:
    """Match the records of ``a`` (reference) and ``b`` (port).

    pixel_map_a / pixel_map_b: optional {pixel: pixel} renames applied before matching (used
    when the caller forces a diff of traces of different pixels, or one side has no header).
    """
    canon_a = canonical_names(a.records, spec, "a")
    canon_b = canonical_names(b.records, spec, "b")
    idx_a, idx_b = _indices(a.records, pixel_map_a), _indices(b.records, pixel_map_b)
    oa, ob = _occurrences(idx_a), _occurrences(idx_b)
    k = _encode(canon_a, canon_b, idx_a, idx_b, oa, ob)
    if _has_duplicates(k.code_a) or _has_duplicates(k.code_b):
        oa = np.asarray(_renumbered(canon_a, idx_a), dtype=np.int64)
        ob = np.asarray(_renumbered(canon_b, idx_b), dtype=np.int64)
        k = _encode(canon_a, canon_b, idx_a, idx_b, oa, ob)
    _, ia, ib = np.intersect1d(k.code_a, k.code_b, assume_unique=True, return_indices=True)
    matched_a = np.zeros(len(canon_a), dtype=bool)
    matched_b = np.zeros(len(canon_b), dtype=bool)
    matched_a[ia] = True
    matched_b[ib] = True
    counts, ia, ib = _drop_count_mismatches(k, ia, ib, matched_a, matched_b, canon_a, idx_a)
    order = np.argsort(ia, kind="stable")
    ia, ib = ia[order], ib[order]
    groups = _group(k, canon_a, ia, ib)
    return Alignment(groups, tuple(np.flatnonzero(~matched_a).tolist()),
                     tuple(np.flatnonzero(~matched_b).tolist()), tuple(canon_a), tuple(canon_b), counts)


def _drop_count_mismatches(k: _Coded, ia, ib, matched_a, matched_b, canon_a, idx_a):
    """Occurrence n of a per-subpixel tap is subpixel n only if both sides printed the same
    number of subpixel blocks; a (tap, pixel, loop) slot printed a different number of times is
    therefore not paired at all (its records become unmatched) and reported.

    Occurrences are dense from 0, so a slot with an unmatched record on either side and records
    on both sides has different counts; only those slots are inspected.
    """
    slot_a, slot_b = k.code_a // k.n_occ, k.code_b // k.n_occ
    suspects = np.union1d(slot_a[~matched_a], slot_b[~matched_b])
    if suspects.size == 0:
        return (), ia, ib
    ua, na = np.unique(slot_a[np.isin(slot_a, suspects)], return_counts=True)
    ub, nb = np.unique(slot_b[np.isin(slot_b, suspects)], return_counts=True)
    both, ja, jb = np.intersect1d(ua, ub, assume_unique=True, return_indices=True)
    if both.size == 0:
        return (), ia, ib
    drop = np.isin(slot_a[ia], both)
    matched_a[ia[drop]] = False
    matched_b[ib[drop]] = False
    first_a = _first_positions(slot_a, both)
    out = []
    for s, n_a, n_b in zip(both.tolist(), na[ja].tolist(), nb[jb].tolist()):
        i = first_a[s]
        out.append(CountMismatch(canon_a[i], idx_a[i].pixel, idx_a[i].loop, n_a, n_b))
    out.sort(key=lambda c: (c.tap, str(c.pixel), c.loop))
    return tuple(out), ia[~drop], ib[~drop]


def _first_positions(slots: np.ndarray, wanted: np.ndarray) -> dict[int, int]:
    u, first = np.unique(slots, return_index=True)
    keep = np.isin(u, wanted)
    return dict(zip(u[keep].tolist(), first[keep].tolist()))


def _group(k: _Coded, canon_a: list[str], ia: np.ndarray, ib: np.ndarray) -> tuple[TapGroup, ...]:
    """Split the matched pairs (sorted by A position) by (canonical name, loop key names)."""
    if ia.size == 0:
        return ()
    names_of_loop = {i: tuple(key for key, _ in loop) for loop, i in k.loops.items()}
    name_ids = {n: i for i, n in enumerate(dict.fromkeys(names_of_loop.values()))}
    loop_name_id = np.array([name_ids[names_of_loop[i]] for i in range(len(names_of_loop))], dtype=np.int64)
    gcode = k.canon_id_a[ia] * len(name_ids) + loop_name_id[k.loop_id_a[ia]]
    uniq, first, inverse = np.unique(gcode, return_index=True, return_inverse=True)
    rank = np.empty(len(uniq), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(uniq))  # first appearance in A
    gid = rank[inverse.reshape(-1)]
    order = np.argsort(gid, kind="stable")
    bounds = np.searchsorted(gid[order], np.arange(len(uniq) + 1))
    loop_names = {v: n for n, v in name_ids.items()}
    out = []
    for g in range(len(uniq)):
        sel = order[bounds[g]:bounds[g + 1]]
        i0 = int(ia[sel[0]])
        tap = canon_a[i0]
        out.append(TapGroup(tap, loop_names[int(loop_name_id[k.loop_id_a[i0]])], ia[sel], ib[sel]))
    return tuple(out)
