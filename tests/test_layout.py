"""The package layout: no import cycles, no private names across modules, the foundation imports no technique."""
from __future__ import annotations

import ast
import itertools
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "nblib"
TECHNIQUES = ("measuring", "taskworld", "koala", "cast", "d2dmoe", "lwe", "steer", "hierrouter", "c3po")
FOUNDATION = ("cost", "cache", "checks", "llm", "zoo", "panel", "style", "training", "prose")
BANNED_PREFIXES = ("cast_", "koala_", "task", "sweep", "widgets", "plots", "draft")


def _modules() -> dict[str, Path]:
    """Every module under nblib/: dotted name -> file (a package is its __init__.py)."""
    out = {}
    for py in sorted(PKG.rglob("*.py")):
        parts = list(py.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = py
    return out


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _resolve(module: str, level: int, target: str | None) -> str:
    """The absolute dotted name of a (possibly relative) import target seen in `module`."""
    if level == 0:
        return target or ""
    base = module.split(".") if _is_package(module) else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def _as_module(name: str) -> str | None:
    """The nblib module an import name refers to (the longest prefix that is one), else None."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        cand = ".".join(parts[:i])
        if cand in MODULES:
            return cand
    return None


class _Imports(ast.NodeVisitor):
    """Edges (to nblib modules), private-name imports and module aliases of one module (all scopes)."""

    def __init__(self, module: str):
        self.module = module
        self.edges: dict[str, int] = {}
        self.private: list[str] = []
        self.aliases: dict[str, str] = {}

    def _edge(self, target: str | None, lineno: int) -> None:
        if target and target != self.module:
            self.edges.setdefault(target, lineno)

    def visit_Import(self, node: ast.Import) -> None:
        for a in node.names:
            if a.name == "nblib" or a.name.startswith("nblib."):
                mod = _as_module(a.name)
                self._edge(mod, node.lineno)
                if a.asname:
                    self.aliases[a.asname] = mod
                else:
                    self.aliases[a.name.split(".")[0]] = "nblib"

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        src = _resolve(self.module, node.level, node.module)
        if not (src == "nblib" or src.startswith("nblib.")):
            return
        for a in node.names:
            sub = f"{src}.{a.name}"
            if sub in MODULES:  # `from . import tree`: the submodule itself
                self._edge(sub, node.lineno)
                self.aliases[a.asname or a.name] = sub
            else:  # `from .tree import generate`: a name of that module
                self._edge(_as_module(src), node.lineno)
                if a.name.startswith("_") and not a.name.startswith("__"):
                    self.private.append(f"{self.module}:{node.lineno} imports {a.name} from {src}")


def _scan():
    info = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        v = _Imports(name)
        v.visit(tree)
        info[name] = (v, tree)
    return info


INFO = _scan()
GRAPH = {m: v.edges for m, (v, _) in INFO.items()}


def _cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Every strongly connected component with a cycle (Tarjan), each as one cycle through it."""
    index, low, on, stack, sccs, n = {}, {}, set(), [], [], [0]

    def strong(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(comp)

    for v in sorted(graph):
        if v not in index:
            strong(v)
    out = []
    for comp in sccs:  # walk one cycle inside the component, for the message
        members, start = set(comp), sorted(comp)[0]
        path, seen, v = [start], {start}, start
        while True:
            v = next(w for w in sorted(graph[v]) if w in members)
            if v in seen:
                out.append(path[path.index(v):] + [v])
                break
            path.append(v)
            seen.add(v)
    return out


def test_the_scan_sees_imports_in_every_scope():
    assert "nblib.cast.tree" in GRAPH["nblib.cast.policy"]
    assert "nblib.cache" in GRAPH["nblib.taskworld.traces"]  # imported inside a function
    assert "nblib" in GRAPH["nblib.cache"]  # `from . import __version__`, inside a function
    assert _cycles({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}) == [["a", "b", "c", "a"]]


def test_no_import_cycles():
    cycles = _cycles(GRAPH)
    lines = [" -> ".join(f"{a} (line {GRAPH[a][b]})" for a, b in itertools.pairwise(c)) + f" -> {c[-1]}" for c in cycles]
    print("\n".join(lines))
    assert not cycles, "import cycles:\n" + "\n".join(lines)


def test_zoo_does_not_import_taskworld():
    assert not [m for m in GRAPH["nblib.zoo"] if m == "nblib.taskworld" or m.startswith("nblib.taskworld.")]


@pytest.mark.parametrize("name", FOUNDATION)
def test_the_foundation_imports_no_technique(name):
    mod = f"nblib.{name}"
    if mod not in MODULES:
        pytest.skip(f"{mod} does not exist (yet)")
    tech = [m for m in GRAPH[mod] if m.split(".")[1:2] and m.split(".")[1] in TECHNIQUES]
    assert not tech, f"{mod} imports technique package(s) {tech}: move the shared code down into the foundation"


def _private_uses(name: str, v: _Imports, tree: ast.AST) -> list[str]:
    """`from .x import _y` and `alias._y` (alias = another nblib module) in one module."""
    bad = list(v.private)
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")):
            continue
        chain, val = [], node.value
        while isinstance(val, ast.Attribute):
            chain.append(val.attr)
            val = val.value
        if not isinstance(val, ast.Name) or val.id not in v.aliases:
            continue
        mod = v.aliases[val.id]
        for part in reversed(chain):
            if f"{mod}.{part}" not in MODULES:
                mod = None
                break
            mod = f"{mod}.{part}"
        if mod is not None and mod != name:
            bad.append(f"{name}:{node.lineno} uses {mod}.{node.attr}")
    return bad


def test_the_private_name_check_catches_both_forms():
    src = ("from . import tree as cast\nfrom .tree import _dtype\nimport nblib.cost\n"
           "def f(lm):\n    from .. import taskworld\n    return cast._dtype(lm), nblib.cost._x, taskworld.problems._seed_int, cast.__doc__\n")
    v = _Imports("nblib.cast.policy")
    tree = ast.parse(src)
    v.visit(tree)
    found = _private_uses("nblib.cast.policy", v, tree)
    assert len(found) == 4 and "imports _dtype from nblib.cast.tree" in found[0], found
    assert {f.split(" uses ")[1] for f in found[1:]} == {"nblib.cast.tree._dtype", "nblib.cost._x",
                                                         "nblib.taskworld.problems._seed_int"}


def test_no_private_names_across_modules():
    bad = [b for name, (v, tree) in INFO.items() for b in _private_uses(name, v, tree)]
    assert not bad, "private names used across modules (make them public or move the code):\n" + "\n".join(bad)


def test_no_top_level_module_has_a_technique_prefix():
    names = [p.stem for p in PKG.glob("*.py") if p.stem != "__init__"]
    names += [p.name for p in PKG.iterdir() if (p / "__init__.py").exists()]
    bad = [n for n in names if n not in TECHNIQUES and n.startswith(BANNED_PREFIXES)]
    assert not bad, f"top-level nblib modules named like a technique (move them into its package): {bad}"
