"""Align two traces: every record of both sides ends up in exactly one of matched pair,
only-in-A, only-in-B.

The key of a record is (canonical name, pixel, loop indices, occurrence). Canonical names come
from the spec's aliases (without a spec, identical printed names). Nothing is ever matched by
position: a record with no partner under its key is reported as unmatched, never paired with
"the next one".

Speed matters (traces of millions of lines): keys are built from the trace's columns
(``Trace.columns()``) as one int64 code per record and matched with numpy set operations; the
only per-record Python work is building the canonical-name tuples the Alignment exposes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from operator import attrgetter
from typing import NamedTuple

import numpy as np

from nbtrace.engine.model import RecordColumns, TapRecord, Trace, _first_appearance

_name = attrgetter("name")


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
    first_a / first_b: {canonical name: position of its first record}.
    """

    groups: tuple[TapGroup, ...]
    only_a: tuple[int, ...]
    only_b: tuple[int, ...]
    canon_a: tuple[str, ...]
    canon_b: tuple[str, ...]
    count_mismatch: tuple[CountMismatch, ...] = ()
    first_a: dict = field(default_factory=dict)
    first_b: dict = field(default_factory=dict)

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


def _canon_table(names: tuple[str, ...], spec, side: str, ids: dict[str, int]) -> np.ndarray:
    """Canonical-name id of each entry of a printed-name table (ids shared by both sides)."""
    out = np.empty(len(names), dtype=np.int64)
    for i, n in enumerate(names):
        c = spec.canonical(n, side) if spec is not None else None
        out[i] = ids.setdefault(n if c is None else c, len(ids))
    return out


def _context_tables(contexts, pixel_map, pixels: dict, loops: dict) -> tuple[list, np.ndarray, np.ndarray]:
    """Per context-table entry: the (remapped pixel, loop) pair and their shared pixel / loop ids."""
    mapped = [(pixel_map.get(p, p), lo) for p, lo in contexts] if pixel_map else list(contexts)
    pix = np.array([pixels.setdefault(p, len(pixels)) for p, _ in mapped], dtype=np.int64)
    loop = np.array([loops.setdefault(lo, len(loops)) for _, lo in mapped], dtype=np.int64)
    return mapped, pix, loop


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


class _Side(NamedTuple):
    """One trace's key columns: canonical id, pixel id, loop id, occurrence (all (n,) int64)."""

    canon: np.ndarray
    pixel: np.ndarray
    loop: np.ndarray
    occ: np.ndarray
    contexts: list  # (remapped pixel, loop) per context code
    context: np.ndarray  # context code per record


def _side(cols: RecordColumns, spec, side: str, pixel_map, canon_ids, pixels, loops) -> _Side:
    canon = _canon_table(cols.names, spec, side, canon_ids)[cols.name]
    contexts, pix, loop = _context_tables(cols.contexts, pixel_map, pixels, loops)
    return _Side(canon, pix[cols.context], loop[cols.context], cols.occurrence, contexts, cols.context)


def _renumbered(slot: np.ndarray) -> np.ndarray:
    """Occurrences recounted: aliasing (two printed names of one canonical tap) or a pixel remap
    can make two records share a key; the n-th record (in trace order) of a slot gets n."""
    order = np.argsort(slot, kind="stable")
    s = slot[order]
    starts = np.ones(len(s), dtype=bool)
    starts[1:] = s[1:] != s[:-1]
    pos = np.arange(len(s))
    run_start = np.maximum.accumulate(np.where(starts, pos, 0))
    out = np.empty_like(slot)
    out[order] = pos - run_start
    return out


def _has_duplicates(codes: np.ndarray) -> bool:
    s = np.sort(codes)
    return bool(np.any(s[1:] == s[:-1]))


def _encode(sa: _Side, sb: _Side, oa: np.ndarray, ob: np.ndarray, pixels: dict, loops: dict) -> _Coded:
    n_occ = int(max(oa.max(initial=0), ob.max(initial=0))) + 1
    n_pix, n_loop = len(pixels) or 1, len(loops) or 1
    n_canon = int(max(sa.canon.max(initial=0), sb.canon.max(initial=0))) + 1
    if n_canon * n_pix * n_loop * n_occ >= 2**62:
        raise OverflowError("too many distinct keys to encode")  # 4e18 keys: not a real trace

    def code(s: _Side, o):
        return ((s.canon * n_pix + s.pixel) * n_loop + s.loop) * n_occ + o

    return _Coded(code(sa, oa), code(sb, ob), n_occ, sa.canon, sb.canon, sa.loop, loops, pixels)


def align(a: Trace, b: Trace, spec=None, *, pixel_map_a: dict | None = None,
          pixel_map_b: dict | None = None) -> Alignment:
    """Match the records of ``a`` (reference) and ``b`` (port).

    pixel_map_a / pixel_map_b: optional {pixel: pixel} renames applied before matching (used
    when the caller forces a diff of traces of different pixels, or one side has no header).
    """
    canon_ids: dict[str, int] = {}
    pixels: dict = {}
    loops: dict = {}
    sa = _side(a.columns(), spec, "a", pixel_map_a, canon_ids, pixels, loops)
    sb = _side(b.columns(), spec, "b", pixel_map_b, canon_ids, pixels, loops)
    k = _encode(sa, sb, sa.occ, sb.occ, pixels, loops)
    if _has_duplicates(k.code_a) or _has_duplicates(k.code_b):
        k = _encode(sa, sb, _renumbered(k.code_a // k.n_occ), _renumbered(k.code_b // k.n_occ), pixels, loops)
    canon_names = np.array(list(canon_ids), dtype=object)
    canon_a = tuple(canon_names[sa.canon].tolist()) if len(sa.canon) else ()
    canon_b = tuple(canon_names[sb.canon].tolist()) if len(sb.canon) else ()
    ia, ib = _matches(k.code_a, k.code_b)
    matched_a = np.zeros(len(canon_a), dtype=bool)
    matched_b = np.zeros(len(canon_b), dtype=bool)
    matched_a[ia] = True
    matched_b[ib] = True
    counts = _count_mismatches(k, matched_a, matched_b, canon_a, sa)
    groups = _group(k, canon_a, ia, ib)
    return Alignment(groups, tuple(np.flatnonzero(~matched_a).tolist()),
                     tuple(np.flatnonzero(~matched_b).tolist()), canon_a, canon_b, counts,
                     _firsts(sa.canon, canon_a), _firsts(sb.canon, canon_b))


def _firsts(canon_id: np.ndarray, canon: tuple[str, ...]) -> dict[str, int]:
    """{canonical name: position of its first record} of one side."""
    return {canon[i]: i for i in _first_appearance(canon_id)}


def _matches(code_a: np.ndarray, code_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions (ia, ib) of equal codes (each side's codes are unique), ia ascending."""
    if np.array_equal(code_a, code_b):
        # both sides printed the same taps in the same order (the usual case): no sort needed
        ia = np.arange(len(code_a), dtype=np.int64)
        return ia, ia.copy()
    _, ia, ib = np.intersect1d(code_a, code_b, assume_unique=True, return_indices=True)
    order = np.argsort(ia, kind="stable")
    return ia[order], ib[order]


def _count_mismatches(k: _Coded, matched_a, matched_b, canon_a, sa: _Side) -> tuple[CountMismatch, ...]:
    """(tap, pixel, loop) slots printed a different number of times on the two sides. Their
    records are still paired occurrence by occurrence (the n-th with the n-th); the extra ones
    stay unmatched, and the diff reports them as missing iterations, never as agreement.

    Occurrences are dense from 0, so a slot with an unmatched record on either side and records
    on both sides has different counts; only those slots are inspected.
    """
    if matched_a.all() and matched_b.all():
        return ()  # unequal counts would leave a record unmatched on one side
    slot_a, slot_b = k.code_a // k.n_occ, k.code_b // k.n_occ
    suspects = np.union1d(slot_a[~matched_a], slot_b[~matched_b])
    if suspects.size == 0:
        return ()
    ua, na = np.unique(slot_a[np.isin(slot_a, suspects)], return_counts=True)
    ub, nb = np.unique(slot_b[np.isin(slot_b, suspects)], return_counts=True)
    both, ja, jb = np.intersect1d(ua, ub, assume_unique=True, return_indices=True)
    if both.size == 0:
        return ()
    first_a = _first_positions(slot_a, both)
    out = []
    for s, n_a, n_b in zip(both.tolist(), na[ja].tolist(), nb[jb].tolist()):
        i = first_a[s]
        pixel, loop = sa.contexts[sa.context[i]]
        out.append(CountMismatch(canon_a[i], pixel, loop, n_a, n_b))
    out.sort(key=lambda c: (c.tap, str(c.pixel), c.loop))
    return tuple(out)


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
    # group codes are few and small: counting (bincount, scatter) instead of sorting a million
    n_codes = int(gcode.max()) + 1
    present = np.flatnonzero(np.bincount(gcode, minlength=n_codes))
    first = np.empty(n_codes, dtype=np.int64)
    first[gcode[::-1]] = np.arange(len(gcode) - 1, -1, -1)  # the last write is the first position
    by_first = present[np.argsort(first[present], kind="stable")]  # first appearance in A
    rank = np.zeros(n_codes, dtype=np.int64)
    rank[by_first] = np.arange(len(by_first))
    gid = rank[gcode]
    small = np.int16 if len(by_first) < 2**15 else np.int64  # a stable sort of int16 is a radix sort
    order = np.argsort(gid.astype(small), kind="stable")
    bounds = np.concatenate(([0], np.cumsum(np.bincount(gid, minlength=len(by_first)))))
    loop_names = {v: n for n, v in name_ids.items()}
    out = []
    for g in range(len(by_first)):
        sel = order[bounds[g]:bounds[g + 1]]
        i0 = int(ia[sel[0]])
        tap = canon_a[i0]
        out.append(TapGroup(tap, loop_names[int(loop_name_id[k.loop_id_a[i0]])], ia[sel], ib[sel]))
    return tuple(out)
