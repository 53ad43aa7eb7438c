"""The README's library examples are complete programs on the public API, and run as written (with the
demo model standing in for gpt-oss)."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import mcp_host
from mcp_host.backends import demo_model

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), re.DOTALL)


def test_the_readme_has_complete_library_examples() -> None:
    assert len(EXAMPLES) >= 4
    for example in EXAMPLES:
        tree = ast.parse(example)
        assert isinstance(tree.body[0], ast.Import | ast.ImportFrom), example  # imports first
        mains = [node for node in tree.body if isinstance(node, ast.AsyncFunctionDef) and node.name == "main"]
        assert len(mains) == 1, example
        assert ast.unparse(tree.body[-1]) == "anyio.run(main)", example  # complete programs, not fragments


@pytest.mark.parametrize("index", range(len(EXAMPLES)))
def test_a_readme_example_uses_the_public_api_only(index: int) -> None:
    """Everything of ours comes from `mcp_host` itself: the README is the public API."""
    for node in ast.walk(ast.parse(EXAMPLES[index])):
        if isinstance(node, ast.Import):
            assert not [alias.name for alias in node.names if alias.name.startswith("mcp_host")], EXAMPLES[index]
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.module.startswith("mcp_host"):
            assert node.module == "mcp_host", f"from {node.module} import ...: import it from mcp_host"
            for alias in node.names:
                assert alias.name in mcp_host.__all__, f"{alias.name} is not exported by mcp_host"


@pytest.mark.slow
@pytest.mark.timeout(300)  # the chat example runs the demo model on the CPU: over a minute on a busy machine
@pytest.mark.parametrize("index", range(len(EXAMPLES)))
def test_a_readme_example_runs(index: int, tmp_path: Path) -> None:
    model = demo_model()
    assert model is not None
    env = {
        **os.environ,
        "MODEL": str(model.path),
        "HOME": str(tmp_path),  # no settings, audit log or history of the user's
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    script = tmp_path / "example.py"
    script.write_text(EXAMPLES[index], encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=280, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Warning" not in done.stderr, done.stderr[-3000:]
