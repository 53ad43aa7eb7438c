"""The manager: every server connection, in one task group, kept in step with mcp.json.

async with ServerManager(settings.servers) as manager:
    await manager.apply(load_config(path))
    await manager.wait_settled()
    result = await manager.call_tool("time.get_current_time", {"timezone": "UTC"})
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from types import TracebackType
from typing import Any

import anyio
import anyio.abc

from mcp_host.config.mcpjson import McpConfig, ServerConfig
from mcp_host.config.settings import ServerSettings
from mcp_host.errors import UnknownServerError
from mcp_host.servers.asks import ServerAsks
from mcp_host.servers.catalog import ToolCatalog
from mcp_host.servers.connection import ChangeListener, Connection
from mcp_host.servers.state import ServerState, ServerStatus
from mcp_host.tools.registry import ToolRegistry
from mcp_host.tools.spec import ToolResult

logger = logging.getLogger(__name__)

STARTING_STATES = (ServerState.IDLE, ServerState.STARTING)


@dataclass(frozen=True)
class ConfigDiff:
    """What `apply()` changes: servers to start, stop, restart, and the ones left alone."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()

    @classmethod
    def between(cls, old: dict[str, ServerConfig], new: dict[str, ServerConfig]) -> ConfigDiff:
        return cls(
            added=tuple(sorted(new.keys() - old.keys())),
            removed=tuple(sorted(old.keys() - new.keys())),
            changed=tuple(sorted(name for name in old.keys() & new.keys() if old[name] != new[name])),
            unchanged=tuple(sorted(name for name in old.keys() & new.keys() if old[name] == new[name])),
        )

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)


class ServerManager:
    """Owns one `Connection` per enabled server; an async resource (`async with`, `aclose()`)."""

    def __init__(
        self,
        settings: ServerSettings | None = None,
        registry: ToolRegistry | None = None,
        *,
        on_state_change: Callable[[Connection], None] | None = None,
        asks: ServerAsks | None = None,
        on_change: ChangeListener | None = None,
        catalog: ToolCatalog | None = None,
        defer_known: bool = False,
    ) -> None:
        self.settings = settings or ServerSettings()
        self.catalog = catalog  # None: every start lists the tools before they are known
        # Servers the catalog knows wait for `release()` (or their first use) before they start.
        self._deferring = defer_known
        self.registry = registry if registry is not None else ToolRegistry()
        self._on_state_change = on_state_change
        self.asks = asks  # who answers servers' requests outside any chat turn (None: nobody, declined)
        self._on_change = on_change
        self._connections: dict[str, Connection] = {}
        self._task_group: anyio.abc.TaskGroup | None = None
        self._closed = False
        self._changing = anyio.Lock()  # apply() and restart() must not interleave their stops and starts

    async def __aenter__(self) -> ServerManager:
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        await self.aclose()
        assert self._task_group is not None
        # Every connection has finished; the body's own exception propagates unwrapped.
        return await self._task_group.__aexit__(None, None, None)

    async def aclose(self) -> None:
        """Stop every server and wait for their processes to be gone. Idempotent."""
        if self._closed:
            return
        self._closed = True
        with anyio.CancelScope(shield=True):
            await self._stop(list(self._connections))

    # -- configuration --------------------------------------------------------------------

    @property
    def configs(self) -> dict[str, ServerConfig]:
        return {name: connection.config for name, connection in self._connections.items()}

    async def apply(self, config: McpConfig) -> ConfigDiff:
        """Bring the running servers in line with `config`: start added, stop removed, restart changed.

        Unchanged servers are not touched. Returns what was done.
        """
        async with self._changing:
            diff = ConfigDiff.between(self.configs, config.enabled)
            restart = []
            for name in diff.changed:
                connection, new = self._connections[name], config.enabled[name]
                if connection.config.model_copy(update={"roots": new.roots}) == new:
                    connection.config = new  # only its roots changed: the server is told, not restarted
                    await connection.set_roots(new.roots or [os.getcwd()])
                else:
                    restart.append(name)
            await self._stop([*diff.removed, *restart])
            for name in (*diff.added, *restart):
                self._start(name, config.enabled[name])
        if diff:
            logger.info(
                "config applied: added %s, removed %s, restarted %s",
                list(diff.added),
                list(diff.removed),
                list(diff.changed),
            )
        return diff

    def _start(self, name: str, config: ServerConfig) -> Connection:
        if self._task_group is None or self._closed:
            raise RuntimeError("ServerManager is not running: use it as `async with ServerManager(...)`")
        connection = Connection(
            name,
            config,
            self.settings,
            self.registry,
            on_state_change=self._on_state_change,
            asks=self.asks,
            on_change=self._on_change,
            catalog=self.catalog,
            lazy=name in self.settings.lazy,
            deferred=self._deferring,
        )
        self._connections[name] = connection
        self._task_group.start_soon(connection.run, name=f"mcp server {name}")
        return connection

    async def _stop(self, names: Iterable[str]) -> None:
        connections = [self._connections.pop(name) for name in names if name in self._connections]
        async with anyio.create_task_group() as tg:
            for connection in connections:
                tg.start_soon(connection.aclose)

    async def restart(self, name: str) -> Connection:
        """Stop server `name` and start it again with the same configuration."""
        async with self._changing:
            config = self.connection(name).config
            await self._stop([name])
            connection = self._start(name, config)
            connection.start_now()  # a restart asked for runs the server, a lazy one included
            return connection

    # -- state --------------------------------------------------------------------------

    def connection(self, name: str) -> Connection:
        try:
            return self._connections[name]
        except KeyError:
            known = ", ".join(sorted(self._connections)) or "none"
            raise UnknownServerError(f"no server named {name!r} is running (servers: {known})", server=name) from None

    @property
    def connections(self) -> list[Connection]:
        return [self._connections[name] for name in sorted(self._connections)]

    def statuses(self) -> list[ServerStatus]:
        return [connection.status() for connection in self.connections]

    async def wait_settled(self, names: Iterable[str] | None = None) -> None:
        """Wait until each server (all, or those named) is ready or has failed its first attempt.

        Each connection bounds its own start by its connect timeout, so this always returns.
        """
        targets = self.connections if names is None else [self.connection(name) for name in names]
        async with anyio.create_task_group() as tg:
            for connection in targets:
                tg.start_soon(connection.wait_settled)

    def release(self) -> None:
        """Start the servers held back by `defer_known` (a lazy one still waits for its first use); later
        starts are not held back."""
        self._deferring = False
        for connection in self._connections.values():
            connection.release()

    async def wait_tools_known(self, names: Iterable[str] | None = None, *, trust_failures: bool = True) -> None:
        """Wait until each server's tools are known: those the tool catalog knows at once (they start in the
        background, their live listing replacing the catalog's when it comes), the others until their first
        start ended (`trust_failures=False`: also those whose last start failed, for commands that end before a
        server in the background could list its tools). Bounded by each server's connect timeout."""
        targets = self.connections if names is None else [self.connection(name) for name in names]
        async with anyio.create_task_group() as tg:
            for connection in targets:
                tg.start_soon(partial(connection.wait_tools_known, trust_failures=trust_failures))

    async def call_tool(
        self,
        name: str,
        arguments: dict[str, Any] | None = None,
        *,
        timeout_s: float | None = None,
        asks: ServerAsks | None = None,
    ) -> ToolResult:
        """Call the tool with qualified name `name`. Raises `UnknownToolError`, `ServerNotReadyError`,
        `ToolCallError` (see `Connection.call_tool`); `asks` answers what the server asks meanwhile."""
        if name not in self.registry:  # a tool of a server still starting, whose tools the catalog did not know
            for connection in self.connections:
                if name.startswith(f"{connection.name}.") and connection.state in STARTING_STATES:
                    await connection.wait_started()
        spec = self.registry.get(name)
        return await self.connection(spec.server).call_tool(spec.tool, arguments, timeout_s=timeout_s, asks=asks)
