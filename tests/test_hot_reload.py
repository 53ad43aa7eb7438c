"""The host follows edits of a real mcp.json while it runs."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from mcp_host.errors import ConfigError, ConfigSchemaError, ConfigSyntaxError
from mcp_host.host import Host
from mcp_host.servers import ConfigDiff, ServerState
from tests.conftest import fixture_entry, pid_alive, write_config

pytestmark = pytest.mark.anyio


async def pid_of(host: Host, server: str) -> int:
    return int((await host.call_tool(f"{server}.pid", {})).text)


async def test_edits_are_applied_as_a_difference(tmp_path: Path) -> None:
    path = write_config(
        tmp_path / "mcp.json", {"keep": fixture_entry(), "drop": fixture_entry(), "change": fixture_entry()}
    )
    send, receive = anyio.create_memory_object_stream[ConfigDiff | ConfigError](10)
    settings_path = tmp_path / "settings.toml"
    async with send, receive, Host(path, settings_path=settings_path, watch=True, on_reload=send.send_nowait) as host:
        await host.wait_settled()
        await anyio.sleep(0.5)  # let the watcher start before the first edit
        pids = {name: await pid_of(host, name) for name in ("keep", "drop", "change")}

        write_config(
            path, {"keep": fixture_entry(), "change": fixture_entry(env={"NEW": "1"}), "added": fixture_entry()}
        )
        with anyio.fail_after(15):
            diff = await receive.receive()
        assert diff == ConfigDiff(added=("added",), removed=("drop",), changed=("change",), unchanged=("keep",))
        await host.wait_settled()
        assert {s.name: s.state for s in host.statuses()} == {
            "added": ServerState.READY,
            "change": ServerState.READY,
            "keep": ServerState.READY,
        }
        assert await pid_of(host, "keep") == pids["keep"]  # untouched
        assert await pid_of(host, "change") != pids["change"]  # restarted
        assert (await host.call_tool("change.env", {"name": "NEW"})).text == "1"
        assert not pid_alive(pids["drop"])  # stopped
        assert "drop.echo" not in host.registry and "added.echo" in host.registry

        path.write_text('{"mcpServers": {"keep": ')
        with anyio.fail_after(15):
            error = await receive.receive()
        assert isinstance(error, ConfigSyntaxError) and str(path) in str(error)
        assert host.last_config_error is error
        assert await pid_of(host, "keep") == pids["keep"]  # the last good config keeps running
        assert len(host.statuses()) == 3

        path.write_text(
            json.dumps({"mcpServers": {"keep": fixture_entry(), "off": {**fixture_entry(), "disabled": True}}})
        )
        with anyio.fail_after(15):
            diff = await receive.receive()
        assert diff.removed == ("added", "change") and diff.unchanged == ("keep",) and not diff.added
        assert host.last_config_error is None


async def test_a_hostile_file_is_reported_and_the_host_runs_on(tmp_path: Path) -> None:
    # Each of these made the loader raise what the watcher did not catch, failing the host's task group (and with
    # it `mcp-host serve`): a number over Python's 4300 digits (ValueError), a value nested 900 deep (RecursionError).
    path = write_config(tmp_path / "mcp.json", {"keep": fixture_entry()})
    send, receive = anyio.create_memory_object_stream[ConfigDiff | ConfigError](10)
    settings_path = tmp_path / "settings.toml"
    async with send, receive, Host(path, settings_path=settings_path, watch=True, on_reload=send.send_nowait) as host:
        await host.wait_settled()
        await anyio.sleep(0.5)  # let the watcher start before the first edit
        keep = await pid_of(host, "keep")
        hostile = {
            '{"mcpServers": {"keep": {"command": "x", "timeout": ' + "1" * 5000 + "}}}": ConfigSyntaxError,
            '{"mcpServers": {"keep": {"command": "x", "env": ' + '{"a": ' * 900 + "1" + "}" * 900 + "}}}": (
                ConfigSchemaError
            ),
        }
        for text, raised in hostile.items():
            path.write_text(text)
            with anyio.fail_after(15):
                error = await receive.receive()
            assert isinstance(error, raised) and str(path) in str(error) and "1111" not in str(error)
            assert host.last_config_error is error
            assert await pid_of(host, "keep") == keep  # the last good config keeps running

        write_config(path, {"keep": fixture_entry(), "added": fixture_entry()})
        with anyio.fail_after(15):
            diff = await receive.receive()
        assert diff == ConfigDiff(added=("added",), unchanged=("keep",))
        assert host.last_config_error is None and await pid_of(host, "keep") == keep
