"""Localise: order the tap verdicts along the pipeline and name the root cause.

The root cause is the first divergent tap (in pipeline order) none of whose upstream taps
diverges. Upstream means the spec's ``after`` DAG, transitively; a tap the spec does not know
(or every tap, without a spec) depends on every tap printed before it. Each later divergence
is marked "inherited" when one of its ancestors diverges, "introduced" otherwise.

Decision: a "precision" verdict (float32 noise on a side
that computes in float32, incident 17) is not a divergence: its status is "agree", it never
becomes a root cause, and the report counts it separately.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from nbtrace.engine.results import Finding, TapVerdict

NOT_DIVERGENT = ("agree", "precision")
# float32 rounding grows through ill-conditioned steps (sin(Nπh)/sin(πh) near a zero): a tap
# whose only divergent ancestors are precision-class may differ up to this much and still be
# float32 noise; a tap with no such ancestor must stay within compare.FLOAT32_NOISE.
FLOAT32_PROPAGATED = 1e-4


@dataclass(frozen=True)
class Localized:
    """findings: every tap in pipeline order with its status. root: the root-cause finding or
    None. independent: other taps that introduce a divergence of their own (no divergent
    ancestor), after the root."""

    findings: tuple[Finding, ...]
    root: Finding | None
    independent: tuple[Finding, ...]
    inherited: int


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
    """Labels of the taps ``v`` depends on."""
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


def localize(verdicts: list[TapVerdict], spec=None, *, float32: bool = False,
             uncompared: frozenset[str] = frozenset()) -> Localized:
    """Statuses and root cause for verdicts of matched taps (already in any order).

    float32: one side computes in float32, so precision-class noise may propagate (see
    FLOAT32_PROPAGATED).
    uncompared: taps that could not be paired (the sides printed them a different number of
    times per pixel). A divergence downstream of one of them is still "introduced" (no
    divergent ancestor is known), but a divergence whose upstream was fully compared and agrees
    is the stronger root-cause candidate and is preferred.
    """
    ordered = pipeline_order(verdicts, spec)
    divergent_labels: set[str] = set()
    precision_labels: set[str] = set()
    findings: list[Finding] = []
    shadowed: set[str] = set()
    earlier: list[TapVerdict] = []
    for v in ordered:
        if v.kind == "missing":
            # one side never printed it: listed, but not a divergence and not anyone's ancestor
            findings.append(Finding(v, "missing"))
        elif v.kind in NOT_DIVERGENT:
            findings.append(Finding(v, "agree"))
            if v.kind == "precision":
                precision_labels.add(v.label)
        elif float32 and (p := _propagated_precision(v, _ancestors(v, earlier, spec), precision_labels,
                                                     divergent_labels)) is not None:
            v = p
            findings.append(Finding(v, "agree"))
            precision_labels.add(v.label)
        else:
            bad = sorted(_ancestors(v, earlier, spec) & divergent_labels)
            findings.append(Finding(v, "inherited" if bad else "introduced", tuple(bad)))
            divergent_labels.add(v.label)
            if not bad and spec is not None and v.tap in spec and spec.ancestors(v.tap) & uncompared:
                shadowed.add(v.label)
        earlier.append(v)
    introduced = [f for f in findings if f.status == "introduced"]
    clean = [f for f in introduced if f.verdict.label not in shadowed]
    root = (clean or introduced or [None])[0]
    others = tuple(f for f in introduced if f is not root)
    inherited = sum(1 for f in findings if f.status == "inherited")
    return Localized(tuple(findings), root, others, inherited)
