"""The shape of the package, read from its source: imports point inward, no circles.

Every ``import`` counts, at the top of a file or inside a function (a lazy import is
still a dependency); only ``if TYPE_CHECKING:`` blocks are left out.
"""

from __future__ import annotations

import ast
from pathlib import Path

import mattermost_notify

PACKAGE = Path(mattermost_notify.__file__).parent
CORE = {
    "errors",
    "_files",
    "config",
    "_checks",
    "_threads",
    "hooks",
    "_wire",
    "transport",
    "one_shot",
    "client",
    "outbox",
    "sender",
    "api",
}
AROUND = ("progress_bar", "ipython", "cli", "sandbox", "demo")


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = {
        id(sub)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for sub in ast.walk(node)
    }
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                out.add(sub if sub in modules else module)
        elif isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
    return {m for m in out if m in modules and m != name}


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_checker_finds_a_circle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_a_module_that_imports_it_back() -> None:
    graph = import_graph()
    assert {f"mattermost_notify.{m}" for m in CORE} <= set(graph)
    assert cycles(graph) == []


def test_imports_are_at_the_top_of_files() -> None:
    """No import parked mid-file to dodge a circle (``noqa: E402``)."""
    offenders = [
        str(path.relative_to(PACKAGE.parent))
        for path in PACKAGE.rglob("*.py")
        if "noqa: E402" in path.read_text(encoding="utf-8")
    ]
    assert offenders == []


def test_the_sandbox_stands_alone() -> None:
    """The sandbox imports nothing of the library around it (it is a separate server)."""
    graph = import_graph()
    for module, imported in graph.items():
        if module.startswith("mattermost_notify.sandbox"):
            outside = {m for m in imported if not m.startswith("mattermost_notify.sandbox")}
            assert outside == set(), f"{module} imports {outside}"


def test_the_core_imports_nothing_around_it() -> None:
    graph = import_graph()
    for module in CORE:
        name = f"mattermost_notify.{module}"
        outward = {m for m in graph[name] if m.split(".")[1] in AROUND}
        assert outward == set(), f"{module} imports {outward}"


def test_the_library_s_threads_are_started_by_start_thread() -> None:
    """Threads the library starts leave Ctrl-C to the main thread (``_threads``): a module
    that makes a thread starts it with ``start_thread`` (aside: the sandbox, which stands
    alone and masks its server thread itself, and the Jupyter server extension's pool)."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] == "sandbox" or path.name in ("_threads.py", "jupyter_server.py"):
            continue
        text = path.read_text(encoding="utf-8")
        makes = "threading.Thread(" in text or "threading.Timer(" in text
        if makes and "start_thread(" not in text:
            offenders.append(str(relative))
    assert offenders == []
