"""The tap spec model: :class:`TapDef`, :class:`TapSpec` and the queries over them.

A spec names each tap once (its canonical name), the names each side may print instead
(aliases), the shape and the unit the value *actually* holds, a plausible range, tolerances and
``after:`` edges to its upstream taps. The ``after`` edges form a DAG: the root cause of a
divergence is the divergent tap whose ancestors all agree. Reading and validating the YAML is
:mod:`nbtrace.engine.spec_build`; loading files and the shipped specs is :mod:`nbtrace.engine.spec`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from nbtrace.engine.model import SourceLoc

SIDES = ("a", "b", "any")


@dataclass(frozen=True)
class TapDef:
    """One declared tap.

    aliases: side ("a" = reference, "b" = port, "any") -> extra names that side may print.
    shape: () scalar, (3,) vector, (3, 3) matrix; None when any shape is accepted.
    unit/dimension: the unit the printed value actually holds and its dimension.
    range: plausible (min, max) of |value| in that unit, or None.
    rtol/atol: the tolerance in force for this tap (its own pair, else the spec defaults),
        both None when neither declares one.
    after: canonical names of the upstream taps (edges of the physics DAG).
    loop: the loop key the tap is indexed by ("phi_tic", "mos_tic", "source"), else None.
    hints: factor (port/reference) -> what that factor means for this tap.
    loc: where the tap is declared (file:line of its ``- name:`` item).
    when: conditional edges, ((key, value, after), ...): when the run's setup block says
        ``key=value`` (e.g. pivot=SAMPLE), ``after`` replaces the tap's edges. A computation
        whose order depends on a run choice (the SAMPLE pivot derives the beam centre from pix0,
        the BEAM pivot pix0 from the beam centre) needs both directions in one spec.
    """

    name: str
    aliases: dict[str, tuple[str, ...]]
    shape: tuple[int, ...] | None
    unit: str
    dimension: str
    range: tuple[float, float] | None
    rtol: float | None
    atol: float | None
    after: tuple[str, ...]
    loop: str | None
    semantics: str
    hints: dict[float, str]
    loc: SourceLoc
    note: str | None = None
    when: tuple[tuple[str, str, tuple[str, ...]], ...] = ()

    def all_names(self) -> tuple[str, ...]:
        names = [self.name]
        for side in SIDES:
            names.extend(self.aliases.get(side, ()))
        return tuple(dict.fromkeys(names))


@dataclass(frozen=True)
class TapSpec:
    """An ordered, validated set of taps (declared order = pipeline order)."""

    name: str
    path: str
    taps: tuple[TapDef, ...]
    defaults: dict
    _by_name: dict = field(init=False, repr=False, compare=False)
    _alias: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        by_name = {t.name: t for t in self.taps}
        alias: dict[tuple[str, str], str] = {}
        for t in self.taps:
            for side, names in t.aliases.items():
                for n in names:
                    alias[(side, n)] = t.name
        object.__setattr__(self, "_by_name", by_name)
        object.__setattr__(self, "_alias", alias)

    def canonical(self, printed: str, side: str | None = None) -> str | None:
        """The canonical name of a printed tap name as seen on ``side`` ("a", "b" or None = either)."""
        if printed in self._by_name:
            return printed
        sides = (side, "any") if side in ("a", "b") else SIDES
        for s in sides:
            hit = self._alias.get((s, printed))
            if hit is not None:
                return hit
        return None

    def get(self, canonical: str) -> TapDef | None:
        return self._by_name.get(canonical)

    def nearest_upstream(self, after, present) -> list[str]:
        """The taps of ``present`` nearest upstream along ``after``: an upstream tap not in
        ``present`` (one a trace does not print) is looked through to its own ``after`` taps.
        In edge order, each once."""
        out: dict[str, None] = {}
        stack, seen = list(reversed(after)), set()
        while stack:
            up = stack.pop()
            if up in seen:
                continue
            seen.add(up)
            if up in present:
                out.setdefault(up, None)
            elif up in self._by_name:
                stack.extend(reversed(self._by_name[up].after))
        return list(out)

    def ancestors(self, canonical: str) -> set[str]:
        """Every tap upstream of ``canonical`` through ``after`` (transitively); empty if unknown."""
        seen: set[str] = set()
        stack = list(self._by_name[canonical].after) if canonical in self._by_name else []
        while stack:
            n = stack.pop()
            if n not in seen:
                seen.add(n)
                stack.extend(self._by_name[n].after)
        return seen

    def order(self) -> list[str]:
        """Pipeline order: topological over ``after`` (upstream first), declared order among
        taps the edges leave free. A forward reference (``after:`` naming a tap declared later)
        therefore moves the tap after its upstream, as the physics requires."""
        return _topological(self.taps)

    def condition_keys(self) -> tuple[str, ...]:
        """The setup keys some ``when:`` condition reads (e.g. ("pivot",))."""
        return tuple(dict.fromkeys(k for t in self.taps for k, _, _ in t.when))

    @staticmethod
    def specialize_tap(t: TapDef, conditions: dict[str, str]) -> TapDef:
        wanted = {k: str(v).strip().upper() for k, v in conditions.items()}
        after = next((a for k, v, a in t.when if wanted.get(k) == v.upper()), None)
        return t if after is None else replace(t, after=after)

    def specialize(self, conditions: dict[str, str]) -> "TapSpec":
        """This spec with each tap's ``when:`` edges applied for the run's setup values
        (``{"pivot": "SAMPLE"}``); values compare case-insensitively. Unchanged spec when no
        condition matches."""
        taps = [self.specialize_tap(t, conditions) for t in self.taps]
        if all(new.after == old.after for new, old in zip(taps, self.taps)):
            return self
        return TapSpec(name=self.name, path=self.path, taps=tuple(taps), defaults=self.defaults)

    def __len__(self) -> int:
        return len(self.taps)

    def __contains__(self, canonical: str) -> bool:
        return canonical in self._by_name



def _topological(taps) -> list[str]:
    """Kahn's algorithm, always taking the earliest-declared ready tap (stable for specs whose
    edges all point backwards)."""
    import heapq

    index = {t.name: i for i, t in enumerate(taps)}
    waiting = {t.name: len(set(t.after)) for t in taps}
    users: dict[str, list[str]] = {}
    for t in taps:
        for up in set(t.after):
            users.setdefault(up, []).append(t.name)
    ready = [(index[n], n) for n, k in waiting.items() if k == 0]
    heapq.heapify(ready)
    out: list[str] = []
    while ready:
        _, name = heapq.heappop(ready)
        out.append(name)
        for user in users.get(name, ()):
            waiting[user] -= 1
            if waiting[user] == 0:
                heapq.heappush(ready, (index[user], user))
    return out


def conditions_of(spec: TapSpec, *traces) -> dict[str, str]:
    """Setup values the spec's ``when:`` conditions read, from the first trace that prints each
    (the reference first: its run choices define which computation order is the true one)."""
    keys = spec.condition_keys()
    out: dict[str, str] = {}
    for side, trace in zip(("a", "b"), traces):
        if trace is None:
            continue
        for k in keys:
            if k in out:
                continue
            value = trace.meta.get(k) if isinstance(getattr(trace, "meta", None), dict) else None
            if value is None:
                value = _setup_text(spec, trace, side, k)
            if value is not None:
                out[k] = str(value).strip()
    return out


def _setup_text(spec: TapSpec, trace, side: str, key: str) -> str | None:
    for r in trace.records:
        if r.index.pixel is not None:
            return None  # the setup block precedes every pixel
        if spec.canonical(r.name, side) == key:
            if r.text is not None:
                return r.text.strip()
            return " ".join(f"{v:g}" for v in r.values)
    return None


# --------------------------------------------------------------------------- export and scaffold


def tap_to_json(tap: TapDef) -> dict:
    """A TapDef as plain JSON (for ``nbtrace taps show --json`` and scripts)."""
    return {
        "name": tap.name,
        "aliases": {side: list(names) for side, names in tap.aliases.items()},
        "shape": None if tap.shape is None else list(tap.shape),
        "unit": tap.unit,
        "dimension": tap.dimension,
        "range": None if tap.range is None else list(tap.range),
        "rtol": tap.rtol,
        "atol": tap.atol,
        "after": list(tap.after),
        "loop": tap.loop,
        "semantics": tap.semantics,
        "hints": {repr(k): v for k, v in tap.hints.items()},
        "when": {f"{k}={v}": {"after": list(a)} for k, v, a in tap.when},
        "loc": str(tap.loc),
    }


def spec_to_json(spec: TapSpec) -> dict:
    return {"spec": spec.name, "path": spec.path, "defaults": dict(spec.defaults),
            "taps": [tap_to_json(t) for t in spec.taps]}


# --------------------------------------------------------------------------- spec vs trace


@dataclass(frozen=True)
class SpecFit:
    """How a trace's records fit a spec (``nbtrace taps check SPEC --trace T``).

    unknown: printed names the spec does not resolve (for that side), in trace order.
    shape_mismatches: (tap, declared shape, values printed, file:line of the first such record).
    """

    n_names: int
    unknown: tuple[str, ...]
    shape_mismatches: tuple[tuple[str, tuple[int, ...], int, str], ...]

    def __bool__(self) -> bool:
        return not self.unknown and not self.shape_mismatches


def fit_trace(spec: TapSpec, trace, side: str | None = None) -> SpecFit:
    """Which names of ``trace`` the spec resolves, and which records break the declared shape."""
    unknown: dict[str, None] = {}
    bad: dict[str, tuple] = {}
    names = trace.names()
    for rec in trace.records:
        canon = spec.canonical(rec.name, side)
        if canon is None:
            unknown.setdefault(rec.name, None)
            continue
        shape = spec.get(canon).shape
        if shape is None or rec.kind == "string" or canon in bad:
            continue
        if len(rec.values) != math.prod(shape):
            bad[canon] = (canon, shape, len(rec.values), str(rec.loc))
    return SpecFit(len(names), tuple(unknown), tuple(bad.values()))
