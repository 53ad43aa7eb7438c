"""Remote servers over Streamable HTTP and legacy SSE on 127.0.0.1, with headers."""

from __future__ import annotations

import pytest

from mcp_host.config.mcpjson import McpConfig, RemoteServerConfig
from mcp_host.servers import ServerManager, ServerState
from tests.conftest import fast_settings, free_port

pytestmark = pytest.mark.anyio


def remote(**servers: dict[str, object]) -> McpConfig:
    return McpConfig(servers={name: RemoteServerConfig.model_validate(entry) for name, entry in servers.items()})


async def test_streamable_http_with_headers(http_server: str) -> None:
    async with ServerManager(fast_settings()) as manager:
        await manager.apply(remote(web={"url": http_server, "headers": {"X-Api-Key": "k-123"}}))
        await manager.wait_settled()
        status = manager.connection("web").status()
        assert (status.state, status.transport) == (ServerState.READY, "http"), status.error
        assert (await manager.call_tool("web.header", {"name": "x-api-key"})).text == "k-123"
        assert (await manager.call_tool("web.add", {"a": 1, "b": 1})).text == "2"


async def test_legacy_sse_when_type_says_so(sse_server: str) -> None:
    async with ServerManager(fast_settings()) as manager:
        await manager.apply(remote(old={"url": sse_server, "type": "sse", "headers": {"X-Api-Key": "k-456"}}))
        await manager.wait_settled()
        status = manager.connection("old").status()
        assert (status.state, status.transport) == (ServerState.READY, "sse"), status.error
        assert (await manager.call_tool("old.header", {"name": "x-api-key"})).text == "k-456"


async def test_falls_back_to_sse_when_the_server_only_speaks_sse(sse_server: str) -> None:
    async with ServerManager(fast_settings()) as manager:
        await manager.apply(remote(old={"url": sse_server}))
        await manager.wait_settled()
        status = manager.connection("old").status()
        assert (status.state, status.transport) == (ServerState.READY, "sse (fallback)"), status.error
        assert (await manager.call_tool("old.echo", {"text": "via sse"})).text == "via sse"


async def test_nothing_listening_is_a_clear_failure(http_server: str) -> None:
    dead = f"http://127.0.0.1:{free_port()}/mcp"
    async with ServerManager(fast_settings(restart_attempts=0)) as manager:
        await manager.apply(remote(dead={"url": dead}, alive={"url": http_server}))
        await manager.wait_settled()
        statuses = {status.name: status for status in manager.statuses()}
    assert statuses["alive"].state is ServerState.READY
    assert statuses["dead"].state is ServerState.FAILED
    assert statuses["dead"].error is not None and f"cannot connect to {dead}" in statuses["dead"].error
