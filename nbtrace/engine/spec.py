"""Tap specs: the declared list of taps two traces are compared over (YAML, see tap_specs/README.md).

A spec names each tap once (its canonical name), the names each side may print instead
(aliases), the shape and the unit the value *actually* holds, a plausible range, tolerances and
``after:`` edges to its upstream taps. The ``after`` edges form a DAG: the root cause of a
divergence is the divergent tap whose ancestors all agree.

Every problem in a spec file is a :class:`~nbtrace.errors.SpecError` whose ``where`` is
``file:line:col`` (1-based), taken from the YAML node marks, so users can jump to it.

The model and its queries live in :mod:`nbtrace.engine.tapspec`, the YAML validation in
:mod:`nbtrace.engine.spec_build`; this module loads files and the shipped specs and re-exports
both, so ``nbtrace.engine.spec`` stays the one import for callers.
"""

from __future__ import annotations

import functools
import os
from importlib import resources

from nbtrace.errors import SpecError
from nbtrace.engine.spec_build import _Builder, _compose
from nbtrace.engine.spec_build import (  # noqa: F401  (re-exported)
    DEFAULT_KEYS, MAX_DEPTH, MAX_VALUES, SEMANTICS, TAP_KEYS, TOP_KEYS, WHEN_KEYS,
)
from nbtrace.engine.tapspec import (  # noqa: F401  (re-exported)
    SIDES, SpecFit, TapDef, TapSpec, conditions_of, fit_trace, spec_to_json, tap_to_json,
)
from nbtrace.engine.units import parse_unit  # noqa: F401  (re-exported: scaffold reads it from here)

SHIPPED = ("nanobragg.yaml", "scaling.yaml", "phi_loop.yaml")
MAX_SPEC_BYTES = 4 << 20  # a tap spec is a few kB; /dev/zero or a wrong file must not fill memory


def load_spec(path) -> TapSpec:
    """Load and validate a spec file; any problem is a SpecError at ``file:line:col``."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_SPEC_BYTES + 1)
    except IsADirectoryError:
        raise SpecError("is a directory, not a tap spec", path, "give the path of a .yaml file") from None
    except OSError as exc:
        raise SpecError(f"cannot read tap spec: {exc.strerror}", path, "check the path and permissions") from None
    if len(raw) > MAX_SPEC_BYTES:
        raise SpecError(f"larger than {MAX_SPEC_BYTES >> 20} MB: not a tap spec", path,
                        "a tap spec is a small YAML file (the shipped ones are a few kB); check the path")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"not UTF-8 text (byte {exc.start})", path, "a tap spec is a YAML text file") from None
    return parse_spec(text, path)


def parse_spec(text: str, path: str = "<string>") -> TapSpec:
    """Validate spec ``text`` (YAML) as if it were read from ``path``."""
    root = _compose(text, path)
    return _Builder(path).build(root)


def default_spec() -> TapSpec:
    """The shipped nanoBragg spec (tap_specs/nanobragg.yaml): pixel chain, scaling block and loops."""
    return shipped_spec("nanobragg.yaml")


@functools.lru_cache(maxsize=None)
def shipped_spec(filename: str) -> TapSpec:
    """A spec shipped in the ``nbtrace.tap_specs`` package, by file name (loaded once: specs are frozen)."""
    try:
        ref = resources.files("nbtrace.tap_specs").joinpath(filename)
    except ModuleNotFoundError:
        # A source checkout, or an editable install (its finder maps only the top-level
        # packages, not the tap_specs -> nbtrace.tap_specs directory): the specs sit beside it.
        repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        return load_spec(os.path.join(repo, "tap_specs", filename))
    with resources.as_file(ref) as p:
        return load_spec(p)


def spec_for(trace_a, trace_b) -> TapSpec | None:
    """The shipped spec that covers the most record names of both traces, or None if none fits.

    A spec fits when it resolves at least half of the distinct names the two traces print; the
    default nanoBragg spec is preferred on ties because it also holds the loop taps.
    """
    names: set[tuple[str, str]] = set()
    for side, trace in (("a", trace_a), ("b", trace_b)):
        if trace is not None:
            names.update((side, n) for n in trace.names())
    if not names:
        return None
    best, best_hits = None, 0
    for filename in SHIPPED:
        spec = shipped_spec(filename)
        hits = sum(1 for side, n in names if spec.canonical(n, side) is not None)
        if hits > best_hits:
            best, best_hits = spec, hits
    return best if best_hits * 2 >= len(names) else None
