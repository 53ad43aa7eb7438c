"""What a plugin is: a `Plugin` object with tools, and optionally hooks and a config model.

A plugin is a folder (or a `.py` file, or an installed package) whose module defines `plugin`:

    from pydantic import BaseModel, SecretStr
    from mcp_host.plugins import Plugin, PluginContext

    class Config(BaseModel):             # values from [plugins.weather] in the settings TOML
        api_key: SecretStr | None = None

    plugin = Plugin("weather", description="Current weather.", config=Config)

    @plugin.tool(read_only=True, open_world=True)
    async def current(city: str, ctx: PluginContext) -> str:
        '''The weather now in a city.

        Args:
            city: The city's name, e.g. "Paris".
        '''
        return f"Sunny in {city}"

    @plugin.preprocessor
    def add_units(message: UserMessage) -> UserMessage:      # may rewrite the user's message
        return message.with_text(message.text + "\\n(Use metric units.)")

    @plugin.postprocessor
    def redact(call: ToolCallInfo, result: ToolResult) -> ToolResult | None:   # None keeps it
        return None

Tools are offered as `<plugin>.<tool>` under the host's permission policy, like MCP tools.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar, overload

from pydantic import BaseModel

from mcp_host.agent.attachments import Attachment
from mcp_host.errors import ToolDefinitionError
from mcp_host.plugins.functions import FunctionTool
from mcp_host.tools.spec import ToolResult

F = TypeVar("F", bound=Callable[..., Any])
_PLUGIN_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")


@dataclass(frozen=True)
class UserMessage:
    """The user's message as a preprocessor sees it: the text and the resources attached to it."""

    text: str
    attachments: tuple[Attachment, ...] = ()

    def with_text(self, text: str) -> UserMessage:
        return replace(self, text=text)


@dataclass(frozen=True)
class ToolCallInfo:
    """The call a postprocessor's result belongs to: qualified tool name and the arguments it ran with."""

    tool: str
    arguments: dict[str, Any]


Preprocessor = Callable[[UserMessage], UserMessage | str | None | Awaitable[UserMessage | str | None]]
Postprocessor = Callable[[ToolCallInfo, ToolResult], ToolResult | str | None | Awaitable[ToolResult | str | None]]


@dataclass
class Plugin:
    """A named set of tools and hooks. Names: lowercase letters, digits, `-` and `_`, starting with a letter."""

    name: str
    description: str = ""
    config: type[BaseModel] | None = None
    version: str = "0"
    tools: list[FunctionTool] = field(default_factory=list)
    preprocessors: list[Preprocessor] = field(default_factory=list)
    postprocessors: list[Postprocessor] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not _PLUGIN_NAME.match(self.name):
            raise ToolDefinitionError(
                f"plugin name {self.name!r} must be lowercase letters, digits, '-' or '_', starting with a letter"
            )

    @overload
    def tool(self, function: F) -> F: ...

    @overload
    def tool(
        self,
        *,
        name: str | None = None,
        description: str | None = None,
        read_only: bool = False,
        destructive: bool = False,
        idempotent: bool = False,
        open_world: bool = False,
    ) -> Callable[[F], F]: ...

    def tool(
        self,
        function: Any = None,
        *,
        name: str | None = None,
        description: str | None = None,
        read_only: bool = False,
        destructive: bool = False,
        idempotent: bool = False,
        open_world: bool = False,
    ) -> Any:
        """Register a function as a tool (`@plugin.tool` or `@plugin.tool(read_only=True)`); returns it unchanged.

        The flags become the tool's MCP annotations, which the permission policy reads: by default a
        destructive tool asks every time, and a read-only one runs without asking where the settings say so.
        """
        annotations = {
            "readOnlyHint": read_only,
            "destructiveHint": destructive,
            "idempotentHint": idempotent,
            "openWorldHint": open_world,
        }

        def register(fn: F) -> F:
            tool = FunctionTool.build(fn, server=self.name, name=name, description=description, annotations=annotations)
            if any(existing.spec.tool == tool.spec.tool for existing in self.tools):
                raise ToolDefinitionError(f"plugin {self.name!r} has two tools named {tool.spec.tool!r}")
            self.tools.append(tool)
            return fn

        return register(function) if function is not None else register

    def preprocessor(self, function: Preprocessor) -> Preprocessor:
        """Register a prompt preprocessor: it sees each user message and may return a new one (or text)."""
        self.preprocessors.append(function)
        return function

    def postprocessor(self, function: Postprocessor) -> Postprocessor:
        """Register a tool-result postprocessor: it sees every tool's result and may return a new one."""
        self.postprocessors.append(function)
        return function


def functions_plugin(functions: Sequence[Callable[..., Any]], name: str = "app") -> Plugin:
    """Plain functions as the tools of one ad-hoc plugin (`chat.act(text, tools=[...])`), of origin `function`."""
    plugin = Plugin(name, description="Functions the application passed for this turn.")
    for function in functions:
        tool = FunctionTool.build(function, server=name, origin="function")
        if any(existing.spec.tool == tool.spec.tool for existing in plugin.tools):
            raise ToolDefinitionError(f"two functions are named {tool.spec.tool!r}")
        plugin.tools.append(tool)
    return plugin
