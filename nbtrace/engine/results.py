"""Frozen results of a trace diff. Computing happens in compare/localize; renderers only read these.

The JSON form (:meth:`DiffResult.to_json`) is a contract other tools script against; its keys
are documented in docs/JSON.md and must not change silently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from nbtrace.engine.model import SourceLoc, TapIndex

# Verdict kinds a comparison can produce (TapVerdict.kind).
KINDS = (
    "agree", "out_of_tolerance", "scale", "sign", "permutation", "offset", "nonfinite",
    "missing", "integer_count", "precision", "different_quantity", "rotation", "missing_iterations",
)
# A region trace can hold 10⁵ pixels; the JSON lists the first ones and counts them all.
PIXELS_LISTED = 1000
# Per-tap status after localisation (nbtrace.engine.localize): "immaterial" diverges with no
# effect downstream; "incomplete" is a gap that makes the verdict diverge (nbtrace.engine.complete),
# "missing" a harmless one (a tap only the port printed, a setup line of a silent build).
STATUSES = ("agree", "introduced", "inherited", "immaterial", "missing", "incomplete", "setup")


def index_json(index: TapIndex | None) -> dict | None:
    """A TapIndex as the JSON object of the contract: {"pixel": [s, f], "loop": {...}, "occurrence": n}."""
    if index is None:
        return None
    return {
        "pixel": list(index.pixel) if index.pixel is not None else None,
        "loop": {k: v for k, v in index.loop},
        "occurrence": index.occurrence,
    }


def index_text(index: TapIndex | None, component: int | None = None) -> str:
    """A TapIndex for humans: ``pixel (64, 79), phi_tic 0, occurrence 1, component 2``."""
    if index is None:
        return "-"
    parts = []
    if index.pixel is not None:
        parts.append(f"pixel ({index.pixel[0]}, {index.pixel[1]})")
    else:
        parts.append("no pixel")
    parts.extend(f"{k} {v}" for k, v in index.loop)
    if index.occurrence:
        parts.append(f"occurrence {index.occurrence}")
    if component is not None:
        parts.append(f"component {component}")
    return ", ".join(parts)


def _num(x: float | None) -> float | str | None:
    """JSON has no nan/inf: they become the strings "nan", "inf", "-inf"."""
    if x is None:
        return None
    x = float(x)
    if math.isfinite(x):
        return x
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")


@dataclass(frozen=True)
class TapVerdict:
    """The comparison of one tap (canonical name + loop keys) over all its matched records.

    index: where the worst (or first divergent) element sits; a/b: the values there.
    max_abs / max_rel: greatest absolute / relative difference over all compared elements.
    tolerance: the relative tolerance applied (max of spec rtol and printed-precision floors).
    would_pass: the smallest rtol, rounded up to 3 significant digits, that makes this tap agree
        under the tolerance applied (atol + rtol·max(|a|, |b|, ‖row‖)); None when it agrees.
    factor: port/reference when a scale (or count ratio) explains the divergence.
    """

    tap: str
    loop: tuple[str, ...]
    kind: str
    n_pairs: int
    n_elements: int
    n_mismatched: int
    index: TapIndex | None
    max_abs: float
    max_rel: float
    max_ulp: float
    tolerance: float
    atol: float
    would_pass: float | None
    factor: float | None
    a: tuple | str | None
    b: tuple | str | None
    loc_a: SourceLoc | None
    loc_b: SourceLoc | None
    message: str
    meaning: str = ""
    first_loop_iteration: tuple[tuple[str, int], ...] | None = None
    is_setup: bool = False
    # port/reference when every divergent element shares one ratio (within print precision),
    # named or not: a fluence ×7.9e-10 is said as such even when no unit explains it
    ratio: float | None = None

    @property
    def agrees(self) -> bool:
        return self.kind == "agree"

    @property
    def label(self) -> str:
        return f"{self.tap}[{','.join(self.loop)}]" if self.loop else self.tap


@dataclass(frozen=True)
class Finding:
    """A tap after localisation: its verdict and whether it introduced or inherited a divergence."""

    verdict: TapVerdict
    status: str  # one of STATUSES
    divergent_ancestors: tuple[str, ...] = ()

    def to_json(self) -> dict:
        v = self.verdict
        return {
            "tap": v.tap,
            "loop": list(v.loop),
            "index": index_json(v.index),
            "kind": v.kind,
            "status": self.status,
            "max_abs": _num(v.max_abs),
            "max_rel": _num(v.max_rel),
            "max_ulp": _num(v.max_ulp),
            "tolerance": _num(v.tolerance),
            "would_pass_rtol": _num(v.would_pass),
            "factor": _num(v.factor),
            "ratio": _num(v.ratio),
            "a": _values_json(v.a),
            "b": _values_json(v.b),
            "loc_a": str(v.loc_a) if v.loc_a else None,
            "loc_b": str(v.loc_b) if v.loc_b else None,
            "n_pairs": v.n_pairs,
            "mismatched": v.n_mismatched,
            "elements": v.n_elements,
            "message": v.message,
        }


def _values_json(v):
    if v is None or isinstance(v, str):
        return v
    return [_num(x) for x in v]


@dataclass(frozen=True)
class RootCause:
    tap: str
    loop: tuple[str, ...]
    index: TapIndex | None
    kind: str
    factor: float | None
    explanation: str  # the opening sentence of every report

    def to_json(self) -> dict:
        return {
            "tap": self.tap,
            "loop": list(self.loop),
            "index": index_json(self.index),
            "kind": self.kind,
            "factor": _num(self.factor),
            "explanation": self.explanation,
        }


@dataclass(frozen=True)
class Unmatched:
    """Records of one tap that found no partner on the other side."""

    tap: str
    side: str  # "a" | "b"
    count: int
    first_loc: SourceLoc
    first_index: TapIndex
    whole_tap: bool  # True when the other side never printed this tap at all
    position: int = 0  # record position of the first unmatched record in its trace

    def to_json(self) -> dict:
        return {"tap": self.tap, "count": self.count, "loc": str(self.first_loc),
                "index": index_json(self.first_index), "whole_tap": self.whole_tap}


@dataclass(frozen=True)
class DiffResult:
    """Everything a diff found. ``bool(result)`` is True when every compared tap agrees."""

    path_a: str
    path_b: str
    findings: tuple[Finding, ...]
    root_cause: RootCause | None
    headline: str
    matched: int
    unmatched_a: tuple[Unmatched, ...]
    unmatched_b: tuple[Unmatched, ...]
    pixels_a: tuple[tuple[int, int], ...]
    pixels_b: tuple[tuple[int, int], ...]
    warnings: tuple[str, ...] = ()
    spec_name: str | None = None
    context: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    nothing_compared: bool = False  # an empty or one-sided comparison is a failure, never "agree"
    patterns: tuple = ()  # nbtrace.engine.trends.Pattern: how the root tap's error varies over the pixels
    causes: tuple[Finding, ...] = ()  # introduced divergences that matter, ranked (root first)
    immaterial: tuple[Finding, ...] = ()  # divergences with no effect downstream
    misspellings: tuple = ()  # nbtrace.engine.complete.Misspelling

    @property
    def incomplete(self) -> tuple[Finding, ...]:
        """Gaps that forbid "agree": a tap of the reference the port never printed for a traced
        pixel, or a tap printed more times on one side."""
        return tuple(f for f in self.findings if f.status == "incomplete")

    @property
    def verdict(self) -> str:
        """"agree" only when something was compared, nothing diverges (not even immaterially)
        and nothing the reference printed is missing from the port."""
        if self.root_cause is None and not self.nothing_compared and not self.immaterial and not self.incomplete:
            return "agree"
        return "diverge"

    def __bool__(self) -> bool:
        return self.verdict == "agree"

    @property
    def divergent(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.status in ("introduced", "inherited", "immaterial"))

    @property
    def only_a(self) -> int:
        return sum(u.count for u in self.unmatched_a)

    @property
    def only_b(self) -> int:
        return sum(u.count for u in self.unmatched_b)

    def to_json(self) -> dict:
        return {
            "verdict": self.verdict,
            "headline": self.headline,
            "root_cause": self.root_cause.to_json() if self.root_cause else None,
            "root_cause_patterns": [p.to_json() for p in self.patterns],
            "causes": [_cause_json(f) for f in self.causes],
            "immaterial": [_cause_json(f) for f in self.immaterial],
            "incomplete": [_gap_json(f) for f in self.incomplete],
            "misspellings": [m.to_json() for m in self.misspellings],
            "taps": [f.to_json() for f in self.findings],
            "counts": {
                "matched": self.matched,
                "only_a": self.only_a,
                "only_b": self.only_b,
                "divergent": len(self.divergent),
                "immaterial": len(self.immaterial),
                "incomplete": len(self.incomplete),
            },
            "only_a": [u.tap for u in self.unmatched_a],
            "only_b": [u.tap for u in self.unmatched_b],
            "unmatched": {"a": [u.to_json() for u in self.unmatched_a],
                          "b": [u.to_json() for u in self.unmatched_b]},
            "pixels": {"a": [list(p) for p in self.pixels_a[:PIXELS_LISTED]],
                       "b": [list(p) for p in self.pixels_b[:PIXELS_LISTED]],
                       "count_a": len(self.pixels_a), "count_b": len(self.pixels_b)},
            "warnings": list(self.warnings),
            "inputs": {"a": self.path_a, "b": self.path_b},
            "spec": self.spec_name,
            "context": self.context,
            "provenance": self.provenance,
        }


def _cause_json(f: Finding) -> dict:
    v = f.verdict
    return {"tap": v.tap, "loop": list(v.loop), "kind": v.kind, "status": f.status,
            "factor": _num(v.factor), "ratio": _num(v.ratio), "index": index_json(v.index),
            "divergent_inputs": list(f.divergent_ancestors),
            "explanation": v.message.split("\n", 1)[0].split(": ", 1)[-1]}


def _gap_json(f: Finding) -> dict:
    v = f.verdict
    return {"tap": v.tap, "loop": list(v.loop), "kind": v.kind,
            "side": "a" if v.loc_a is not None else "b", "count": v.n_mismatched,
            "first_absent": index_json(v.index), "loc": str(v.loc_a or v.loc_b),
            "explanation": v.message.split(": ", 1)[-1]}
