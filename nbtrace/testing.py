"""Helpers for a port's own test suite.

``assert_traces_match(reference, port)`` diffs two traces (paths or Trace objects) and raises an
AssertionError in the style of ``torch.testing.assert_close``: a short message (about a dozen
lines) with the root cause first, then the two values side by side, the factor, the counts and
where to look. ``capture_and_match(nb_args, pixels=...)`` runs the reference and the port on the
same arguments and asserts the same. The pytest plugin (nbtrace.pytest_plugin) offers both as the
``nbtrace_compare`` fixture. ``make_trace`` builds a Trace in memory from (name, values) pairs.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from nbtrace.engine.model import SourceLoc, TapIndex, TapRecord, Trace

__all__ = ["assert_traces_match", "capture_and_match", "failure_message", "make_trace"]

# components shown per side before "…": a 3x3 matrix fits, a 100-value tap does not flood the message
SHOWN_VALUES = 9


def _load(x, dialect: str | None) -> Trace:
    if isinstance(x, Trace):
        return x
    if isinstance(x, (str, os.PathLike)):
        from nbtrace.engine.parse import read_trace

        return read_trace(x, dialect=dialect)
    raise TypeError(f"expected a trace path or nbtrace.engine.model.Trace, got {type(x).__name__}")


def assert_traces_match(a, b, spec=None, *, force: bool = False, context: dict | None = None,
                        rtol: float | None = None, atol: float | None = None,
                        dialect: str | None = None) -> None:
    """Raise AssertionError unless reference ``a`` and port ``b`` agree.

    spec: a TapSpec, a path to a YAML spec, the name of a shipped spec ("nanobragg", "scaling",
    "phi_loop"), or None (the shipped spec that fits the traces' names, else none).
    The message opens with the root cause; ``nbtrace diff A B`` prints the full report.
    """
    __tracebackhide__ = True  # pytest shows the caller's line, not this helper's
    from nbtrace.engine.diff import diff_traces

    ta, tb = _load(a, dialect), _load(b, dialect)
    resolved = _spec(spec, ta, tb)
    result = diff_traces(ta, tb, resolved, force=force, context=context, rtol=rtol, atol=atol)
    if not result:
        raise AssertionError(failure_message(result, spec=spec if isinstance(spec, (str, os.PathLike)) else None))


def _spec(spec, ta: Trace, tb: Trace):
    if spec is None:
        from nbtrace.engine.spec import spec_for

        return spec_for(ta, tb)
    from nbtrace.engine.diff import resolve_spec

    return resolve_spec(spec)


def failure_message(result, spec=None) -> str:
    """The short failure text of a diverging DiffResult: the headline (root cause) on line one,
    then the root tap's two values side by side, its factor, counts and where; at most ~11 lines.

    One relative figure only: the rtol the tap would pass with, measured as the tolerance
    measures it (relative to max(|a|, |b|, ‖row‖)), so the numbers never contradict each other.
    """
    from nbtrace.engine.results import index_text

    lines = [result.headline]
    root = _root_finding(result)
    if root is not None:
        v = root.verdict
        factor = f", factor port/reference {v.factor:.6g}" if v.factor is not None else ""
        lines.append(f"  tap:        {v.label}: {root.status} ({v.kind.replace('_', ' ')}){factor}")
        lines.append(f"  where:      {index_text(v.index)}" + _locs(v))
        ref, port = _side_by_side(v.a, v.b)
        lines += [f"  reference:  {ref}", f"  port:       {port}"]
        pct = 100.0 * v.n_mismatched / v.n_elements if v.n_elements else 0.0
        lines.append(f"  Mismatched elements: {v.n_mismatched} / {v.n_elements} ({pct:.1f}%) "
                     f"over {v.n_pairs} record pair(s)")
        lines.append("  difference: " + _difference(v))
    lines.append(f"  taps:       {_status_counts(result.findings)}; {result.matched} records matched, "
                 f"{result.only_a} only in the reference, {result.only_b} only in the port")
    if result.warnings:
        lines.append(f"  warnings:   {len(result.warnings)} (the full report lists them)")
    if root is None:  # no value to show: say at least which files
        lines += [f"  reference:  {result.path_a}", f"  port:       {result.path_b}"]
    if not result.path_a.startswith("<") and not result.path_b.startswith("<"):
        spec_arg = f" --spec {os.fspath(spec)}" if spec is not None else ""
        lines.append(f"  full report: nbtrace diff{spec_arg} {result.path_a} {result.path_b}")
    return "\n".join(lines)


def _status_counts(findings) -> str:
    """"1 introduced, 8 inherited, 44 agree", then any other status that occurs (missing, ...)."""
    from collections import Counter

    counts = Counter(f.status for f in findings)
    always = ("introduced", "inherited", "agree")
    others = sorted(s for s in counts if s not in always)
    return ", ".join(f"{counts[s]} {s}" for s in (*always, *others))


def _root_finding(result):
    rc = result.root_cause
    if rc is None:
        return None
    for f in result.findings:
        if f.verdict.tap == rc.tap and tuple(f.verdict.loop) == tuple(rc.loop):
            return f
    return None


def _locs(v) -> str:
    if v.loc_a is None and v.loc_b is None:
        return ""
    return f" (reference {v.loc_a or '-'}, port {v.loc_b or '-'})"


def _side_by_side(a, b) -> tuple[str, str]:
    """The two values as aligned columns, so component k of each sits one above the other."""
    if a is None or b is None or isinstance(a, str) or isinstance(b, str):
        return repr(a) if a is not None else "(not printed)", repr(b) if b is not None else "(not printed)"
    # shortest round-trip text: two values that differ in the 16th digit still read differently
    ta, tb = [_num(x) for x in a[:SHOWN_VALUES]], [_num(x) for x in b[:SHOWN_VALUES]]
    n = max(len(ta), len(tb))
    ta += [""] * (n - len(ta))
    tb += [""] * (n - len(tb))
    widths = [max(len(x), len(y)) for x, y in zip(ta, tb)]
    row_a = "  ".join(x.rjust(w) for x, w in zip(ta, widths)).rstrip()
    row_b = "  ".join(y.rjust(w) for y, w in zip(tb, widths)).rstrip()
    more_a = f"  … ({len(a) - SHOWN_VALUES} more)" if len(a) > SHOWN_VALUES else ""
    more_b = f"  … ({len(b) - SHOWN_VALUES} more)" if len(b) > SHOWN_VALUES else ""
    return row_a + more_a, row_b + more_b


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e16 else repr(float(x))


def _difference(v) -> str:
    allowed = f"rtol {v.tolerance:.3g}, atol {v.atol:.3g}"
    if v.would_pass is None:
        return f"up to {v.max_abs:.3g} absolute (allowed {allowed})"
    return (f"up to {v.max_abs:.3g} absolute; would pass with rtol={v.would_pass:.3g} "
            f"(relative to max(|a|, |b|, ‖row‖); allowed {allowed})")


def capture_and_match(nb_args: Sequence[str], *, pixels: Iterable[tuple[int, int]], out_dir=None,
                      spec=None, c_bin: str | None = None, port_cmd: str | None = None,
                      inject: Iterable[str] = (), dtype: str | None = None, timeout: float = 900,
                      rtol: float | None = None, atol: float | None = None) -> tuple[Path, Path]:
    """Run the reference (C) and the port on the same nanoBragg arguments, tracing ``pixels``,
    and assert their traces match. Returns the two trace paths (kept in ``out_dir``).

    out_dir: where c.trace and py.trace go (created); default: a new temporary folder, removed
    again when the traces match. c_bin / port_cmd / inject / dtype as for nbtrace.run.capture.
    """
    __tracebackhide__ = True
    import shutil
    import tempfile

    from nbtrace.run.capture import capture

    own = out_dir is None
    d = Path(tempfile.mkdtemp(prefix="nbtrace-match-")) if own else Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    pixels = tuple(pixels)
    ref = capture("c", nb_args, pixels=pixels, out_trace=d / "c.trace", c_bin=c_bin, timeout=timeout)
    port = capture("py", nb_args, pixels=pixels, out_trace=d / "py.trace", port_cmd=port_cmd, inject=inject,
                   dtype=dtype, timeout=timeout)
    assert_traces_match(ref.trace_path, port.trace_path, spec, rtol=rtol, atol=atol)
    if own:  # matched: nothing left to look at; a failure keeps the traces the message names
        shutil.rmtree(d, ignore_errors=True)
    return ref.trace_path, port.trace_path


def _kind(raw: tuple) -> str:
    return "int" if raw and all(isinstance(v, int) and not isinstance(v, bool) for v in raw) else "number"


def make_trace(taps: Iterable[tuple[str, object]], *, pixel: tuple[int, int] | None = None,
               setup: Sequence[tuple[str, object]] = (), prefix: str = "TRACE_C",
               path: str = "<memory>", sigdigits: int = 17, meta: dict | None = None) -> Trace:
    """A Trace of ``setup`` taps (pixel None) then ``taps`` for ``pixel``.

    A value is a number, a sequence of numbers, or a string; a tap name may be given as
    ("name", {"phi_tic": 0}) to make it a loop tap. Occurrences count repeats, as the parser does.
    """
    records: list[TapRecord] = []
    seen: dict[tuple, int] = {}
    line = 0
    for group_pixel, items in ((None, setup), (pixel, taps)):
        for name, values in items:
            line += 1
            loop: tuple = ()
            if isinstance(name, tuple):
                name, loop_d = name
                loop = tuple(sorted(loop_d.items()))
            slot = (name, group_pixel, loop)
            occ = seen.get(slot, 0)
            seen[slot] = occ + 1
            if isinstance(values, str):
                vals, text, kind = (), values, "string"
            else:
                vals = tuple(values) if isinstance(values, (list, tuple)) else (values,)
                text, kind = None, _kind(vals)
            records.append(TapRecord(name, tuple(float(v) for v in vals), TapIndex(group_pixel, loop, occ),
                                     SourceLoc(path, line), sigdigits, kind, text))
    return Trace(path, tuple(records), prefix, "space", (pixel,) if pixel else (), (), dict(meta or {}))
