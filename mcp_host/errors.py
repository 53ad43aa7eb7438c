"""The exceptions mcp_host raises, all rooted at `McpHostError`.

    McpHostError
    ├── ConfigError                 mcp.json or the host settings cannot be used
    │   ├── ConfigSyntaxError       not valid JSON / TOML: names file, line and column
    │   └── ConfigSchemaError       valid JSON, wrong shape: names file, server and key
    ├── ServerError                 something about one MCP server
    │   ├── ServerStartError        the server could not be started or connected to
    │   ├── ServerNotReadyError     a call reached a server that is not `ready`
    │   └── UnknownServerError      no server of that name is configured
    └── ToolError                   something about one tool
        ├── UnknownToolError        no tool of that qualified name
        └── ToolCallError           the call itself failed (timeout, transport, protocol)

A tool that runs and reports `isError` is not an exception: it is a `ToolResult`
with `is_error=True`, because the model can read it and recover.
"""

from __future__ import annotations

from pathlib import Path


class McpHostError(Exception):
    """Base class of every error mcp_host raises on purpose."""


class ConfigError(McpHostError):
    """A configuration file cannot be used."""

    def __init__(self, message: str, *, path: Path | None = None) -> None:
        super().__init__(message)
        self.path = path


class ConfigSyntaxError(ConfigError):
    """The file is not valid JSON (or TOML); `line` and `column` are 1-based."""

    def __init__(self, message: str, *, path: Path, line: int, column: int) -> None:
        super().__init__(message, path=path)
        self.line = line
        self.column = column


class ConfigSchemaError(ConfigError):
    """The file parses but a server entry has the wrong shape."""

    def __init__(self, message: str, *, path: Path | None, server: str | None, key: str | None) -> None:
        super().__init__(message, path=path)
        self.server = server
        self.key = key


class ServerError(McpHostError):
    """Something about one MCP server; `server` is its name in mcp.json."""

    def __init__(self, message: str, *, server: str) -> None:
        super().__init__(message)
        self.server = server


class ServerStartError(ServerError):
    """The server could not be started or did not complete the handshake."""


class ServerNotReadyError(ServerError):
    """A request reached a server whose connection is not `ready`."""


class UnknownServerError(ServerError):
    """No server of that name is configured."""


class ToolError(McpHostError):
    """Something about one tool; `tool` is its qualified name (`server.tool`)."""

    def __init__(self, message: str, *, tool: str) -> None:
        super().__init__(message)
        self.tool = tool


class UnknownToolError(ToolError):
    """No tool of that qualified name is known."""


class ToolCallError(ToolError):
    """The call could not complete: it timed out, or the transport or protocol failed."""
