"""Dependencies are what is imported (issue 14).

pyproject.toml declares every third-party package that l2d_obs/ and tests/ import, declares nothing that
nothing imports (each exception is listed below with its reason), and ``pip check`` finds the installed
set consistent. Import names are mapped to distributions with ``importlib.metadata.packages_distributions``.
A module-level import must be a runtime dependency; an import inside a function may come from an extra
(``train``: it runs only for that command); an import in an ``except ImportError`` handler is a fallback.
"""

from __future__ import annotations

import ast
import functools
import re
import subprocess
import sys
from dataclasses import dataclass
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

REPO = Path(__file__).resolve().parents[1]

# Declared runtime dependencies that l2d_obs/ never imports, and why they are needed anyway.
RUNTIME_NOT_IMPORTED: dict[str, str] = {}

# Extras' packages that are used as tools rather than imported.
TOOLS = {
    "pytest-timeout": "a pytest plugin: the `timeout` option under [tool.pytest.ini_options]",
    "ruff": "run as a program by tests/test_lint.py",
}

# Third-party imports that need no declaration of their own.
UNDECLARED_OK = {
    "click": "cli._click_exceptions falls back to it for Typer releases older than 0.2x, which require click themselves",
    "obspython": "OBS itself provides it to the scripts it loads (the plugin; tests/daemon/obs_scripts/ for a real OBS)",
}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(spec: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec)
    assert match, f"cannot read a package name from {spec!r}"
    return canonical(match.group(1))


@dataclass(frozen=True)
class Import:
    module: str  # top-level name
    path: str
    line: int
    lazy: bool  # inside a function: runs only when that function does
    fallback: bool  # inside an `except ImportError` handler


class _ImportFinder(ast.NodeVisitor):
    def __init__(self, path: str) -> None:
        self.path = path
        self.found: list[Import] = []
        self._functions = 0
        self._fallbacks = 0

    def _add(self, module: str, node: ast.AST) -> None:
        self.found.append(Import(module.split(".")[0], self.path, node.lineno, self._functions > 0, self._fallbacks > 0))

    def visit_FunctionDef(self, node: ast.AST) -> None:
        self._functions += 1
        self.generic_visit(node)
        self._functions -= 1

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        names = [n.id if isinstance(n, ast.Name) else getattr(n, "attr", "") for n in
                 (node.type.elts if isinstance(node.type, ast.Tuple) else [node.type])] if node.type else []
        catches_import = any(name in ("ImportError", "ModuleNotFoundError") for name in names)
        self._fallbacks += catches_import
        self.generic_visit(node)
        self._fallbacks -= catches_import

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level == 0 and node.module:
            self._add(node.module, node)

    def visit_Call(self, node: ast.Call) -> None:
        # importlib.util.find_spec("pkg") / import_module("pkg") with a literal name use that package too, and
        # so does training.extras.require("pkg") (an import with a one-line error naming the extra).
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name in ("find_spec", "import_module", "require") and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            self._add(node.args[0].value, node)
        self.generic_visit(node)


def find_imports(source: str, path: str = "<string>") -> list[Import]:
    finder = _ImportFinder(path)
    finder.visit(ast.parse(source))
    return finder.found


def third_party_imports(root: Path) -> list[Import]:
    """Imports under ``root`` of modules that are neither the standard library nor files of this repository."""
    trees = [REPO / name for name in ("l2d_obs", "tests", "benchmarks", "scripts", "plugin")]
    local = {p.stem for tree in trees for p in tree.rglob("*.py")} | {tree.name for tree in trees}
    out = []
    for path in sorted(root.rglob("*.py")):
        for imp in find_imports(path.read_text(), str(path.relative_to(REPO))):
            if imp.module not in sys.stdlib_module_names and imp.module not in local:
                out.append(imp)
    return out


@functools.cache
def _installed() -> dict[str, list[str]]:
    return packages_distributions()  # scans every installed distribution: once


def distributions_of(module: str) -> set[str]:
    return {canonical(d) for d in _installed().get(module, [])}


@pytest.fixture(scope="module")
def project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


@pytest.fixture(scope="module")
def runtime(project) -> set[str]:
    return {requirement_name(spec) for spec in project["dependencies"]}


@pytest.fixture(scope="module")
def extras(project) -> dict[str, set[str]]:
    return {extra: {requirement_name(spec) for spec in specs} for extra, specs in project["optional-dependencies"].items()}


def imported_distributions(imports: list[Import]) -> set[str]:
    return set().union(*(distributions_of(imp.module) for imp in imports))


def test_the_import_finder_tells_eager_lazy_and_fallback_imports_apart():
    found = find_imports(
        "import numpy as np\nfrom torch.nn import Linear\nfrom . import sibling\n"
        "try:\n    import fast\nexcept ImportError:\n    import slow\n"
        "def f():\n    import peft\n    importlib.util.find_spec('sklearn')\n"
    )
    seen = {imp.module: (imp.lazy, imp.fallback) for imp in found}
    assert seen == {"numpy": (False, False), "torch": (False, False), "fast": (False, False),
                    "slow": (False, True), "peft": (True, False), "sklearn": (True, False)}


def test_every_runtime_dependency_is_imported(runtime):
    used = imported_distributions(third_party_imports(REPO / "l2d_obs"))
    unused = sorted(runtime - used - set(RUNTIME_NOT_IMPORTED))
    assert not unused, f"declared in [project] dependencies but imported nowhere in l2d_obs/: {unused}"


def test_every_extra_is_used(extras):
    used = imported_distributions(third_party_imports(REPO / "l2d_obs") + third_party_imports(REPO / "tests"))
    unused = {extra: sorted(names - used - set(TOOLS)) for extra, names in extras.items()}
    assert not any(unused.values()), f"extras naming packages nothing imports: {unused}"


def test_every_third_party_import_is_declared(runtime, extras):
    problems = []
    any_extra = set().union(*extras.values())
    for root, allowed_lazily in (("l2d_obs", runtime | extras.get("train", set())), ("tests", runtime | any_extra)):
        for imp in third_party_imports(REPO / root):
            if imp.module in UNDECLARED_OK or imp.fallback:
                continue
            dists = distributions_of(imp.module)
            where = f"{imp.path}:{imp.line} imports {imp.module}"
            if not dists:
                problems.append(f"{where}, which no installed distribution provides")
            elif root == "l2d_obs" and not imp.lazy and not dists & runtime:
                problems.append(f"{where} at module level, but {sorted(dists)} is not a runtime dependency")
            elif not dists & allowed_lazily:
                problems.append(f"{where}, but {sorted(dists)} is not declared")
    assert not problems, "\n".join(problems)


def test_the_allow_lists_are_not_stale(runtime, extras):
    used = imported_distributions(third_party_imports(REPO / "l2d_obs"))
    for name in RUNTIME_NOT_IMPORTED:
        assert name in runtime and name not in used, f"{name}: drop it from RUNTIME_NOT_IMPORTED"
    for name in TOOLS:
        assert any(name in names for names in extras.values()), f"{name}: drop it from TOOLS"
    modules = {imp.module for root in ("l2d_obs", "tests") for imp in third_party_imports(REPO / root)}
    for module in UNDECLARED_OK:
        assert module in modules, f"{module}: drop it from UNDECLARED_OK"


def test_pip_check_is_clean():
    r = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
