"""Published servers: `mcp-server-time` (PyPI) and `@modelcontextprotocol/server-everything` (npm)."""

from __future__ import annotations

import json

import pytest

from mcp_host.config.mcpjson import McpConfig, RemoteServerConfig, StdioServerConfig
from mcp_host.servers import ServerManager, ServerState
from tests.conftest import everything_command, fast_settings, time_server_command

pytestmark = pytest.mark.anyio


async def test_mcp_server_time() -> None:
    config = McpConfig(servers={"time": StdioServerConfig(command=time_server_command(), env={"TZ": "UTC"})})
    async with ServerManager(fast_settings()) as manager:
        await manager.apply(config)
        await manager.wait_settled()
        assert manager.connection("time").state is ServerState.READY, manager.connection("time").error
        names = {spec.name for spec in manager.registry}
        assert {"time.get_current_time", "time.convert_time"} <= names
        result = await manager.call_tool("time.get_current_time", {"timezone": "Europe/Paris"})
        assert not result.is_error
        assert json.loads(result.text)["timezone"] == "Europe/Paris"
        bad = await manager.call_tool("time.get_current_time", {"timezone": "Mars/Olympus"})
        assert bad.is_error


async def test_server_everything_over_stdio() -> None:
    config = McpConfig(servers={"everything": StdioServerConfig(command=everything_command(), args=["stdio"])})
    async with ServerManager(fast_settings(connect_timeout_s=30)) as manager:
        await manager.apply(config)
        await manager.wait_settled()
        connection = manager.connection("everything")
        assert connection.state is ServerState.READY, connection.error
        specs = {spec.tool: spec for spec in manager.registry.server_tools("everything")}
        assert "echo" in specs and "get-sum" in specs
        result = await manager.call_tool("everything.echo", {"message": "hello"})
        assert "hello" in result.text
        total = await manager.call_tool("everything.get-sum", {"a": 2, "b": 3})
        assert "5" in total.text


async def test_server_everything_over_streamable_http(everything_http: str) -> None:
    config = McpConfig(servers={"everything": RemoteServerConfig(url=everything_http)})
    async with ServerManager(fast_settings(connect_timeout_s=30)) as manager:
        await manager.apply(config)
        await manager.wait_settled()
        connection = manager.connection("everything")
        assert connection.state is ServerState.READY, connection.error
        assert connection.status().transport == "http"
        result = await manager.call_tool("everything.echo", {"message": "over http"})
        assert "over http" in result.text
