"""The package's import layering (CONTRIBUTING.md "Layout"): imports go one way and no module
imports itself back through others. Read from the source with ast, nothing imported."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "textdepth_ros"

# area -> areas it must never import (directly or lazily inside a function)
FORBIDDEN = {
    "model": {"ros", "bags", "demo", "inference", "data", "training", "train", "eval", "rclpy"},
    "inference": {"ros", "bags", "demo", "rclpy"},
    "ros": {"bags", "demo"},
    "bags": {"demo"},
    "demo": {"bags"},
    "data": {"ros", "bags", "demo", "rclpy"},
    "training": {"ros", "bags", "demo", "rclpy"},
    "experiments": {"ros", "bags", "demo", "rclpy"},
    "metrics": {"ros", "bags", "demo", "model", "rclpy"},
    "scene_recognition": {"ros", "bags", "demo", "rclpy"},
    "text_choice": {"ros", "bags", "demo", "model", "inference", "rclpy"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set:
    """Every textdepth_ros module (and rclpy) a file imports, at any depth of the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    modules = {module_name(p) for p in PACKAGE.rglob("*.py")}
    return {name for name in found if name in modules or name.split(".")[0] == "rclpy"}


GRAPH = {module_name(p): imports_of(p) for p in sorted(PACKAGE.rglob("*.py"))}


def area(module: str) -> str:
    parts = module.split(".")
    return parts[0] if parts[0] == "rclpy" else (parts[1] if len(parts) > 1 else "")


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_go_one_way(module):
    banned = FORBIDDEN.get(area(module), set())
    wrong = sorted(name for name in GRAPH[module] if area(name) in banned and name != module)
    assert not wrong, f"{module} imports {wrong} (layering: demo, bags -> ros -> inference -> model)"


def test_no_import_cycles():
    edges = {m: {n for n in deps if n in GRAPH and n != m and not m.startswith(n + ".")} for m, deps in GRAPH.items()}
    state, stack = {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for n in sorted(edges[m]):
            if state.get(n) == "open":
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(n):] + [n]))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = "done"

    for m in sorted(edges):
        if m not in state:
            visit(m)
