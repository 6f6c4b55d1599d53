"""The import rules of docs/ARCHITECTURE.md, read from the source with ast (nothing is imported).

Every import counts, at module level or inside a function: a lazy import is still a dependency
(it only moves the moment it fails). ``from pkg import sub`` where ``sub`` is a module depends on
``pkg.sub``; a module is never said to depend on its own parent packages.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# folder -> the package it installs as (pyproject.toml package-dir)
MAPPED = {"simulator": "nbtrace.sim"}

# What each part may import from nbtrace (besides itself and nbtrace.errors); docs/ARCHITECTURE.md
# gives the reason for each row.
MAY_IMPORT = {
    "engine": set(),
    "figures": {"engine"},
    "report": {"engine", "figures", "run"},
    "run": {"engine", "sim"},
    "tap": {"engine"},
    "sim": {"tap"},
    "testing": {"engine", "run"},
    "pytest_plugin": {"testing"},
    "cli": {"engine", "figures", "report", "run", "tap", "testing"},
    "__main__": {"cli"},
}
# third-party packages a part must not import: the engine runs where only numpy and yaml are
# installed, and nothing but the simulator (and the port-facing tap library) may touch torch
MUST_NOT_IMPORT = {
    "engine": {"torch", "click", "rich", "matplotlib", "jinja2"},
    "figures": {"torch", "click"},
    "report": {"torch", "click"},
    "run": {"torch", "click"},
    "testing": {"torch"},
    "pytest_plugin": {"torch"},
    "cli": {"torch"},
}


def _modules() -> dict[str, Path]:
    mods = {}
    for top in ("nbtrace", "simulator"):
        for p in (ROOT / top).rglob("*.py"):
            rel = p.relative_to(ROOT)
            if "__pycache__" in rel.parts:
                continue
            parts = list(rel.with_suffix("").parts)
            if parts[0] in MAPPED:
                parts = MAPPED[parts[0]].split(".") + parts[1:]
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join(parts)] = p
    return mods


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The nbtrace module ``name`` lives in (``a.b.func`` -> ``a.b``), or None for a third party."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, path: Path) -> tuple[set[str], set[str]]:
    """(nbtrace modules, top-level third-party packages) that ``module`` imports."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    ours, theirs = set(), set()

    def add(target: str):
        hit = _resolve(target)
        if hit is None:
            if not target.startswith("nbtrace"):
                theirs.add(target.split(".")[0])
        elif hit != module and not module.startswith(hit + "."):
            ours.add(hit)

    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                full = f"{source}.{alias.name}"
                add(full if full in MODULES else source)
    return ours, theirs


GRAPH = {m: _imports(m, p) for m, p in MODULES.items()}


def _part(module: str) -> str:
    """engine, run, report, figures, cli, sim, tap, testing, ... (errors and the root are shared)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "nbtrace"


def _cycles(edges_of: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    for start in edges_of:
        if start in index:
            continue
        work = [(start, iter(sorted(edges_of[start])))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on.add(start)
        while work:
            v, edges = work[-1]
            for w in edges:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(edges_of[w]))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


def _pending() -> set[tuple[str, str]]:
    """Edges that break a rule and are on their way out with a change under way; each goes away
    by itself when the file it needs disappears (the matplotlib figures of issue 12 replace png.py)."""
    known = set()
    if (ROOT / "nbtrace" / "figures" / "png.py").exists():
        known.add(("nbtrace.engine.maps", "nbtrace.figures.png"))
    return known


def test_the_graph_sees_the_package():
    assert {"nbtrace.engine.diff", "nbtrace.engine.parse", "nbtrace.cli", "nbtrace.sim.cli",
            "nbtrace.sim.entry"} <= set(MODULES)
    # a module importing a sibling through its package is read as the sibling
    assert "nbtrace.engine.parse.blocks" in GRAPH["nbtrace.engine.parse.lines"][0]
    assert "nbtrace.engine.parse" not in GRAPH["nbtrace.engine.parse.lines"][0]
    assert "nbtrace.engine.spec" in GRAPH["nbtrace.engine.scaffold"][0]  # a plain dependency is seen


def test_each_part_imports_only_what_architecture_md_allows():
    broken = []
    for module, (ours, theirs) in sorted(GRAPH.items()):
        part = _part(module)
        allowed = MAY_IMPORT.get(part)
        if allowed is not None:
            for target in sorted(ours):
                other = _part(target)
                if other not in allowed | {part, "errors", "nbtrace"} and (module, target) not in _pending():
                    broken.append(f"{module} imports {target} ({part} may import {sorted(allowed) or 'nothing'})")
        for pkg in sorted(theirs & MUST_NOT_IMPORT.get(part, set())):
            broken.append(f"{module} imports {pkg}")
    assert broken == []


def test_engine_imports_nothing_downstream():
    downstream = {"run", "report", "figures", "cli", "sim", "tap", "testing", "pytest_plugin"}
    for module, (ours, _) in GRAPH.items():
        if _part(module) == "engine":
            assert {t for t in ours if _part(t) in downstream} - {t for m, t in _pending() if m == module} == set(), module


def test_nothing_outside_the_cli_imports_it():
    users = {m for m, (ours, _) in GRAPH.items() if any(_part(t) == "cli" for t in ours)}
    assert {_part(m) for m in users} <= {"cli", "__main__"}


def test_no_import_cycle():
    assert _cycles({m: ours for m, (ours, _) in GRAPH.items()}) == []


def test_the_cycle_finder_finds_a_cycle():
    edges = {m: set(ours) for m, (ours, _) in GRAPH.items()}
    edges["nbtrace.errors"].add("nbtrace.engine.spec")  # spec imports errors: now a cycle
    assert "nbtrace.errors" in GRAPH["nbtrace.engine.spec"][0]
    assert any({"nbtrace.engine.spec", "nbtrace.errors"} <= set(c) for c in _cycles(edges))
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
