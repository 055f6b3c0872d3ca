"""The import graph of l2d_obs, read from the source with ``ast``: no cycles, and each package imports
only what docs/architecture.md allows it ("what each package may import").

Every import counts, at module level or inside a function, except those under ``if TYPE_CHECKING:``
(annotations only; never executed). Importing ``a.b.c`` from outside package ``a.b`` also runs
``a/b/__init__.py``, so that counts as an edge to ``a.b`` as well.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "l2d_obs"


def _modules() -> dict[str, tuple[Path, bool]]:
    """Dotted name -> (file, is a package's __init__)."""
    found = {}
    for file in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = list(file.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_package else parts)] = (file, is_package)
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement that can run: ``if TYPE_CHECKING:`` bodies are skipped (their else kept)."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _targets(module: str, is_package: bool, node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    # `from pkg import name` imports pkg, and pkg.name too when that is a module.
    return [target] + [f"{target}.{alias.name}" for alias in node.names]


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for module, (file, is_package) in modules.items():
        inside = set(_parents(module)) | ({module} if is_package else set())  # already imported when it runs
        edges: set[str] = set()
        for node in _imports(ast.parse(file.read_text(encoding="utf-8"))):
            for target in _targets(module, is_package, node):
                if target in modules:
                    edges.add(target)
                    edges.update(p for p in _parents(target) if p in modules and p not in inside)
        edges.discard(module)
        graph[module] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path ``[a, b, ..., a]``, or None (iterative depth-first search)."""
    done: set[str] = set()
    for root in sorted(graph):
        if root in done:
            continue
        path, on_path = [root], {root}
        stack = [iter(sorted(graph[root]))]
        while stack:
            step = next(stack[-1], None)
            if step is None:
                stack.pop()
                finished = path.pop()
                done.add(finished)
                on_path.discard(finished)
                continue
            if step in on_path:
                return path[path.index(step):] + [step]
            if step not in done:
                path.append(step)
                on_path.add(step)
                stack.append(iter(sorted(graph[step])))
    return None


def test_find_cycle_finds_one_and_only_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set(), "d": {"d2"}, "d2": {"d"}}) == ["d", "d2", "d"]


def test_the_graph_sees_function_level_imports_and_package_inits():
    graph = import_graph()
    assert "l2d_obs.weights.assemble" in graph["l2d_obs.factory"]  # imported inside a function
    assert "l2d_obs.engine" in graph["l2d_obs.factory"]  # l2d_obs.engine.factory runs engine/__init__.py
    assert "l2d_obs.training.trainer" not in graph["l2d_obs.training.export"]  # TYPE_CHECKING only


def test_l2d_obs_has_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def _package(module: str) -> str:
    """The top-level part of l2d_obs a module belongs to: 'engine' for l2d_obs.engine.stream."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


# What each package may import besides itself (docs/architecture.md, "What each package may import").
# The leaves (errors, dtypes, frames, progress, threads, imageops, httpguard, handoff, paths, tomlschema)
# are open to all.
LEAVES = {"errors", "dtypes", "frames", "progress", "threads", "imageops", "httpguard", "handoff", "paths",
          "tomlschema"}
MAY_IMPORT = {
    "engine": {"profiles"},
    "weights": {"engine", "profiles"},
    "profiles": {"weights"},  # only weights.sources and weights.hashing: see test below
    "config": set(),
    "obsclient": {"config"},
    "plugin_files": set(),
    "sources": {"config", "obsclient"},
    "sinks": {"config", "obsclient"},
    "factory": {"engine", "weights", "profiles"},
    "styles": {"engine", "factory", "profiles"},
    "control": {"config", "obsclient", "profiles"},
    "render": {"sources", "sinks"},
    "daemon": {"config", "control", "engine", "factory", "profiles", "sinks", "sources", "styles", "weights"},
    "doctor": {"config", "obsclient", "profiles", "sinks", "sources", "weights"},
    "training": {"engine", "profiles", "weights"},
    "evaluation": {"engine", "factory", "profiles", "render", "sources"},
    "bench": {"daemon", "engine", "profiles", "sinks", "sources"},
}


def test_each_package_imports_only_what_the_map_allows():
    wrong = []
    for module, targets in import_graph().items():
        mine = _package(module)
        if mine in ("cli", "__main__", "commands") or mine in LEAVES:
            continue  # the command line may use anything; leaves are checked by the cycle test
        for target in targets:
            theirs = _package(target)
            if theirs in (mine, "") or theirs in LEAVES:
                continue
            if theirs not in MAY_IMPORT.get(mine, set()):
                wrong.append(f"{module} imports {target}")
    assert not wrong, "\n".join(sorted(wrong))


def test_profiles_use_only_the_pure_parts_of_weights():
    graph = import_graph()
    used = {t for t in graph["l2d_obs.profiles"] if _package(t) == "weights"}
    assert used <= {"l2d_obs.weights", "l2d_obs.weights.sources", "l2d_obs.weights.hashing"}, used
    assert graph["l2d_obs.weights"] == set(), "weights/__init__.py must import nothing (profiles load through it)"


def test_nothing_but_the_command_line_imports_cli_or_commands():
    wrong = [f"{m} imports {t}" for m, targets in import_graph().items() for t in targets
             if _package(t) in ("cli", "commands") and _package(m) not in ("cli", "commands", "__main__")]
    assert not wrong, wrong
    assert not any(_package(t) == "cli" for m, ts in import_graph().items() if _package(m) == "commands" for t in ts)


@pytest.mark.parametrize("module", ["l2d_obs.daemon", "l2d_obs.cli", "l2d_obs.profiles", "l2d_obs.sources",
                                    "l2d_obs.sinks", "l2d_obs.factory"])
def test_importing_does_not_load_torch(module):
    """torch takes seconds to import: the command line, the daemon module and everything it wires must
    not pay for it before an engine is really built (a Ctrl+C during start-up is obeyed at once)."""
    code = f"import sys, {module}; print(sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            cwd=PACKAGE_DIR.parent)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", f"import {module} loaded {result.stdout.strip()}"
