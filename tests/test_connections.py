"""Connections to real stdio servers: the SDK fixture, well-behaved and misbehaving."""

from __future__ import annotations

import os
import time
from pathlib import Path

import anyio
import pytest

from mcp_host.config.mcpjson import McpConfig, StdioServerConfig
from mcp_host.errors import ServerNotReadyError, ToolCallError
from mcp_host.servers import ServerManager, ServerState
from tests.conftest import fast_settings, fixture_entry, pid_alive

pytestmark = pytest.mark.anyio


def config_of(**servers: dict[str, object]) -> McpConfig:
    return McpConfig(servers={name: StdioServerConfig.model_validate(entry) for name, entry in servers.items()})


async def test_stdio_server_becomes_ready_and_answers_calls() -> None:
    async with ServerManager(fast_settings()) as manager:
        await manager.apply(config_of(fx=fixture_entry()))
        await manager.wait_settled()
        status = manager.connection("fx").status()
        assert status.state is ServerState.READY, status.error
        assert status.server_name == "fixture"
        result = await manager.call_tool("fx.add", {"a": 40})
        assert (result.text, result.is_error) == ("42", False)
        failing = await manager.call_tool("fx.fail", {"message": "nope"})
        assert failing.is_error


async def test_env_is_merged_over_the_users_environment_and_cwd_is_used(tmp_path: Path) -> None:
    os.environ["MCP_HOST_TEST_INHERITED"] = "from-user"
    try:
        entry = fixture_entry(env={"MCP_HOST_TEST_CONFIGURED": "from-config"}, cwd=str(tmp_path))
        async with ServerManager(fast_settings()) as manager:
            await manager.apply(config_of(fx=entry))
            await manager.wait_settled()
            configured = await manager.call_tool("fx.env", {"name": "MCP_HOST_TEST_CONFIGURED"})
            inherited = await manager.call_tool("fx.env", {"name": "MCP_HOST_TEST_INHERITED"})
            cwd = await manager.call_tool("fx.cwd", {})
    finally:
        del os.environ["MCP_HOST_TEST_INHERITED"]
    assert configured.text == "from-config"
    assert inherited.text == "from-user"
    assert Path(cwd.text).resolve() == tmp_path.resolve()


async def test_missing_command_is_a_clear_error_naming_the_path_searched() -> None:
    entry = {"command": "npx-that-does-not-exist", "env": {"PATH": "/nowhere:/also-nowhere"}}
    async with ServerManager(fast_settings()) as manager:
        await manager.apply(config_of(bad=entry))
        await manager.wait_settled()
        status = manager.connection("bad").status()
    assert status.state is ServerState.FAILED
    assert status.error is not None
    assert "'npx-that-does-not-exist' not found on PATH" in status.error
    assert "/nowhere:/also-nowhere" in status.error
    assert status.restarts == 0  # retrying cannot help


async def test_misbehaving_servers_fail_alone_and_never_delay_the_others() -> None:
    settings = fast_settings(connect_timeout_s=4.0, restart_attempts=0)
    config = config_of(
        good=fixture_entry(),
        exits=fixture_entry("--behaviour", "exit"),
        hangs=fixture_entry("--behaviour", "hang"),
        garbage=fixture_entry("--behaviour", "garbage"),
    )
    async with ServerManager(settings) as manager:
        started = time.monotonic()
        await manager.apply(config)
        await manager.wait_settled(["good"])
        good_ready_after = time.monotonic() - started
        assert manager.connection("good").state is ServerState.READY
        # The good server is usable while the hanging ones are still starting.
        assert (await manager.call_tool("good.echo", {"text": "hi"})).text == "hi"
        await manager.wait_settled()
        settled_after = time.monotonic() - started
        statuses = {status.name: status for status in manager.statuses()}

    assert good_ready_after < 4.0
    assert settled_after < 4.0 + 3.0  # each bounded by its own connect timeout
    exits = statuses["exits"]
    assert exits.state is ServerState.FAILED and exits.error is not None
    assert "exit code 3" in exits.error and "fatal: missing API key" in exits.error
    hangs = statuses["hangs"]
    assert hangs.state is ServerState.FAILED and hangs.error is not None
    assert "did not answer within 4s" in hangs.error
    garbage = statuses["garbage"]
    assert garbage.state is ServerState.FAILED and garbage.error is not None
    assert "non-JSON-RPC" in garbage.error and "Welcome to my server" in garbage.error


async def test_a_hanging_call_times_out_and_the_server_stays_usable() -> None:
    async with ServerManager(fast_settings()) as manager:
        await manager.apply(config_of(fx=fixture_entry()))
        await manager.wait_settled()
        started = time.monotonic()
        with pytest.raises(ToolCallError, match="did not answer within 0.5s"):
            await manager.call_tool("fx.sleep", {"seconds": 30}, timeout_s=0.5)
        assert time.monotonic() - started < 3
        assert (await manager.call_tool("fx.echo", {"text": "still here"})).text == "still here"


async def test_timeout_from_mcp_json_bounds_calls() -> None:
    # The same timeout bounds the start (tests/test_mcpjson_strict.py): long enough for a loaded machine.
    async with ServerManager(fast_settings()) as manager:
        await manager.apply(config_of(fx=fixture_entry(timeout=5000)))
        await manager.wait_settled()
        with pytest.raises(ToolCallError, match="within 5s"):
            await manager.call_tool("fx.sleep", {"seconds": 30})


async def test_a_thousand_tools_are_listed_across_pages() -> None:
    async with ServerManager(fast_settings()) as manager:
        await manager.apply(config_of(big=fixture_entry("--behaviour", "paginated", "--tools", "1000")))
        await manager.wait_settled()
        tools = manager.registry.server_tools("big")
        assert manager.connection("big").state is ServerState.READY
        assert len([spec for spec in tools if spec.tool.startswith("tool_")]) == 1000
        assert (await manager.call_tool("big.tool_0999", {"value": 1})).text == "1000"


@pytest.mark.parametrize("protocol", ["legacy", "auto"])
async def test_tools_list_changed_refreshes_the_registry_in_either_era(protocol: str) -> None:
    async with ServerManager(fast_settings(protocol=protocol)) as manager:
        await manager.apply(config_of(fx=fixture_entry()))
        await manager.wait_settled()
        status = manager.connection("fx").status()
        assert status.protocol_version == ("2025-11-25" if protocol == "legacy" else "2026-07-28")
        assert "fx.fresh" not in manager.registry
        await manager.call_tool("fx.grow", {"name": "fresh"})
        with anyio.fail_after(5):
            while "fx.fresh" not in manager.registry:
                await anyio.sleep(0.02)
        assert (await manager.call_tool("fx.fresh", {})).text == "I am fresh"


async def test_a_crashed_server_is_restarted_with_backoff() -> None:
    async with ServerManager(fast_settings(restart_backoff_s=0.3)) as manager:
        await manager.apply(config_of(fx=fixture_entry()))
        await manager.wait_settled()
        connection = manager.connection("fx")
        first_pid = int((await manager.call_tool("fx.pid", {})).text)
        with pytest.raises(ToolCallError):
            await manager.call_tool("fx.crash", {})
        with anyio.fail_after(10):
            while connection.state is ServerState.READY:
                await anyio.sleep(0.01)
            failed_error = connection.error
            while connection.state is not ServerState.READY:
                await anyio.sleep(0.02)
        assert failed_error is not None and "exit code 7" in failed_error and "restarting in 0.3s" in failed_error
        assert connection.status().restarts == 1
        second_pid = int((await manager.call_tool("fx.pid", {})).text)
        assert second_pid != first_pid


async def test_restarts_are_bounded() -> None:
    settings = fast_settings(restart_attempts=2, restart_backoff_s=0.1)
    async with ServerManager(settings) as manager:
        await manager.apply(config_of(exits=fixture_entry("--behaviour", "exit")))
        connection = manager.connection("exits")
        with anyio.fail_after(20):
            await connection.wait_finished()
        status = connection.status()
    assert status.state is ServerState.FAILED
    assert status.restarts == 2
    assert status.error is not None and "gave up after 3 attempts" in status.error


async def test_stopping_leaves_no_orphan_processes() -> None:
    async with ServerManager(fast_settings()) as manager:
        await manager.apply(config_of(fx=fixture_entry()))
        await manager.wait_settled()
        connection = manager.connection("fx")
        pid = int((await manager.call_tool("fx.pid", {})).text)
        child = int((await manager.call_tool("fx.spawn_child", {})).text)
        assert pid_alive(pid) and pid_alive(child)
    assert not pid_alive(pid)
    assert not pid_alive(child)  # its SIGTERM-proof child was killed with the process group
    assert connection.state is ServerState.STOPPED
    with pytest.raises(ServerNotReadyError, match="'fx' is stopped"):
        await connection.call_tool("echo", {"text": "x"})
