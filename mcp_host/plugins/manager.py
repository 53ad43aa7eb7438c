"""The host's plugins: loaded, configured, registered as tools, called, hooked into turns, and reloaded.

    plugins = PluginManager(registry, settings.plugins, reserved=lambda: set(config.servers))
    await anyio.to_thread.run_sync(plugins.load_all)
    result = await plugins.call("calc.calculate", {"expression": "2**10"}, timeout_s=30, roots=(Path.cwd(),))

Where a name is offered twice, the user's folder wins over an installed package, which wins over
the project's bundled `plugins/`; the others are `shadowed`. A plugin whose name is an mcp.json
server's, or a native tool's, is refused. Your plugins and installed ones are on by default; a
bundled one is on when `[plugins] enabled` names it, else a chat turns it on for itself
(`ChatOptions.plugins`). The tools of the plugins that are on register in the shared `ToolRegistry`
under the plugin's name (`origin="plugin"`), so policy, approvals, audit, rendering and listings treat
them like MCP tools. The user folder is watched (`watch()`): a changed plugin is reloaded alone.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import anyio
import anyio.to_thread
from pydantic import ValidationError

from mcp_host.agent.attachments import Attachment
from mcp_host.config.paths import state_dir, user_plugins_dir
from mcp_host.config.settings import PluginSettings
from mcp_host.plugins.api import Plugin, ToolCallInfo, UserMessage
from mcp_host.plugins.functions import PLUGIN_FAILURES, FunctionTool, PluginContext
from mcp_host.plugins.loader import LoadedPlugin, Origin, bundled_dir, discover, load_within
from mcp_host.tools.registry import ToolRegistry
from mcp_host.tools.spec import ToolResult, ToolSpec

logger = logging.getLogger(__name__)

PluginState = Literal["loaded", "failed", "disabled", "shadowed"]
NATIVE_NAMES = frozenset({"browser", "python", "functions", "app"})  # `app`: the functions of `act(tools=...)`
_PRECEDENCE: dict[Origin, int] = {"user": 0, "installed": 1, "bundled": 2}


@dataclass(frozen=True)
class PluginStatus:
    """One plugin as `mcp-host plugins` shows it."""

    name: str
    origin: Origin
    where: str
    state: PluginState
    tools: tuple[str, ...] = ()
    error: str | None = None
    description: str = ""
    on_by_default: bool = False  # loaded and offered to every chat (a chat may still turn it off, or others on)


@dataclass
class _Entry:
    loaded: LoadedPlugin
    state: PluginState
    error: str | None = None
    config: Any = None

    @property
    def name(self) -> str:
        plugin = self.loaded.plugin
        return plugin.name if plugin is not None else self.loaded.source.key


class PluginManager:
    """Every plugin the host knows, by name; an object to share between the host's chats."""

    def __init__(
        self,
        registry: ToolRegistry,
        settings: PluginSettings | None = None,
        *,
        folders: Sequence[tuple[Origin, Path | None]] | None = None,
        entry_points: bool = True,
        reserved: Callable[[], Iterable[str]] = lambda: (),
    ) -> None:
        self.registry = registry
        self.settings = settings or PluginSettings()
        user = Path(self.settings.folder).expanduser() if self.settings.folder else user_plugins_dir()
        self.user_folder = user
        self.folders: list[tuple[Origin, Path | None]] = (
            list(folders) if folders is not None else [("bundled", bundled_dir()), ("user", user)]
        )
        self.entry_points = entry_points
        self.reserved = reserved  # the names taken elsewhere (mcp.json servers), asked at each settle
        self._entries: list[_Entry] = []

    # -- loading --------------------------------------------------------------------------

    def load_all(self) -> None:
        """Discover and import every plugin (blocking: run it in a worker thread), then register their tools."""
        entries = []
        for source in discover(list(self.folders), entry_points=self.entry_points):
            if source.key in self.settings.disabled:
                entries.append(_Entry(LoadedPlugin(source), "disabled"))
            else:
                entries.append(self._entry(load_within(source)))
        self._entries = entries
        self._settle()

    def _entry(self, loaded: LoadedPlugin) -> _Entry:
        plugin = loaded.plugin
        if plugin is None:
            return _Entry(loaded, "failed", loaded.error)
        if plugin.name in self.settings.disabled:
            return _Entry(loaded, "disabled")
        config = None
        if plugin.config is not None:
            try:
                config = plugin.config.model_validate(self.settings.table(plugin.name))
            except ValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc']) or '(table)'}: {e['msg']}" for e in exc.errors()
                )
                return _Entry(loaded, "failed", f"settings [plugins.{plugin.name}]: {problems}")
        return _Entry(loaded, "loaded", config=config)

    def _settle(self) -> None:
        """Decide who holds each name (shadowing, reserved names) and put the winners' tools in the registry."""
        reserved = set(self.reserved()) | NATIVE_NAMES
        by_name: dict[str, list[_Entry]] = {}
        for entry in self._entries:
            if entry.state == "shadowed":
                entry.state, entry.error = "loaded", None
            by_name.setdefault(entry.name, []).append(entry)
        for name, entries in by_name.items():
            entries.sort(key=lambda e: _PRECEDENCE[e.loaded.source.origin])
            live = [e for e in entries if e.state == "loaded"]
            for loser in live[1:]:
                loser.state, loser.error = "shadowed", f"shadowed by {live[0].loaded.source.where}"
            if live and name in reserved:
                live[0].state = "failed"
                live[0].error = f"the name {name!r} is taken by an mcp.json server or a native tool; rename the plugin"
        default = set(self.default_names)
        for server in {s.server for s in self.registry if s.origin == "plugin"} - default:
            self.registry.remove_server(server)
        for entry in self._live():
            if entry.name in default and entry.loaded.plugin is not None:
                self.registry.replace_server(entry.name, [tool.spec for tool in entry.loaded.plugin.tools])
        for entry in self._entries:
            if entry.state == "failed":
                logger.warning("plugin %s: %s", entry.name, entry.error)

    def reload_changed(self, *, settle: bool = True) -> list[str]:
        """Re-import the plugins of the user folder whose files changed (or appeared, or went); returns their names.

        With `settle=False` the registry is left alone: call `settle()` from the event loop (`watch()` imports
        in a worker thread and changes the registry, which the chats read, only on the loop).
        """
        current = {
            (s.origin, s.key): s for s in discover([(o, f) for o, f in self.folders if o == "user"], entry_points=False)
        }
        changed: list[str] = []
        kept: list[_Entry] = []
        for entry in self._entries:
            source = entry.loaded.source
            if source.origin != "user":
                kept.append(entry)
                continue
            fresh = current.pop((source.origin, source.key), None)
            if fresh is None:
                changed.append(entry.name)  # removed
            elif fresh.signature() != entry.loaded.signature and source.key not in self.settings.disabled:
                replacement = self._entry(load_within(fresh))
                changed.append(replacement.name)
                kept.append(replacement)
            else:
                kept.append(entry)
        for source in current.values():  # new ones
            if source.key in self.settings.disabled:
                entry = _Entry(LoadedPlugin(source), "disabled")
            else:
                entry = self._entry(load_within(source))
            changed.append(entry.name)
            kept.append(entry)
        if changed:
            self._entries = kept
            if settle:
                self._settle()
            logger.info("plugins reloaded: %s", ", ".join(sorted(set(changed))))
        return changed

    def settle(self) -> None:
        """Bring the registry in line with the plugins (after `reload_changed(settle=False)`)."""
        self._settle()

    async def watch(self, stop: anyio.Event, *, on_reload: Callable[[list[str]], None] | None = None) -> None:
        """Follow the user folder until `stop` is set: each change reloads the plugins it touched."""
        from watchfiles import awatch

        folder = self.user_folder
        while not folder.is_dir():  # nothing to watch yet; look again now and then
            with anyio.move_on_after(2.0):
                await stop.wait()
            if stop.is_set():
                return
        async for _changes in awatch(folder, stop_event=stop, debounce=200, recursive=True):
            changed = await anyio.to_thread.run_sync(lambda: self.reload_changed(settle=False))
            if changed:
                self._settle()
                if on_reload is not None:
                    on_reload(changed)

    # -- what is there --------------------------------------------------------------------

    def statuses(self) -> list[PluginStatus]:
        statuses = []
        for entry in sorted(self._entries, key=lambda e: (e.name, _PRECEDENCE[e.loaded.source.origin])):
            plugin = entry.loaded.plugin
            statuses.append(
                PluginStatus(
                    name=entry.name,
                    origin=entry.loaded.source.origin,
                    where=entry.loaded.source.where,
                    state=entry.state,
                    tools=tuple(t.spec.tool for t in plugin.tools) if plugin is not None else (),
                    error=entry.error,
                    description=plugin.description if plugin is not None else "",
                    on_by_default=entry.state == "loaded" and entry.name in self.default_names,
                )
            )
        return statuses

    def _live(self) -> list[_Entry]:
        return [e for e in self._entries if e.state == "loaded" and e.loaded.plugin is not None]

    @property
    def names(self) -> list[str]:
        """The plugins a chat may use (loaded, not shadowed, not refused), sorted."""
        return sorted(e.name for e in self._live())

    @property
    def default_names(self) -> list[str]:
        """The plugins every chat uses unless it says otherwise: yours and installed ones, and bundled ones enabled."""
        enabled = set(self.settings.enabled)
        return sorted(e.name for e in self._live() if e.loaded.source.origin != "bundled" or e.name in enabled)

    def specs(self, names: Iterable[str]) -> list[ToolSpec]:
        """The tools of these plugins (for a chat that turns on a plugin that is off by default)."""
        return [tool.spec for plugin, _config in self._plugins(names) for tool in plugin.tools]

    def _plugins(self, enabled: Iterable[str] | None) -> list[tuple[Plugin, Any]]:
        wanted = set(self.default_names if enabled is None else enabled)
        return [(e.loaded.plugin, e.config) for e in self._live() if e.loaded.plugin is not None and e.name in wanted]

    def tool(self, qualified: str) -> tuple[FunctionTool, Any] | None:
        """A loaded plugin's tool (on by default or not) and its plugin's config."""
        for plugin, config in self._plugins(self.names):
            for tool in plugin.tools:
                if tool.spec.name == qualified:
                    return tool, config
        return None

    # -- calls and hooks ------------------------------------------------------------------

    async def call(
        self, qualified: str, arguments: dict[str, Any], *, timeout_s: float, roots: Sequence[Path]
    ) -> ToolResult:
        """Run a plugin tool; an unknown one, a bad argument, a failure or a timeout is a result the model reads."""
        found = self.tool(qualified)
        if found is None:
            return ToolResult.error(f"{qualified} is not available (its plugin is not loaded)")
        tool, config = found
        context = PluginContext(
            plugin=tool.spec.server,
            roots=tuple(roots),
            config=config,
            state_dir=state_dir() / "plugins" / tool.spec.server,
        )
        return await tool.call(arguments, timeout_s=timeout_s, context=context)

    async def preprocess(
        self, text: str, attachments: Sequence[Attachment], enabled: Iterable[str] | None
    ) -> tuple[str, tuple[Attachment, ...], list[str]]:
        """The user's message through every enabled plugin's preprocessors; failures are listed, not raised."""
        message = UserMessage(text, tuple(attachments))
        problems: list[str] = []
        for plugin, _config in self._plugins(enabled):
            for hook in plugin.preprocessors:
                try:
                    outcome = await _run_hook(hook, message)
                except PLUGIN_FAILURES as exc:  # a hook's failure (even SystemExit) leaves the message as it was
                    problems.append(f"plugin {plugin.name}: preprocessor failed: {type(exc).__name__}: {exc}")
                    continue
                if isinstance(outcome, str):
                    message = message.with_text(outcome)
                elif isinstance(outcome, UserMessage):
                    message = outcome
        return message.text, message.attachments, problems

    async def postprocess(
        self, tool: str, arguments: dict[str, Any], result: ToolResult, enabled: Iterable[str] | None
    ) -> ToolResult:
        """A tool's result through every enabled plugin's postprocessors; a failing one is skipped (logged)."""
        info = ToolCallInfo(tool, dict(arguments))
        for plugin, _config in self._plugins(enabled):
            for hook in plugin.postprocessors:
                try:
                    outcome = await _run_hook(hook, info, result)
                except PLUGIN_FAILURES as exc:
                    logger.warning(
                        "plugin %s: postprocessor failed on %s: %s: %s", plugin.name, tool, type(exc).__name__, exc
                    )
                    continue
                if isinstance(outcome, ToolResult):
                    result = outcome
                elif isinstance(outcome, str):
                    result = ToolResult.text_result(outcome, is_error=result.is_error)
        return result


async def _run_hook(hook: Callable[..., Any], *args: Any) -> Any:
    if inspect.iscoroutinefunction(hook):
        return await hook(*args)
    outcome = await anyio.to_thread.run_sync(lambda: hook(*args))
    if inspect.isawaitable(outcome):
        return await outcome
    return outcome
