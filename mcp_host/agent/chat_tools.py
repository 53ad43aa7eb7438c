"""Which tools one chat uses: the MCP servers and plugins it chose, and its built-in browser and python.

    registry = chosen_tools(host.registry, host.plugins, servers=("time",), plugins=None)
    natives = build_natives(settings.browser, browser=True, python=False, time_limit_s=30.0)

A chat filters the host's registry each turn, so a server that appears in mcp.json later is offered to the
chats that use every server (`servers=None`), and a chat's choice never changes what the host's other chats see.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import anyio

from mcp_host.agent.calls import ToolCaller
from mcp_host.agent.hooks import TurnPlugins
from mcp_host.config.settings import BrowserSettings
from mcp_host.prompt.vocab import harmony_encoding
from mcp_host.servers.asks import ServerAsks
from mcp_host.tools.native.base import NativeTool
from mcp_host.tools.native.browser import BrowserSession, browser_tools
from mcp_host.tools.native.python import PythonTool
from mcp_host.tools.registry import ToolRegistry
from mcp_host.tools.spec import ToolResult, ToolSpec

DEFAULT_PLUGIN_TIMEOUT_S = 60.0  # how long a plugin tool or a turn's function may run when the chat sets no limit


class PluginTools(Protocol):
    def specs(self, names: Iterable[str]) -> list[ToolSpec]:
        """The tools of these plugins, for a chat that uses plugins that are off by default."""
        ...


def chosen_tools(
    tools: ToolRegistry,
    plugin_tools: PluginTools | None,
    *,
    servers: Collection[str] | None,
    plugins: Collection[str] | None,
    extra: Iterable[ToolSpec] = (),
) -> ToolRegistry:
    """`tools` as a chat sees them that uses only `servers` (None: every server) and `plugins` (None: those on
    by default), with `extra` added; `tools` itself when nothing is left out or added."""
    hidden: set[str] = set()
    added = list(extra)
    if servers is not None:
        hidden |= {spec.server for spec in tools if spec.origin == "mcp"} - set(servers)
    if plugins is not None:
        plugin_servers = {spec.server for spec in tools if spec.origin == "plugin"}
        hidden |= plugin_servers - set(plugins)
        if plugin_tools is not None:  # plugins this chat turned on that are off by default
            added += plugin_tools.specs(set(plugins) - plugin_servers)
    return tools.view(without=hidden, extra=added) if hidden or added else tools


def turn_tools(
    tools: ToolRegistry,
    plugin_tools: TurnPlugins | None,
    functions: Sequence[Callable[..., Any]],
    *,
    servers: Collection[str] | None,
    plugins: Collection[str] | None,
    call_tool: ToolCaller,
    timeout_s: float | None,
    roots: Callable[[], Sequence[Path]],
) -> tuple[ToolRegistry, ToolCaller]:
    """The registry one turn offers (`chosen_tools`, with the turn's `functions` in as `app.<name>`), and the
    caller that runs plugin tools and functions here (the call's limit, else `timeout_s`, else the default;
    plugins in the folders `roots` gives when they run) and the rest with `call_tool`, through the host."""
    timeout_s = timeout_s or DEFAULT_PLUGIN_TIMEOUT_S
    extra: dict[str, Any] = {}
    if functions:
        from mcp_host.plugins.api import functions_plugin  # the plugins package imports the agent's

        extra = {tool.spec.name: tool for tool in functions_plugin(functions).tools}
    registry = chosen_tools(
        tools, plugin_tools, servers=servers, plugins=plugins, extra=[tool.spec for tool in extra.values()]
    )

    async def call(name: str, arguments: dict[str, Any], limit: float | None, asks: ServerAsks | None) -> ToolResult:
        if name in extra:
            result: ToolResult = await extra[name].call(arguments, timeout_s=limit or timeout_s)
            return result
        spec = registry.get(name) if name in registry else None
        if spec is None and name in tools:  # a server or plugin this chat switched off is never reached
            return ToolResult.error(f"{name} is switched off in this chat.")
        if spec is not None and spec.origin == "plugin" and plugin_tools is not None:
            return await plugin_tools.call(name, arguments, timeout_s=limit or timeout_s, roots=roots())
        return await call_tool(name, arguments, limit, asks)

    return registry, call


@dataclass
class ChatNatives:
    """Built-in tools a chat owns, by the name the model calls them, with what they hold: the browser's pages
    and python's working directory (the chat removes it when python goes)."""

    tools: dict[str, NativeTool] = field(default_factory=dict)
    browser: BrowserSession | None = None
    workdir: Path | None = None
    python_description: str | None = None  # what the model reads of this python: its own limits and isolation

    async def aclose(self) -> None:
        """Stop the tools (python's interpreter) and remove python's working directory. Shielded."""
        with anyio.CancelScope(shield=True):
            for tool in self.tools.values():
                await tool.aclose()
            workdir = self.workdir
            if workdir is not None:
                await anyio.to_thread.run_sync(lambda: shutil.rmtree(workdir, ignore_errors=True))


# (browser, python) -> those built-in tools, new; `Host.chat` gives its chats one, so they can switch them later.
NativesBuilder = Callable[[bool, bool], ChatNatives]


def build_natives(settings: BrowserSettings, *, browser: bool, python: bool, time_limit_s: float) -> ChatNatives:
    """The built-in tools asked for; python gets a new working directory (its owner removes it)."""
    built = ChatNatives()
    if browser:
        key = settings.search_api_key.get_secret_value() if settings.search_api_key else None
        built.browser = BrowserSession(
            search_url=settings.search_url,
            allow_private_addresses=settings.allow_private_addresses,
            search_api=settings.search_api,
            search_api_key=key,
            # Pages may contain text like "<|end|>": counted as text, never as special tokens.
            count_tokens=lambda text: len(harmony_encoding().encode(text, disallowed_special=())),
        )
        built.tools.update(browser_tools(built.browser))
    if python:
        built.workdir = Path(tempfile.mkdtemp(prefix="mcp-host-python-"))
        tool = PythonTool(built.workdir, time_limit_s=time_limit_s)
        built.tools["python"] = tool
        built.python_description = tool.spec.description
    return built


async def switch_natives(natives: ChatNatives, build: NativesBuilder, *, browser: bool, python: bool) -> ChatNatives:
    """`natives` with the browser and python on or off: one switched on is built afresh, one switched off is
    closed (python's working directory removed), one left as it was is kept (the browser's pages, python's state)."""
    has_browser = any(tool.spec.server == "browser" for tool in natives.tools.values())
    has_python = "python" in natives.tools
    added = build(browser and not has_browser, python and not has_python)
    wanted = {"browser": browser, "python": python}
    gone = {name for name, tool in natives.tools.items() if not wanted.get(tool.spec.server, True)}
    kept = {name: tool for name, tool in natives.tools.items() if name not in gone}
    await ChatNatives(
        {name: natives.tools[name] for name in gone}, workdir=None if python else natives.workdir
    ).aclose()
    return ChatNatives(
        tools={**kept, **added.tools},
        browser=(natives.browser if browser else None) or added.browser,
        workdir=(natives.workdir if python else None) or added.workdir,
        python_description=(natives.python_description if python else None) or added.python_description,
    )
