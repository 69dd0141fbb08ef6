"""The layers hold: pure modules load without Flask or a database, and no module imports
itself back through others (no import cycles), counted from the code's own imports."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "scheduler"
# Slot and time arithmetic, sending hours, text segments: no Flask, no database.
PURE_MODULES = (
    "scheduler.availability.slots",
    "scheduler.sms.timing",
    "scheduler.sms.segments",
    "scheduler.sms.reply_warnings",
)
FRAMEWORKS = ("flask", "sqlalchemy", "werkzeug", "jinja2", "flask_sqlalchemy", "psycopg")


def test_pure_modules_import_without_flask_or_the_database() -> None:
    probe = (
        "import sys\n"
        f"for name in {PURE_MODULES!r}:\n"
        "    __import__(name)\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({FRAMEWORKS!r})))\n"
        "print(sorted(m for m in sys.modules if m.startswith('scheduler')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        cwd=PACKAGE.parent,
    )
    frameworks, modules = result.stdout.splitlines()
    assert frameworks == "[]"
    loaded = set(ast.literal_eval(modules))
    assert loaded <= {"scheduler", "scheduler.availability", "scheduler.sms", *PURE_MODULES}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


# The only imports inside functions: the factory loads the app, and the app its doors,
# when asked to (so that importing a pure module loads no website).
DEFERRED_IMPORTS = {
    ("scheduler", "create_app"),
    ("scheduler.app", "register_blueprints"),
}


def module_level_nodes(tree: ast.Module) -> list[ast.stmt]:
    """Statements run when the module is imported (not TYPE_CHECKING blocks, not bodies)."""
    nodes: list[ast.stmt] = []
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.If | ast.Try | ast.With):
            nodes.extend(n for n in ast.walk(node) if isinstance(n, ast.stmt))
        else:
            nodes.append(node)
    return nodes


def deferred_imports(path: Path) -> set[tuple[str, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for function in ast.walk(tree):
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            if any(isinstance(n, ast.Import | ast.ImportFrom) for n in ast.walk(function)):
                found.add((module_name(path), function.name))
    return found


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The scheduler modules a module imports when it is imported."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in module_level_nodes(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in known}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module in known:
                found.add(node.module)
            # ``from scheduler.sms import views`` imports the module scheduler.sms.views.
            found |= {
                f"{node.module}.{alias.name}"
                for alias in node.names
                if f"{node.module}.{alias.name}" in known
            }
    return found


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    known = set(paths)
    graph = {name: imports_of(path, known) - {name} for name, path in paths.items()}
    # Importing a module runs its package's __init__ first: an edge to the package, unless
    # that __init__ only gathers its own submodules and none of them imports it back
    # (scheduler.models re-exporting its tables).
    for name in known:
        parent = name.rpartition(".")[0]
        if parent in known and not _only_gathers(parent, graph):
            graph[name].add(parent)
    return graph


def _only_gathers(package: str, graph: dict[str, set[str]]) -> bool:
    children = {name for name in graph if name.startswith(package + ".")}
    return graph[package] <= children and not any(package in graph[c] for c in children)


def cycles_in(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
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

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_package_has_no_import_cycles() -> None:
    graph = import_graph()
    assert len(graph) > 40  # the walk found the package
    assert cycles_in(graph) == []


def test_imports_inside_functions_are_only_the_factory_s() -> None:
    found = set().union(*(deferred_imports(path) for path in PACKAGE.rglob("*.py")))
    assert found == DEFERRED_IMPORTS


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles_in(graph) == [["a", "b", "c"]]
