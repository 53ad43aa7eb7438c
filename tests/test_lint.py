"""The strict gates run with the tests: ruff (lint and format) and mypy --strict on the package."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_ruff_lint() -> None:
    result = run("ruff", "check", "mcp_host", "tests", "bench", "plugins")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format() -> None:
    result = run("ruff", "format", "--check", "mcp_host", "tests", "bench", "plugins")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict() -> None:
    result = run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_on_the_bundled_plugins() -> None:
    # Each plugin folder is checked on its own: they are separate top-level packages to mypy.
    for folder in sorted(path for path in (ROOT / "plugins").iterdir() if (path / "__init__.py").is_file()):
        result = run("mypy", "--strict", str(folder.relative_to(ROOT)))
        assert result.returncode == 0, result.stdout + result.stderr
