"""diff_traces: align → compare → localize, into one frozen DiffResult.

A is the reference (e.g. the C build), B the port. ``context`` carries run-derived facts the
traces may not print: {"N": (5, 5, 5), "oversample": 2, "pixel_size": 1e-4 (m), "dtype": "float32"}.
"""

from __future__ import annotations

import gc
import math
import os
import threading

import numpy as np

from nbtrace.engine.align import align
from nbtrace.engine.compare import TraceColumns, compare_group, plausibility
from nbtrace.engine.complete import (PROVENANCE, Coverage, coverage, emission_warnings, gap_verdicts,  # noqa: F401
                                     is_setup_tap, misspellings, unmatched)
from nbtrace.engine.headline import one_sided_headline, root_and_headline
from nbtrace.engine.localize import localize
from nbtrace.engine.model import Trace
from nbtrace.engine.pixels import pixel_maps, refuse_shifted_pixels, trace_pixels
from nbtrace.engine.results import DiffResult, RootCause, TapVerdict
from nbtrace.engine.runfacts import provenance, run_factors, settings_for  # noqa: F401
from nbtrace.errors import TraceError, UsageError

# Matched records from which the taps are compared in two processes (a fork costs ~20 ms).
PARALLEL_COMPARE_MIN = 300_000


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


# Run facts a context may give and what each must be: a nan pixel size or a negative N would
# turn every offset or factor explanation into nonsense.
POSITIVE_CONTEXT = ("pixel_size", "N", "oversample", "sources", "phisteps", "mosaic_domains")


def check_context(context: dict | None) -> dict:
    """A copy of ``context`` with every number checked: finite everywhere, > 0 for the run facts
    of POSITIVE_CONTEXT. Raises UsageError naming the key."""
    out = dict(context or {})
    for key, value in out.items():
        items = value if isinstance(value, (tuple, list)) else (value,)
        for v in items:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                if key in POSITIVE_CONTEXT:
                    raise UsageError(f"{key} must be a number, got {value!r}", where="--context",
                                     hint=f"give {key} as a positive number, e.g. --context {key}=2")
                continue
            if not math.isfinite(v) or (key in POSITIVE_CONTEXT and v <= 0):
                need = "a positive finite number" if key in POSITIVE_CONTEXT else "a finite number"
                raise UsageError(f"{key} must be {need}, got {_fmt_context(value)}", where="--context",
                                 hint=f"e.g. --context {key}=1e-4" if key == "pixel_size" else
                                 f"give {key} as {need}")
    return out


def _fmt_context(value) -> str:
    items = value if isinstance(value, (tuple, list)) else (value,)
    return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in items)


def _diff(a: Trace, b: Trace, spec, force: bool, context: dict | None, rtol, atol) -> DiffResult:
    context = check_context(context)
    # what the parser could not read or had to assume reaches every report (issue 11)
    warnings: list[str] = [f"{side}: {w}" for side, t in (("A", a), ("B", b)) for w in t.meta.get("warnings", ())]
    if spec is not None:
        from nbtrace.engine.spec import conditions_of

        # run choices that reorder the computation (the detector pivot) pick the DAG's edges
        spec = spec.specialize(conditions_of(spec, a, b))
        check_shapes(a, spec, "a")
        check_shapes(b, spec, "b")
    pixels_a, pixels_b = trace_pixels(a), trace_pixels(b)
    map_a, map_b, remapped = pixel_maps(a, b, pixels_a, pixels_b, force, warnings)
    al = align(a, b, spec, pixel_map_a=map_a, pixel_map_b=map_b)
    prov_a, prov_b = provenance(a, al.canon_a), provenance(b, al.canon_b)
    settings = settings_for(a, b, al, spec, context, prov_a, prov_b, rtol, atol)
    if not force and not (pixels_a and pixels_b):
        refuse_shifted_pixels(a, b, al, settings.geometry)
    verdicts = compare_all([g for g in al.groups if g.tap not in PROVENANCE], a, b, spec, settings)
    unmatched_a, unmatched_b = unmatched(a, al, "a"), unmatched(b, al, "b")
    gaps = gap_verdicts(a, b, al, spec, is_setup_tap)
    loc = localize(verdicts, spec, float32=settings.float32_side is not None, gaps=gaps)
    misspelled = misspellings(a, b, al, spec)
    warnings += emission_warnings(a, b, al, unmatched_a, unmatched_b)
    warnings += [m.text() for m in misspelled]
    warnings += _plausibility_warnings(a, b, al, spec)
    precision = [f for f in loc.findings if f.verdict.kind == "precision"]
    if precision:
        warnings.append(f"{len(precision)} tap(s) differ only within float32 noise (precision class, "
                        f"not a bug at float32 tolerance): {', '.join(f.verdict.label for f in precision[:8])}")
    matched = al.matched
    root, headline = root_and_headline(loc, matched, a, b, spec, prov_a, prov_b,
                                       len(set(pixels_a)) > 1, misspelled)
    patterns = _root_patterns(a, b, al, loc.root.verdict) if root is not None else ()
    if patterns:
        headline = headline[:-1] + "".join(f"; {p.short}" for p in patterns) + "."
        root = RootCause(root.tap, root.loop, root.index, root.kind, root.factor, headline)
    cover = coverage(a, b, al, spec)
    if matched and cover.one_sided:
        headline = one_sided_headline(cover, a, b) + (f" Among the compared taps: {headline}" if root else "")
    if remapped and (root is not None or loc.immaterial):
        # incident 19: a forced diff of different pixels shows a "swap" that is no bug at all
        headline = headline[:-1] + (" — but A and B traced different pixels (forced), so this "
                                    "may be nothing but the pixel difference.")
        if root is not None:
            root = RootCause(root.tap, root.loop, root.index, root.kind, root.factor, headline)
    return DiffResult(
        path_a=a.path, path_b=b.path, findings=loc.findings, root_cause=root, headline=headline,
        matched=matched, unmatched_a=unmatched_a, unmatched_b=unmatched_b,
        pixels_a=pixels_a, pixels_b=pixels_b, warnings=tuple(warnings),
        spec_name=getattr(spec, "name", None), context={k: _jsonable(v) for k, v in context.items()},
        provenance={"a": prov_a, "b": prov_b}, nothing_compared=matched == 0 or cover.one_sided,
        patterns=patterns, causes=loc.causes, immaterial=loc.immaterial,
        misspellings=misspelled)


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


# ------------------------------------------------------------------------------ warnings


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
