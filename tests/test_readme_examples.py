"""The README's library examples run as written (with the demo model standing in for gpt-oss)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mcp_host.backends import demo_model

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), re.DOTALL)


def test_the_readme_has_complete_library_examples() -> None:
    assert len(EXAMPLES) >= 3
    for example in EXAMPLES:
        assert "anyio.run(main)" in example  # complete programs, not fragments


@pytest.mark.slow
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
        [sys.executable, str(script)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=110, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
