"""Writing mcp.json: `add_server` and `mcp-host config add`."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from mcp_host.cli import main
from mcp_host.config import add_server, load_config
from mcp_host.errors import ConfigSchemaError, ConfigSyntaxError

EXISTING = """{
  "mcpServers": {
    "time": {
      "command": "uvx",
      "args": [
        "mcp-server-time"
      ],
      "lmstudioOnly": {
        "keep": true
      }
    }
  },
  "otherTopLevel": 1
}
"""


def test_add_keeps_unknown_keys_order_and_two_space_layout(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    path.write_text(EXISTING)
    add_server(path, "fs", {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"]})
    text = path.read_text()
    time_block = EXISTING[EXISTING.index('    "time"') : EXISTING.index('\n  },\n  "otherTopLevel"')]
    assert time_block in text
    document = json.loads(text)
    assert list(document["mcpServers"]) == ["time", "fs"]
    assert document["mcpServers"]["time"]["lmstudioOnly"] == {"keep": True}
    assert document["otherTopLevel"] == 1
    assert '\n  "mcpServers": {\n    "time": {\n      "command"' in text
    assert text.endswith("}\n")
    assert set(load_config(path).servers) == {"time", "fs"}
    assert [p.name for p in tmp_path.iterdir()] == ["mcp.json"]  # no temporary files left behind


def test_add_creates_the_file(tmp_path: Path) -> None:
    path = tmp_path / "new" / "mcp.json"
    add_server(path, "remote", {"url": "https://example.com/mcp", "headers": {"Authorization": "Bearer ${T}"}})
    assert json.loads(path.read_text()) == {
        "mcpServers": {"remote": {"url": "https://example.com/mcp", "headers": {"Authorization": "Bearer ${T}"}}}
    }
    assert path.stat().st_mode & 0o777 == 0o600  # its headers and env hold secrets
    assert path.parent.stat().st_mode & 0o777 == 0o700


def test_add_keeps_an_existing_files_mode(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    path.write_text(EXISTING)
    path.chmod(0o640)
    add_server(path, "fs", {"command": "npx"})
    assert path.stat().st_mode & 0o777 == 0o640


def test_add_keeps_keys_the_host_does_not_know_typos_included(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    original = {
        "mcpServers": {"fs": {"command": "npx", "disabeld": True, "lmstudio": {"pinned": 1}}},
        "globalShortcut": "Ctrl+M",
    }
    path.write_text(json.dumps(original))
    add_server(path, "time", {"command": "uvx"})
    document = json.loads(path.read_text())
    assert document["mcpServers"]["fs"] == original["mcpServers"]["fs"]
    assert document["globalShortcut"] == "Ctrl+M"
    assert any('"disabled"' in warning for warning in load_config(path).warnings)  # still warned about


def test_add_refuses_duplicates_broken_files_and_invalid_entries(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    path.write_text(EXISTING)
    with pytest.raises(ConfigSchemaError, match="already exists"):
        add_server(path, "time", {"command": "x"})
    with pytest.raises(ConfigSchemaError, match="server 'bad'"):
        add_server(path, "bad", {"url": "not a url"})
    assert path.read_text() == EXISTING
    add_server(path, "time", {"command": "mcp-server-time"}, replace=True)
    assert json.loads(path.read_text())["mcpServers"]["time"] == {"command": "mcp-server-time"}
    path.write_text('{"mcpServers": {')
    with pytest.raises(ConfigSyntaxError):
        add_server(path, "x", {"command": "x"})
    assert path.read_text() == '{"mcpServers": {'


def config_add(path: Path, command_line: str) -> int:
    return main(["--config", str(path), "config", "add", *shlex.split(command_line)])


def test_cli_config_add_stdio_and_remote(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    assert config_add(path, "time --env TZ=UTC -- uvx mcp-server-time --local-timezone UTC") == 0
    header = "'Authorization=Bearer ${TOKEN}'"
    assert config_add(path, f"remote --url https://example.com/mcp --header {header} --timeout-ms 5000") == 0
    assert config_add(path, "old --url http://127.0.0.1:1/sse --sse") == 0
    servers = json.loads(path.read_text())["mcpServers"]
    assert servers["time"] == {
        "command": "uvx",
        "args": ["mcp-server-time", "--local-timezone", "UTC"],
        "env": {"TZ": "UTC"},
    }
    assert servers["remote"] == {
        "url": "https://example.com/mcp",
        "headers": {"Authorization": "Bearer ${TOKEN}"},
        "timeout": 5000,
    }
    assert servers["old"]["type"] == "sse"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["config", "add", "x"], "say how to reach the server"),
        (["config", "add", "x", "--url", "https://h/mcp", "--", "cmd"], "not both"),
        (["config", "add", "x", "--url", "https://h/mcp", "--header", "novalue"], "KEY=VALUE"),
        (["config", "add", "x", "--header", "a=b", "--", "cmd"], "for remote servers"),
    ],
)
def test_cli_config_add_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(["--config", str(tmp_path / "mcp.json"), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "mcp.json").exists()
