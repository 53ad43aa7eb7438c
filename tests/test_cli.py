"""`mcp-host servers | tools | call`, run as a user runs them: a real process on a real mcp.json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
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
    assert result.returncode == 1, result.stderr  # a server failed; every one is still printed
    servers = {entry["name"]: entry for entry in json.loads(result.stdout)}
    assert set(servers) == {"fx", "broken", "off"}
    assert (servers["off"]["state"], servers["off"]["error"]) == ("stopped", "disabled in mcp.json")
    assert servers["fx"]["state"] == "ready" and servers["fx"]["tools"] >= 10 and servers["fx"]["transport"] == "stdio"
    assert servers["broken"]["state"] == "failed" and "not found on PATH" in servers["broken"]["error"]


def test_servers_table(config: Path) -> None:
    result = mcp_host(config, "servers")
    assert result.returncode == 1, result.stderr
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


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mcp_host.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def test_servers_exits_0_when_none_failed(tmp_path: Path) -> None:
    config = write_config(tmp_path / "mcp.json", {"fx": fixture_entry(), "off": {**fixture_entry(), "disabled": True}})
    assert mcp_host(config, "servers").returncode == 0
    assert mcp_host(config, "servers", "--json").returncode == 0


def test_servers_wraps_a_long_error_whole(tmp_path: Path) -> None:
    folders = ":".join(f"/opt/a/rather/long/folder/number{index:02d}/bin" for index in range(8))
    config = write_config(tmp_path / "mcp.json", {"broken": {"command": "no-such-binary", "env": {"PATH": folders}}})
    message = f"command 'no-such-binary' not found on PATH (searched: {folders})"
    assert len(message) > 200
    result = run_cli("--config", str(config), "servers", env={**os.environ, "COLUMNS": "80"})
    assert result.returncode == 1, result.stderr
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
    # The error column is the last one: its lines, folded at 80 columns, hold the whole message.
    assert "".join(message.split()) in "".join(result.stdout.split())
    assert "…" not in result.stdout


def test_servers_does_not_wait_for_a_hanging_server_unless_asked(tmp_path: Path) -> None:
    config = write_config(tmp_path / "mcp.json", {"fx": fixture_entry(), "hang": fixture_entry("--behaviour", "hang")})
    (tmp_path / "s.toml").write_text("[servers]\nconnect_timeout_s = 20\n")
    started = time.monotonic()
    glance = mcp_host(config, "servers", "--json")
    assert time.monotonic() - started < 15, "waited for the hanging server"
    states = {entry["name"]: entry["state"] for entry in json.loads(glance.stdout)}
    assert states == {"fx": "ready", "hang": "starting"} and glance.returncode == 0
    table = mcp_host(config, "servers")
    assert "still starting after 5s (--wait waits for it)" in " ".join(table.stdout.split())

    (tmp_path / "s.toml").write_text("[servers]\nconnect_timeout_s = 2\n")
    waited = mcp_host(config, "servers", "--json", "--wait")
    assert waited.returncode == 1
    entries = {entry["name"]: entry for entry in json.loads(waited.stdout)}
    assert entries["hang"]["state"] == "failed" and "did not answer within 2s" in entries["hang"]["error"]


@pytest.mark.parametrize(
    "args",
    [
        ("servers", "--json", "--config", "{config}", "--settings", "{settings}", "-v"),
        ("--config", "{config}", "tools", "--json", "--no-plugins"),
        ("-v", "call", "fx.add", '{"a": 1}', "--config", "{config}"),
        ("render", "--json", "--settings", "{settings}", "--config", "{config}"),
        ("resources", "fx", "--config", "{config}", "--json"),
    ],
)
def test_global_options_go_before_or_after_the_command(tmp_path: Path, args: tuple[str, ...]) -> None:
    config = write_config(tmp_path / "mcp.json", {"fx": fixture_entry()})
    settings = tmp_path / "s.toml"
    result = run_cli(*(arg.replace("{config}", str(config)).replace("{settings}", str(settings)) for arg in args))
    assert result.returncode == 0, result.stderr
    assert "unrecognized arguments" not in result.stderr and "note: no MCP servers" not in result.stderr


def test_a_global_option_after_the_command_wins(tmp_path: Path) -> None:
    empty = write_config(tmp_path / "empty.json", {})
    config = write_config(tmp_path / "mcp.json", {"fx": fixture_entry()})
    result = run_cli("--config", str(empty), "servers", "--json", "--config", str(config))
    assert [entry["name"] for entry in json.loads(result.stdout)] == ["fx"]
    kept = run_cli("--config", str(config), "servers", "--json")  # not repeated after: the one before holds
    assert [entry["name"] for entry in json.loads(kept.stdout)] == ["fx"]
    assert "before or after the command" in run_cli("--help").stdout
    assert "global options" in run_cli("chat", "--help").stdout


@pytest.mark.parametrize(
    ("tool", "listed"),
    [
        ("fx.ad", "did you mean fx.add"),  # a typo: the closest names
        ("fx.nosuch", "server 'fx' has fx.add, fx.ask_name"),  # nothing close: the server's own tools
    ],
)
def test_an_unknown_tool_lists_the_closest_names(config: Path, tool: str, listed: str) -> None:
    result = mcp_host(config, "call", tool)
    assert result.returncode == 1
    assert f"no tool named {tool!r}; {listed}" in result.stderr


def test_commands_print_no_warnings(config: Path) -> None:
    for args in (("servers",), ("tools",), ("call", "fx.add", '{"a": 1}'), ("render",)):
        result = mcp_host(config, *args)
        assert "Warning" not in result.stderr, result.stderr


# The SDK's `send_ping` warns (MCPDeprecationWarning) each time the host pings a remote server, every
# 30 s; here every 0.3 s, while `servers --wait` waits for a server that never answers.
PINGING_OFTEN = (
    "import sys; import mcp_host.servers.connection as c; c.REMOTE_PING_INTERVAL_S = 0.3; "
    "from mcp_host.cli import main; sys.exit(main(sys.argv[1:]))"
)


def test_no_deprecation_warning_while_remote_servers_are_pinged(tmp_path: Path, http_server: str) -> None:
    config = write_config(
        tmp_path / "mcp.json", {"remote": {"url": http_server}, "hang": fixture_entry("--behaviour", "hang")}
    )
    settings = tmp_path / "s.toml"
    settings.write_text("[servers]\nconnect_timeout_s = 3\n")
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            PINGING_OFTEN,
            "--config",
            str(config),
            "--settings",
            str(settings),
            "servers",
            "--wait",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Warning" not in result.stderr, result.stderr
    assert "hang" in result.stdout and "remote" in result.stdout
