"""The package's import layering (CONTRIBUTING.md "Layout"): imports go one way and no module
imports itself back through others. Read from the source with ast, nothing imported."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "textdepth_ros"

# area -> areas it must never import (directly or lazily inside a function)
FORBIDDEN = {
    "model": {"ros", "bags", "demo", "serving", "data", "training", "train", "eval", "rclpy"},
    "serving": {"ros", "bags", "demo", "training", "experiments", "rclpy"},
    "ros": {"bags", "demo", "training", "experiments"},
    "bags": {"demo"},
    "demo": {"bags"},
    "data": {"ros", "bags", "demo", "serving", "rclpy"},
    "training": {"ros", "bags", "demo", "serving", "rclpy"},
    "experiments": {"ros", "bags", "demo", "rclpy"},
    "metrics": {"ros", "bags", "demo", "model", "rclpy"},
}
# single modules held to more than their area: the text decision is pure logic
FORBIDDEN_MODULES = {
    "textdepth_ros.serving.text_choice": {"textdepth_ros.model", "textdepth_ros.serving.inference", "rclpy", "torch"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def raw_imports_of(path: Path) -> set:
    """Every module name a file imports, at any depth of the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


RAW_IMPORTS = {module_name(p): raw_imports_of(p) for p in sorted(PACKAGE.rglob("*.py"))}
# textdepth_ros modules (and rclpy) each module imports
GRAPH = {module: {name for name in found if name in RAW_IMPORTS or name.split(".")[0] == "rclpy"}
         for module, found in RAW_IMPORTS.items()}


def area(module: str) -> str:
    parts = module.split(".")
    return parts[0] if parts[0] == "rclpy" else (parts[1] if len(parts) > 1 else "")


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_go_one_way(module):
    banned = FORBIDDEN.get(area(module), set())
    wrong = sorted(name for name in GRAPH[module] if area(name) in banned and name != module)
    assert not wrong, f"{module} imports {wrong} (layering: demo, bags -> ros -> serving -> model)"
    banned_here = FORBIDDEN_MODULES.get(module, set())
    too_much = sorted(name for name in GRAPH[module] | RAW_IMPORTS[module]
                      if any(name == b or name.startswith(b + ".") for b in banned_here))
    assert not too_much, f"{module} imports {too_much}"


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
