"""``nbtrace taps init``: a starting tap spec written from one real trace.

The scaffold must give the right answer on the trace it was made from, and must not invent a
physics the trace does not show:

* provenance keys (producer, dtype, argv, structure_factors) are declared so the names resolve,
  but with no edges: the diff never compares them, and no tap is placed "after" them (an edge
  from argv would blame every divergence on a different command line);
* a printed name the shipped nanoBragg spec knows (itself or an alias) gets that spec's
  tolerance and ``after:`` edges (and ``when:`` edges), each edge resolved to the nearest
  upstream taps this trace prints; its unit is still guessed from the name, for review (the
  trace may come from a port that holds another unit under the same name);
* any other name is placed in pipeline order: after the tap printed before it, except that a
  setup tap (printed outside every pixel and loop) never comes after a per-pixel or loop tap.

The result has no cycle: edges between known names follow the shipped DAG, and every other edge
points to a tap printed earlier.
"""

from __future__ import annotations

import os
from typing import Any

from nbtrace.errors import SpecError
from nbtrace.engine.spec import TapSpec, parse_unit, shipped_spec
from nbtrace.engine.units import guess_unit

__all__ = ["scaffold_spec", "PROVENANCE_KEYS"]

# The same keys nbtrace.engine.diff never compares (kept in step by tests/nbtrace/test_cli_taps.py).
PROVENANCE_KEYS = ("producer", "dtype", "argv", "structure_factors")
DEFAULT_RTOL, DEFAULT_ATOL = 1.0e-9, 1.0e-300

_HEADER = """\
# Tap spec scaffolded by `nbtrace taps init` from {source}
# ({n} taps, in the order the trace printed them; {known} of them known to the shipped nanoBragg spec).
# REVIEW BEFORE USE:
#   after: taps marked "# as nanobragg.yaml" take the shipped spec's edges and tolerance; the others
#          are placed after the tap printed before them (a setup tap never after a per-pixel one).
#          List the taps each value is really computed from, so the diff tells a root cause
#          from its echoes.
#   unit:  guessed from the name suffix (_meters -> m, _A_inv -> A^-1, ...); names lie
#          about units (nanoBragg's scattering_vec_A_inv holds m^-1): state the unit the value HOLDS.
#   shape: from the number of printed values; add range: [min, max] (plausible |value|),
#          aliases: {{b: [port_name]}} for renamings, and rtol/atol pairs where 1e-9 is wrong.
#   producer, dtype, argv, structure_factors: provenance, never compared (no edges).
"""


def scaffold_spec(trace, spec_name: str | None = None, reference: TapSpec | None = None) -> str:
    """YAML text of a starting spec for the taps of ``trace`` (a parsed Trace).

    reference: the spec whose edges known names inherit (default: the shipped nanoBragg spec).
    """
    ref = reference if reference is not None else shipped_spec("nanobragg.yaml")
    firsts: dict[str, Any] = {}
    skipped: dict[str, None] = {}
    for rec in trace.records:
        if rec.name.isidentifier():
            firsts.setdefault(rec.name, rec)
        else:
            skipped.setdefault(rec.name, None)
    printed_as = _known_names(firsts, ref)
    name = spec_name or os.path.splitext(os.path.basename(trace.path))[0]
    lines = [_HEADER.format(source=trace.path, n=len(firsts), known=len(printed_as))]
    if skipped:
        # JSON Lines may name taps with any string; a spec needs identifiers.
        lines.append("# not declared (names must be identifiers): " + ", ".join(map(repr, skipped)))
    lines += [f"spec: {_yaml_str(name)}", f"defaults: {{rtol: {_yaml_float(DEFAULT_RTOL)}, atol: {_yaml_float(DEFAULT_ATOL)}}}", "taps:"]
    canon_of = {printed: canon for canon, printed in printed_as.items()}
    # each run condition of the reference (pivot=SAMPLE) gives its own DAG; an edge through a tap
    # this trace does not print must be resolved in the DAG of that condition
    conditions = dict.fromkeys((k, v) for t in ref.taps for k, v, _ in t.when)
    conditioned = [((k, v), ref.specialize({k: v})) for k, v in conditions]
    earlier: list[str] = []  # non-provenance taps in print order
    for tap_name, rec in firsts.items():
        canon = canon_of.get(tap_name)
        if tap_name in PROVENANCE_KEYS:
            lines.extend(_tap_lines(tap_name, rec, None, [], [], note="provenance: never compared"))
            continue
        if canon is not None:
            tapdef = ref.get(canon)
            after = _reduce(tapdef.after, ref, printed_as)
            when = []
            for cond, special in conditioned:
                edges = _reduce(special.get(canon).after, special, printed_as)
                if edges != after:  # a tap printed in between may carry the condition's edges
                    when.append((*cond, edges))
            lines.extend(_tap_lines(tap_name, rec, tapdef, after, when, note="as nanobragg.yaml"))
        else:
            after = _pipeline_previous(rec, earlier, firsts)
            lines.extend(_tap_lines(tap_name, rec, None, after, []))
        earlier.append(tap_name)
    return "\n".join(lines) + "\n"


def _known_names(firsts: dict, ref: TapSpec) -> dict[str, str]:
    """canonical name in ``ref`` -> the name this trace prints for it (the first, if several)."""
    out: dict[str, str] = {}
    for printed in firsts:
        if printed in PROVENANCE_KEYS:
            out.setdefault(printed, printed)
            continue
        canon = ref.canonical(printed)
        if canon is not None:
            out.setdefault(canon, printed)
    return out


def _reduce(after, ref: TapSpec, printed_as: dict[str, str]) -> list[str]:
    """``after`` edges in printed names: an upstream tap the trace does not print is replaced by
    its own upstream taps, until printed ones are reached."""
    return list(dict.fromkeys(printed_as[up] for up in ref.nearest_upstream(after, printed_as)))


def _is_setup(rec) -> bool:
    return rec.index.pixel is None and not rec.index.loop


def _pipeline_previous(rec, earlier: list[str], firsts: dict) -> list[str]:
    """The tap printed last before ``rec`` that may feed it: any for a per-pixel or loop tap,
    a setup tap for a setup tap."""
    for name in reversed(earlier):
        if not _is_setup(rec) or _is_setup(firsts[name]):
            return [name]
    return []


def _tap_lines(name: str, rec, tapdef, after: list[str], when: list, note: str | None = None) -> list[str]:
    out = [f"  - name: {name}"]
    if rec.kind == "string":
        out += ["    unit: string", "    shape: any"]
    else:
        shape = list(rec.shape) if rec.shape else ([] if len(rec.values) == 1 else [len(rec.values)])
        out += [f"    shape: {shape}", f"    unit: {_yaml_str(_declared_unit(rec) or guess_unit(name))}"]
        if tapdef is not None and tapdef.rtol is not None and (tapdef.rtol, tapdef.atol) != (DEFAULT_RTOL, DEFAULT_ATOL):
            out += [f"    rtol: {_yaml_float(tapdef.rtol)}", f"    atol: {_yaml_float(tapdef.atol)}"]
    if rec.index.loop:
        out.append(f"    loop: {rec.index.loop[0][0]}")
        out.append("    semantics: per-iteration")
    elif rec.index.pixel is None and rec.dialect == "eq":
        out.append("    semantics: setup")
    if after:
        out.append(f"    after: [{', '.join(after)}]")
    if when:
        body = ", ".join(f"{k}={v}: {{after: [{', '.join(a)}]}}" for k, v, a in when)
        out.append(f"    when: {{{body}}}")
    if note:
        out.append(f"    # {note}")
    return out


def _declared_unit(rec) -> str | None:
    """The unit a JSON Lines producer declared, when the registry knows it."""
    if rec.unit is None:
        return None
    try:
        parse_unit(rec.unit)
    except SpecError:
        return None
    return rec.unit


def _yaml_float(x: float) -> str:
    """A float YAML 1.1 reads as a float (PyYAML wants a dot in the mantissa: 1e-09 is a string)."""
    mantissa, _, exponent = repr(float(x)).partition("e")
    if "." not in mantissa:
        mantissa += ".0"
    return mantissa + ("e" + exponent if exponent else "")


def _yaml_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
