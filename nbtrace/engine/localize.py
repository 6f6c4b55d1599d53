"""Localise: order the tap verdicts along the pipeline and name what explains the disagreement.

Over the taps both sides printed, the spec's ``after`` edges give each tap its *direct inputs*:
the nearest compared taps upstream (an input neither side printed is looked through to its own
inputs). Without a spec, or for a tap the spec does not know, every tap printed before counts.

* A divergent tap is **inherited** when one of its direct inputs diverges (a chain of divergent
  taps), **introduced** when all its direct inputs agree. A divergent far ancestor with agreeing
  taps in between explains nothing.
* An introduced divergence **propagates** when a chain of divergent taps leads from it to an
  output: a final tap (I_pixel_final, floatimage_accumulated), or, in a spec that declares
  neither, any tap nothing else is computed from. One whose every consumer agrees (or that feeds
  nothing the spec knows) is **immaterial**: a print or convention difference, listed, never the
  root cause. A divergence whose consumers nobody printed may matter: it stays a cause.
* The causes are the introduced, material divergences, ranked by their effect on the output:
  those that reach an output first, then those whose upstream was fully compared (no tap above
  them printed a different number of times), then the larger factor (|log10 port/reference|),
  then pipeline order. The root cause is the first.

Decision: a "precision" verdict (float32 noise on a side that computes in float32, incident 17)
is not a divergence: its status is "agree", it never becomes a root cause, and the report counts
it separately. Gaps (a tap, repeat or iteration one side lacks) are listed with status
"incomplete" (they make the verdict diverge, see nbtrace.engine.complete) or "missing"
(harmless), and are nobody's input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from nbtrace.engine.results import Finding, TapVerdict

NOT_DIVERGENT = ("agree", "precision")
GAP_KINDS = ("missing", "missing_iterations")
FINAL_TAPS = ("I_pixel_final", "floatimage_accumulated")
# float32 rounding grows through ill-conditioned steps (sin(Nπh)/sin(πh) near a zero): a tap
# whose only divergent ancestors are precision-class may differ up to this much and still be
# float32 noise; a tap with no such ancestor must stay within classify.FLOAT32_NOISE.
FLOAT32_PROPAGATED = 1e-4


@dataclass(frozen=True)
class Localized:
    """findings: every tap in pipeline order with its status. root: the first cause or None.
    causes: the introduced, material divergences, ranked (root first). immaterial: divergent
    taps with no effect downstream. inherited: divergent taps downstream of the root."""

    findings: tuple[Finding, ...]
    root: Finding | None
    causes: tuple[Finding, ...] = ()
    immaterial: tuple[Finding, ...] = ()
    inherited: int = 0

    @property
    def independent(self) -> tuple[Finding, ...]:
        return self.causes[1:]

    @property
    def root_is_first(self) -> bool:
        """Whether the root cause is also the first cause in pipeline order."""
        if self.root is None:
            return False
        order = [f for f in self.findings if f in self.causes]
        return order[0] is self.root


def pipeline_order(verdicts: list[TapVerdict], spec) -> list[TapVerdict]:
    """Spec (declared) order for taps the spec knows; unknown taps keep their trace order and
    follow the spec's taps. Loop taps (one line per φ step, source, ...) all sit where the spec
    declares its first loop tap, in the order the line prints them: a loop line prints plain
    names too (F_latt_b, F_latt), and those are computed from that line's h/k/l, not from the
    per-pixel hkl_frac."""
    order = spec.order() if spec is not None else []
    pos = {name: i for i, name in enumerate(order)}
    big = len(pos)
    loop_pos = next((i for i, t in enumerate(spec.taps) if t.loop), big) if spec is not None else big

    def key(item):
        n, v = item
        if v.loop:
            return (loop_pos, 1, n)
        return (pos.get(v.tap, big), 0, n)

    return [v for _, v in sorted(enumerate(verdicts), key=key)]


def _ancestors(v: TapVerdict, earlier: list[TapVerdict], spec) -> set[str]:
    """Labels of every tap ``v`` depends on (transitively)."""
    if spec is None or v.tap not in spec:
        return {e.label for e in earlier}
    names = spec.ancestors(v.tap)
    out = {e.label for e in earlier if not e.loop and e.tap in names}
    if v.loop:
        # within one loop line, each value is computed from those printed before it
        out |= {e.label for e in earlier if e.loop == v.loop or e.tap in names}
    return out


def _propagated_precision(v: TapVerdict, ancestors: set[str], precision: set[str],
                          divergent: set[str]) -> TapVerdict | None:
    if (v.kind != "out_of_tolerance" or v.would_pass is None or v.would_pass > FLOAT32_PROPAGATED
            or not (ancestors & precision) or (ancestors & divergent)):
        return None
    head = (f"differs by at most {v.would_pass:.2g} relative, downstream of taps that differ only "
            f"by float32 rounding: float32 noise grown through this step — precision class")
    rest = v.message.split("\n", 1)
    msg = f"{v.label}: {head}" + (f"\n{rest[1]}" if len(rest) > 1 else "")
    return replace(v, kind="precision", message=msg)


class _Graph:
    """Direct inputs and consumers among the compared taps (labels)."""

    def __init__(self, compared: list[TapVerdict], spec):
        self.spec = spec
        self.labels = {v.label for v in compared}
        self.inputs: dict[str, set[str]] = {}
        earlier: list[TapVerdict] = []
        for v in compared:
            self.inputs[v.label] = self._inputs(v, earlier)
            earlier.append(v)
        self.consumers: dict[str, set[str]] = {v.label: set() for v in compared}
        for label, ins in self.inputs.items():
            for i in ins:
                self.consumers[i].add(label)

    def _inputs(self, v: TapVerdict, earlier: list[TapVerdict]) -> set[str]:
        spec = self.spec
        if spec is None or v.tap not in spec:
            return {e.label for e in earlier}
        out: set[str] = set()
        seen: set[str] = set()
        stack = list(spec.get(v.tap).after)
        while stack:
            n = stack.pop()
            if n in seen:
                continue
            seen.add(n)
            loop_label = f"{n}[{','.join(v.loop)}]" if v.loop else None
            if loop_label in self.labels and loop_label != v.label:
                out.add(loop_label)
            elif n in self.labels and n != v.label:
                out.add(n)
            elif n in spec:
                stack.extend(spec.get(n).after)  # not printed by both sides: look through it
        if v.loop:
            # within one loop line, each value is computed from those printed before it
            out |= {e.label for e in earlier if e.loop == v.loop}
        return out


def _descendants(spec) -> dict[str, set[str]]:
    """Spec tap -> the taps whose ``after`` names it (one step)."""
    out: dict[str, set[str]] = {t.name: set() for t in spec.taps}
    for t in spec.taps:
        for n in t.after:
            out.setdefault(n, set()).add(t.name)
    return out


def effect(v: TapVerdict) -> float:
    """How far a divergence moves a value, in decades: |log10 port/reference| for a constant
    ratio, log10(1 + the rtol it would need) otherwise; inf for a non-finite one."""
    if v.kind == "nonfinite":
        return math.inf
    r = v.ratio if v.ratio is not None else v.factor
    if r is not None and math.isfinite(r) and r != 0:
        return abs(math.log10(abs(r)))
    # relative to the row's size (bounded), not to one component: a rotated vector's component
    # near zero has an unbounded relative change
    if v.would_pass is not None and math.isfinite(v.would_pass):
        return math.log10(1 + v.would_pass)
    if v.max_rel is not None and math.isfinite(v.max_rel):
        return math.log10(1 + v.max_rel)
    return math.inf


def localize(verdicts: list[TapVerdict], spec=None, *, float32: bool = False,
             gaps: list[tuple[TapVerdict, bool]] = ()) -> Localized:
    """Statuses, causes and root cause for the verdicts of matched taps (in any order).

    float32: one side computes in float32, so precision-class noise may propagate (see
    FLOAT32_PROPAGATED). gaps: (verdict, counts) from nbtrace.engine.complete.gap_verdicts.
    """
    ordered = pipeline_order(list(verdicts) + [v for v, _ in gaps], spec)
    counting = {id(v) for v, c in gaps if c}
    divergent: set[str] = set()
    precision: set[str] = set()
    earlier: list[TapVerdict] = []
    compared: list[TapVerdict] = []
    for v in ordered:
        if v.kind in GAP_KINDS:
            continue
        if v.kind not in NOT_DIVERGENT and float32:
            p = _propagated_precision(v, _ancestors(v, earlier, spec), precision, divergent)
            v = p if p is not None else v
        if v.kind == "precision":
            precision.add(v.label)
        elif v.kind not in NOT_DIVERGENT:
            divergent.add(v.label)
        earlier.append(v)
        compared.append(v)
    graph = _Graph(compared, spec)
    by_label = {v.label: v for v in compared}
    has_consumers = {label: bool(cs) for label, cs in graph.consumers.items()}
    status: dict[str, str] = {}
    bad_inputs: dict[str, tuple[str, ...]] = {}
    for v in compared:
        if v.label not in divergent:
            status[v.label] = "agree"
            continue
        bad = tuple(sorted(graph.inputs[v.label] & divergent))
        if bad and _factor_not_inherited(v, [by_label[i] for i in bad]):
            bad = ()
        bad_inputs[v.label] = bad
        status[v.label] = "inherited" if bad else "introduced"
    # the edges a divergence really travels along: to a consumer that inherits it
    graph.consumers = {label: {c for c in cs if label in bad_inputs.get(c, ())}
                       for label, cs in graph.consumers.items()}
    spec_down = _descendants(spec) if spec is not None else {}
    final = outputs(spec, spec_down) if spec is not None else frozenset()
    reaches = _reaches(compared, graph, divergent, final, spec_down, has_consumers)
    for v in compared:  # pipeline order: a tap's inputs are decided before it
        if v.label not in divergent or not _immaterial(v, has_consumers, reaches, spec, spec_down, final):
            continue
        # an inherited divergence is immaterial only as part of an immaterial chain; one
        # inherited from a cause that matters is explained by that cause
        if all(status[i] == "immaterial" for i in bad_inputs[v.label]):
            status[v.label] = "immaterial"
    findings = []
    for v in ordered:
        if v.kind in GAP_KINDS:
            findings.append(Finding(v, "incomplete" if id(v) in counting else "missing"))
        else:
            v = by_label[v.label]
            findings.append(Finding(v, status[v.label], bad_inputs.get(v.label, ())))
    index = {f.verdict.label: i for i, f in enumerate(findings) if f.verdict.kind not in GAP_KINDS}
    # a cause computed from a tap one side printed more or fewer times than the other may owe
    # its divergence to the records that could not be paired: the fully compared one is preferred
    gapped = {v.tap for v, c in gaps if c}

    def shadowed(v: TapVerdict) -> bool:
        return spec is not None and v.tap in spec and bool(spec.ancestors(v.tap) & gapped)

    causes = sorted((f for f in findings if f.status == "introduced"),
                    key=lambda f: (not reaches[f.verdict.label], shadowed(f.verdict), -effect(f.verdict),
                                   index[f.verdict.label]))
    immaterial = tuple(f for f in findings if f.status == "immaterial")
    root = causes[0] if causes else None
    downstream = _downstream(root.verdict.label, graph, divergent) if root else set()
    inherited = sum(1 for f in findings if f.status == "inherited" and f.verdict.label in downstream)
    return Localized(tuple(findings), root, tuple(causes), immaterial, inherited)


def outputs(spec, spec_down: dict[str, set[str]]) -> frozenset[str]:
    """The taps a divergence must reach to matter: the final taps when the spec declares any,
    else every tap of the spec that nothing is computed from."""
    final = frozenset(t for t in FINAL_TAPS if t in spec)
    return final or frozenset(t.name for t in spec.taps if not spec_down.get(t.name))


def _reaches(compared: list[TapVerdict], graph: _Graph, divergent: set[str], final: frozenset,
             spec_down: dict, has_consumers: dict) -> dict[str, bool]:
    """Divergent label -> whether a chain of divergent taps leads from it to an output. A
    divergent tap whose effect nobody printed counts as reaching: one the spec does not know, or
    one the spec computes other taps from while neither side printed any of them."""
    spec = graph.spec
    taps = {v.label: v.tap for v in compared}
    out: dict[str, bool] = {}

    def sink(label: str) -> bool:
        tap = taps[label]
        return (tap in final or spec is None or tap not in spec
                or (not has_consumers[label] and bool(spec_down.get(tap))))

    for start in (v.label for v in compared if v.label in divergent):
        if start in out:
            continue
        # iterative depth-first search with memo: a long chain must not exhaust the stack
        stack, on_path = [(start, iter(sorted(graph.consumers[start] & divergent)))], {start}
        found = sink(start)
        while stack:
            label, it = stack[-1]
            if out.get(label) is None and sink(label):
                out[label] = True
            nxt = next(it, None)
            if nxt is None:
                stack.pop()
                on_path.discard(label)
                if label not in out:
                    out[label] = any(out.get(c, False) for c in graph.consumers[label] & divergent)
                continue
            if nxt in out or nxt in on_path:
                continue
            on_path.add(nxt)
            stack.append((nxt, iter(sorted(graph.consumers[nxt] & divergent))))
        out[start] = out[start] or found
    return out


def _immaterial(v: TapVerdict, has_consumers: dict, reaches: dict, spec, spec_down, final) -> bool:
    if spec is None or v.tap not in spec or v.tap in final or reaches[v.label]:
        return False
    if has_consumers[v.label]:
        return True  # every chain from it ends in agreement
    # no compared consumer: immaterial only when the spec says nothing is computed from it
    return not spec_down.get(v.tap)


# An input's factor at least this large (a unit-sized slip) must show in a tap computed from it;
# smaller input differences reach a non-linear tap (sin, a sum over φ) in ways no ratio tells.
UNIT_SIZED = 1.0  # decades


def _factor_not_inherited(v: TapVerdict, inputs: list[TapVerdict]) -> bool:
    """True when every divergent input carries a unit-sized constant factor and v, a vector,
    carries a unit-sized one in every component that no product of them (powers −2…2)
    explains: v's divergence is its own. The earlier port
    printed S in Å⁻¹ (×1e-10) and used the real vectors in Å, which cancels, while it formed h
    from the reciprocal vectors (×1e-4 = 1/|a|²): h is not S's heir."""
    r = v.ratio
    if r is None or not math.isfinite(r) or r <= 0 or abs(math.log10(r)) < UNIT_SIZED:
        return False  # a small change of a non-linear tap (F_latt of a shifted h) says nothing
    if v.kind != "scale" or not v.n_pairs or v.n_elements < 2 * v.n_pairs:
        # only a vector whose every component carries the one factor is a clean scale: a scalar
        # through exp or sin (F_latt far from a peak) moves by any factor at all
        return False
    ratios = [u.ratio for u in inputs]
    if any(q is None or not math.isfinite(q) or q <= 0 or abs(math.log10(q)) < UNIT_SIZED for q in ratios):
        return False
    # in decades: a power of a ratio near the double limit must not overflow
    logs = {0.0}
    for q in ratios[:4]:
        lq = math.log10(q)
        logs = {p + e * lq for p in logs for e in (-2, -1, 0, 1, 2)}
    lr = math.log10(r)
    return not any(abs(lr - p) <= 1e-3 / math.log(10) for p in logs)


def _downstream(label: str, graph: _Graph, divergent: set[str]) -> set[str]:
    out: set[str] = set()
    stack = [label]
    while stack:
        for c in graph.consumers[stack.pop()]:
            if c in divergent and c not in out:
                out.add(c)
                stack.append(c)
    return out
