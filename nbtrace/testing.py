"""Helpers for a port's own test suite.

``assert_traces_match(reference, port)`` diffs two traces (paths or Trace objects) and raises an
AssertionError whose message opens with the root-cause sentence. ``make_trace`` builds a Trace
in memory from (name, values) pairs, for tests that do not want to write trace text.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from nbtrace.engine.model import SourceLoc, TapIndex, TapRecord, Trace

__all__ = ["assert_traces_match", "make_trace"]


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
    "phi_loop"), or None (the shipped spec that fits the traces' names, else none). The message opens with the root cause, then the console report.
    """
    from nbtrace.engine.diff import diff_traces
    from nbtrace.report import render

    ta, tb = _load(a, dialect), _load(b, dialect)
    spec = _spec(spec, ta, tb)
    result = diff_traces(ta, tb, spec, force=force, context=context, rtol=rtol, atol=atol)
    if not result:
        # the sentence unwrapped first (pytest shows it as the failure's summary), then the report
        report = render(result, "console", width=100).split("\n\n", 1)
        raise AssertionError(result.headline + ("\n\n" + report[1] if len(report) > 1 else ""))


def _spec(spec, ta: Trace, tb: Trace):
    if spec is None:
        from nbtrace.engine.spec import spec_for

        return spec_for(ta, tb)
    from nbtrace.engine.diff import resolve_spec

    return resolve_spec(spec)


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
