"""The mcp.json editor's API on a real uvicorn server over a real Host: read, check, save, apply live."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream

from mcp_host.api import create_app
from mcp_host.backends import ReplayBackend
from mcp_host.config.settings import ApiSettings, HostSettings
from mcp_host.errors import ConfigError
from mcp_host.host import Host
from mcp_host.servers import ConfigDiff, ServerState
from tests.conftest import fixture_entry, pid_alive, serve_app, write_config

pytestmark = pytest.mark.anyio

CONFIG = "/v1/config/mcp.json"


@dataclass
class Editor:
    url: str
    host: Host
    path: Path
    reloads: MemoryObjectReceiveStream[ConfigDiff | ConfigError]  # what the watcher of mcp.json applied


@pytest.fixture
async def editor(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Editor]:
    """A watching host over `fx` (mcp.json 0600 in a 0750 folder) and the API; `request.param`: config_editor."""
    folder = tmp_path / "lmstudio"
    folder.mkdir()
    folder.chmod(0o750)
    path = write_config(folder / "mcp.json", {"fx": fixture_entry()})
    path.chmod(0o600)
    settings = HostSettings(api=ApiSettings(config_editor=getattr(request, "param", True)))
    send, receive = anyio.create_memory_object_stream[ConfigDiff | ConfigError](10)
    host = Host(
        path, settings=settings, settings_path=tmp_path / "settings.toml", watch=True, on_reload=send.send_nowait
    )
    async with send, receive, host:
        await host.wait_settled()
        async with serve_app(create_app(host, ReplayBackend([], name="replay"))) as url:
            yield Editor(url, host, path, receive)


def mcp_host_servers(config: Path) -> subprocess.CompletedProcess[str]:
    """`mcp-host --config CONFIG servers`, a real process."""
    command = [sys.executable, "-m", "mcp_host.cli", "--config", str(config), "servers"]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def sha256(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def document(servers: dict[str, Any]) -> str:
    return json.dumps({"mcpServers": servers}, indent=2) + "\n"


async def tool_names(http: httpx2.AsyncClient) -> set[str]:
    return {tool["name"] for tool in (await http.get("/v1/tools")).json()["data"]}


def pids(host: Host) -> dict[str, int | None]:
    return {status.name: status.pid for status in host.statuses()}


async def test_get_answers_the_file_as_it_is_with_its_version(editor: Editor) -> None:
    async with httpx2.AsyncClient(base_url=editor.url, timeout=30) as http:
        answer = await http.get(CONFIG)
    raw = editor.path.read_bytes()
    assert answer.json() == {"path": str(editor.path), "text": raw.decode(), "version": sha256(raw), "exists": True}
    assert answer.headers["cache-control"] == "no-store"


async def test_validate_places_a_json_error_at_its_line_and_column(editor: Editor) -> None:
    text = '{\n  "mcpServers": {\n    "fx": {"command": "python",}\n  }\n}\n'
    async with httpx2.AsyncClient(base_url=editor.url, timeout=30) as http:
        checked = (await http.post(f"{CONFIG}/validate", json={"text": text})).json()
    assert checked["ok"] is False and checked["warnings"] == []
    [error] = checked["errors"]
    column = text.splitlines()[2].index(",}") + 2  # the `}` after the trailing comma
    assert (error["line"], error["column"]) == (3, column)
    expected = "invalid JSON: Expecting property name enclosed in double quotes"
    assert error["message"] == f"{editor.path}:3:{column}: {expected}"
    assert error["server"] is None and error["key"] is None


async def test_validate_names_server_key_and_line_as_the_cli_does(editor: Editor, tmp_path: Path) -> None:
    text = document({"fx": fixture_entry(), "bad": {**fixture_entry(), "timeout": "100", "env": {"TOKEN": "s3cret"}}})
    async with httpx2.AsyncClient(base_url=editor.url, timeout=30) as http:
        checked = (await http.post(f"{CONFIG}/validate", json={"text": text})).json()
    [error] = checked["errors"]
    assert (error["server"], error["key"]) == ("bad", "timeout")
    lines = text.splitlines()
    assert lines[error["line"] - 1].strip() == '"timeout": "100",'
    assert lines[error["line"] - 1][error["column"] - 1 :].startswith('"timeout"')
    assert "s3cret" not in json.dumps(checked)

    # The same text as a file: `mcp-host servers` says the same thing of it.
    copy = tmp_path / "copy.json"
    copy.write_text(text)
    shown = await anyio.to_thread.run_sync(lambda: mcp_host_servers(copy))
    assert shown.returncode == 2
    assert shown.stderr.strip() == "error: " + error["message"].replace(str(editor.path), str(copy))


async def test_validate_warns_of_unknown_keys_and_unset_variables(editor: Editor) -> None:
    variable = "MCP_HOST_TEST_EDITOR_UNSET"
    assert variable not in os.environ
    text = document({"fx": {**fixture_entry(), "enviroment": {}, "env": {"KEY": f"${{{variable}}}"}}})
    async with httpx2.AsyncClient(base_url=editor.url, timeout=30) as http:
        checked = (await http.post(f"{CONFIG}/validate", json={"text": text})).json()
    assert checked["ok"] is True and checked["errors"] == []
    unknown, unset = checked["warnings"]
    assert (unknown["server"], unknown["key"]) == ("fx", "enviroment") and "unknown key" in unknown["message"]
    assert text.splitlines()[unknown["line"] - 1].strip().startswith('"enviroment"')
    assert (unset["server"], unset["key"]) == ("fx", "env.KEY") and variable in unset["message"]
    assert text.splitlines()[unset["line"] - 1].strip().startswith('"KEY"')


async def test_an_invalid_or_stale_save_writes_nothing(editor: Editor) -> None:
    before = editor.path.read_bytes()
    async with httpx2.AsyncClient(base_url=editor.url, timeout=30) as http:
        version = (await http.get(CONFIG)).json()["version"]
        invalid = await http.put(CONFIG, json={"text": document({"fx": {"command": ""}}), "version": version})
        assert invalid.status_code == 422
        body = invalid.json()
        assert body["error"]["code"] == "invalid_config" and body["ok"] is False
        assert body["errors"][0]["server"] == "fx" and body["errors"][0]["key"] == "command"
        assert editor.path.read_bytes() == before

        good = document({"fx": fixture_entry(), "fx2": fixture_entry()})
        for stale in ("", sha256(b"an older file")):
            refused = await http.put(CONFIG, json={"text": good, "version": stale})
            assert refused.status_code == 409 and refused.json()["error"]["code"] == "stale_version"
        # Someone saved the file in another editor after this copy was read.
        write_config(editor.path, {"fx": fixture_entry(), "theirs": fixture_entry()})
        theirs = editor.path.read_bytes()
        refused = await http.put(CONFIG, json={"text": good, "version": version})
        assert refused.status_code == 409
        assert editor.path.read_bytes() == theirs

        malformed = await http.put(CONFIG, json={"text": good, "version": "latest"})
        assert malformed.status_code == 400 and malformed.json()["error"]["param"] == "version"


async def test_a_save_applies_live_and_the_watcher_finds_nothing_more(editor: Editor) -> None:
    host, folder_mode = editor.host, stat.S_IMODE(editor.path.parent.stat().st_mode)
    await anyio.sleep(0.5)  # the watcher of mcp.json has no readiness signal; its own tests wait the same
    async with httpx2.AsyncClient(base_url=editor.url, timeout=30) as http:
        version = (await http.get(CONFIG)).json()["version"]
        fx_pid = pids(host)["fx"]
        text = document({"fx": fixture_entry(), "fx2": fixture_entry()})
        saved = await http.put(CONFIG, json={"text": text, "version": version})
        assert saved.status_code == 200, saved.text
        body = saved.json()
        assert body["applied"] == {"added": ["fx2"], "removed": [], "changed": [], "unchanged": ["fx"]}
        assert body["errors"] == [] and body["version"] == sha256(text.encode())
        assert editor.path.read_text() == text
        assert stat.S_IMODE(editor.path.stat().st_mode) == 0o600
        assert stat.S_IMODE(editor.path.parent.stat().st_mode) == folder_mode

        with anyio.fail_after(30):
            await host.wait_settled()
        assert {s.name: s.state for s in host.statuses()} == {"fx": ServerState.READY, "fx2": ServerState.READY}
        assert {"fx.echo", "fx2.echo"} <= await tool_names(http)
        started = pids(host)

        with anyio.fail_after(15):
            watched = await editor.reloads.receive()  # the watcher saw the same file
        assert isinstance(watched, ConfigDiff) and not watched and watched.unchanged == ("fx", "fx2")
        assert pids(host) == started and started["fx"] == fx_pid  # nobody restarted

        removed = await http.put(CONFIG, json={"text": document({"fx": fixture_entry()}), "version": body["version"]})
        assert removed.status_code == 200
        assert removed.json()["applied"] == {"added": [], "removed": ["fx2"], "changed": [], "unchanged": ["fx"]}
        assert [s.name for s in host.statuses()] == ["fx"]
        assert started["fx2"] is not None and not pid_alive(started["fx2"])
        assert "fx2.echo" not in await tool_names(http)
        with anyio.fail_after(15):
            watched = await editor.reloads.receive()
        assert isinstance(watched, ConfigDiff) and not watched
        assert stat.S_IMODE(editor.path.stat().st_mode) == 0o600


async def test_a_linked_mcp_json_is_not_replaced(editor: Editor, tmp_path: Path) -> None:
    target = tmp_path / "dotfiles-mcp.json"
    target.write_bytes(editor.path.read_bytes())
    editor.path.unlink()
    editor.path.symlink_to(target)
    async with httpx2.AsyncClient(base_url=editor.url, timeout=30) as http:
        version = (await http.get(CONFIG)).json()["version"]  # read through the link, as the host reads it
        refused = await http.put(CONFIG, json={"text": document({}), "version": version})
    error = refused.json()["error"]
    assert (
        refused.status_code == 409 and error["code"] == "symlinked_config"
    )  # not `stale_version`: rereading won't help
    assert "symbolic link" in error["message"] and f"edit the file it points to, {target}" in error["message"]
    assert editor.path.is_symlink() and sha256(target.read_bytes()) == version


async def test_a_save_not_applied_names_the_unset_variable_once(editor: Editor) -> None:
    variable = "MCP_HOST_TEST_EDITOR_UNSET"
    assert variable not in os.environ
    text = document({"fx": fixture_entry(), "later": {**fixture_entry(), "env": {"KEY": f"${{{variable}}}"}}})
    async with httpx2.AsyncClient(base_url=editor.url, timeout=30) as http:
        version = (await http.get(CONFIG)).json()["version"]
        saved = await http.put(CONFIG, json={"text": text, "version": version})
    assert saved.status_code == 200, saved.text
    body = saved.json()
    assert body["applied"] is None and editor.path.read_text() == text
    [error] = body["errors"]
    assert (error["server"], error["key"]) == ("later", "env.KEY") and variable in error["message"]
    assert body["warnings"] == []  # the same problem, not said again as a warning
    assert [status.name for status in editor.host.statuses()] == ["fx"]  # the last good config runs on


async def test_the_worst_texts_answer_a_few_short_problems(editor: Editor) -> None:
    # The reviewer's: a server each with an unknown key (29 s at 45 KiB), here 1 MiB; a header name of many dots
    # (22 s and 2.5 GB at 87 KiB), here 20 KiB: should it ever turn quadratic again, this test must not take the
    # machine's memory. Both at 1 MiB, their work counted and bounded, are in tests/test_config.py.
    unknown = {f"s{i}": {"command": "c", "zz": 1} for i in range(28_000)}
    dotted = {"s": {"url": "https://x", "headers": {"a." * 10_000: 1}}}
    async with httpx2.AsyncClient(base_url=editor.url, timeout=30) as http:
        texts = [json.dumps({"mcpServers": servers}) for servers in (unknown, dotted)]
        assert 1000 * 1024 < len(texts[0]) <= 1024 * 1024
        answers = [await http.post(f"{CONFIG}/validate", json={"text": text}) for text in texts]
        assert (await http.get("/v1/tools")).status_code == 200  # the rest of the API answers
    assert [answer.status_code for answer in answers] == [200, 200]
    assert all(len(answer.content) < 64 * 1024 for answer in answers)
    warnings = answers[0].json()["warnings"]
    assert len(warnings) == 51 and all(warning["line"] == 1 for warning in warnings[:50])
    assert warnings[-1]["message"] == f"{editor.path}: and 27950 more unknown keys, ignored"
    [error] = answers[1].json()["errors"]
    assert error["key"].endswith("… (20008 characters)") and len(error["message"]) < 400
    assert error["line"] == 1 and texts[1][error["column"] - 1 :].startswith('"a.a.')


async def test_a_text_over_a_mebibyte_is_a_413(editor: Editor) -> None:
    before = editor.path.read_bytes()
    huge = document({"fx": {**fixture_entry(), "note": "x" * (2 * 1024 * 1024)}})
    async with httpx2.AsyncClient(base_url=editor.url, timeout=30) as http:
        version = (await http.get(CONFIG)).json()["version"]
        assert (await http.put(CONFIG, json={"text": huge, "version": version})).status_code == 413
        assert (await http.post(f"{CONFIG}/validate", json={"text": huge})).status_code == 413
    assert editor.path.read_bytes() == before


async def test_a_web_page_cannot_save(editor: Editor) -> None:
    before = editor.path.read_bytes()
    async with httpx2.AsyncClient(base_url=editor.url, timeout=30) as http:
        version = (await http.get(CONFIG)).json()["version"]
        text = document({"evil": {"command": "sh", "args": ["-c", "touch /tmp/owned"]}})
        refused = await http.put(
            CONFIG, json={"text": text, "version": version}, headers={"Origin": "https://evil.example"}
        )
        # Refused as the editor refuses every other page: `--cors-origin` would not open it.
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "cross_origin_refused"
    assert editor.path.read_bytes() == before


@pytest.mark.parametrize("editor", [False], indirect=True)
async def test_the_editor_can_be_turned_off(editor: Editor) -> None:
    before = editor.path.read_bytes()
    async with httpx2.AsyncClient(base_url=editor.url, timeout=30) as http:
        answers = [
            await http.get(CONFIG),
            await http.post(f"{CONFIG}/validate", json={"text": "{}"}),
            await http.put(CONFIG, json={"text": document({}), "version": sha256(before)}),
        ]
    for answer in answers:
        assert answer.status_code == 403
        assert "[api] config_editor = true" in answer.json()["error"]["message"]
    assert editor.path.read_bytes() == before


async def test_lm_studios_missing_file_is_created_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MCP_HOST_CONFIG", raising=False)
    path = tmp_path / "home" / ".lmstudio" / "mcp.json"
    async with Host(settings=HostSettings(), settings_path=tmp_path / "settings.toml") as host:
        async with serve_app(create_app(host, ReplayBackend([], name="replay"))) as url:
            async with httpx2.AsyncClient(base_url=url, timeout=30) as http:
                got = (await http.get(CONFIG)).json()
                assert got == {"path": str(path), "text": "", "version": "", "exists": False}
                text = document({"fx": fixture_entry()})
                saved = await http.put(CONFIG, json={"text": text, "version": ""})
                assert saved.status_code == 200 and saved.json()["applied"]["added"] == ["fx"]
                assert stat.S_IMODE(path.stat().st_mode) == 0o600
                assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
                with anyio.fail_after(30):
                    await host.wait_settled()
                assert "fx.echo" in await tool_names(http)
