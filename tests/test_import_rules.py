"""The architecture's import rules, checked on the source (every import statement, also lazy ones).

- the runtime ``router_ml`` never imports the offline lab ``router_ml_lab``;
- ``router_ml_lab.train`` and ``router_ml_lab.evaluate`` share ``router_ml_lab.quality`` and never
  import each other; ``quality`` imports neither;
- no module imports itself back through a chain of imports (no cycles; imports under
  ``if TYPE_CHECKING:`` are annotations, never executed, and do not count).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE_ROOTS = {
    "router_ml": REPO / "router_ml",
    "router_ml_lab": REPO / "training" / "router_ml_lab",
}


def _module_files() -> dict[str, Path]:
    modules = {}
    for package, root in PACKAGE_ROOTS.items():
        for path in sorted(root.rglob("*.py")):
            parts = [package, *path.relative_to(root).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


MODULES = _module_files()


def _imports(name: str, path: Path) -> set[str]:
    """Modules of this tree that ``name`` imports, resolved to the most specific module."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node except those under ``if TYPE_CHECKING:`` (annotations only, never executed)."""
    nodes: list[ast.AST] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        nodes.append(node)
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                stack.extend(child.orelse)
            else:
                stack.append(child)
    return nodes


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _violations(source: str, forbidden: str) -> list[str]:
    return sorted(
        f"{name} imports {target}"
        for name, targets in GRAPH.items()
        if _in(name, source)
        for target in targets
        if _in(target, forbidden)
    )


def test_the_tree_has_the_packages_the_rules_name() -> None:
    for package in (
        "router_ml",
        "router_ml_lab.quality",
        "router_ml_lab.train",
        "router_ml_lab.evaluate",
    ):
        assert package in MODULES
    assert "router_ml_lab.quality.data" in GRAPH["router_ml_lab.train.pipeline"]  # parser works


@pytest.mark.parametrize(
    ("source", "forbidden"),
    [
        ("router_ml", "router_ml_lab"),
        ("router_ml_lab.train", "router_ml_lab.evaluate"),
        ("router_ml_lab.evaluate", "router_ml_lab.train"),
        ("router_ml_lab.quality", "router_ml_lab.train"),
        ("router_ml_lab.quality", "router_ml_lab.evaluate"),
    ],
)
def test_import_rule(source: str, forbidden: str) -> None:
    assert _violations(source, forbidden) == []


def test_no_import_cycles() -> None:
    """Depth-first search over the import graph; a back edge is a cycle."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    cycles: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(GRAPH[module]):
            if _in(module, target):
                continue  # a module importing its own package's __init__ is not a cycle
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])
    assert cycles == []
