"""mcp.json loading: LM Studio's keys, variable expansion, and errors that say where."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from mcp_host import Host, ServerState
from mcp_host.config import (
    HostSettings,
    RemoteServerConfig,
    StdioServerConfig,
    add_server,
    default_config_path,
    load_config,
    load_settings,
    parse_config,
)
from mcp_host.config.expand import UndefinedVariableError, expand_vars
from mcp_host.errors import ConfigSchemaError, ConfigSyntaxError
from tests.conftest import fixture_entry

LM_STUDIO_FILE = """{
  "mcpServers": {
    "time": {"command": "uvx", "args": ["mcp-server-time"], "env": {"TZ": "UTC"}, "timeout": 30000},
    "remote": {"url": "https://example.com/mcp", "headers": {"Authorization": "Bearer ${TOKEN}"}},
    "legacy": {"url": "http://127.0.0.1:9000/sse", "type": "sse"},
    "off": {"command": "npx", "args": ["-y", "some-server"], "disabled": true},
    "tools": {"command": "node", "args": ["server.js"], "cwd": "${HOME_DIR:-/tmp}", "somethingNew": 1}
  }
}
"""


def test_reads_lm_studio_format() -> None:
    config = parse_config(LM_STUDIO_FILE, path=Path("mcp.json"), environ={"TOKEN": "t0k"})
    time = config.servers["time"]
    assert isinstance(time, StdioServerConfig)
    assert (time.command, time.args, time.env, time.timeout_s) == ("uvx", ["mcp-server-time"], {"TZ": "UTC"}, 30.0)
    remote = config.servers["remote"]
    assert isinstance(remote, RemoteServerConfig)
    assert remote.headers == {"Authorization": "Bearer t0k"} and remote.transport == "http"
    assert config.servers["legacy"].transport == "sse"
    assert set(config.enabled) == {"time", "remote", "legacy", "tools"}
    tools = config.servers["tools"]
    assert isinstance(tools, StdioServerConfig) and tools.cwd == "/tmp"
    assert config.warnings == (
        "mcp.json: server 'tools', key 'somethingNew': unknown key, ignored (known keys: "
        "args, command, cwd, disabled, env, roots, timeout, type)",
    )


def test_expansion_rules() -> None:
    env = {"A": "1", "EMPTY": ""}
    assert expand_vars("${A}-${B:-two}-${EMPTY:-dflt}-$A-${", env) == "1-two-dflt-$A-${"
    with pytest.raises(UndefinedVariableError):
        expand_vars("${MISSING}", env)


def test_undefined_variable_names_server_and_key() -> None:
    with pytest.raises(ConfigSchemaError) as caught:
        parse_config(LM_STUDIO_FILE, path=Path("/x/mcp.json"), environ={})
    message = str(caught.value)
    assert "/x/mcp.json" in message and "server 'remote'" in message and "headers.Authorization" in message
    assert "TOKEN" in message
    assert (caught.value.server, caught.value.key) == ("remote", "headers.Authorization")


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ('{\n  "mcpServers": {\n    "a": {"command": "x",}\n  }\n}', 3, 26),
        ('{"mcpServers": {}', 1, 18),
        ("", 1, 1),
    ],
)
def test_json_errors_name_file_line_and_column(tmp_path: Path, text: str, line: int, column: int) -> None:
    path = tmp_path / "mcp.json"
    path.write_text(text)
    with pytest.raises(ConfigSyntaxError) as caught:
        load_config(path)
    assert (caught.value.line, caught.value.column) == (line, column)
    assert str(caught.value).startswith(f"{path}:{line}:{column}: invalid JSON")


def test_json_nested_too_deeply_is_a_syntax_error_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    path.write_text('{"mcpServers": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(ConfigSyntaxError, match="nested too deeply"):
        load_config(path)


@pytest.mark.parametrize(
    ("servers", "server", "key", "fragment"),
    [
        ('{"a": {"command": "x", "args": "not-a-list"}}', "a", "args", "valid list"),
        ('{"a": {"command": "x", "url": "http://h"}}', "a", "command", "both"),
        ('{"a": {"args": []}}', "a", None, "needs 'command'"),
        ('{"a": {"url": "ftp://h"}}', "a", "url", "match pattern"),
        ('{"a": {"command": "x", "timeout": -5}}', "a", "timeout", "greater than 0"),
        ('{"a": {"command": "x", "env": {"K": 1}}}', "a", "env.K", "valid string (got 1)"),
        ('{"a": {"command": "x", "disabled": "yes"}}', "a", "disabled", "valid boolean (got a string)"),
        ('{"a": {"command": "x", "timeout": "100"}}', "a", "timeout", "valid integer (got a string)"),
        ('{"a": "npx server"}', "a", None, "must be an object"),
        ('["not", "servers"]', None, "mcpServers", "object of servers"),
    ],
)
def test_schema_errors_name_server_and_key(
    tmp_path: Path, servers: str, server: str | None, key: str | None, fragment: str
) -> None:
    path = tmp_path / "mcp.json"
    path.write_text(f'{{"mcpServers": {servers}}}')
    with pytest.raises(ConfigSchemaError) as caught:
        load_config(path)
    assert caught.value.server == server and caught.value.key == key
    assert fragment in str(caught.value) and str(path) in str(caught.value)


def test_missing_file_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigSchemaError, match="file not found"):
        load_config(tmp_path / "nope.json")


def test_no_file_at_lm_studios_path_means_no_servers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MCP_HOST_CONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    lmstudio = tmp_path / ".lmstudio" / "mcp.json"  # LM Studio writes it when a first server is added
    config = load_config(lmstudio)
    assert (config.servers, config.path, config.warnings) == ({}, lmstudio, ())
    with pytest.raises(ConfigSchemaError, match="file not found"):
        load_config(lmstudio, missing_ok=False)
    with pytest.raises(ConfigSchemaError, match="file not found"):
        load_config(tmp_path / "mine.json")  # a path someone named must exist
    assert load_config(tmp_path / "mine.json", missing_ok=True).servers == {}


@pytest.mark.anyio
async def test_a_host_without_mcp_json_starts_servers_added_later(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("MCP_HOST_CONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    async with Host(settings_path=tmp_path / "settings.toml", watch=True, plugins=False) as host:
        await host.wait_settled()
        assert host.statuses() == [] and len(host.registry) == 0
        await anyio.sleep(0.5)  # let the watcher start before the file appears
        add_server(default_config_path(), "fx", fixture_entry())
        with anyio.fail_after(20):
            while "fx.echo" not in host.registry:
                await anyio.sleep(0.1)
        assert [(status.name, status.state) for status in host.statuses()] == [("fx", ServerState.READY)]


def test_secrets_never_appear_in_repr() -> None:
    config = parse_config(
        '{"mcpServers": {"a": {"command": "x", "env": {"API_KEY": "sk-secret"}},'
        ' "b": {"url": "https://h/mcp", "headers": {"Authorization": "Bearer sk-other"}}}}',
        path=Path("mcp.json"),
    )
    text = repr(config) + str(config)
    assert "sk-secret" not in text and "sk-other" not in text
    assert "API_KEY" in text and "Authorization" in text


def test_default_path_and_its_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MCP_HOST_CONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_config_path() == tmp_path / ".lmstudio" / "mcp.json"
    monkeypatch.setenv("MCP_HOST_CONFIG", str(tmp_path / "other.json"))
    assert default_config_path() == tmp_path / "other.json"


def test_settings_are_read_with_sections_of_later_versions(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    assert load_settings(path) == HostSettings()
    assert not path.exists()  # the defaults, and no file written
    path.write_text("[servers]\ncall_timeout_s = 5\n\n[future]\nflag = true\n")
    settings = load_settings(path)
    assert settings.servers.call_timeout_s == 5


def test_settings_errors(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text("[servers]\ncall_timeout_s = \n")
    with pytest.raises(ConfigSyntaxError) as caught:
        load_settings(path)
    assert caught.value.line == 2
    path.write_text("[servers]\ncall_timeout_s = -1\n")
    with pytest.raises(ConfigSchemaError, match="servers.call_timeout_s"):
        load_settings(path)
