"""The code stays readable for the next engineer: no import circle between the package's modules (lazy
imports inside functions count), no module over 400 lines, no function over 50; no benchmark patches the tool."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "distill_cli"
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 400, 50


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(REPO).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def imports(path: Path, known: dict[str, Path]) -> set[str]:
    """The package's modules that ``path`` imports, at its top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("distill_cli"):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in known else node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("distill_cli"))
    return {m for m in found if m in known}


def cycle_from(start: str, graph: dict[str, set[str]]) -> list[str] | None:
    """A path of imports from ``start`` back to it, if there is one (depth first)."""
    stack, seen = [(start, [start])], set()
    while stack:
        node, path = stack.pop()
        for nxt in graph[node]:
            if nxt == start:
                return [*path, start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*path, nxt]))
    return None


def test_no_import_circle():
    known = modules()
    graph = {name: imports(path, known) - {name} for name, path in known.items()}
    graph = {name: {m for m in deps if not name.startswith(m + ".")} for name, deps in graph.items()}
    circles = [c for name in graph if (c := cycle_from(name, graph))]
    assert not circles, " → ".join(circles[0])


def test_no_module_or_function_too_long():
    too_long = []
    for name, path in sorted(modules().items()):
        text = path.read_text()
        if (lines := len(text.splitlines())) > MAX_MODULE_LINES:
            too_long.append(f"{name}: {lines} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if (length := node.end_lineno - node.lineno + 1) > MAX_FUNCTION_LINES:
                    too_long.append(f"{name}.{node.name}: {length} lines")
    assert not too_long, too_long


def test_the_checker_finds_a_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycle_from("a", graph) == ["a", "b", "c", "a"] and cycle_from("d", graph) is None


def patches(path: Path) -> list[str]:
    """Assignments to an attribute of anything imported from ``distill_cli`` (a module, a class, a function),
    and ``setattr`` calls on one: what a benchmark would do to reach what the tool does not offer."""
    tree = ast.parse(path.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("distill_cli"):
            imported.update(a.asname or a.name for a in node.names)
        elif isinstance(node, ast.Import):
            imported.update((a.asname or a.name).split(".")[0] for a in node.names if a.name.startswith("distill_cli"))

    def root(node) -> str | None:
        while isinstance(node, ast.Attribute):
            node = node.value
        return node.id if isinstance(node, ast.Name) else None

    found = []
    for node in ast.walk(tree):
        targets = getattr(node, "targets", None) or ([node.target] if isinstance(node, ast.AugAssign) else [])
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setattr" and node.args:
            targets = [ast.Attribute(value=node.args[0], attr="?")]
        for target in targets:
            for part in target.elts if isinstance(target, ast.Tuple) else [target]:
                if isinstance(part, ast.Attribute) and root(part) in imported:
                    found.append(f"{path.name}:{node.lineno}")
    return found


def test_no_benchmark_patches_the_tool():
    """What a benchmark cannot reach without patching, a user cannot reach at all: benchmarks use settings."""
    assert [p for path in sorted((REPO / "benchmarks").glob("*.py")) for p in patches(path)] == []


def test_a_patch_is_found(tmp_path):
    source = tmp_path / "patched.py"
    lines = ["from distill_cli.training import recipe", "import distill_cli.cli", "recipe.fit = print",
             "a, distill_cli.cli.main = 1, 2", "setattr(recipe, 'fit', print)", "x.y = 3"]  # fmt: skip
    source.write_text("\n".join(lines) + "\n")
    assert patches(source) == ["patched.py:3", "patched.py:4", "patched.py:5"]
