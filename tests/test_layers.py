"""The package's layers, enforced: no module imports a layer above its own,
and no two modules import each other, even through others.

The graph is built from the source with ``ast``: every ``import`` and
``from ... import`` anywhere in a module counts, including those inside
functions and under ``TYPE_CHECKING`` (a cycle hidden there is still a knot
in the design).  The same layers are an import-linter contract in
pyproject.toml (``lint-imports``); docs/architecture.md ("Layers") says what
goes where.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "vecstore"

# Top first.  A module may import its own package, the other packages of its
# layer unless the layer is independent, and any layer below.  A package
# found in no layer (say a new integration) counts as a top layer of its own.
LAYERS: list[tuple[tuple[str, ...], bool]] = [  # (packages, independent)
    (("cli",), False),
    (("analytics",), False),
    (("migration",), False),
    (("_api", ""), False),  # "": vecstore/__init__.py, the public names
    (("_analysis",), False),
    (("_query",), False),
    (("_engine",), False),
    (("_segments",), False),
    (("_metaindex", "_index"), True),
    (("_filter",), False),
    (("_storage",), False),
    (("_metrics", "_validate"), True),
    (("_types",), False),
    (("_errors",), False),
]


def _modules(pkg: str) -> dict[str, tuple[Path, bool]]:
    """module name -> (file, is a package)."""
    out = {}
    for path in sorted((ROOT / pkg).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        out[".".join(parts)] = (path, is_pkg)
    return out


def import_graph(pkg: str = PACKAGE) -> dict[str, set[str]]:
    """module -> the modules of ``pkg`` it imports (anywhere in its source)."""
    mods = _modules(pkg)
    graph: dict[str, set[str]] = {}
    for name, (path, is_pkg) in mods.items():
        wanted: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                wanted.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".") if is_pkg else name.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                for alias in node.names:  # `from pkg import submodule` imports the submodule
                    sub = f"{target}.{alias.name}"
                    wanted.add(sub if sub in mods else target)
        edges = set()
        for mod in wanted:
            while mod and mod not in mods:
                mod = mod.rpartition(".")[0]
            if mod and mod != name:
                edges.add(mod)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def layer_of(module: str) -> int:
    pkg = _package_of(module)
    for i, (names, _independent) in enumerate(LAYERS):
        if pkg in names:
            return i
    return -1  # not placed: above every layer


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for mod, targets in sorted(graph.items()):
        here = layer_of(mod)
        for tgt in sorted(targets):
            there = layer_of(tgt)
            if there < here:
                bad.append(f"{mod} -> {tgt} (layer {_package_of(tgt) or PACKAGE} is above "
                           f"{_package_of(mod) or PACKAGE})")
            elif there == here and there >= 0 and LAYERS[here][1] and \
                    _package_of(tgt) != _package_of(mod):
                bad.append(f"{mod} -> {tgt} (independent packages of one layer)")
    return bad


def test_the_graph_sees_every_kind_of_import() -> None:
    graph = import_graph()
    assert "vecstore._engine.engine" in graph["vecstore._engine.writer"]  # from .engine import
    assert "vecstore._api.sync" in graph[PACKAGE]  # from ._api.sync import, in __init__
    assert "vecstore._storage.env" in graph["vecstore.cli.check"]  # from .._storage.env import
    assert all(mod in graph for mod in ("vecstore._index", "vecstore.cli.__main__"))


def test_no_import_cycles() -> None:
    found = cycles(import_graph())
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_no_module_imports_a_layer_above_its_own() -> None:
    bad = upward_imports(import_graph())
    assert not bad, "imports against the layers:\n" + "\n".join(bad)


def test_the_checks_would_catch_a_knot() -> None:
    graph = {"vecstore._engine.a": {"vecstore._query.b"},
             "vecstore._query.b": {"vecstore._engine.a"}}
    assert cycles(graph) == [["vecstore._engine.a", "vecstore._query.b"]]
    assert upward_imports(graph) == [
        "vecstore._engine.a -> vecstore._query.b (layer _query is above _engine)"]
    assert upward_imports({"vecstore._index.x": {"vecstore._metaindex.y"},
                           "vecstore._metaindex.y": set()}) == [
        "vecstore._index.x -> vecstore._metaindex.y (independent packages of one layer)"]


def test_wal_stays_on_its_own() -> None:
    graph = import_graph("wal")
    assert not cycles(graph)
    for path in (ROOT / "wal").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        assert not [n for n in names if n.split(".")[0] == PACKAGE], path
