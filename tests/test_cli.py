"""`mcp-host servers | tools | call`, run as a user runs them: a real process on a real mcp.json."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, fixture_entry, write_config


def mcp_host(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mcp_host.cli",
            "--config",
            str(config),
            "--settings",
            str(config.parent / "s.toml"),
            *args,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(
        tmp_path / "mcp.json",
        {
            "fx": fixture_entry(),
            "broken": {"command": "no-such-server-binary"},
            "off": {**fixture_entry(), "disabled": True},
        },
    )


def test_servers_json(config: Path) -> None:
    result = mcp_host(config, "servers", "--json")
    assert result.returncode == 0, result.stderr
    servers = {entry["name"]: entry for entry in json.loads(result.stdout)}
    assert set(servers) == {"fx", "broken", "off"}
    assert (servers["off"]["state"], servers["off"]["error"]) == ("stopped", "disabled in mcp.json")
    assert servers["fx"]["state"] == "ready" and servers["fx"]["tools"] >= 10 and servers["fx"]["transport"] == "stdio"
    assert servers["broken"]["state"] == "failed" and "not found on PATH" in servers["broken"]["error"]


def test_servers_table(config: Path) -> None:
    result = mcp_host(config, "servers")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["server", "state", "transport", "tools", "error"]
    assert any(line.split()[:3] == ["fx", "ready", "stdio"] for line in lines)
    assert any(line.split()[:2] == ["broken", "failed"] for line in lines)


def test_tools(config: Path) -> None:
    listing = mcp_host(config, "tools")
    assert listing.returncode == 0
    assert any(
        line.split()[:2] == ["fx.add", "mcp:fx"] and "Add two integers." in line for line in listing.stdout.splitlines()
    )
    assert "server broken is failed" in listing.stderr
    tools = {tool["name"]: tool for tool in json.loads(mcp_host(config, "tools", "--json").stdout)}
    assert tools["fx.add"]["identifier"] == "fx__add"
    assert tools["fx.add"]["input_schema"]["properties"]["b"]["default"] == 2


def test_call(config: Path) -> None:
    ok = mcp_host(config, "call", "fx.add", '{"a": 2, "b": 3}')
    assert (ok.returncode, ok.stdout.strip()) == (0, "5")
    as_json = json.loads(mcp_host(config, "call", "fx.echo", '{"text": "hi"}', "--json").stdout)
    assert as_json["is_error"] is False and as_json["content"] == [{"type": "text", "text": "hi"}]
    tool_error = mcp_host(config, "call", "fx.fail", '{"message": "boom"}')
    assert tool_error.returncode == 1 and "tool error" in tool_error.stderr


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("call", "fx.add", "{not json"), 2, "arguments are not valid JSON"),
        (("call", "fx.add", "[1, 2]"), 2, "must be a JSON object"),
        (("call", "nowhere.tool"), 2, "names no configured server"),
        (("call", "fx.missing"), 1, "no tool named 'fx.missing'"),
        (("call", "broken.x"), 1, "server 'broken' is failed"),
        (("call", "fx.sleep", '{"seconds": 30}', "--timeout", "0.5"), 1, "did not answer within 0.5s"),
    ],
)
def test_call_errors(config: Path, args: tuple[str, ...], code: int, message: str) -> None:
    result = mcp_host(config, *args)
    assert result.returncode == code, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_broken_config_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    path.write_text('{"mcpServers": {\n  "a": {"command": "x"\n}')
    result = mcp_host(path, "servers")
    assert result.returncode == 2
    assert f"error: {path}:3:2: invalid JSON" in result.stderr
    assert "Traceback" not in result.stderr


def test_render_shows_the_exact_prompt_and_what_each_part_costs(config: Path) -> None:
    result = mcp_host(config, "render", "--message", "What is 2+3?", "--reasoning", "high", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["prompt"].startswith("<|start|>system<|message|>")
    assert "Reasoning: high" in document["prompt"] and "type fx__add = " in document["prompt"]
    assert document["prompt"].endswith("<|start|>user<|message|>What is 2+3?<|end|><|start|>assistant")
    parts = {part["label"]: part["tokens"] for part in document["parts"]}
    assert set(parts) == {"system", "tools: fx", "history"}
    assert sum(parts.values()) == document["tokens"] and document["warning"] is None

    table = mcp_host(config, "render", "--browser", "--context", "1000")
    assert "namespace browser {" in table.stdout
    assert any(line.split()[:2] == ["built-in", "tools"] for line in table.stdout.splitlines())
    assert "warning: tools take" in table.stderr and "biggest: fx" in table.stderr
