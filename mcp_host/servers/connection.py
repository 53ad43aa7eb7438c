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

import contextvars
import logging
import math
import os
import time
import warnings
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types
from mcp import Client
from mcp.client.session import ClientRequestContext, IncomingMessage
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.client.subscriptions import (
    ListenNotSupportedError,
    PromptsListChanged,
    ResourcesListChanged,
    ResourceUpdated,
    SubscriptionLost,
    ToolsListChanged,
)
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp_types import LOG_LEVEL_META_KEY
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import FileUrl, ValidationError

from mcp_host._version import __version__
from mcp_host.config.mcpjson import RemoteServerConfig, ServerConfig
from mcp_host.config.settings import ServerSettings
from mcp_host.errors import NeedsLoginError, ServerNotReadyError, ServerRequestError, ServerStartError, ToolCallError
from mcp_host.servers import features
from mcp_host.servers.asks import (
    PYTHON_LEVELS,
    SAMPLING_TOOL,
    NoOneToAsk,
    SamplingReply,
    ServerAsks,
    log_text,
    owner_of,
)
from mcp_host.servers.catalog import ToolCatalog
from mcp_host.servers.client_tasks import ClientTasks, TaskingClient
from mcp_host.servers.describe import describe_exception, find_exception, leaf_exceptions
from mcp_host.servers.oauth import auth_for
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
# What a server did that a user may want to see: ("resources" | "prompts" | "resource_updated", detail).
ChangeListener = Callable[["Connection", str, str], None]
# The server log messages a connection keeps for `mcp-host servers`, the API and the chat.
LOG_LINES = 200


def root_uri(path_or_uri: str) -> str:
    """A root as MCP wants it: a `file://` URI of an absolute path."""
    if path_or_uri.startswith("file://"):
        return path_or_uri
    return Path(path_or_uri).expanduser().resolve().as_uri()


# The answerer of the call running in this task (see `Connection._answerer`).
_CALL_ASKS: contextvars.ContextVar[ServerAsks | None] = contextvars.ContextVar("mcp_host_call_asks", default=None)
LOG_LINE_CHARS = 4000
LOG_BURST = 50  # a server's log lines reach Python's logging at most this many at once,
LOG_REFILL_PER_S = 5.0  # then this many a second (all of them still go to `Connection.logs`)


class _Ambiguous(NoOneToAsk):
    """Calls of several chats are in flight on a 2025-era server: its question could be anyone's."""

    async def elicit(self, server: str, params: mcp_types.ElicitRequestParams) -> mcp_types.ElicitResult:
        logger.warning("server %r asked for input while calls of several chats were in flight: declined", server)
        return mcp_types.ElicitResult(action="decline")

    async def sample(self, server: str, params: mcp_types.CreateMessageRequestParams) -> SamplingReply:
        return mcp_types.ErrorData(
            code=mcp_types.INVALID_REQUEST,
            message="sampling refused: calls of several chats are in flight and the request names none of them",
        )


_AMBIGUOUS = _Ambiguous()


class _Budget:
    """A token bucket: `take()` is true while the burst lasts, then `refill_per_s` times a second."""

    def __init__(self, burst: int, refill_per_s: float) -> None:
        self.burst, self.refill_per_s = burst, refill_per_s
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.refill_per_s)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


@contextmanager
def _handshake_era_feature() -> Iterator[None]:
    """Roots, logging and ping are deprecated for 2026-07-28 servers only; handshake-era servers still use them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MCPDeprecationWarning)
        yield


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
        asks: ServerAsks | None = None,
        on_change: ChangeListener | None = None,
        catalog: ToolCatalog | None = None,
        lazy: bool = False,
        deferred: bool = False,
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
        # Who answers the server's requests: the most recent call in flight, else the host's own.
        self._asks: ServerAsks = asks or NoOneToAsk()
        self._in_flight: list[ServerAsks] = []
        self._log_budget = _Budget(LOG_BURST, LOG_REFILL_PER_S)  # how many server log lines reach `logging`
        self._on_change = on_change
        self._roots = [root_uri(r) for r in (config.roots or [os.getcwd()])]
        self.log_level = settings.log_level
        self._subscriptions: set[str] = set()
        self._relisten = anyio.Event()
        self._tasks: ClientTasks | None = None  # what the server asked the host to run as tasks
        self.roots_served = 0  # how many times the server asked for the roots
        self.logs: deque[tuple[float, str, str]] = deque(maxlen=LOG_LINES)  # (time, level, text)
        self._state_changed = anyio.Event()  # set, and replaced, at every change of state
        self._wake = anyio.Event()  # a lazy server's first use; the end of a deferred start's wait
        self._listed = False  # this connection has listed the server's tools at least once
        self._catalog = catalog or ToolCatalog(None)
        entry = self._catalog.get(config)
        # Known: the catalog has its tools (offered at once, until the live listing replaces them) or knows
        # that its last first start failed. Either way nobody needs to wait for this server to know its tools.
        self.known_at_start = entry is not None
        self.lazy = lazy and entry is not None and not entry.failed and bool(entry.tools)
        self._known_failing = entry is not None and entry.failed
        # Deferred: known to the catalog, it starts when `release()` says (once the model is loaded, so the two do
        # not compete for the processor) or at its first use, whichever comes first.
        self._deferred = deferred and self.known_at_start
        if self.lazy:  # its tools come from the catalog; it starts when first used
            self._state = ServerState.IDLE
            self._settled.set()
        if entry is not None and entry.tools:
            cached = [replace(ToolSpec.from_mcp(name, tool), from_catalog=True) for tool in entry.tools]
            registry.replace_server(name, [spec for spec in cached if spec.tool != SAMPLING_TOOL])

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

    @property
    def tasks(self) -> list[mcp_types.Task]:
        """The tasks the server asked the host to run (sampling, elicitation) that it still holds."""
        return self._tasks.states if self._tasks is not None else []

    async def wait_settled(self) -> None:
        """Wait until the first start attempt ended: `ready`, `failed` or `stopped`."""
        await self._settled.wait()

    async def wait_tools_known(self, *, trust_failures: bool = True) -> None:
        """Wait until this server's tools are known: at once when the catalog knew them (or, `trust_failures`,
        that its last start failed), else until its first start ended."""
        if not self.known_at_start or (self._known_failing and not trust_failures):
            await self._settled.wait()

    async def wait_started(self) -> None:
        """Start a lazy or deferred server that waits; wait (up to the connect timeout) while it starts."""
        self._wake.set()
        with anyio.move_on_after(self.connect_timeout_s):
            while self._state in (ServerState.IDLE, ServerState.STARTING):
                await self._state_changed.wait()

    def start_now(self) -> None:
        """Start now, a lazy or deferred server included (a restart asked for by the user)."""
        self._wake.set()

    def release(self) -> None:
        """Let a deferred start begin; a lazy server goes on waiting for its first use."""
        if self._state is not ServerState.IDLE:
            self._wake.set()

    async def wait_finished(self) -> None:
        """Wait until `run()` returned (after `stop()`, or after the last restart failed)."""
        await self._finished.wait()

    def _set_state(self, state: ServerState, error: str | None = None) -> None:
        self._state, self._error = state, error
        self._state_changed.set()
        self._state_changed = anyio.Event()
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
                if self._state is ServerState.IDLE:
                    await self._wake.wait()
                    self._set_state(ServerState.STARTING)
                elif self._deferred:
                    await self._wake.wait()
                while True:
                    started = time.monotonic()
                    retry, reason = await self._run_once()
                    self._client = None
                    self.registry.remove_server(self.name)
                    if not self._listed:  # never came up: the next start need not wait for it
                        await anyio.to_thread.run_sync(self._catalog.remember_failure, self.config)
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
                    await self._ask_log_level(client, self.log_level)
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
            if (login := find_exception(exc, NeedsLoginError)) is not None:
                return False, str(login)  # retrying cannot help: the user has to log in
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
        # Tasks the server asks the host to run live as long as this session; the client closes first.
        async with ClientTasks(self.name) as tasks:
            self._tasks = tasks
            try:
                async with self._open_session(tasks) as client:
                    yield client
            finally:
                self._tasks = None

    @asynccontextmanager
    async def _open_session(self, tasks: ClientTasks) -> AsyncIterator[Client]:
        config = self.config
        kwargs: dict[str, Any] = {
            "tasks": tasks,
            "mode": self.settings.protocol,
            "client_info": CLIENT_INFO,
            "message_handler": self._on_message,
            "sampling_callback": self._on_sampling,
            "sampling_capabilities": mcp_types.SamplingCapability(tools=mcp_types.SamplingToolsCapability()),
            "elicitation_callback": self._on_elicitation,
            "list_roots_callback": self._on_list_roots,
            "logging_callback": self._on_log,
            "log_level": self.log_level,
        }
        if isinstance(config, RemoteServerConfig):
            async with self._open_remote(config, kwargs) as client:
                yield client
            return
        self._stdio = StdioTransport(
            StdioLaunch(config.command, config.args, config.env, config.cwd),
            stderr_lines=self.settings.stderr_lines,
        )
        async with TaskingClient(self._stdio, **kwargs) as client:
            yield client

    @asynccontextmanager
    async def _open_remote(self, config: RemoteServerConfig, kwargs: dict[str, Any]) -> AsyncIterator[Client]:
        # OAuth failures happen in the transports' background tasks, which swallow them: `auth.problem()`
        # is the real reason (a login needed, a 401), and a refusal is never retried over legacy SSE.
        auth = auth_for(self.name, config)
        async with AsyncExitStack() as stack:
            if config.transport == "sse":
                self._transport_label = "sse"
                try:
                    client = await stack.enter_async_context(TaskingClient(self._sse(config, auth), **kwargs))
                except Exception as sse_error:
                    if (problem := auth.problem()) is not None:
                        raise problem from sse_error
                    raise
            else:
                try:
                    http = await stack.enter_async_context(
                        create_mcp_http_client(headers=dict(config.headers), auth=auth)
                    )
                    client = await stack.enter_async_context(
                        TaskingClient(streamable_http_client(config.url, http_client=http), **kwargs)
                    )
                    self._transport_label = "http"
                except Exception as http_error:  # noqa: BLE001 - either transport may be the right one
                    if (problem := auth.problem()) is not None:
                        raise problem from http_error
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
                        client = await stack.enter_async_context(TaskingClient(self._sse(config, auth), **kwargs))
                    except Exception as sse_error:  # noqa: BLE001
                        raise ServerStartError(
                            f"{describe_exception(http_error)} "
                            f"(legacy SSE also failed: {describe_exception(sse_error)})",
                            server=self.name,
                        ) from http_error
                    self._transport_label = "sse (fallback)"
            try:
                yield client
            except Exception as error:  # listing tools can meet a 401/403 too
                if (problem := auth.problem()) is not None:
                    raise problem from error
                raise

    def _sse(self, config: RemoteServerConfig, auth: httpx2.Auth) -> Any:
        return sse_client(config.url, headers=dict(config.headers), timeout=self.connect_timeout_s, auth=auth)

    async def _serve(self, client: Client) -> None:
        """Keep the tool list current until the server goes away (returns) or fails (raises)."""
        async with anyio.create_task_group() as tg:
            if client.protocol_version in MODERN_PROTOCOL_VERSIONS:
                tg.start_soon(self._listen_for_changes, client)
            if self._stdio is not None:
                tg.start_soon(self._watch_exit, self._stdio)
            elif client.protocol_version not in MODERN_PROTOCOL_VERSIONS:  # 2026-07-28 has no ping: its stream tells
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
            with anyio.fail_after(self.connect_timeout_s), _handshake_era_feature():
                await client.send_ping()

    async def _listen_for_changes(self, client: Client) -> None:
        """2026-07-28 servers announce changes on a `subscriptions/listen` stream (re-opened on a new subscription)."""
        while True:
            relisten = self._relisten = anyio.Event()
            try:
                async with (
                    client.listen(
                        tools_list_changed=True,
                        prompts_list_changed=True,
                        resources_list_changed=True,
                        resource_subscriptions=sorted(self._subscriptions),
                    ) as subscription,
                    anyio.create_task_group() as tg,
                ):

                    async def reopen(
                        scope: anyio.CancelScope = tg.cancel_scope, wanted: anyio.Event = relisten
                    ) -> None:
                        await wanted.wait()
                        scope.cancel()

                    tg.start_soon(reopen)
                    async for event in subscription:
                        if isinstance(event, ToolsListChanged):
                            self._refresh.set()
                        elif isinstance(event, PromptsListChanged):
                            self._changed("prompts", "")
                        elif isinstance(event, ResourcesListChanged):
                            self._changed("resources", "")
                        elif isinstance(event, ResourceUpdated):
                            self._changed("resource_updated", event.uri)
                    tg.cancel_scope.cancel()
            except (ListenNotSupportedError, SubscriptionLost, MCPError) as exc:
                logger.info("server %r: no change notifications (%s)", self.name, describe_exception(exc))
                return
            if not relisten.is_set():
                return  # the server closed the stream

    async def _on_message(self, message: IncomingMessage) -> None:
        """2025-era servers announce changes with a notification on the session."""
        if isinstance(message, mcp_types.ToolListChangedNotification):
            self._refresh.set()
        elif isinstance(message, mcp_types.ResourceListChangedNotification):
            self._changed("resources", "")
        elif isinstance(message, mcp_types.PromptListChangedNotification):
            self._changed("prompts", "")
        elif isinstance(message, mcp_types.ResourceUpdatedNotification):
            self._changed("resource_updated", message.params.uri)
        elif isinstance(message, Exception):
            logger.debug("server %r sent something unreadable: %s", self.name, describe_exception(message))

    async def _list_tools(self, client: Client) -> None:
        tools: list[ToolSpec] = []
        offered: list[mcp_types.Tool] = []
        cursor: str | None = None
        seen: set[str] = set()
        for _ in range(MAX_TOOL_PAGES):
            page = await client.list_tools(cursor=cursor, cache_mode="refresh")
            for tool in page.tools:
                spec = ToolSpec.from_mcp(self.name, tool)
                if spec.tool == SAMPLING_TOOL:
                    logger.warning(
                        "server %r: a tool named %r is not offered (the name is sampling's)", self.name, spec.tool
                    )
                    continue
                if spec.task_support == "required" and not features.server_runs_tool_tasks(client):
                    logger.warning(
                        "server %r: %s runs only as a task, which it cannot run: not offered", *(self.name, spec.name)
                    )
                    continue
                tools.append(spec)
                offered.append(tool)
            cursor = page.next_cursor
            if cursor is None or cursor in seen:
                break
            seen.add(cursor)
        else:
            logger.warning("server %r: stopped listing tools after %d pages", self.name, MAX_TOOL_PAGES)
        self.registry.replace_server(self.name, tools)
        self._listed = True
        info = client.server_info
        name, version = (info.name, info.version) if info is not None else (None, None)
        await anyio.to_thread.run_sync(
            partial(self._catalog.remember, self.config, offered, server_name=name, server_version=version)
        )
        if self._on_state_change is not None and self._state is ServerState.READY:
            self._on_state_change(self)

    # -- what the server asks of the host ------------------------------------------------

    @property
    def _answerer(self) -> ServerAsks:
        """Who answers what the server asks now: the call that caused it, when that can be known.

        2026-07-28 servers ask through the call's own result, in the calling task: the call's answerer
        is in a context variable. 2025-era servers send requests that name no call: they go to the
        calls in flight only when those all belong to one owner (one chat); with calls of several chats
        in flight nobody can tell whose question it is, and it is refused rather than shown to the wrong
        user. With no call in flight, the host's own answers apply.
        """
        scoped = _CALL_ASKS.get()
        if scoped is not None and any(scoped is asks for asks in self._in_flight):
            return scoped
        if not self._in_flight:
            return self._asks
        if len({id(owner_of(asks)) for asks in self._in_flight}) == 1:
            return self._in_flight[-1]
        return _AMBIGUOUS

    async def _on_sampling(
        self, context: ClientRequestContext, params: mcp_types.CreateMessageRequestParams
    ) -> SamplingReply:
        return await self._answerer.sample(self.name, params)

    async def _on_elicitation(
        self, context: ClientRequestContext, params: mcp_types.ElicitRequestParams
    ) -> mcp_types.ElicitResult:
        return await self._answerer.elicit(self.name, params)

    async def _on_list_roots(self, context: ClientRequestContext) -> mcp_types.ListRootsResult:
        self.roots_served += 1
        return mcp_types.ListRootsResult(
            roots=[
                mcp_types.Root(uri=FileUrl(uri), name=Path(uri.removeprefix("file://")).name or uri)
                for uri in self._roots
            ]
        )

    async def _on_log(self, params: mcp_types.LoggingMessageNotificationParams) -> None:
        text = log_text(params)[:LOG_LINE_CHARS]
        self.logs.append((time.time(), params.level, text))
        if self._log_budget.take():
            logging.getLogger(f"mcp_host.server.{self.name}").log(PYTHON_LEVELS.get(params.level, logging.INFO), text)
        await self._answerer.log(self.name, params)

    def _changed(self, what: str, detail: str) -> None:
        if self._on_change is not None:
            self._on_change(self, what, detail)

    @property
    def roots(self) -> list[str]:
        return list(self._roots)

    async def set_roots(self, roots: list[str]) -> None:
        """Change the folders this server may work in; a ready server is told (`roots/list_changed`)."""
        self._roots = [root_uri(r) for r in roots]
        client = self._client
        if client is not None and self._state is ServerState.READY:
            with _handshake_era_feature():
                await client.send_roots_list_changed()

    async def set_log_level(self, level: mcp_types.LoggingLevel) -> None:
        """The least severe log message the server should send (`logging/setLevel`)."""
        self.log_level = level
        client = self._client
        if client is not None and self._state is ServerState.READY:
            await self._ask_log_level(client, level)

    async def _ask_log_level(self, client: Client, level: mcp_types.LoggingLevel) -> None:
        if client.protocol_version in MODERN_PROTOCOL_VERSIONS:
            return  # modern servers read the level from each request's _meta (see call_tool)
        if client.server_capabilities.logging is None:
            return
        try:
            # Deprecated for 2026-07-28 servers only; a handshake-era server still governs logs this way.
            with anyio.fail_after(self.connect_timeout_s), _handshake_era_feature():
                await client.set_logging_level(level)
        except (MCPError, TimeoutError) as exc:
            logger.info("server %r refused logging/setLevel %s: %s", self.name, level, describe_exception(exc))

    async def _ready_client(self) -> Client:
        """The client, once the server is ready: a lazy server is started, a starting one waited for."""
        await self.wait_started()
        client = self._client
        if client is None or self._state is not ServerState.READY:
            reason = f": {self._error}" if self._error else ""
            raise ServerNotReadyError(f"server {self.name!r} is {self._state.value}{reason}", server=self.name)
        return client

    async def _request(self, what: str, request: Callable[[Client], Any]) -> Any:
        """One request to the ready server, bounded by its call timeout; failures as `ToolCallError`."""
        client = await self._ready_client()
        try:
            with anyio.fail_after(self.call_timeout_s):
                return await request(client)
        except TimeoutError as exc:
            raise ServerRequestError(
                f"{self.name}: {what} did not answer within {self.call_timeout_s:g}s", server=self.name
            ) from exc
        except MCPError as exc:
            raise ServerRequestError(f"{self.name}: {what} failed: {exc.error.message}", server=self.name) from exc
        except (httpx2.HTTPError, anyio.ClosedResourceError, anyio.BrokenResourceError, OSError) as exc:
            raise ServerRequestError(
                f"{self.name}: {what} failed: {describe_exception(exc)}", server=self.name
            ) from exc

    async def _offers(self, capability: str) -> bool:
        client = await self._ready_client()
        return getattr(client.server_capabilities, capability) is not None

    async def list_resources(self) -> list[mcp_types.Resource]:
        if not await self._offers("resources"):
            return []
        result: list[mcp_types.Resource] = await self._request("resources/list", features.list_resources)
        return result

    async def list_resource_templates(self) -> list[mcp_types.ResourceTemplate]:
        if not await self._offers("resources"):
            return []
        result: list[mcp_types.ResourceTemplate] = await self._request(
            "resources/templates/list", features.list_resource_templates
        )
        return result

    async def read_resource(self, uri: str) -> mcp_types.ReadResourceResult:
        result: mcp_types.ReadResourceResult = await self._request(
            f"reading {uri}", lambda client: client.read_resource(uri)
        )
        return result

    async def subscribe_resource(self, uri: str) -> None:
        """Be told when `uri` changes (a `resource_updated` change); kept across reconnections."""
        self._subscriptions.add(uri)
        await self._resubscribe(uri, subscribe=True)

    async def unsubscribe_resource(self, uri: str) -> None:
        self._subscriptions.discard(uri)
        await self._resubscribe(uri, subscribe=False)

    async def _resubscribe(self, uri: str, *, subscribe: bool) -> None:
        client = await self._ready_client()
        if client.protocol_version in MODERN_PROTOCOL_VERSIONS:
            self._relisten.set()  # the listen stream re-opens with the new set
            return
        if client.server_capabilities.resources is None or not client.server_capabilities.resources.subscribe:
            raise ServerRequestError(f"{self.name}: the server does not offer resource subscriptions", server=self.name)
        with _handshake_era_feature():
            if subscribe:
                await self._request(f"subscribing to {uri}", lambda c: c.subscribe_resource(uri))
            else:
                await self._request(f"unsubscribing from {uri}", lambda c: c.unsubscribe_resource(uri))

    async def list_prompts(self) -> list[mcp_types.Prompt]:
        if not await self._offers("prompts"):
            return []
        result: list[mcp_types.Prompt] = await self._request("prompts/list", features.list_prompts)
        return result

    async def get_prompt(self, name: str, arguments: dict[str, str] | None = None) -> mcp_types.GetPromptResult:
        result: mcp_types.GetPromptResult = await self._request(
            f"prompt {name}", lambda client: client.get_prompt(name, arguments or {})
        )
        return result

    async def complete(
        self,
        ref: mcp_types.PromptReference | mcp_types.ResourceTemplateReference,
        argument: str,
        value: str,
        context: dict[str, str] | None = None,
    ) -> list[str]:
        """Suggestions for an argument of a prompt or resource template (`completion/complete`); [] if none."""
        if not await self._offers("completions"):
            return []
        result: mcp_types.CompleteResult = await self._request(
            "completion/complete",
            lambda client: client.complete(ref, {"name": argument, "value": value}, context),
        )
        return list(result.completion.values)

    # -- calls ----------------------------------------------------------------------------

    async def call_tool(
        self,
        tool: str,
        arguments: dict[str, Any] | None,
        *,
        timeout_s: float | None = None,
        asks: ServerAsks | None = None,
    ) -> ToolResult:
        """Call `tool` on this server.

        While the call is in flight, what the server asks (elicitation, sampling) and its progress
        and log messages go to `asks` (the chat turn that made the call). A tool the server runs as
        a task (`execution.taskSupport`) is created, polled and fetched as one. A protocol error from
        the server (unknown tool, invalid arguments) comes back as a `ToolResult` with
        `is_error=True`, since the model can correct itself. Raises `ServerNotReadyError` when the
        server is not ready and `ToolCallError` on timeout or when the connection fails during the call.
        """
        await self.wait_started()
        client = self._client
        qualified = f"{self.name}.{tool}"
        if client is None or self._state is not ServerState.READY:
            reason = f": {self._error}" if self._error else ""
            raise ServerNotReadyError(f"server {self.name!r} is {self._state.value}{reason}", server=self.name)
        limit = timeout_s or self.call_timeout_s
        answerer = asks or self._asks

        async def progress(progress: float, total: float | None, message: str | None) -> None:
            await answerer.progress(self.name, progress, total, message)

        spec = self.registry.get(qualified) if qualified in self.registry else None
        as_task = (
            spec is not None
            and spec.task_support in ("required", "optional")
            and features.server_runs_tool_tasks(client)
        )
        self._in_flight.append(answerer)
        scope_token = _CALL_ASKS.set(answerer)
        try:
            with anyio.fail_after(limit):
                if as_task:
                    result = await features.call_as_task(client, tool, arguments or {}, progress)
                else:
                    meta: Any = (
                        {LOG_LEVEL_META_KEY: self.log_level}
                        if client.protocol_version in MODERN_PROTOCOL_VERSIONS
                        else None
                    )
                    result = await client.call_tool(tool, arguments or {}, progress_callback=progress, meta=meta)
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
        except (ValidationError, TypeError, KeyError) as exc:  # a result (or task) the server got wrong
            return ToolResult.error(f"{qualified}: the server's answer is not a tool result: {describe_exception(exc)}")
        finally:
            _CALL_ASKS.reset(scope_token)
            self._in_flight.remove(answerer)
        return ToolResult.from_mcp(result)
