"""diff_traces: align → compare → localize, into one frozen DiffResult.

A is the reference (e.g. the C build), B the port. ``context`` carries run-derived facts the
traces may not print: {"N": (5, 5, 5), "oversample": 2, "pixel_size": 1e-4 (m), "dtype": "float32"}.
"""

from __future__ import annotations

import gc
import math
import os
import shlex
import threading
from itertools import islice
from typing import NamedTuple

import numpy as np

from nbtrace.engine.align import Alignment, align
from nbtrace.engine.compare import CompareSettings, Geometry, TraceColumns, compare_group, plausibility
from nbtrace.errors import TraceError, UsageError
from nbtrace.engine.localize import localize
from nbtrace.engine.model import TapRecord, Trace
from nbtrace.engine.results import DiffResult, RootCause, TapVerdict, Unmatched, index_text
from nbtrace.engine.units import NamedFactor

# Setup taps that describe the run rather than compute anything: a C build and its port always
# differ here (producer name, argv spelling), so they are never compared as divergences; they
# are kept as provenance and used to explain a divergence caused by different inputs.
PROVENANCE = ("producer", "dtype", "argv", "structure_factors")
# The setup block of a real build is a few dozen lines; a silent build has none at the top.
SETUP_HEAD = 2000
# Matched records from which the taps are compared in two processes (a fork costs ~20 ms).
PARALLEL_COMPARE_MIN = 300_000
# Taps whose divergence, with all upstream taps agreeing, points at an input file.
INPUT_OF = {"F_cell": ("structure_factors", "the structure-factor input (a stale Fdump.bin? another -hkl file?)")}


def resolve_spec(spec):
    """A TapSpec from a TapSpec, a YAML path, or the name of a shipped spec ("nanobragg",
    "scaling.yaml", "phi_loop"), as `nbtrace taps` accepts; an existing file wins over a name."""
    from nbtrace.engine.spec import SHIPPED, load_spec, shipped_spec

    if not isinstance(spec, (str, os.PathLike)):
        return spec
    arg = os.fspath(spec)
    if not os.path.exists(arg) and os.sep not in arg:
        name = arg if arg.endswith(".yaml") else arg + ".yaml"
        if name in SHIPPED:
            return shipped_spec(name)
    return load_spec(arg)


def diff_traces(a: Trace, b: Trace, spec=None, *, force: bool = False, context: dict | None = None,
                rtol: float | None = None, atol: float | None = None) -> DiffResult:
    """Diff reference ``a`` against port ``b``.

    rtol/atol override every tap's tolerance (both or neither). Raises UsageError for traces of
    different pixels unless ``force``.
    """
    if (rtol is None) != (atol is None):
        raise UsageError("rtol and atol go together", hint="give both --rtol and --atol, or neither")
    # Millions of live record tuples make every full cyclic-GC pass cost seconds; the diff
    # creates no reference cycles, so collection is paused while it runs.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _diff(a, b, spec, force, context, rtol, atol)
    finally:
        if was_enabled:
            gc.enable()


def _diff(a: Trace, b: Trace, spec, force: bool, context: dict | None, rtol, atol) -> DiffResult:
    context = dict(context or {})
    # what the parser could not read or had to assume reaches every report (issue 11)
    warnings: list[str] = [f"{side}: {w}" for side, t in (("A", a), ("B", b)) for w in t.meta.get("warnings", ())]
    if spec is not None:
        from nbtrace.engine.spec import conditions_of

        # run choices that reorder the computation (the detector pivot) pick the DAG's edges
        spec = spec.specialize(conditions_of(spec, a, b))
        check_shapes(a, spec, "a")
        check_shapes(b, spec, "b")
    pixels_a, pixels_b = _pixels(a), _pixels(b)
    map_a, map_b, remapped = _pixel_maps(a, b, pixels_a, pixels_b, force, warnings)
    al = align(a, b, spec, pixel_map_a=map_a, pixel_map_b=map_b)
    prov_a, prov_b = provenance(a, al.canon_a), provenance(b, al.canon_b)
    settings = _settings(a, b, al, spec, context, prov_a, prov_b, rtol, atol)
    if not force and not (pixels_a and pixels_b):
        _refuse_shifted_pixels(a, b, al, settings.geometry)
    verdicts = compare_all([g for g in al.groups if g.tap not in PROVENANCE], a, b, spec, settings)
    unmatched_a = _unmatched(a, al, "a")
    unmatched_b = _unmatched(b, al, "b")
    verdicts += _missing_verdicts(a, b, unmatched_a, unmatched_b, spec)
    loc = localize(verdicts, spec, float32=settings.float32_side is not None,
                   uncompared=frozenset(c.tap for c in al.count_mismatch))
    warnings += _emission_warnings(a, b, al, unmatched_a, unmatched_b)
    warnings += _plausibility_warnings(a, b, al, spec)
    precision = [f for f in loc.findings if f.verdict.kind == "precision"]
    if precision:
        warnings.append(f"{len(precision)} tap(s) differ only within float32 noise (precision class, "
                        f"not a bug at float32 tolerance): {', '.join(f.verdict.label for f in precision[:8])}")
    matched = al.matched
    root, headline = _root_and_headline(loc, matched, a, b, al, spec, prov_a, prov_b)
    patterns = _root_patterns(a, b, al, loc.root.verdict) if root is not None else ()
    if patterns:
        headline = headline[:-1] + "".join(f"; {p.short}" for p in patterns) + "."
        root = RootCause(root.tap, root.loop, root.index, root.kind, root.factor, headline)
    cover = coverage(a, b, al, spec)
    if matched and cover.one_sided:
        headline = _one_sided_headline(cover, a, b) + (f" Among the compared taps: {headline}" if root else "")
    if root is not None and remapped:
        # incident 19: a forced diff of different pixels shows a "swap" that is no bug at all
        headline = headline[:-1] + (" — but A and B traced different pixels (forced), so this "
                                    "may be nothing but the pixel difference.")
        root = RootCause(root.tap, root.loop, root.index, root.kind, root.factor, headline)
    return DiffResult(
        path_a=a.path, path_b=b.path, findings=loc.findings, root_cause=root, headline=headline,
        matched=matched, unmatched_a=unmatched_a, unmatched_b=unmatched_b,
        pixels_a=pixels_a, pixels_b=pixels_b, warnings=tuple(warnings),
        spec_name=getattr(spec, "name", None), context={k: _jsonable(v) for k, v in context.items()},
        provenance={"a": prov_a, "b": prov_b}, nothing_compared=matched == 0 or cover.one_sided,
        patterns=patterns)


# Above this many traced pixels the traces are a region dump, which `nbtrace maps` pictures.
PATTERN_MAX_PIXELS = 4096


def _root_patterns(a: Trace, b: Trace, al, v) -> tuple:
    """How a scalar per-pixel root tap's error varies over the traced pixels (nbtrace.engine.trends):
    points are (2θ from the reference's cos_2theta, reference, port) of each pixel's first record."""
    from nbtrace.engine.trends import patterns

    if v.loop or v.index is None or v.index.pixel is None:
        return ()
    group = next((g for g in al.groups if g.tap == v.tap and not g.loop), None)
    if group is None or len(group.ia) < 2 or len(group.ia) > PATTERN_MAX_PIXELS:
        return ()
    cos2 = _first_per_pixel(a, al, "cos_2theta")
    points = []
    for i, j in zip(group.ia.tolist(), group.ib.tolist()):
        ra, rb = a.records[i], b.records[j]
        if ra.index.occurrence != 0 or len(ra.values) != 1 or len(rb.values) != 1:
            continue
        c = cos2.get(ra.index.pixel)
        tt = math.degrees(math.acos(max(-1.0, min(1.0, c)))) if c is not None and math.isfinite(c) else None
        points.append((tt, ra.values[0], rb.values[0]))
    return patterns(points) if len({p for p in points}) >= 2 else ()


def _first_per_pixel(t: Trace, al, tap: str) -> dict:
    group = next((g for g in al.groups if g.tap == tap and not g.loop), None)
    out: dict = {}
    if group is None or len(group.ia) > PATTERN_MAX_PIXELS:
        return out
    for i in group.ia.tolist():
        r = t.records[i]
        if len(r.values) == 1:
            out.setdefault(r.index.pixel, r.values[0])
    return out


def compare_all(groups, a: Trace, b: Trace, spec, settings) -> list[TapVerdict]:
    """compare_group of every group, in order. Large traces: the groups are split in two halves
    of about as many records, the second compared in a forked process at the same time (each
    tap's comparison is independent and deterministic, so the verdicts are the same); if that
    process fails for any reason its half is compared here."""
    cols_a, cols_b = TraceColumns(a), TraceColumns(b)

    def run(part):
        return [compare_group(g, a, b, spec.get(g.tap) if spec else None, settings, cols_a=cols_a, cols_b=cols_b)
                for g in part]

    sizes = np.array([len(g.ia) for g in groups], dtype=np.int64)
    # forking a process that runs other threads can copy a lock some thread holds
    if len(groups) < 2 or sizes.sum() < PARALLEL_COMPARE_MIN or threading.active_count() > 1:
        return run(groups)
    cut = int(np.searchsorted(np.cumsum(sizes), sizes.sum() / 2)) + 1
    cut = min(max(cut, 1), len(groups) - 1)
    helper = _fork(run, groups[cut:])
    try:
        first = run(groups[:cut])
    except BaseException:
        _joined(helper, stop=True)
        raise
    second = _joined(helper)
    return first + (second if second is not None else run(groups[cut:]))


def _fork(fn, arg):
    """A forked process computing fn(arg) and sending it back: (process, pipe end), or None."""
    import multiprocessing

    from nbtrace.engine.forkwork import reply

    def child(conn):
        reply(conn, lambda: ("ok", fn(arg)))

    try:
        ctx = multiprocessing.get_context("fork")
        recv, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=child, args=(send,), daemon=True)
        proc.start()
    except (ValueError, OSError):
        return None
    send.close()
    return proc, recv


def _joined(helper, stop: bool = False):
    """The helper's result, or None when there is no helper, it failed, or ``stop`` (its result
    is no longer wanted)."""
    if helper is None:
        return None
    proc, conn = helper
    try:
        got = ("crash",) if stop else conn.recv()
    except (EOFError, OSError):
        got = ("crash",)
    finally:
        conn.close()
        if proc.is_alive():
            proc.terminate()
        proc.join()
    return got[1] if got[0] == "ok" else None


def _jsonable(v):
    return list(v) if isinstance(v, tuple) else v


# ------------------------------------------------------------------------------ input checks


def check_shapes(t: Trace, spec, side: str) -> None:
    """Every numeric record of a tap the spec gives a shape must hold that many values: a
    pixel_pos_meters of 2 values is a broken producer line, not "a different quantity".
    Raises TraceError at the first offending record (file:line), naming the spec's declaration."""
    cols = t.columns()
    if not len(cols):
        return
    want = np.full(len(cols.names), -1, dtype=np.int64)  # -1: no declared shape to hold it to
    defs: dict[int, tuple] = {}
    for nid, printed in enumerate(cols.names):
        canon = spec.canonical(printed, side)
        tapdef = spec.get(canon) if canon is not None else None
        if tapdef is not None and tapdef.shape is not None:
            want[nid] = math.prod(tapdef.shape)
            defs[nid] = (canon, tapdef)
    if not defs:
        return
    arity, w = cols.arity, want[cols.name]
    # arity 0: a string / text value, which has no components to count
    bad = np.flatnonzero((w >= 0) & (arity != w) & (arity != 0))
    if not bad.size:
        return
    i = int(bad[0])
    printed = cols.names[int(cols.name[i])]
    canon, tapdef = defs[int(cols.name[i])]
    alias = f" (`{canon}` in the spec)" if canon != printed else ""
    shape = "[" + ", ".join(map(str, tapdef.shape)) + "]"
    raise TraceError(
        f"tap `{printed}`{alias} has {int(arity[i])} value(s), but the spec declares shape "
        f"{shape}{' (a scalar)' if not tapdef.shape else ''} at {tapdef.loc}",
        where=f"{t.path}:{int(cols.line[i])}",
        hint="fix the producer's print of this tap (every component), or the spec's shape")


def unread_note(forced: Trace, sniffed: Trace | None, dialect: str, side: str) -> str | None:
    """What a forced ``--dialect`` left unread on one side: the tap lines the sniffed reading
    finds in other forms (``sniffed``: the same file read without forcing, None when that
    failed), and the parser's count of ignored lines. None when nothing was left out."""
    ignored = int(forced.meta.get("ignored_lines", 0))
    if sniffed is None:
        return (f"--dialect {dialect}: {ignored} line(s) of {side} were not read as taps under the "
                f"forced dialect" if ignored else None)
    have = forced.meta.get("dialects") or {}
    other = {d: n - have.get(d, 0) for d, n in (sniffed.meta.get("dialects") or {}).items()}
    other = {d: n for d, n in other.items() if n > 0}
    if not other:
        return None
    forms = ", ".join(f"{n} {d}" for d, n in other.items())
    return (f"--dialect {dialect}: {sum(other.values())} tap line(s) of {side} in other forms ({forms}) "
            f"were not read, so they are not compared ({ignored} line(s) of {side} ignored in all)")


# ------------------------------------------------------------------------------ pixels


def _pixels(t: Trace) -> tuple[tuple[int, int], ...]:
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


def _pixel_maps(a, b, pa, pb, force, warnings):
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


def _refuse_shifted_pixels(a: Trace, b: Trace, al: Alignment, g) -> None:
    """Incident 19 without pixel headers: the pixel positions differ by whole pixels along fast
    and slow while the detector frame (pix0, fdet, sdet) agrees — the traces are of different
    pixels (a transposed -trace_pixel), and diffing them sends people after a false swap."""
    if not g.pixel_size or g.fdet is None or g.sdet is None:
        return
    pos = [_first(t, first, "pixel_pos_meters") for t, first in ((a, al.first_a), (b, al.first_b))]
    if any(r is None or len(r.values) != 3 for r in pos):
        return
    for name in FRAME_TAPS:
        ra, rb = _first(a, al.first_a, name), _first(b, al.first_b, name)
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


# ------------------------------------------------------------------------------ coverage


class Coverage(NamedTuple):
    """Per-pixel taps (canonical names) each side printed, and those printed by both.

    A per-pixel tap is one the spec declares with any semantics but "setup" (a tap the spec does
    not know: one printed in a non-`=` form); provenance taps never count.
    """

    per_pixel_a: tuple[str, ...]
    per_pixel_b: tuple[str, ...]
    both: tuple[str, ...]

    @property
    def one_sided(self) -> bool:
        """The rule (style.md rule 4): a comparison is one-sided, hence a failure, when either side
        printed per-pixel taps and fewer than half of the smaller side's per-pixel taps, or fewer
        than a quarter of the larger side's, were printed by both sides. The first clause catches
        names that do not line up; the second a side that traced almost nothing the other did
        (a port printing one tap of the reference's twenty says nothing about the other nineteen)."""
        n_a, n_b, m = len(self.per_pixel_a), len(self.per_pixel_b), len(self.both)
        if max(n_a, n_b) == 0:
            return False
        return 2 * m < min(n_a, n_b) or 4 * m < max(n_a, n_b)


def coverage(a: Trace, b: Trace, al: Alignment, spec) -> Coverage:
    """Which per-pixel taps each side printed and which of them found partners."""
    pa, pb = _per_pixel_taps(a, spec, "a"), _per_pixel_taps(b, spec, "b")
    paired = {g.tap for g in al.groups} | {c.tap for c in al.count_mismatch}
    both = tuple(t for t in pa if t in paired and t in pb)
    return Coverage(pa, pb, both)


def _per_pixel_taps(t: Trace, spec, side: str) -> tuple[str, ...]:
    """Canonical per-pixel taps of one trace in order of first appearance (one pass over the
    name column, then one record per distinct printed name)."""
    cols = t.columns()
    if not len(cols):
        return ()
    n = len(cols)
    first = np.full(len(cols.names), n, dtype=np.int64)
    first[cols.name[::-1]] = np.arange(n - 1, -1, -1)  # the last write is the first position
    out: dict[str, int] = {}
    for nid, pos in enumerate(first.tolist()):
        if pos == n:
            continue  # a name of the table no record uses (another prefix's)
        printed = cols.names[nid]
        canon = (spec.canonical(printed, side) if spec is not None else None) or printed
        if canon in PROVENANCE or is_setup_tap(canon, spec, t.records[pos]):
            continue
        out[canon] = min(pos, out.get(canon, pos))
    return tuple(sorted(out, key=out.get))


def is_setup_tap(canon: str, spec, record: TapRecord) -> bool:
    """A setup value describes the run, not a pixel: a tap the spec declares with setup
    semantics; a tap the spec does not know when it is printed in the `=` form."""
    tapdef = spec.get(canon) if spec is not None else None
    if tapdef is not None:
        return tapdef.semantics == "setup"
    return record.dialect == "eq"


def _one_sided_headline(c: Coverage, a: Trace, b: Trace) -> str:
    m = len(c.both)
    return (f"One-sided comparison: only {m} per-pixel tap(s) were printed by both sides "
            f"(A printed {len(c.per_pixel_a)}, B printed {len(c.per_pixel_b)}; a comparison needs half "
            f"of the smaller side's and a quarter of the larger side's). "
            f"A had: {_tap_list(c.per_pixel_a)}{_narrative(a)}; "
            f"B had: {_tap_list(c.per_pixel_b)}{_narrative(b)}.")


def _tap_list(taps: tuple[str, ...]) -> str:
    if not taps:
        return "no per-pixel tap"
    return ", ".join(taps[:8]) + (f" and {len(taps) - 8} more" if len(taps) > 8 else "")


def _narrative(t: Trace) -> str:
    n = len(t.context)
    return f" (+ {n} free-text line(s) not read as taps)" if n else ""


# ------------------------------------------------------------------------------ context


def provenance(t: Trace, canon: tuple[str, ...]) -> dict:
    """What a side said about its run: setup provenance taps, then the trace's own metadata."""
    out: dict = {}
    for k in PROVENANCE:
        value = t.meta.get(k)
        if value is not None:
            # a capture sidecar may hold argv as a list
            out[k] = " ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
    for r, c in zip(t.records, canon):
        if r.index.pixel is not None:
            break  # the setup block precedes every pixel
        if c in PROVENANCE:
            out[c] = _text(r)
    return out


def _text(r: TapRecord) -> str:
    if r.text is not None:
        return r.text.strip()
    return " ".join(f"{v:g}" for v in r.values)


def _first(t: Trace, first: dict[str, int], name: str) -> TapRecord | None:
    """The first record of canonical tap ``name`` (``first``: Alignment.first_a or first_b)."""
    i = first.get(name)
    return None if i is None else t.records[i]


def _setup_number(t: Trace, first: dict[str, int], name: str) -> float | None:
    r = _first(t, first, name)
    if r is None or not r.values:
        return None
    return r.values[0]


def _argv_numbers(argv: str | None) -> dict[str, list[float]]:
    """Numeric flags of a nanoBragg command line: {"-N": [5.0], "-oversample": [2.0], ...}."""
    out: dict[str, list[float]] = {}
    if not argv:
        return out
    try:
        words = shlex.split(argv)
    except ValueError:
        words = argv.split()
    flag = None
    for w in words:
        if w.startswith("-") and not _is_number(w):
            flag = w
            out.setdefault(flag, [])
        elif flag is not None and _is_number(w):
            out[flag].append(float(w))
    return out


def _is_number(w: str) -> bool:
    try:
        float(w)
    except ValueError:
        return False
    return True


def run_factors(a: Trace, b: Trace, al: Alignment, context: dict, prov_a: dict) -> tuple[NamedFactor, ...]:
    """Factors a run explains (N per axis and N³, oversample², 1/λ ...), with what they mean."""
    out: list[NamedFactor] = []
    args = _argv_numbers(prov_a.get("argv"))
    N = context.get("N")
    if N is None and args.get("-N"):
        N = args["-N"][0]
    if N is None and all(args.get(f) for f in ("-Na", "-Nb", "-Nc")):
        N = tuple(args[f][0] for f in ("-Na", "-Nb", "-Nc"))
    if N is not None:
        Ns = tuple(float(n) for n in (N if isinstance(N, (tuple, list)) else (N, N, N)))
        for n in sorted(set(Ns)):
            if n > 1:
                out.append(NamedFactor(1 / n, f"×1/N per axis (N = {n:g}): a lattice-sum normalisation differs; config-derived factor"))
                out.append(NamedFactor(n, f"×N per axis (N = {n:g}): a lattice-sum normalisation differs; config-derived factor"))
        prod = math.prod(Ns)
        if prod > 1:
            desc = "·".join(f"{n:g}" for n in Ns)
            out.append(NamedFactor(1 / prod, f"×1/N³ overall (Na·Nb·Nc = {desc} = {prod:g}): one 1/N per axis; config-derived factor"))
            out.append(NamedFactor(prod, f"×N³ overall (Na·Nb·Nc = {desc} = {prod:g}); config-derived factor"))
            out.append(NamedFactor(1 / prod**2, f"×1/N⁶ (= (1/N³)², Na·Nb·Nc = {prod:g}): the lattice normalisation, squared in an intensity"))
    out += _count_factors(a, b, al, context, args)
    ratio = block_ratio(al)
    if ratio is not None:
        what = (f"B printed {ratio:g}× as many subpixel blocks per pixel as A" if ratio > 1 else
                f"A printed {1 / ratio:g}× as many subpixel blocks per pixel as B")
        root = math.sqrt(ratio if ratio > 1 else 1 / ratio)
        sq = f" (oversample² ratio {root:g}²)" if abs(root - round(root)) < 1e-9 else ""
        out.append(NamedFactor(ratio, f"{what}{sq}: an accumulation-count factor"))
    lam = _setup_number(a, al.first_a, "lambda_meters")
    if lam and lam > 0:
        lam_a = lam * 1e10
        out.append(NamedFactor(1 / lam_a, f"×1/λ (λ = {lam_a:g} Å) ⇒ the wavelength factor applied again"))
        out.append(NamedFactor(lam_a, f"×λ (λ = {lam_a:g} Å) ⇒ a wavelength factor applied where it was not expected"))
    return tuple(out)


def _count_factors(a, b, al, context, args) -> list[NamedFactor]:
    out: list[NamedFactor] = []
    oa = _setup_number(a, al.first_a, "oversample") or (args.get("-oversample") or [None])[0]
    ob = _setup_number(b, al.first_b, "oversample")
    oc = context.get("oversample")
    if oa and ob and oa != ob:
        r = (ob / oa) * (ob / oa)  # not ** 2: a float power raises OverflowError (oversample 1e200)
        out.append(NamedFactor(r, f"= (oversample {ob:g} vs {oa:g})²: the sides sampled a different number of subpixels"))
        out.append(NamedFactor(ob / oa, f"= oversample {ob:g} vs {oa:g}"))
    for o in {float(v) for v in (oa, ob, oc) if v}:
        if o > 1:
            out.append(NamedFactor(o * o, f"= oversample² ({o:g}² = {o * o:g}): an accumulation-count factor"))
            out.append(NamedFactor(1 / (o * o), f"= 1/oversample² (1/{o * o:g}): an accumulation-count factor (one subpixel where all {o * o:g} were summed?)"))
            out.append(NamedFactor(o, f"= oversample ({o:g}): a per-axis subpixel count"))
    for key, what in (("sources", "number of sources"), ("phisteps", "number of φ steps"),
                      ("mosaic_domains", "number of mosaic domains")):
        v = context.get(key) or _setup_number(a, al.first_a, key)
        if v and v > 1:
            out.append(NamedFactor(float(v), f"= {what} ({v:g}): an accumulation-count factor"))
            out.append(NamedFactor(1 / float(v), f"= 1/{what} (1/{v:g}): an accumulation-count factor"))
    return out


def _geometry(a: Trace, al: Alignment, context: dict) -> Geometry:
    px = context.get("pixel_size")
    if px is None:
        px = _setup_number(a, al.first_a, "pixel_size_m")
    if px is None:
        bc = _first(a, al.first_a, "beam_center_m")
        if bc is not None and "pixel_mm" in bc.labels:
            px = bc.values[bc.labels.index("pixel_mm")] * 1e-3
    fr, sr = _first(a, al.first_a, "fdet_vec"), _first(a, al.first_a, "sdet_vec")
    fdet = tuple(fr.values) if fr is not None and len(fr.values) == 3 else None
    sdet = tuple(sr.values) if sr is not None and len(sr.values) == 3 else None
    return Geometry(float(px) if px else None, fdet, sdet)


def _float32_side(context: dict, prov_a: dict, prov_b: dict) -> str | None:
    if str(context.get("dtype", "")).lower() == "float32":
        return "b"
    if "float32" in prov_b.get("dtype", ""):
        return "b"
    if "float32" in prov_a.get("dtype", ""):
        return "a"
    return None


def _settings(a, b, al, spec, context, prov_a, prov_b, rtol, atol) -> CompareSettings:
    defaults = getattr(spec, "defaults", None) or {}
    return CompareSettings(
        rtol=rtol, atol=atol,
        default_rtol=float(defaults.get("rtol", 1e-9)), default_atol=float(defaults.get("atol", 0.0)),
        float32_side=_float32_side(context, prov_a, prov_b),
        run_factors=run_factors(a, b, al, context, prov_a),
        geometry=_geometry(a, al, context))


# ------------------------------------------------------------------------------ unmatched


def _missing_verdicts(a, b, ua, ub, spec) -> list[TapVerdict]:
    """A verdict of kind "missing" for every tap only one side ever printed."""
    out = []
    for side, t, un in (("a", a, ua), ("b", b, ub)):
        for u in un:
            if not u.whole_tap or u.tap in PROVENANCE:
                continue
            r = t.records[u.position]
            who, other = ("A", "B") if side == "a" else ("B", "A")
            msg = (f"{u.tap}: printed only by {who} ({u.count} record(s), first at {u.first_loc}); "
                   f"{other} never emitted it")
            out.append(TapVerdict(
                tap=u.tap, loop=tuple(k for k, _ in r.index.loop), kind="missing", n_pairs=0,
                n_elements=0, n_mismatched=0, index=r.index, max_abs=None, max_rel=None,
                max_ulp=None, tolerance=None, atol=None, would_pass=None, factor=None,
                a=(r.text if r.text is not None else r.values) if side == "a" else None,
                b=(r.text if r.text is not None else r.values) if side == "b" else None,
                loc_a=r.loc if side == "a" else None, loc_b=r.loc if side == "b" else None,
                message=msg, is_setup=not r.index.loop and is_setup_tap(u.tap, spec, r)))
    return out


def _unmatched(t: Trace, al: Alignment, side: str) -> tuple[Unmatched, ...]:
    positions = al.only_a if side == "a" else al.only_b
    canon = al.canon_a if side == "a" else al.canon_b
    matched_taps = {g.tap for g in al.groups} | {c.tap for c in al.count_mismatch}
    by_tap: dict[str, list[int]] = {}
    for i in positions:
        by_tap.setdefault(canon[i], []).append(i)
    out = []
    for tap, idx in by_tap.items():
        r = t.records[idx[0]]
        out.append(Unmatched(tap, side, len(idx), r.loc, r.index, tap not in matched_taps, idx[0]))
    return tuple(out)


def _emission_warnings(a, b, al, ua, ub) -> list[str]:
    out = []
    for side, other, un in (("B", "A", ua), ("A", "B", ub)):
        never = [u.tap for u in un if u.whole_tap and u.tap not in PROVENANCE]
        if never:
            shown = ", ".join(never[:12]) + (f" and {len(never) - 12} more" if len(never) > 12 else "")
            out.append(f"{side} never emitted {len(never)} tap(s) that {other} printed: {shown}")
        partial = [u for u in un if not u.whole_tap]
        for u in partial[:3]:
            if any(c.tap == u.tap for c in al.count_mismatch):
                continue
            out.append(f"{other} printed {u.count} more record(s) of `{u.tap}` than {side} "
                       f"(first unmatched at {u.first_loc}, {index_text(u.first_index)})")
    out += _count_warnings(al)
    setup_a, setup_b = _has_setup_lines(a), _has_setup_lines(b)
    if setup_a != setup_b:
        silent = "B" if setup_a else "A"
        out.append(f"{silent} printed no setup (`=`) lines: a build without -DTRACING?")
    return out


def _count_warnings(al: Alignment) -> list[str]:
    """Taps printed a different number of times per pixel: subpixel blocks cannot be paired."""
    by_counts: dict[tuple, list[str]] = {}
    for c in al.count_mismatch:
        by_counts.setdefault((c.n_a, c.n_b, c.pixel), []).append(c.tap)
    out = []
    for (n_a, n_b, pixel), taps in by_counts.items():
        where = f"pixel ({pixel[0]}, {pixel[1]})" if pixel else "the unindexed pixel"
        shown = ", ".join(taps[:6]) + (f" and {len(taps) - 6} more" if len(taps) > 6 else "")
        out.append(f"for {where}, A printed {n_a} and B printed {n_b} copies of {len(taps)} tap(s) "
                   f"({shown}): different subpixel/layer counts (oversample, thicksteps, or a trace "
                   f"of one subpixel), so these are not compared")
    return out


def block_ratio(al: Alignment) -> float | None:
    """B's per-pixel repeat count over A's, for the most common count mismatch (None if none)."""
    if not al.count_mismatch:
        return None
    pairs: dict[tuple[int, int], int] = {}
    for c in al.count_mismatch:
        pairs[(c.n_a, c.n_b)] = pairs.get((c.n_a, c.n_b), 0) + 1
    n_a, n_b = max(pairs, key=pairs.get)
    return n_b / n_a


def _has_setup_lines(t: Trace) -> bool:
    """Whether the trace holds `=` setup lines; they precede the pixels, so the head suffices."""
    return any(r.dialect == "eq" for r in islice(t.records, SETUP_HEAD))


def _plausibility_warnings(a, b, al, spec) -> list[str]:
    if spec is None:
        return []
    out = []
    for g in al.groups:
        tapdef = spec.get(g.tap)
        if tapdef is None:
            continue
        for side, t, idx in (("a", a, g.ia), ("b", b, g.ib)):
            # the first few records are enough: a unit slip shows in every record
            w = plausibility(g.tap, tapdef, side, [t.records[i] for i in idx[:4]])
            if w:
                out.append(w)
    return out


# ------------------------------------------------------------------------------ headline


def _root_and_headline(loc, matched, a, b, al, spec, prov_a, prov_b):
    if matched == 0:
        head = (f"Nothing was compared: no record of A matches a record of B "
                f"(A had {len(a.records)} records: {_names(a)}; B had {len(b.records)}: {_names(b)}).")
        return None, head
    if loc.root is None:
        n = sum(1 for f in loc.findings if f.status == "agree")
        prec = sum(1 for f in loc.findings if f.verdict.kind == "precision")
        extra = f", {prec} of them only within float32 noise" if prec else ""
        head = f"All {n} compared taps agree ({matched} records matched{extra})."
        missing = sum(1 for f in loc.findings if f.status == "missing")
        if missing > n:
            # agreement on a sliver of the taps is not agreement of the traces: say so first
            head = (f"Only {n} of {n + missing} taps could be compared ({missing} printed by one side "
                    f"only: check the tap names or the spec's aliases); those {n} agree "
                    f"({matched} records matched{extra}).")
        return None, head
    v = loc.root.verdict
    what = v.message.split("\n", 1)[0].split(": ", 1)[1]
    where = f"`{v.tap}` (per {', '.join(v.loop)})" if v.loop else f"`{v.tap}`"
    inputs = _input_note(v, spec, prov_a, prov_b)
    if inputs and inputs[0]:
        what = inputs[1]
    elif v.is_setup:
        what += " — a setup value: the runs were configured differently, or derive it differently"
    head = f"{where} is the first divergence: {what}"
    if v.index is not None and v.index.pixel is not None and len(set(_pixels(a))) > 1:
        head += f" (first at {index_text(v.index)})"
    if inputs and not inputs[0]:
        head += inputs[1]
    n_inh = loc.inherited
    head += "; " + ("no later tap inherits it" if n_inh == 0 else
                    f"{n_inh} later tap{'s' if n_inh != 1 else ''} inherit{'s' if n_inh == 1 else ''} it")
    if loc.independent:
        others = ", ".join(f"`{f.verdict.label}`" for f in loc.independent[:4])
        head += f"; {len(loc.independent)} other tap(s) diverge with no divergent upstream tap: {others}"
    head += "."
    root = RootCause(v.tap, v.loop, v.index, v.kind, v.factor, head)
    return root, head


def _input_note(v: TapVerdict, spec, prov_a, prov_b) -> tuple[bool, str] | None:
    """(True, replacement) when the sides say they read different inputs; (False, note) when
    the tap depends on an input nobody recorded; None otherwise."""
    inputs = set(spec.ancestors(v.tap)) & set(PROVENANCE) if spec is not None and v.tap in spec else set()
    named = INPUT_OF.get(v.tap)
    if named:
        inputs.add(named[0])
    for key in sorted(inputs):
        va, vb = prov_a.get(key), prov_b.get(key)
        if va is not None and vb is not None and va != vb:
            vals = f"{_g(v.a)} vs {_g(v.b)}" if not isinstance(v.a, str) else f"{v.a!r} vs {v.b!r}"
            return True, (f"the inputs differ: {v.tap} {vals} (reference vs port) with every upstream "
                          f"tap agreeing: the sides read different {key.replace('_', ' ')} "
                          f"(A: {va}, B: {vb})")
    if named:
        return False, f" — all upstream taps agree: check {named[1]}"
    return None


def _g(vals) -> str:
    return " ".join(f"{x:.6g}" for x in vals)


def _names(t: Trace) -> str:
    names = t.names()
    return ", ".join(names[:8]) + (f" … ({len(names)} names)" if len(names) > 8 else "") if names else "nothing"
