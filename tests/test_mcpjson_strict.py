"""mcp.json strictness that helps: typos are warned about by name, wrong types refused, `timeout` bounds the start."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from mcp_host.config import load_config, parse_config
from mcp_host.errors import ConfigSchemaError
from mcp_host.servers import ServerManager, ServerState
from tests.conftest import fast_settings, fixture_entry, write_config


def parse(servers: dict[str, Any]) -> Any:
    return parse_config(json.dumps({"mcpServers": servers}), path=Path("/cfg/mcp.json"), environ={})


def test_a_misspelt_key_is_a_warning_naming_file_server_key_and_the_likely_key() -> None:
    config = parse({"fs": {"command": "npx", "disabeld": True}})
    assert config.servers["fs"].disabled is False  # ignored, as LM Studio would: but the user is told
    assert config.warnings == (
        """/cfg/mcp.json: server 'fs', key 'disabeld': unknown key, ignored (did you mean "disabled"?)""",
    )


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        ({"command": "npx", "Timeout": 5000}, "key 'Timeout': unknown key, ignored (did you mean \"timeout\"?)"),
        ({"command": "npx", "arg": ["x"]}, 'did you mean "args"?'),
        ({"url": "https://h/mcp", "header": {}}, 'did you mean "headers"?'),
        ({"command": "npx", "headers": {}}, "only remote servers (with 'url') use it"),
        ({"url": "https://h/mcp", "env": {}}, "only stdio servers (with 'command') use it"),
        ({"url": "https://h/mcp", "zzz": 1}, "known keys: auth, disabled, headers, roots, timeout, type, url"),
    ],
)
def test_every_unknown_key_gets_a_useful_hint(entry: dict[str, Any], fragment: str) -> None:
    (warning,) = parse({"s": entry}).warnings
    assert warning.startswith("/cfg/mcp.json: server 's', key ") and fragment in warning


def test_known_keys_and_cursors_stdio_type_are_not_warned_about() -> None:
    entry = {"command": "x", "args": [], "env": {}, "cwd": None, "timeout": 1, "disabled": False, "type": "stdio"}
    remote = {"url": "https://h/mcp", "headers": {}, "type": "http", "timeout": 1, "disabled": True}
    assert parse({"a": entry, "b": remote}).warnings == ()


def test_load_config_logs_the_warnings_parse_config_only_returns_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_config(tmp_path / "mcp.json", {"fs": {"command": "npx", "disabeld": True}})
    with caplog.at_level(logging.WARNING, logger="mcp_host.config.mcpjson"):
        parse_config(path.read_text(), path=path)
        assert not caplog.records
        config = load_config(path)
    assert [record.getMessage() for record in caplog.records] == list(config.warnings)
    assert str(path) in config.warnings[0] and "'fs'" in config.warnings[0]


@pytest.mark.parametrize(
    ("entry", "key", "fragment"),
    [
        ({"command": "x", "disabled": "yes"}, "disabled", "valid boolean (got a string)"),
        ({"command": "x", "disabled": 1}, "disabled", "valid boolean (got a number)"),
        ({"command": "x", "timeout": "100"}, "timeout", "valid integer (got a string)"),
        ({"command": "x", "timeout": True}, "timeout", "valid integer (got a boolean)"),
        ({"command": "x", "args": "--flag"}, "args", "valid list (got a string)"),
        ({"command": "x", "args": ["a", 2]}, "args.1", "valid string (got a number)"),
        ({"command": "x", "env": ["K=v"]}, "env", "valid dictionary (got a list)"),
        ({"command": "x", "env": {"K": None}}, "env.K", "valid string (got null)"),
        ({"command": 5}, "command", "valid string (got a number)"),
        ({"command": "x", "cwd": 1}, "cwd", "valid string (got a number)"),
        ({"url": "https://h/mcp", "headers": "Bearer x"}, "headers", "valid dictionary (got a string)"),
        ({"url": "https://h/mcp", "type": "websocket"}, "type", "Input should be"),
        ({"command": "x", "type": "sse"}, "type", "Input should be 'stdio'"),
    ],
)
def test_wrong_types_are_errors_naming_file_server_and_key(entry: dict[str, Any], key: str, fragment: str) -> None:
    with pytest.raises(ConfigSchemaError) as caught:
        parse({"srv": entry})
    assert (caught.value.server, caught.value.key) == ("srv", key)
    message = str(caught.value)
    assert message.startswith(f"/cfg/mcp.json: server 'srv', key '{key}': ") and fragment in message


def test_a_wrong_type_never_shows_the_strings_text() -> None:
    with pytest.raises(ConfigSchemaError) as caught:
        parse({"srv": {"command": "x", "env": "API_KEY=sk-secret"}})
    assert "sk-secret" not in str(caught.value)


@pytest.mark.anyio
async def test_a_servers_timeout_bounds_its_start_too(tmp_path: Path) -> None:
    path = write_config(tmp_path / "mcp.json", {"slow": fixture_entry("--behaviour", "hang", timeout=1500)})
    config = load_config(path)
    async with ServerManager(fast_settings(connect_timeout_s=60.0, restart_attempts=0)) as manager:
        started = time.monotonic()
        await manager.apply(config)
        await manager.wait_settled()
        elapsed = time.monotonic() - started
        status = manager.connection("slow").status()
    assert status.state is ServerState.FAILED and status.error is not None
    assert "did not answer within 1.5s (its 'timeout' in mcp.json)" in status.error
    assert elapsed < 10  # not the 60 s of the settings; loose, so a loaded machine cannot fail it
