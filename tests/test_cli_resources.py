"""`mcp-host resources | read | prompts | prompt`, run as a user runs them, against server-everything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import everything_command, write_config
from tests.test_cli import mcp_host

ARCHITECTURE = "demo://resource/static/document/architecture.md"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(
        tmp_path / "mcp.json",
        {
            "everything": {"command": everything_command(), "args": ["stdio"]},
            "broken": {"command": "no-such-server-binary"},
        },
    )


def test_resources(config: Path) -> None:
    table = mcp_host(config, "resources", "everything")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["server", "uri", "name", "type", "description"]
    assert any(line.split()[:2] == ["everything", ARCHITECTURE] for line in lines)  # never cut, even in a pipe
    assert any("demo://resource/dynamic/text/{resourceId}" in line for line in lines)
    listing = json.loads(mcp_host(config, "resources", "--json").stdout)
    architecture = next(entry for entry in listing if entry.get("uri") == ARCHITECTURE)
    assert architecture["server"] == "everything" and architecture["kind"] == "resource"
    assert any(entry["kind"] == "template" for entry in listing)
    every = mcp_host(config, "resources")  # every ready server; the others are noted
    assert every.returncode == 0 and "server broken is failed" in every.stderr


def test_read_text_json_and_binary(config: Path, tmp_path: Path) -> None:
    text = mcp_host(config, "read", "everything", ARCHITECTURE)
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith("# Everything Server – Architecture") and "[Project Structure]" in text.stdout
    as_json = json.loads(mcp_host(config, "read", "everything", ARCHITECTURE, "--json").stdout)
    assert as_json["contents"][0]["uri"] == ARCHITECTURE and as_json["contents"][0]["mimeType"] == "text/markdown"

    blob = "demo://resource/dynamic/blob/1"
    noted = mcp_host(config, "read", "everything", blob)
    assert noted.returncode == 0 and noted.stdout == ""
    assert "[binary resource demo://resource/dynamic/blob/1" in noted.stderr and "--output FILE" in noted.stderr
    target = tmp_path / "blob.bin"
    written = mcp_host(config, "read", "everything", blob, "--output", str(target))
    assert written.returncode == 0, written.stderr
    assert target.read_bytes().startswith(b"Resource 1:") and f"wrote {target.stat().st_size} bytes" in written.stderr


def test_prompts_and_prompt(config: Path) -> None:
    table = mcp_host(config, "prompts", "everything")
    assert table.returncode == 0, table.stderr
    assert any(
        line.split()[:4] == ["everything", "args-prompt", "city", "state?"] for line in table.stdout.splitlines()
    )
    listing = {entry["name"]: entry for entry in json.loads(mcp_host(config, "prompts", "--json").stdout)}
    assert {"simple-prompt", "args-prompt", "completable-prompt"} <= set(listing)
    assert [a["name"] for a in listing["args-prompt"]["arguments"]] == ["city", "state"]

    got = mcp_host(config, "prompt", "everything", "args-prompt", "city=Paris", "state=TX")
    assert got.returncode == 0, got.stderr
    assert got.stdout.splitlines()[0] == "user" and "Paris, TX" in got.stdout
    as_json = json.loads(mcp_host(config, "prompt", "everything", "args-prompt", "city=Paris", "--json").stdout)
    assert as_json["messages"][0]["role"] == "user" and "Paris" in as_json["messages"][0]["text"]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("resources", "nowhere"), 2, "'nowhere' is not a configured server"),
        (("read", "nowhere", "x://y"), 2, "'nowhere' is not a configured server"),
        (("prompt", "everything", "args-prompt", "city"), 2, "prompt arguments are ARG=VALUE"),
        (("read", "broken", "x://y"), 1, "server 'broken' is failed"),
        (("prompts", "broken"), 1, "server 'broken' is failed"),
        (("read", "everything", "demo://nothing"), 1, "everything: reading demo://nothing failed"),
        (("prompt", "everything", "no-such-prompt"), 1, "everything: prompt no-such-prompt failed"),
    ],
)
def test_errors(config: Path, args: tuple[str, ...], code: int, message: str) -> None:
    result = mcp_host(config, *args)
    assert result.returncode == code, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
