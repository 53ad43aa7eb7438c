"""One exception tree: every exception mcp_host defines lives in `mcp_host.errors`, under `McpHostError`,
is exported from `mcp_host`, and is drawn in the module docstring where the drawing matches the classes."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import sys
from types import ModuleType

import pytest

import mcp_host
from mcp_host import errors

# Modules that can only be imported on some platforms (none today: the MLX backend imports mlx lazily).
PLATFORM_ONLY: frozenset[str] = frozenset()


def _modules() -> list[ModuleType]:
    names = [info.name for info in pkgutil.walk_packages(mcp_host.__path__, "mcp_host.")]
    assert "mcp_host.errors" in names and len(names) > 20, names
    return [importlib.import_module(name) for name in sorted(names) if name not in PLATFORM_ONLY]


def _exceptions() -> dict[str, type[BaseException]]:
    """Every public exception class defined anywhere in the package, by name.

    Private classes (`_ServerClosed`) are signals inside one module and never reach a caller.
    """
    found: dict[str, type[BaseException]] = {}
    for module in _modules():
        for name, value in vars(module).items():
            if (
                isinstance(value, type)
                and issubclass(value, BaseException)
                and value.__module__.startswith("mcp_host")
                and not name.startswith("_")
            ):
                assert found.setdefault(value.__name__, value) is value, f"two exceptions named {value.__name__}"
    return found


def _drawing() -> list[tuple[str, str | None]]:
    """(class, parent) for each line of the tree in `errors.py`'s docstring, parent None for the root."""
    doc = errors.__doc__
    assert doc is not None
    lines = doc.splitlines()
    start = lines.index("    McpHostError")
    edges: list[tuple[str, str | None]] = []
    parents: list[str] = []
    for line in lines[start:]:
        if not line.strip():
            break
        name_at = len(line) - len(line.lstrip(" │├└─"))
        name = line[name_at:].split()[0]
        depth, rest = divmod(name_at - 4, 4)
        assert rest == 0 and depth <= len(parents), f"misdrawn line: {line!r}"
        del parents[depth:]
        edges.append((name, parents[-1] if parents else None))
        parents.append(name)
    return edges


def test_the_drawing_is_parsed() -> None:
    edges = dict(_drawing())
    assert edges["McpHostError"] is None
    assert edges["ConfigSyntaxError"] == "ConfigError" and edges["ConfigError"] == "McpHostError"


def test_every_exception_is_in_the_tree_exported_and_drawn() -> None:
    drawn = {name for name, _ in _drawing()}
    found = _exceptions()
    assert len(found) >= len(drawn)
    for name, cls in found.items():
        assert issubclass(cls, errors.McpHostError), f"{cls.__module__}.{name} is not an McpHostError"
        assert cls.__module__ == "mcp_host.errors", f"{name} is defined in {cls.__module__}, not mcp_host.errors"
        assert getattr(mcp_host, name, None) is cls and name in mcp_host.__all__, f"{name} is not exported"
        assert name in drawn, f"{name} is missing from the drawing in mcp_host/errors.py"


@pytest.mark.parametrize(("name", "parent"), _drawing())
def test_the_drawing_matches_the_classes(name: str, parent: str | None) -> None:
    cls = getattr(errors, name)
    assert isinstance(cls, type) and cls.__module__ == "mcp_host.errors", name
    expected = Exception if parent is None else getattr(errors, parent)
    assert cls.__bases__ == (expected,), f"{name} derives from {cls.__bases__}, drawn under {parent}"


def test_errors_imports_only_the_standard_library() -> None:
    # Everything imports errors.py: it stays free of web frameworks and engines.
    assert errors.__file__ is not None
    with open(errors.__file__, encoding="utf-8") as source:
        tree = ast.parse(source.read())
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    } | {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert imported - {"__future__"} <= sys.stdlib_module_names, imported
