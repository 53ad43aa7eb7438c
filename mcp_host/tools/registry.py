"""The registry: every tool the host can call, merged under qualified names.

registry.replace_server("time", specs)
registry.get("time.get_current_time")
registry.names.to_identifier["time.get_current_time"]  # 'time__get_current_time'
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Iterable, Iterator

from mcp_host.errors import UnknownToolError
from mcp_host.tools.names import NameMap
from mcp_host.tools.spec import ToolSpec

logger = logging.getLogger(__name__)

_LISTED = 10  # tools named in an unknown-tool error


class ToolRegistry:
    """Tools by qualified name, grouped by the server (or native/plugin source) that owns them.

    The name map is rebuilt whenever the set of tools changes, so identifiers are always
    consistent with the current tools; `version` increases with each change.
    """

    def __init__(self) -> None:
        self._by_server: dict[str, dict[str, ToolSpec]] = {}
        self._names: NameMap | None = None
        self.version = 0
        self.duplicates: dict[str, list[str]] = {}

    def replace_server(self, server: str, specs: Iterable[ToolSpec]) -> None:
        """Make `specs` the tools of `server`; a tool listed twice keeps its first listing (and is reported)."""
        tools: dict[str, ToolSpec] = {}
        duplicated: list[str] = []
        for spec in specs:
            if spec.tool in tools:
                duplicated.append(spec.tool)
                continue
            tools[spec.tool] = spec
        if duplicated:
            logger.warning(
                "server %r listed these tools more than once; the first listing is used: %s",
                server,
                ", ".join(duplicated),
            )
            self.duplicates[server] = duplicated
        else:
            self.duplicates.pop(server, None)
        if self._by_server.get(server) == tools:
            return
        self._by_server[server] = tools
        self._changed()

    def view(self, *, without: Iterable[str] = (), extra: Iterable[ToolSpec] = ()) -> ToolRegistry:
        """A separate registry with these tools minus the servers (or plugins) `without`, plus `extra`."""
        view = ToolRegistry()
        dropped = set(without)
        view._by_server = {server: dict(tools) for server, tools in self._by_server.items() if server not in dropped}
        grouped: dict[str, list[ToolSpec]] = {}
        for spec in extra:
            grouped.setdefault(spec.server, []).append(spec)
        for server, specs in grouped.items():
            view.replace_server(server, specs)
        return view

    def remove_server(self, server: str) -> None:
        self.duplicates.pop(server, None)
        if self._by_server.pop(server, None) is not None:
            self._changed()

    def _changed(self) -> None:
        self._names = None
        self.version += 1

    @property
    def names(self) -> NameMap:
        if self._names is None:
            self._names = NameMap.build((spec.server, spec.tool) for spec in self)
            for collision in self._names.collisions:
                logger.warning("tool name collision: %s", collision)
        return self._names

    def __iter__(self) -> Iterator[ToolSpec]:
        for server in sorted(self._by_server):
            yield from self._by_server[server].values()

    def __len__(self) -> int:
        return sum(len(tools) for tools in self._by_server.values())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._find(name) is not None

    def server_tools(self, server: str) -> list[ToolSpec]:
        return list(self._by_server.get(server, {}).values())

    def get(self, name: str) -> ToolSpec:
        """The tool with qualified name `name` (`server.tool`). Raises `UnknownToolError`."""
        spec = self._find(name)
        if spec is None:
            raise UnknownToolError(f"no tool named {name!r}{self._suggestions(name)}", tool=name)
        return spec

    def _suggestions(self, name: str) -> str:
        """For the error: the closest names among the tools of the server the name starts with (else all
        tools), else that server's tools, so that the caller sees what it could have meant."""
        servers = [server for server in self._by_server if name.startswith(f"{server}.")]
        if not servers:
            close = difflib.get_close_matches(name, [spec.name for spec in self], n=3, cutoff=0.6)
            return f"; did you mean {', '.join(close)}?" if close else ""
        server = max(servers, key=len)  # server names may contain dots: the longest owner
        tools = sorted(self._by_server[server])
        close = difflib.get_close_matches(name[len(server) + 1 :], tools, n=3, cutoff=0.6)
        if close:
            return f"; did you mean {', '.join(f'{server}.{tool}' for tool in close)}?"
        if not tools:
            return f"; server {server!r} has no tools"
        more = f" and {len(tools) - _LISTED} more" if len(tools) > _LISTED else ""
        return f"; server {server!r} has {', '.join(f'{server}.{tool}' for tool in tools[:_LISTED])}{more}"

    def get_by_identifier(self, identifier: str) -> ToolSpec:
        """The tool rendered to the model as `identifier`. Raises `UnknownToolError`."""
        qualified = self.names.to_qualified.get(identifier)
        if qualified is None:
            raise UnknownToolError(f"no tool is rendered as {identifier!r}", tool=identifier)
        return self.get(qualified)

    def _find(self, name: str) -> ToolSpec | None:
        # Server names may contain dots, so try every split rather than the first dot only.
        for index, char in enumerate(name):
            if char == "." and (tools := self._by_server.get(name[:index])) is not None:
                spec = tools.get(name[index + 1 :])
                if spec is not None:
                    return spec
        return None
