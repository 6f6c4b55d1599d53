"""Tap spec YAML -> :class:`~nbtrace.engine.tapspec.TapSpec`: composition under caps, then
validation of every key, tap and ``after:`` edge.

Every problem is a :class:`~nbtrace.errors.SpecError` whose ``where`` is ``file:line:col``
(1-based), taken from the YAML node marks, so users can jump to it.
"""

from __future__ import annotations

import difflib
import math
import os
from typing import Any

import yaml

from nbtrace.errors import SpecError
from nbtrace.engine.model import SourceLoc
from nbtrace.engine.tapspec import SIDES, TapDef, TapSpec
from nbtrace.engine.units import parse_unit

SEMANTICS = ("per-subpixel", "per-pixel", "last-value", "first-value", "setup", "per-iteration")
TOP_KEYS = ("spec", "description", "defaults", "taps")
DEFAULT_KEYS = ("rtol", "atol", "semantics", "unit")
TAP_KEYS = ("name", "aliases", "shape", "unit", "range", "rtol", "atol", "after", "loop",
            "semantics", "hints", "note", "when")
WHEN_KEYS = ("after",)
MAX_DEPTH = 64  # YAML nesting: a spec needs 5; libyaml's composer recurses and crashes past ~100,000
MAX_VALUES = 1 << 20  # values one tap may hold (its shape's product)


def _compose(text: str, path: str) -> yaml.Node | None:
    loader_cls = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        _check_depth(text, loader_cls, path)
        return yaml.compose(text, Loader=loader_cls)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = _where(path, mark)
        what = f"YAML syntax error: {exc.problem or exc.context}"
        raise SpecError(what, where, "fix the YAML at that position (indentation, quotes, brackets)") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"YAML error: {exc}", path, "fix the YAML") from None


def _check_depth(text: str, loader_cls, path: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH before composing: the event parser keeps its own
    stack (no recursion), the composer does not (200,000 ``[`` crash libyaml)."""
    depth = 0
    for event in yaml.parse(text, Loader=loader_cls):
        if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                raise SpecError(f"nested deeper than {MAX_DEPTH} levels", _where(path, event.start_mark),
                                "a tap spec is a list of flat tap entries")
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            depth -= 1


def _where(path: str, mark) -> str:
    if mark is None:
        return path
    return f"{path}:{mark.line + 1}:{mark.column + 1}"


_SCALAR_TAGS = {
    "tag:yaml.org,2002:null": "null",
    "tag:yaml.org,2002:bool": "bool",
    "tag:yaml.org,2002:int": "int",
    "tag:yaml.org,2002:float": "float",
    "tag:yaml.org,2002:str": "str",
}


class _Builder:
    """Turns the composed node tree into a TapSpec, raising at the first problem's mark."""

    def __init__(self, path: str):
        self.path = path

    # -- small node helpers -------------------------------------------------------------
    def err(self, node, what: str, hint: str | None = None) -> SpecError:
        return SpecError(what, _where(self.path, node.start_mark if node is not None else None), hint)

    def mapping(self, node, what: str) -> list[tuple[yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            raise self.err(node, f"{what} must be a mapping (key: value)", f"write {what} as 'key: value' lines")
        seen: dict[str, yaml.Node] = {}
        for k, _ in node.value:
            key = self.string(k, "a key")
            if key in seen:
                prev = seen[key].start_mark
                raise self.err(k, f"duplicate key {key!r} in {what} (first at line {prev.line + 1})",
                               "remove one of them")
            seen[key] = k
        return node.value

    def sequence(self, node, what: str) -> list[yaml.Node]:
        if isinstance(node, yaml.ScalarNode) and self.kind(node) != "null":
            return [node]  # a single name where a list is allowed
        if isinstance(node, yaml.ScalarNode):
            return []
        if not isinstance(node, yaml.SequenceNode):
            raise self.err(node, f"{what} must be a list", f"write {what} as [a, b, ...]")
        return node.value

    @staticmethod
    def kind(node) -> str:
        if not isinstance(node, yaml.ScalarNode):
            return "collection"
        return _SCALAR_TAGS.get(node.tag, "str")

    def string(self, node, what: str) -> str:
        if not isinstance(node, yaml.ScalarNode) or self.kind(node) == "null":
            raise self.err(node, f"{what} must be a text value", "write it as plain text, e.g. name: F_cell")
        return str(node.value)

    def number(self, node, what: str) -> float:
        """A float from a scalar; YAML 1.1 reads ``1e-9`` (no dot) as a string, accept it too."""
        if isinstance(node, yaml.ScalarNode) and self.kind(node) in ("int", "float", "str"):
            try:
                value = float(str(node.value).replace("_", ""))
            except ValueError:
                value = None
            if value is not None and not math.isnan(value):
                return value
        shown = node.value if isinstance(node, yaml.ScalarNode) else "a collection"
        raise self.err(node, f"{what} must be a number, got {shown!r}", "write e.g. 1.0e-9")

    def unknown_key(self, key_node, key: str, allowed, where: str) -> SpecError:
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f"did you mean {close[0]!r}?" if close else "allowed keys: " + ", ".join(allowed)
        return self.err(key_node, f"unknown key {key!r} in {where}", hint)

    # -- the document -------------------------------------------------------------------
    def build(self, root) -> TapSpec:
        if root is None:
            raise SpecError("empty tap spec", self.path, "a spec needs at least 'taps:' with one tap")
        fields: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for k, v in self.mapping(root, "the spec"):
            key = str(k.value)
            if key not in TOP_KEYS:
                raise self.unknown_key(k, key, TOP_KEYS, "the spec")
            fields[key] = (k, v)
        if "taps" not in fields:
            raise self.err(root, "the spec has no 'taps:' list", "add 'taps:' with one '- name: ...' per tap")
        name = self.string(fields["spec"][1], "spec") if "spec" in fields else os.path.basename(self.path)
        defaults = self.defaults(fields.get("defaults", (None, None))[1])
        taps_node = fields["taps"][1]
        items = self.sequence(taps_node, "taps")
        if not items:
            raise self.err(taps_node, "'taps:' is empty", "declare at least one tap")
        raw = [self.tap(item, defaults) for item in items]
        taps = self.check_names(raw)
        self.check_after(taps)
        return TapSpec(name=name, path=self.path, taps=tuple(t for t, _ in taps), defaults=defaults)

    def defaults(self, node) -> dict:
        out: dict[str, Any] = {}
        if node is None:
            return out
        for k, v in self.mapping(node, "defaults"):
            key = str(k.value)
            if key not in DEFAULT_KEYS:
                raise self.unknown_key(k, key, DEFAULT_KEYS, "defaults")
            if key in ("rtol", "atol"):
                out[key] = self.tolerance(v, key)
            elif key == "semantics":
                out[key] = self.semantics(v)
            else:
                out[key] = self.unit(v)[0]
        if ("rtol" in out) != ("atol" in out):
            raise self.err(node, "defaults give only one of rtol/atol",
                           "give both rtol and atol, or neither (a relative tolerance alone fails at zero)")
        return out

    def tolerance(self, node, what: str) -> float:
        value = self.number(node, what)
        if not (value >= 0 and math.isfinite(value)):
            raise self.err(node, f"{what} must be a finite number >= 0, got {node.value}",
                           "tolerances are magnitudes, e.g. rtol: 1.0e-9, atol: 0")
        return value

    def semantics(self, node) -> str:
        value = self.string(node, "semantics")
        if value not in SEMANTICS:
            close = difflib.get_close_matches(value, SEMANTICS, n=1)
            hint = f"did you mean {close[0]!r}?" if close else "one of: " + ", ".join(SEMANTICS)
            raise self.err(node, f"unknown semantics {value!r}", hint)
        return value

    def unit(self, node) -> tuple[str, str]:
        text = self.string(node, "unit") if not (isinstance(node, yaml.ScalarNode) and self.kind(node) == "int") \
            else str(node.value)
        try:
            unit = parse_unit(text)
        except SpecError as exc:
            raise self.err(node, exc.what, exc.hint) from None
        return text, unit.dimension

    # -- one tap ------------------------------------------------------------------------
    def tap(self, node, defaults: dict) -> tuple[TapDef, dict[str, yaml.Node]]:
        pairs = self.mapping(node, "a tap")
        nodes: dict[str, yaml.Node] = {}
        for k, v in pairs:
            key = str(k.value)
            if key not in TAP_KEYS:
                raise self.unknown_key(k, key, TAP_KEYS, "a tap")
            nodes[key] = v
        if "name" not in nodes:
            raise self.err(node, "a tap without 'name:'", "every item of 'taps:' starts with '- name: ...'")
        name = self.identifier(nodes["name"], "tap name")
        unit, dimension = self.unit(nodes["unit"]) if "unit" in nodes else (defaults.get("unit", "1"), None)
        if dimension is None:
            dimension = parse_unit(unit).dimension
        rtol, atol = self.tap_tolerance(node, nodes, defaults)
        tap = TapDef(
            name=name,
            aliases=self.aliases(nodes.get("aliases")),
            shape=self.shape(nodes.get("shape")),
            unit=unit,
            dimension=dimension,
            range=self.range(nodes.get("range")),
            rtol=rtol,
            atol=atol,
            after=tuple(self.identifier(n, "an 'after' entry") for n in self.sequence(nodes.get("after"), "after"))
            if "after" in nodes else (),
            loop=self.identifier(nodes["loop"], "loop") if "loop" in nodes else None,
            semantics=self.semantics(nodes["semantics"]) if "semantics" in nodes
            else defaults.get("semantics", "per-pixel"),
            hints=self.hints(nodes.get("hints")),
            loc=SourceLoc(self.path, node.start_mark.line + 1),
            note=self.string(nodes["note"], "note") if "note" in nodes else None,
            when=self.when(nodes["when"]) if "when" in nodes else (),
        )
        return tap, nodes

    def when(self, node) -> tuple[tuple[str, str, tuple[str, ...]], ...]:
        out = []
        seen: set[tuple[str, str]] = set()
        for k, v in self.mapping(node, "when"):
            cond = str(k.value).strip()
            key, eq, value = cond.partition("=")
            key, value = key.strip(), value.strip()
            if not eq or not key.isidentifier() or not value:
                raise self.err(k, f"'when' condition {cond!r} is not key=VALUE",
                               "write the setup key and the value it prints, e.g. 'pivot=SAMPLE'")
            if (key, value.upper()) in seen:
                raise self.err(k, f"'when' condition {cond!r} given twice", "give each condition once")
            seen.add((key, value.upper()))
            body = {}
            for bk, bv in self.mapping(v, f"'when' {cond}"):
                bkey = str(bk.value)
                if bkey not in WHEN_KEYS:
                    raise self.unknown_key(bk, bkey, WHEN_KEYS, f"'when' {cond}")
                body[bkey] = bv
            if "after" not in body:
                raise self.err(v, f"'when' {cond} without 'after:'",
                               "give the upstream taps that hold under this condition: {after: [...]}")
            after = tuple(self.identifier(n, "an 'after' entry") for n in self.sequence(body["after"], "after"))
            out.append((key, value, after))
        return tuple(out)

    def identifier(self, node, what: str) -> str:
        value = self.string(node, what)
        if not value.isidentifier():
            raise self.err(node, f"{what} {value!r} is not a name (letters, digits, underscores)",
                           "tap names are identifiers as the producer prints them, e.g. F_cell")
        return value

    def tap_tolerance(self, node, nodes, defaults) -> tuple[float | None, float | None]:
        has_r, has_a = "rtol" in nodes, "atol" in nodes
        if has_r != has_a:
            given = nodes["rtol"] if has_r else nodes["atol"]
            missing = "atol" if has_r else "rtol"
            raise self.err(given, f"{'rtol' if has_r else 'atol'} without {missing}",
                           f"give both rtol and atol (e.g. {missing}: 0), or neither to use the defaults")
        if has_r:
            return self.tolerance(nodes["rtol"], "rtol"), self.tolerance(nodes["atol"], "atol")
        return defaults.get("rtol"), defaults.get("atol")

    def aliases(self, node) -> dict[str, tuple[str, ...]]:
        if node is None:
            return {}
        if isinstance(node, (yaml.SequenceNode, yaml.ScalarNode)):
            return {"any": tuple(self.identifier(n, "an alias") for n in self.sequence(node, "aliases"))}
        out: dict[str, tuple[str, ...]] = {}
        for k, v in self.mapping(node, "aliases"):
            side = str(k.value)
            if side not in SIDES:
                raise self.err(k, f"unknown alias side {side!r}",
                               "use a (reference), b (port) or any, e.g. aliases: {b: [F_cell_interpolated]}")
            out[side] = tuple(self.identifier(n, "an alias") for n in self.sequence(v, f"aliases.{side}"))
        return out

    def shape(self, node) -> tuple[int, ...] | None:
        if node is None:
            return ()
        if isinstance(node, yaml.ScalarNode):
            if self.kind(node) == "null" or node.value == "any":
                return None
            if self.kind(node) == "int":
                return self.shape_dims([node])
            raise self.err(node, f"bad shape {node.value!r}", "use [] (scalar), [3] (vector), [3, 3] or any")
        if not isinstance(node, yaml.SequenceNode):
            raise self.err(node, "bad shape", "use [] (scalar), [3] (vector), [3, 3] or any")
        return self.shape_dims(node.value)

    def shape_dims(self, items) -> tuple[int, ...]:
        dims = []
        for n in items:
            if not (isinstance(n, yaml.ScalarNode) and self.kind(n) == "int" and int(n.value) > 0):
                raise self.err(n, f"shape entries must be positive integers, got {getattr(n, 'value', n)!r}",
                               "use [] (scalar), [3] (vector), [3, 3] (matrix)")
            dims.append(int(n.value))
        if math.prod(dims) > MAX_VALUES:
            raise self.err(items[0], f"shape {dims} holds more than {MAX_VALUES} values",
                           "a tap is a scalar, a vector or a small matrix, e.g. [3] or [3, 3]")
        return tuple(dims)

    def range(self, node) -> tuple[float, float] | None:
        if node is None or (isinstance(node, yaml.ScalarNode) and self.kind(node) == "null"):
            return None
        items = self.sequence(node, "range")
        if len(items) != 2:
            raise self.err(node, f"range needs two numbers [min, max], got {len(items)}",
                           "write range: [0, 1.0e12] (plausible |value|)")
        lo, hi = (self.number(n, "range bound") for n in items)
        if lo < 0 or hi < lo:
            raise self.err(node, f"range [{lo:g}, {hi:g}] is not 0 <= min <= max",
                           "a range bounds |value|: give [min, max] with 0 <= min <= max")
        return lo, hi

    def hints(self, node) -> dict[float, str]:
        if node is None:
            return {}
        out: dict[float, str] = {}
        for k, v in self.mapping(node, "hints"):
            factor = self.number(k, "a hint factor")
            if factor == 0 or not math.isfinite(factor):
                raise self.err(k, f"hint factor must be finite and non-zero, got {k.value}",
                               "a hint key is the ratio port/reference it explains, e.g. 1.0e10")
            out[factor] = self.string(v, "a hint")
        return out

    # -- cross-tap checks -----------------------------------------------------------------
    def check_names(self, taps: list[tuple[TapDef, dict]]) -> list[tuple[TapDef, dict]]:
        owner: dict[str, TapDef] = {}
        for tap, nodes in taps:
            if tap.name in owner:
                raise self.err(nodes["name"], f"duplicate tap {tap.name!r} (first declared at line "
                               f"{owner[tap.name].loc.line})", "declare each tap once; use aliases for other names")
            owner[tap.name] = tap
        side_owner: dict[tuple[str, str], str] = {}
        for tap, nodes in taps:
            for side, names in tap.aliases.items():
                for alias in names:
                    self.check_alias(tap, nodes, side, alias, owner, side_owner)
        return taps

    def check_alias(self, tap, nodes, side, alias, owner, side_owner) -> None:
        node = nodes["aliases"]
        if alias in owner and alias != tap.name:
            raise self.err(node, f"alias {alias!r} of {tap.name!r} is itself a declared tap "
                           f"(line {owner[alias].loc.line})", "an alias must not be another tap's name")
        clashing_sides = (side,) if side != "any" else SIDES
        for s in clashing_sides + ("any",):
            other = side_owner.get((s, alias))
            if other is not None and other != tap.name:
                raise self.err(node, f"alias {alias!r} of {tap.name!r} is also an alias of {other!r}",
                               "a printed name must resolve to one tap per side")
        side_owner[(side, alias)] = tap.name

    def check_after(self, taps: list[tuple[TapDef, dict]]) -> None:
        by_name = {t.name: t for t, _ in taps}
        aliases = {a: t.name for t, _ in taps for names in t.aliases.values() for a in names}
        for tap, nodes in taps:
            lists = [(tap.after, lambda i, n=nodes: self.sequence(n["after"], "after")[i])]
            for key, value, after in tap.when:
                lists.append((after, lambda i, n=nodes, c=(key, value): self._when_after_nodes(n, c)[i]))
            for after, where_of in lists:
                for i, up in enumerate(after):
                    if up in by_name:
                        continue
                    if up in aliases:
                        hint = f"'after' takes canonical names: use {aliases[up]!r}"
                    else:
                        close = difflib.get_close_matches(up, list(by_name), n=1)
                        hint = f"did you mean {close[0]!r}?" if close else "declare that tap or remove it from 'after'"
                    raise self.err(where_of(i), f"'after' of {tap.name!r} names unknown tap {up!r}", hint)
        self.check_acyclic(taps, by_name, None)
        for key, value in dict.fromkeys((k, v.upper()) for t, _ in taps for k, v, _ in t.when):
            variant = {t.name: TapSpec.specialize_tap(t, {key: value}) for t, _ in taps}
            self.check_acyclic(taps, variant, f"{key}={value}")

    def _when_after_nodes(self, nodes, cond) -> list[yaml.Node]:
        for k, v in self.mapping(nodes["when"], "when"):
            key, _, value = str(k.value).partition("=")
            if (key.strip(), value.strip()) == cond:
                body = dict((str(bk.value), bv) for bk, bv in self.mapping(v, "when"))
                return self.sequence(body["after"], "after")
        raise AssertionError(cond)  # only called for conditions parsed from these nodes

    def check_acyclic(self, taps, by_name, condition: str | None) -> None:
        state: dict[str, int] = {}  # 1 = on the current path, 2 = done
        nodes_of = {t.name: nodes for t, nodes in taps}
        under = "" if condition is None else f" when {condition}"

        # depth first with an explicit stack: a 3,000-tap chain declared downstream first must
        # not hit the interpreter's recursion limit
        for tap, _ in taps:
            if state.get(tap.name) is not None:
                continue
            path = [tap.name]
            state[tap.name] = 1
            stack = [iter(by_name[tap.name].after)]
            while stack:
                up = next(stack[-1], None)
                if up is None:
                    state[path.pop()] = 2
                    stack.pop()
                    continue
                if state.get(up) == 1:
                    name = path[-1]
                    cycle = path[path.index(up):] + [up]
                    node = nodes_of[name].get("when" if condition else "after", nodes_of[name].get("after"))
                    raise self.err(node, f"'after' edges form a cycle{under}: "
                                   + " -> ".join(cycle), "the after: graph must be acyclic (upstream taps only)")
                if state.get(up) is None:
                    state[up] = 1
                    path.append(up)
                    stack.append(iter(by_name[up].after))
