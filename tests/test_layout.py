"""The package layout's rules, checked on the source: no import cycles between modules, no
project import hidden inside a function (the usual way to dodge a cycle), and ``fdenv`` never
imports ``agents`` (the environments stand alone; the agents build on them)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("fdenv", "agents")


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def resolve(name: str, known: dict[str, Path]) -> str | None:
    """The module an import of ``name`` (a module or a name inside one) loads."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def imported_names(node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.module is None or node.level:
        return []
    return [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]


def project_imports(tree: ast.AST) -> list[tuple[str, int]]:
    return [
        (name, node.lineno)
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for name in imported_names(node)
        if name.split(".")[0] in PACKAGES
    ]


def import_graph() -> dict[str, set[str]]:
    known = modules()
    graph = {}
    for name, path in known.items():
        targets = {resolve(t, known) for t, _ in project_imports(ast.parse(path.read_text()))}
        graph[name] = {t for t in targets if t is not None and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_finds_a_cycle_and_only_one_that_exists():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle_between_project_modules():
    assert find_cycle(import_graph()) is None


def test_no_project_import_inside_a_function():
    hidden = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                inner = [n for n in ast.walk(node) if isinstance(n, ast.Import | ast.ImportFrom)]
                hidden += [f"{name}:{line} {t}" for n in inner for t, line in project_imports(n)]
    assert not hidden, "project imports inside functions:\n" + "\n".join(hidden)


def test_fdenv_never_imports_agents():
    offenders = {
        module: sorted(d for d in deps if d.split(".")[0] == "agents")
        for module, deps in import_graph().items()
        if module.split(".")[0] == "fdenv"
    }
    assert not {module: deps for module, deps in offenders.items() if deps}
