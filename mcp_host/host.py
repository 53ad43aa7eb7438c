"""The `Host`: mcp.json and the host settings in, live servers and their merged tools out.

    async with Host(config_path=Path("examples/mcp.json")) as host:
        await host.wait_settled()
        print([status.state for status in host.statuses()])
        result = await host.call_tool("time.get_current_time", {"timezone": "UTC"})

With `watch=True` the host follows edits of mcp.json: added servers start, removed ones
stop, changed ones restart; a broken edit is reported and the last good config keeps running.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
import anyio.abc

from mcp_host.agent.attachments import Attachment
from mcp_host.agent.calls import ToolCaller
from mcp_host.agent.chat import Chat
from mcp_host.agent.chat_options import ChatOptions
from mcp_host.agent.chat_tools import ChatNatives, build_natives
from mcp_host.agent.permissions import AuditLog, Permissions
from mcp_host.backends.base import Backend, ChatBackend
from mcp_host.config.mcpjson import McpConfig, load_config
from mcp_host.config.paths import cache_dir, default_config_path, default_settings_path, implicit_roots
from mcp_host.config.settings import HostSettings, load_settings
from mcp_host.config.watch import watch_config
from mcp_host.errors import ChatClosedError, ConfigError
from mcp_host.plugins.manager import PluginManager
from mcp_host.servers.asks import ServerAsks
from mcp_host.servers.catalog import ToolCatalog
from mcp_host.servers.features import resource_texts
from mcp_host.servers.manager import ConfigDiff, ServerManager
from mcp_host.servers.state import ServerState, ServerStatus
from mcp_host.tools.registry import ToolRegistry
from mcp_host.tools.spec import ToolResult, ToolSpec

logger = logging.getLogger(__name__)

ReloadListener = Callable[[ConfigDiff | ConfigError], None]


class Host:
    """The runtime; an async resource. Raises `ConfigError` on entry when mcp.json cannot be used."""

    def __init__(
        self,
        config_path: Path | None = None,
        *,
        settings: HostSettings | None = None,
        settings_path: Path | None = None,
        watch: bool = False,
        only: list[str] | None = None,
        on_reload: ReloadListener | None = None,
        audit_path: Path | None = None,
        asks: ServerAsks | None = None,
        plugins: bool | PluginManager = True,
        defer_known_starts: bool = False,
    ) -> None:
        self.config_path = config_path or default_config_path()
        self.audit_path = audit_path
        self.settings_path = settings_path or default_settings_path()
        self._settings = settings
        self.watch = watch
        self.only = only
        self._on_reload = on_reload
        self.asks = asks  # answers servers' requests made outside any chat's call (None: declined)
        # True: the bundled, user and installed plugins; False: none; or a manager built by the caller.
        self._plugin_choice = plugins
        # True: servers whose tools the catalog knows start at `start_deferred()` (or their first use), so that
        # they do not compete with the model's load for the processor.
        self._defer_known_starts = defer_known_starts
        self._plugins: PluginManager | None = None
        self.registry = ToolRegistry()
        self.config: McpConfig | None = None
        self.last_config_error: ConfigError | None = None
        self._manager: ServerManager | None = None
        self._task_group: anyio.abc.TaskGroup | None = None
        self._stop_watching = anyio.Event()
        self._permissions: Permissions | None = None
        self._chats: weakref.WeakSet[Chat] = weakref.WeakSet()
        self._closed = False

    @property
    def settings(self) -> HostSettings:
        if self._settings is None:
            self._settings = load_settings(self.settings_path)
        return self._settings

    @property
    def permissions(self) -> Permissions:
        """One policy for every chat of this host, so an "always" answered in one holds in all."""
        if self._permissions is None:
            self._permissions = Permissions(self.settings, self.settings_path)
        return self._permissions

    @property
    def manager(self) -> ServerManager:
        if self._manager is None:
            raise RuntimeError("Host is not running: use it as `async with Host(...)`")
        return self._manager

    @property
    def plugins(self) -> PluginManager:
        """The plugins (loaded on entry); an empty manager when the host was made with `plugins=False`."""
        if self._plugins is None:
            self._plugins = PluginManager(self.registry, self.settings.plugins, folders=[], entry_points=False)
        return self._plugins

    async def __aenter__(self) -> Host:
        config = self._load()
        if self._plugin_choice is not False:
            manager = (
                self._plugin_choice
                if isinstance(self._plugin_choice, PluginManager)
                else PluginManager(self.registry, self.settings.plugins)
            )
            manager.reserved = lambda: set(self.config.servers) if self.config is not None else set()
            self._plugins = manager
            await anyio.to_thread.run_sync(manager.load_all)
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        catalog = ToolCatalog(cache_dir() / "tools") if self.settings.servers.tool_catalog else None
        self._manager = ServerManager(
            self.settings.servers, self.registry, asks=self.asks, catalog=catalog, defer_known=self._defer_known_starts
        )
        await self._manager.__aenter__()
        await self._manager.apply(config)
        if self.watch:
            self._task_group.start_soon(self._follow_edits, name="watch mcp.json")
            if self._plugins is not None:
                self._task_group.start_soon(self._plugins.watch, self._stop_watching, name="watch plugins")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
        assert self._task_group is not None and self._manager is not None
        # Task groups close in the task that opened them; the body's own exception propagates unwrapped.
        await self._manager.__aexit__(None, None, None)
        self._task_group.cancel_scope.cancel()
        await self._task_group.__aexit__(None, None, None)

    async def aclose(self) -> None:
        """Stop watching, close the chats and stop every server, from any task. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop_watching.set()
        for chat in list(self._chats):  # their python interpreters and working directories
            await chat.aclose()
        if self._manager is not None:
            await self._manager.aclose()

    def _load(self) -> McpConfig:
        return self._restrict(load_config(self.config_path))

    def _restrict(self, config: McpConfig) -> McpConfig:
        if self.only is not None:
            config = config.model_copy(update={"servers": {k: v for k, v in config.servers.items() if k in self.only}})
        self.config = config
        return config

    async def reload(self) -> ConfigDiff:
        """Re-read mcp.json and apply the difference. Raises `ConfigError`, keeping the running config."""
        try:
            config = self._load()
        except ConfigError as exc:
            self.last_config_error = exc
            raise
        self.last_config_error = None
        return await self.manager.apply(config)

    async def _follow_edits(self) -> None:
        async for update in watch_config(self.config_path, stop_event=self._stop_watching):
            outcome: ConfigDiff | ConfigError
            if isinstance(update, ConfigError):
                self.last_config_error = outcome = update
                logger.error("mcp.json edit not applied, the last good config keeps running: %s", update)
            else:
                self.last_config_error = None
                outcome = await self.manager.apply(self._restrict(update))
            if self._on_reload is not None:
                self._on_reload(outcome)

    async def wait_settled(self) -> None:
        """Wait until every server is ready or has failed its first start (each bounded by its timeout)."""
        await self.manager.wait_settled()

    def start_deferred(self) -> None:
        """Start the servers `defer_known_starts` held back (the model is loaded: they no longer compete with it)."""
        self.manager.release()

    async def wait_tools_known(self, *, trust_failures: bool = True) -> None:
        """Wait until every server's tools are known: at once for those the tool catalog knows (they go on
        starting in the background; a call to one waits for it), else until its first start ended."""
        await self.manager.wait_tools_known(trust_failures=trust_failures)

    def statuses(self) -> list[ServerStatus]:
        """Every configured server, disabled ones included (as `stopped`), sorted by name."""
        statuses = self.manager.statuses()
        if self.config is not None:
            statuses += [
                ServerStatus(name, ServerState.STOPPED, server.transport, 0, error="disabled in mcp.json")
                for name, server in self.config.servers.items()
                if server.disabled
            ]
        return sorted(statuses, key=lambda status: status.name)

    def chat(
        self,
        backend: Backend | ChatBackend,
        options: ChatOptions | None = None,
        *,
        tools: ToolRegistry | None = None,
        call_tool: ToolCaller | None = None,
        permissions: Permissions | None = None,
    ) -> Chat:
        """A new conversation with `backend` and every tool the host has, under the permission policy.

        `tools` and `call_tool` replace the host's tools and the way calls reach them (a request's own
        servers: `mcp_host.api.integrations.RequestTools`); `permissions`, the host's policy (one derived from
        it, such as `host.permissions.asking_also(...)`).

        Use it as `async with host.chat(backend) as chat:`; a chat not entered runs its turns in the
        host's task group and is closed with the host. "Always" answers are saved to the approvals
        file next to the settings (`settings.approvals.json`); the audit log goes to `audit_path`.
        """
        if self._closed:
            raise ChatClosedError("the host is closed: open a new one for new chats")
        permissions = permissions or self.permissions
        options = options or ChatOptions()
        if options.tool_selection is None:  # `[tools]` of the settings: when and how a turn selects its tools
            options = replace(options, tool_selection=self.settings.tools)
        time_limit_s = options.call_timeout_s or 30.0

        def natives_for(browser: bool, python: bool) -> ChatNatives:
            return build_natives(self.settings.browser, browser=browser, python=python, time_limit_s=time_limit_s)

        natives = natives_for(options.harmony.browser, options.harmony.python)
        if natives.python_description is not None:  # the model reads this tool's own limits and isolation
            options = replace(options, harmony=replace(options.harmony, python_description=natives.python_description))
        chat = Chat(
            backend,
            tools=self.registry if tools is None else tools,
            call_tool=call_tool or self._call_for_chat,
            permissions=permissions,
            audit=AuditLog(self.audit_path),
            options=options,
            natives=natives.tools,
            browser=natives.browser,
            workdir=natives.workdir,
            build_natives=natives_for,
            task_group=self._task_group,
            plugins=self._plugins,
            live_spec=self._live_spec,
        )
        self._chats.add(chat)
        return chat

    async def attachment(self, server: str, uri: str) -> Attachment:
        """Read resource `uri` of `server` for a turn (`chat.turn(text, attachments=[...])`).

        Raises `UnknownServerError`, `ServerNotReadyError`, `ServerRequestError`.
        """
        result = await self.manager.connection(server).read_resource(uri)
        parts = resource_texts(result)
        mime = parts[0].mime_type if len(parts) == 1 else None
        return Attachment(f"{server}:{uri}", "\n".join(part.text for part in parts), mime)

    async def _live_spec(self, spec: ToolSpec) -> ToolSpec | None:
        """`spec` as its server lists it once started (it stood in from the tool catalog), or None."""
        connections = {connection.name: connection for connection in self.manager.connections}
        connection = connections.get(spec.server)
        if connection is None:
            return None
        await connection.wait_started()
        return self.registry.get(spec.name) if spec.name in self.registry else None

    async def _call_for_chat(
        self, name: str, arguments: dict[str, Any], timeout_s: float | None, asks: ServerAsks | None
    ) -> ToolResult:
        return await self.call_tool(name, arguments, timeout_s=timeout_s, asks=asks)

    async def call_tool(
        self,
        name: str,
        arguments: dict[str, Any] | None = None,
        *,
        timeout_s: float | None = None,
        asks: ServerAsks | None = None,
    ) -> ToolResult:
        """Call a tool by qualified name (a server's or a plugin's); `asks` answers what a server asks meanwhile."""
        spec = self.registry.get(name) if name in self.registry else None  # an MCP tool skips the plugin scan
        if self._plugins is not None and (spec is None or spec.origin == "plugin") and self._plugins.tool(name):
            limit = timeout_s or self.settings.servers.call_timeout_s
            return await self._plugins.call(name, arguments or {}, timeout_s=limit, roots=implicit_roots())
        return await self.manager.call_tool(name, arguments, timeout_s=timeout_s, asks=asks)
