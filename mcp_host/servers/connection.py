"""One live connection to one MCP server: start, list tools, serve calls, restart after a crash.

    connection = Connection("time", config, settings.servers, registry)
    tg.start_soon(connection.run)          # runs until connection.stop()
    await connection.wait_settled()        # ready, or failed with a reason
    result = await connection.call_tool("get_current_time", {"timezone": "UTC"})

A connection never raises out of `run()` for anything the server does: every failure
becomes the `failed` state with a reason the user can read, and the other servers and
the host carry on.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
import httpx2
import mcp_types
from mcp import Client
from mcp.client.session import IncomingMessage
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.client.subscriptions import ListenNotSupportedError, SubscriptionLost
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from mcp_host._version import __version__
from mcp_host.config.mcpjson import RemoteServerConfig, ServerConfig
from mcp_host.config.settings import ServerSettings
from mcp_host.errors import ServerNotReadyError, ServerStartError, ToolCallError
from mcp_host.servers.describe import describe_exception, find_exception, leaf_exceptions
from mcp_host.servers.state import ServerState, ServerStatus
from mcp_host.servers.stdio import CommandNotFoundError, StdioLaunch, StdioTransport
from mcp_host.tools.registry import ToolRegistry
from mcp_host.tools.spec import ToolResult, ToolSpec

logger = logging.getLogger(__name__)

CLIENT_INFO = mcp_types.Implementation(name="mcp-host", version=__version__)
# A server that keeps paginating is cut off here rather than listed forever.
MAX_TOOL_PAGES = 1000
# Remote servers give no exit signal, so a ping at this interval notices one that went away.
REMOTE_PING_INTERVAL_S = 30.0

StateListener = Callable[["Connection"], None]


class _ServerClosed(Exception):
    """The server went away after it was ready."""


class Connection:
    """A connection to the server `name`, driven by `run()` inside the manager's task group."""

    def __init__(
        self,
        name: str,
        config: ServerConfig,
        settings: ServerSettings,
        registry: ToolRegistry,
        *,
        on_state_change: StateListener | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.settings = settings
        self.registry = registry
        self._on_state_change = on_state_change
        self._state = ServerState.STARTING
        self._error: str | None = None
        self._restarts = 0
        self._client: Client | None = None
        self._transport_label: str = config.transport
        self._stdio: StdioTransport | None = None
        self._scope: anyio.CancelScope | None = None
        self._stop_requested = False
        self._settled = anyio.Event()
        self._finished = anyio.Event()
        self._refresh = anyio.Event()

    def __repr__(self) -> str:
        return f"<Connection {self.name!r} {self._state.value}>"

    # -- what the user sees -------------------------------------------------------------

    @property
    def state(self) -> ServerState:
        return self._state

    @property
    def error(self) -> str | None:
        return self._error

    @property
    def connect_timeout_s(self) -> float:
        # mcp.json's `timeout` is the user's bound for this server: on its start as on each request.
        timeout_s = self.config.timeout_s
        return self.settings.connect_timeout_s if timeout_s is None else timeout_s

    @property
    def call_timeout_s(self) -> float:
        return self.config.timeout_s or self.settings.call_timeout_s

    def status(self) -> ServerStatus:
        client = self._client
        info = client.server_info if client is not None and self._state is ServerState.READY else None
        return ServerStatus(
            name=self.name,
            state=self._state,
            transport=self._transport_label,
            tools=len(self.registry.server_tools(self.name)),
            error=self._error,
            restarts=self._restarts,
            protocol_version=client.protocol_version if info is not None and client is not None else None,
            server_name=info.name if info else None,
            server_version=info.version if info else None,
            pid=self._stdio.pid if self._stdio is not None and self._state is ServerState.READY else None,
        )

    async def wait_settled(self) -> None:
        """Wait until the first start attempt ended: `ready`, `failed` or `stopped`."""
        await self._settled.wait()

    async def wait_finished(self) -> None:
        """Wait until `run()` returned (after `stop()`, or after the last restart failed)."""
        await self._finished.wait()

    def _set_state(self, state: ServerState, error: str | None = None) -> None:
        self._state, self._error = state, error
        if state is not ServerState.STARTING:
            self._settled.set()
        if error:
            logger.warning("server %r %s: %s", self.name, state.value, error)
        else:
            logger.info("server %r %s", self.name, state.value)
        if self._on_state_change is not None:
            self._on_state_change(self)

    # -- lifecycle ------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, serve, and restart with bounded exponential backoff; return when stopped or given up."""
        failures = 0
        try:
            with anyio.CancelScope() as self._scope:
                if self._stop_requested:
                    return
                while True:
                    started = time.monotonic()
                    retry, reason = await self._run_once()
                    self._client = None
                    self.registry.remove_server(self.name)
                    if time.monotonic() - started >= self.settings.stable_after_s:
                        failures = 0
                    failures += 1
                    if not retry or failures > self.settings.restart_attempts:
                        gave_up = f" (gave up after {failures} attempts)" if retry and failures > 1 else ""
                        self._set_state(ServerState.FAILED, reason + gave_up)
                        return
                    delay = min(
                        self.settings.restart_backoff_s * 2 ** (failures - 1), self.settings.restart_backoff_max_s
                    )
                    self._set_state(ServerState.FAILED, f"{reason}; restarting in {delay:g}s")
                    await anyio.sleep(delay)
                    self._restarts += 1
                    self._set_state(ServerState.STARTING)
        finally:
            self._client = None
            self.registry.remove_server(self.name)
            if self._stop_requested:
                self._set_state(ServerState.STOPPED, None)
            self._settled.set()
            self._finished.set()

    def stop(self) -> None:
        """Ask `run()` to end: the server is shut down (stdin closed, then terminated, then killed)."""
        self._stop_requested = True
        if self._scope is not None:
            self._scope.cancel()

    async def aclose(self) -> None:
        """Stop and wait until the server process is gone. Idempotent."""
        self.stop()
        if self._scope is not None:
            await self._finished.wait()

    async def _run_once(self) -> tuple[bool, str]:
        """One connection attempt, served until the server goes away; returns (worth retrying, reason)."""
        deadline = anyio.current_time() + self.connect_timeout_s
        ready = False
        try:
            with anyio.CancelScope(deadline=deadline) as scope:
                async with self._open_client() as client:
                    await self._list_tools(client)
                    scope.deadline = math.inf
                    self._client = client
                    ready = True
                    self._set_state(ServerState.READY)
                    await self._serve(client)
            if scope.cancelled_caught and not ready:
                source = "its 'timeout' in mcp.json" if self.config.timeout is not None else "connect_timeout_s"
                return True, self._explain(f"did not answer within {self.connect_timeout_s:g}s ({source})")
            return True, self._explain("closed the connection")
        except CommandNotFoundError as exc:
            return False, str(exc)
        except Exception as exc:  # noqa: BLE001 - a server's failure of any kind is its state, never the host's crash
            if (closed := find_exception(exc, _ServerClosed)) is not None:
                return True, self._explain(str(closed))
            prefix = "failed while running" if ready else "failed to start"
            return True, self._explain(f"{prefix}: {describe_exception(exc)}")

    def _explain(self, what: str) -> str:
        """Add what the process said: exit code, stderr tail, garbage on stdout."""
        parts = [what]
        stdio = self._stdio
        if stdio is not None:
            if stdio.returncode is not None and stdio.exited.is_set():
                parts.append(f"exit code {stdio.returncode}")
            if stdio.noise_lines:
                parts.append(f"{stdio.noise_lines} non-JSON-RPC line(s) on stdout, last: {stdio.noise_tail[-1]!r}")
            if stdio.stderr_tail:
                parts.append("stderr: " + " | ".join(list(stdio.stderr_tail)[-5:]))
        return "; ".join(parts)

    @asynccontextmanager
    async def _open_client(self) -> AsyncIterator[Client]:
        config = self.config
        kwargs: dict[str, Any] = {
            "mode": self.settings.protocol,
            "client_info": CLIENT_INFO,
            "message_handler": self._on_message,
        }
        if isinstance(config, RemoteServerConfig):
            async with self._open_remote(config, kwargs) as client:
                yield client
            return
        self._stdio = StdioTransport(
            StdioLaunch(config.command, config.args, config.env, config.cwd),
            stderr_lines=self.settings.stderr_lines,
        )
        async with Client(self._stdio, **kwargs) as client:
            yield client

    @asynccontextmanager
    async def _open_remote(self, config: RemoteServerConfig, kwargs: dict[str, Any]) -> AsyncIterator[Client]:
        async with AsyncExitStack() as stack:
            if config.transport == "sse":
                self._transport_label = "sse"
                client = await stack.enter_async_context(Client(self._sse(config), **kwargs))
            else:
                try:
                    http = await stack.enter_async_context(create_mcp_http_client(headers=dict(config.headers)))
                    client = await stack.enter_async_context(
                        Client(streamable_http_client(config.url, http_client=http), **kwargs)
                    )
                    self._transport_label = "http"
                except Exception as http_error:  # noqa: BLE001 - either transport may be the right one
                    if any(
                        isinstance(e, httpx2.ConnectError | httpx2.TimeoutException)
                        for e in leaf_exceptions(http_error)
                    ):
                        raise  # nothing answered there; SSE would not either
                    logger.info(
                        "server %r: streamable HTTP failed (%s); trying legacy SSE",
                        self.name,
                        describe_exception(http_error),
                    )
                    await stack.aclose()
                    try:
                        client = await stack.enter_async_context(Client(self._sse(config), **kwargs))
                    except Exception as sse_error:  # noqa: BLE001
                        raise ServerStartError(
                            f"{describe_exception(http_error)} "
                            f"(legacy SSE also failed: {describe_exception(sse_error)})",
                            server=self.name,
                        ) from http_error
                    self._transport_label = "sse (fallback)"
            yield client

    def _sse(self, config: RemoteServerConfig) -> Any:
        return sse_client(config.url, headers=dict(config.headers), timeout=self.connect_timeout_s)

    async def _serve(self, client: Client) -> None:
        """Keep the tool list current until the server goes away (returns) or fails (raises)."""
        async with anyio.create_task_group() as tg:
            if client.protocol_version in MODERN_PROTOCOL_VERSIONS:
                tg.start_soon(self._listen_for_changes, client)
            if self._stdio is not None:
                tg.start_soon(self._watch_exit, self._stdio)
            else:
                tg.start_soon(self._ping_forever, client)
            while True:
                await self._refresh.wait()
                self._refresh = anyio.Event()
                await self._list_tools(client)

    async def _watch_exit(self, stdio: StdioTransport) -> None:
        await stdio.exited.wait()
        raise _ServerClosed("exited" if stdio.returncode is not None else "closed its stdout")

    async def _ping_forever(self, client: Client) -> None:
        while True:
            await anyio.sleep(REMOTE_PING_INTERVAL_S)
            with anyio.fail_after(self.connect_timeout_s):
                await client.send_ping()

    async def _listen_for_changes(self, client: Client) -> None:
        """2026-07-28 servers announce changes on a `subscriptions/listen` stream."""
        try:
            async with client.listen(tools_list_changed=True) as subscription:
                async for _event in subscription:
                    self._refresh.set()
        except (ListenNotSupportedError, SubscriptionLost, MCPError) as exc:
            logger.info("server %r: no tools/list_changed stream (%s)", self.name, describe_exception(exc))

    async def _on_message(self, message: IncomingMessage) -> None:
        """2025-era servers announce changes with a notification on the session."""
        if isinstance(message, mcp_types.ToolListChangedNotification):
            self._refresh.set()
        elif isinstance(message, Exception):
            logger.debug("server %r sent something unreadable: %s", self.name, describe_exception(message))

    async def _list_tools(self, client: Client) -> None:
        tools: list[ToolSpec] = []
        cursor: str | None = None
        seen: set[str] = set()
        for _ in range(MAX_TOOL_PAGES):
            page = await client.list_tools(cursor=cursor, cache_mode="refresh")
            tools.extend(ToolSpec.from_mcp(self.name, tool) for tool in page.tools)
            cursor = page.next_cursor
            if cursor is None or cursor in seen:
                break
            seen.add(cursor)
        else:
            logger.warning("server %r: stopped listing tools after %d pages", self.name, MAX_TOOL_PAGES)
        self.registry.replace_server(self.name, tools)
        if self._on_state_change is not None and self._state is ServerState.READY:
            self._on_state_change(self)

    # -- calls ----------------------------------------------------------------------------

    async def call_tool(
        self, tool: str, arguments: dict[str, Any] | None, *, timeout_s: float | None = None
    ) -> ToolResult:
        """Call `tool` on this server.

        A protocol error from the server (unknown tool, invalid arguments) comes back as a
        `ToolResult` with `is_error=True`, since the model can correct itself. Raises
        `ServerNotReadyError` when the server is not ready and `ToolCallError` on timeout or
        when the connection fails during the call.
        """
        client = self._client
        qualified = f"{self.name}.{tool}"
        if client is None or self._state is not ServerState.READY:
            reason = f": {self._error}" if self._error else ""
            raise ServerNotReadyError(f"server {self.name!r} is {self._state.value}{reason}", server=self.name)
        limit = timeout_s or self.call_timeout_s
        try:
            with anyio.fail_after(limit):
                result = await client.call_tool(tool, arguments or {})
        except TimeoutError as exc:
            raise ToolCallError(f"{qualified} did not answer within {limit:g}s", tool=qualified) from exc
        except MCPError as exc:
            if exc.error.code == mcp_types.CONNECTION_CLOSED:
                raise ToolCallError(f"{qualified} failed: the server closed the connection", tool=qualified) from exc
            return ToolResult(
                content=[mcp_types.TextContent(text=f"error {exc.error.code}: {exc.error.message}")], is_error=True
            )
        except (httpx2.HTTPError, anyio.ClosedResourceError, anyio.BrokenResourceError, OSError) as exc:
            raise ToolCallError(f"{qualified} failed: {describe_exception(exc)}", tool=qualified) from exc
        return ToolResult.from_mcp(result)
