"""The opening sentence of every report: what explains the disagreement, with its factor, what
else is independently wrong, what differs without effect, and what one side never printed."""

from __future__ import annotations

from nbtrace.engine.classify import ratio_text
from nbtrace.engine.complete import PROVENANCE, Coverage
from nbtrace.engine.model import Trace
from nbtrace.engine.results import Finding, RootCause, TapVerdict, index_text

# Taps whose divergence, with all upstream taps agreeing, points at an input file.
INPUT_OF = {"F_cell": ("structure_factors", "the structure-factor input (a stale Fdump.bin? another -hkl file?)")}
# How many taps a clause of the headline names before "and N more".
SHOWN = 4


def root_and_headline(loc, matched: int, a: Trace, b: Trace, spec, prov_a, prov_b, multi_pixel: bool,
                      misspelled=()) -> tuple[RootCause | None, str]:
    incomplete = [f for f in loc.findings if f.status == "incomplete"]
    tail = _incomplete_clause(incomplete) + _misspelling_clause(misspelled)
    if matched == 0:
        head = (f"Nothing was compared: no record of A matches a record of B "
                f"(A had {len(a.records)} records: {_names(a)}; B had {len(b.records)}: {_names(b)}).")
        return None, head  # every tap is unmatched: listing them as gaps would add nothing
    if loc.root is None:
        return None, _no_root(loc, matched, incomplete, tail)
    v = loc.root.verdict
    what = v.message.split("\n", 1)[0].split(": ", 1)[1]
    where = f"`{v.tap}` (per {', '.join(v.loop)})" if v.loop else f"`{v.tap}`"
    inputs = _input_note(v, spec, prov_a, prov_b)
    if inputs and inputs[0]:
        what = inputs[1]
    elif v.is_setup:
        what += " — a setup value: the runs were configured differently, or derive it differently"
    rank = "first divergence" if loc.root_is_first else "main divergence (the largest effect on the output)"
    head = f"{where} is the {rank}: {what}"
    if v.index is not None and v.index.pixel is not None and multi_pixel:
        head += f" (first at {index_text(v.index)})"
    if inputs and not inputs[0]:
        head += inputs[1]
    n_inh = loc.inherited
    head += "; " + ("no later tap inherits it" if n_inh == 0 else
                    f"{n_inh} later tap{'s' if n_inh != 1 else ''} inherit{'s' if n_inh == 1 else ''} it")
    if loc.independent:
        others = _listing(loc.independent)
        n = len(loc.independent)
        head += f"; {n} other tap(s) diverge with no divergent upstream tap: {others}"
    head += _immaterial_clause(loc.immaterial) + tail + "."
    return RootCause(v.tap, v.loop, v.index, v.kind, v.factor, head), head


def _no_root(loc, matched: int, incomplete: list[Finding], tail: str) -> str:
    n = sum(1 for f in loc.findings if f.status == "agree")
    prec = sum(1 for f in loc.findings if f.verdict.kind == "precision")
    extra = f", {prec} of them only within float32 noise" if prec else ""
    if loc.immaterial:
        intro = [f for f in loc.immaterial if not f.divergent_ancestors] or list(loc.immaterial)
        head = (f"No divergence reaches the output, but the traces differ: {len(loc.immaterial)} "
                f"immaterial difference(s) — {_listing(intro, SHOWN, words=True)} — a print or convention "
                f"difference: every tap computed from it agrees ({n} compared taps agree")
        return head + f", {matched} records matched{extra})" + tail + "."
    missing = sum(1 for f in loc.findings if f.status in ("missing", "incomplete"))
    if missing > n:
        # agreement on a sliver of the taps is not agreement of the traces: say so first
        head = (f"Only {n} of {n + missing} taps could be compared ({missing} printed by one side "
                f"only: check the tap names or the spec's aliases); those {n} agree "
                f"({matched} records matched{extra})")
        return head + (", but" + tail.removeprefix(";") if tail else "") + "."
    if incomplete:
        head = f"Incomplete: the {n} compared taps agree ({matched} records matched{extra}), but"
        return head + tail.removeprefix(";") + "."
    return f"All {n} compared taps agree ({matched} records matched{extra})" + tail + "."


def _short(v: TapVerdict, words: bool = False) -> str:
    """`tap` with its factor: (×1e-10), or the first words of its story."""
    label = f"`{v.label}`"
    story = v.message.split("\n", 1)[0].split(": ", 1)[-1]
    if v.ratio is not None:
        meaning = story.split(", i.e. ", 1)[1] if words and ", i.e. " in story else ""
        return f"{label} ({ratio_text(v.ratio)}{': ' + meaning if meaning else ''})"
    if words:
        return f"{label} ({story[:80]}{'…' if len(story) > 80 else ''})"
    return label


def _listing(findings, n: int = SHOWN, words: bool = False) -> str:
    shown = ", ".join(_short(f.verdict, words) for f in findings[:n])
    return shown + (f" and {len(findings) - n} more" if len(findings) > n else "")


def _immaterial_clause(immaterial) -> str:
    if not immaterial:
        return ""
    intro = [f for f in immaterial if not f.divergent_ancestors] or list(immaterial)
    return (f"; {len(immaterial)} immaterial difference(s) with no effect downstream (listed, not a cause): "
            f"{_listing(intro)}")


def _incomplete_clause(incomplete: list[Finding]) -> str:
    """"; B never printed 3 tap(s) that A printed …; 2 tap(s) have fewer repeats or iterations …"."""
    if not incomplete:
        return ""
    out = ""
    for side, other in (("a", "B"), ("b", "A")):
        whole = [f.verdict for f in incomplete if f.verdict.kind == "missing" and
                 (f.verdict.loc_a is not None) == (side == "a")]
        if whole:
            names = ", ".join(f"`{v.label}`" for v in whole[:8]) + (f" and {len(whole) - 8} more" if len(whole) > 8 else "")
            who = "A" if side == "a" else "B"
            out += f"; {other} never printed {len(whole)} tap(s) that {who} printed for a traced pixel: {names}"
    its = [f.verdict for f in incomplete if f.verdict.kind == "missing_iterations"]
    if its:
        first = its[0].message.split(": ", 1)[1]
        out += (f"; {len(its)} tap(s) were printed more times on one side (compared occurrence by "
                f"occurrence, the extras are missing on the other): `{its[0].label}`: {first}")
    return out


def _misspelling_clause(misspelled) -> str:
    if not misspelled:
        return ""
    shown = "; ".join(m.text() for m in misspelled[:3])
    return f"; {shown}" + (f" (and {len(misspelled) - 3} more)" if len(misspelled) > 3 else "")


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


def one_sided_headline(c: Coverage, a: Trace, b: Trace) -> str:
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
