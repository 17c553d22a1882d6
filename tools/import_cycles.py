"""Import cycles in src/conveyor: the only ones allowed are plugin registration.

Run: ``python tools/import_cycles.py`` (``make lint`` does). Exit 0 when every cycle is a
registration cycle, 1 listing the others, each edge with the file and line of its import.

How the graph is built (with ``ast``, nothing of Conveyor's is executed but the registries):
- a node is a module of src/conveyor; a package is its ``__init__``;
- ``import a.b`` and ``from a.b import c`` add an edge to ``a.b`` (to ``a.b.c`` when that is a
  module), and to each package above it that is not also above the importing module, because
  Python runs those ``__init__`` files first; relative imports are resolved;
- an import at module level (inside ``try``/``if`` too) is an *import-time* edge; an import inside
  a function or method is a *deferred* edge. Both count: a deferred import that closes a cycle
  still makes two modules depend on each other, only later. They are reported apart, because an
  import-time cycle is also an import-order hazard;
- imports under ``if TYPE_CHECKING:`` are ignored: they run no code and exist for annotations
  (the ``else`` branch of such an ``if`` counts);
- registration edges: every ``Registry`` (``conveyor/registry.py``) declares its built-in modules
  and loads them by name with ``importlib``, so there is no ``import`` statement for those edges.
  The script adds them (read from the registries themselves) and reports the cycles they close
  (a registry module -> a built-in -> the registry's ``register``) as allowed. A cycle that exists
  without registration edges fails.

Then the layers (DESIGN.md: domain first, pure core, adapters at the edge): ``LAYERS`` names,
for each top-level package, the packages it must not import, in any form (deferred too); an
import against it fails like a cycle, e.g. the engine reaching into the API or the dashboard.

``ALLOWED`` may list further edges, each (importer, imported) of a registration done with a plain
import (a registry module importing its built-ins), and nothing else.
"""

from __future__ import annotations

import ast
import importlib
import sys
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = "conveyor"

# registration edges made with a plain import (registry module, built-in module); none today
ALLOWED: frozenset[tuple[str, str]] = frozenset()


EDGE = ("api", "web", "cli", "app", "devserver")  # the adapters and the composition root
# top-level package -> what it must never import
LAYERS: dict[str, frozenset[str]] = {
    "domain": frozenset({"store", "engine", "gates", "targets", "agent", "audit", "auth", "flags", "runtime", *EDGE}),
    "spec": frozenset({"store", "engine", "gates", "targets", "agent", "audit", "runtime", *EDGE}),
    "store": frozenset({"engine", "gates", "targets", "agent", "flags", "runtime", *EDGE}),
    "gates": frozenset({"store", "engine", "targets", "agent", "runtime", *EDGE}),
    "targets": frozenset({"engine", "runtime", *EDGE}),
    "agent": frozenset({"store", "engine", "gates", "targets", "flags", "runtime", *EDGE}),
    "audit": frozenset({"engine", "gates", "targets", "flags", *EDGE}),
    "auth": frozenset({"engine", "targets", "flags", *EDGE}),
    "flags": frozenset({"engine", "targets", *EDGE}),
    "engine": frozenset(EDGE),
    "api": frozenset({"web", "cli", "app", "devserver"}),
    "web": frozenset({"api", "cli", "app", "devserver"}),
}


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    kind: str  # "import-time", "deferred" or "registration"
    where: str  # path:line of the import (or of the registry's declaration)


def modules(src: Path = SRC) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted((src / PACKAGE).rglob("*.py")):
        parts = path.relative_to(src).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.Module) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement that runs, with True when it sits inside a function."""

    def walk(nodes: Iterable[ast.AST], deferred: bool) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
        for node in nodes:
            if isinstance(node, ast.Import | ast.ImportFrom):
                yield node, deferred
            elif isinstance(node, ast.If) and _is_type_checking(node.test):
                yield from walk(node.orelse, deferred)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                yield from walk(ast.iter_child_nodes(node), True)
            else:
                yield from walk(ast.iter_child_nodes(node), deferred)

    yield from walk(tree.body, False)


def _resolve(node: ast.Import | ast.ImportFrom, importer: str, is_package: bool) -> list[str]:
    """The modules an import statement names (before packages above them are added)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        anchor = importer.split(".") if is_package else importer.split(".")[:-1]
        anchor = anchor[: len(anchor) - (node.level - 1)]
        base = ".".join([*anchor, base] if base else anchor)
    return [base, *(f"{base}.{alias.name}" for alias in node.names)]


def _targets(named: list[str], importer: str, known: dict[str, Path]) -> set[str]:
    own_packages = {".".join(importer.split(".")[:i]) for i in range(1, importer.count(".") + 2)}
    targets: set[str] = set()
    for name in named:
        if name not in known:
            continue  # outside Conveyor, or a name (class, function) rather than a module
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            target = ".".join(parts[:i])
            if target in known and target not in own_packages:
                targets.add(target)
    return targets


def import_edges(known: dict[str, Path], root: Path = ROOT) -> list[Edge]:
    edges: list[Edge] = []
    for importer, path in known.items():
        tree = ast.parse(path.read_text(), str(path))
        for node, deferred in _imports(tree):
            named = _resolve(node, importer, path.name == "__init__.py")
            for target in sorted(_targets(named, importer, known)):
                where = f"{path.relative_to(root)}:{node.lineno}"
                edges.append(Edge(importer, target, "deferred" if deferred else "import-time", where))
    return edges


def registration_edges(known: dict[str, Path]) -> list[Edge]:
    """The built-ins each Registry loads by name: read from the registries, as they are declared."""
    sys.path.insert(0, str(SRC))
    registry_type = importlib.import_module(f"{PACKAGE}.registry").Registry
    edges: list[Edge] = []
    for name, path in known.items():
        if "Registry(" not in path.read_text() or name == f"{PACKAGE}.registry":
            continue
        module = importlib.import_module(name)
        for value in vars(module).values():
            if isinstance(value, registry_type):
                where = f"{path.relative_to(ROOT)} ({value.what} registry)"
                edges.extend(Edge(name, builtin, "registration", where) for builtin in value.builtins)
    return edges


def _sccs(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _shortest_path(graph: dict[str, set[str]], start: str, goal: str, inside: set[str]) -> list[str] | None:
    before: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        if node == goal:
            path = [node]
            while (previous := before[path[-1]]) is not None:
                path.append(previous)
            return path[::-1]
        for child in sorted(graph.get(node, ())):
            if child in inside and child not in before:
                before[child] = node
                queue.append(child)
    return None


def cycles(edges: list[Edge]) -> list[list[str]]:
    """Elementary cycles that together use every edge lying on a cycle: for each such edge
    a -> b, a -> b followed by the shortest way back from b to a. Each starts at its smallest module."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        graph.setdefault(edge.source, set()).add(edge.target)
        graph.setdefault(edge.target, set())
    found: set[tuple[str, ...]] = set()
    for component in _sccs(graph):
        members = set(component)
        for source in component:
            for target in sorted(graph[source] & members):
                back = _shortest_path(graph, target, source, members)
                if back is not None:
                    loop = [source, *back[:-1]]
                    first = loop.index(min(loop))
                    found.add(tuple(loop[first:] + loop[:first]))
    return sorted((list(c) for c in found), key=lambda c: (len(c), c))


def describe(cycle: list[str], edges: list[Edge]) -> str:
    lines = [" -> ".join(short(m) for m in [*cycle, cycle[0]])]
    for source, target in zip(cycle, [*cycle[1:], cycle[0]], strict=True):
        via = [e for e in edges if e.source == source and e.target == target]
        lines.append(f"    {short(source)} -> {short(target)}: " + "; ".join(f"{e.kind} at {e.where}" for e in via))
    return "\n".join(lines)


def layer_violations(edges: list[Edge]) -> list[Edge]:
    """Imports that cross a layer the wrong way (``LAYERS``)."""

    def top(module: str) -> str:
        parts = module.split(".")
        return parts[1] if len(parts) > 1 else parts[0]

    return [e for e in edges if top(e.target) in LAYERS.get(top(e.source), frozenset())]


def short(module: str) -> str:
    return module.removeprefix(f"{PACKAGE}.")


def main() -> int:
    known = modules()
    imports = [e for e in import_edges(known) if (e.source, e.target) not in ALLOWED]
    allowed = [e for e in import_edges(known) if (e.source, e.target) in ALLOWED]
    registration = registration_edges(known) + [Edge(e.source, e.target, "registration", e.where) for e in allowed]

    import_time = cycles([e for e in imports if e.kind == "import-time"])
    every = cycles(imports)
    deferred = [c for c in every if c not in import_time]
    registered = [c for c in cycles(imports + registration) if c not in every]

    print(f"{len(known)} modules, {len(imports)} import edges, {len(registration)} registration edges")
    for title, found in (
        ("import-time cycles", import_time),
        ("cycles through imports inside functions", deferred),
        ("registration cycles (allowed)", registered),
    ):
        print(f"\n{title}: {len(found)}")
        for cycle in found:
            print(describe(cycle, imports + registration))
    wrong_way = layer_violations(imports)
    print(f"\nimports against the layers: {len(wrong_way)}")
    for e in wrong_way:
        print(f"    {short(e.source)} -> {short(e.target)}: {e.kind} at {e.where}")
    if wrong_way:
        print("\nturn those dependencies around: the inner layer must not know the outer one (LAYERS above)")
        return 1
    if import_time or deferred:
        print(
            f"\n{len(import_time) + len(deferred)} import cycle(s) besides plugin registration: "
            "move the shared part into the module both depend on, or turn the dependency around"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
