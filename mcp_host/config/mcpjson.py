"""LM Studio's `mcp.json`: its models and the loader that turns a file into them.

    config = load_config(Path("~/.lmstudio/mcp.json").expanduser())
    for name, server in config.servers.items(): ...

The file is read as LM Studio writes it (Cursor notation). Every error names the file and
either the line and column (JSON) or the server and key (shape), and variable expansion
happens here so that the rest of the host only ever sees final values.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mcp_host.config.expand import UndefinedVariableError, expand_vars
from mcp_host.errors import ConfigSchemaError, ConfigSyntaxError

_SECRET_MASK = "***"


class _ServerBase(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    timeout: int | None = Field(default=None, gt=0, description="LM Studio's per-server timeout, in milliseconds.")
    disabled: bool = False

    @property
    def timeout_s(self) -> float | None:
        return None if self.timeout is None else self.timeout / 1000


class StdioServerConfig(_ServerBase):
    """A server the host starts as a subprocess and talks to over stdin/stdout."""

    command: str = Field(min_length=1)
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None

    @property
    def transport(self) -> Literal["stdio"]:
        return "stdio"

    def __repr_args__(self) -> Any:
        for key, value in super().__repr_args__():
            yield key, ({k: _SECRET_MASK for k in value} if key == "env" else value)


class RemoteServerConfig(_ServerBase):
    """A server reached over HTTP: Streamable HTTP, or legacy SSE when `type` is `"sse"`."""

    url: str = Field(pattern=r"^https?://")
    headers: dict[str, str] = Field(default_factory=dict)
    type: Literal["sse", "http", "streamable-http", "streamableHttp"] | None = None

    @property
    def transport(self) -> Literal["sse", "http"]:
        return "sse" if self.type == "sse" else "http"

    def __repr_args__(self) -> Any:
        for key, value in super().__repr_args__():
            yield key, ({k: _SECRET_MASK for k in value} if key == "headers" else value)


ServerConfig = StdioServerConfig | RemoteServerConfig


class McpConfig(BaseModel):
    """A loaded mcp.json: every server by name, disabled ones included."""

    model_config = ConfigDict(frozen=True)

    path: Path | None = None
    servers: dict[str, ServerConfig] = Field(default_factory=dict)

    @property
    def enabled(self) -> dict[str, ServerConfig]:
        return {name: server for name, server in self.servers.items() if not server.disabled}


def load_config(path: Path, environ: Mapping[str, str] | None = None) -> McpConfig:
    """Read and validate `path`; a missing file is an error, an empty `mcpServers` is not.

    Raises `ConfigSyntaxError` (bad JSON) or `ConfigSchemaError` (bad shape).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigSchemaError(f"{path}: file not found", path=path, server=None, key=None) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigSchemaError(f"{path}: cannot be read: {exc}", path=path, server=None, key=None) from exc
    return parse_config(text, path=path, environ=environ)


def parse_config(text: str, *, path: Path, environ: Mapping[str, str] | None = None) -> McpConfig:
    """Validate the text of an mcp.json; `path` is only used in messages and kept on the result."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigSyntaxError(
            f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}", path=path, line=exc.lineno, column=exc.colno
        ) from exc
    if not isinstance(document, dict):
        raise ConfigSchemaError(f"{path}: the top level must be a JSON object", path=path, server=None, key=None)
    raw_servers = document.get("mcpServers", {})
    if not isinstance(raw_servers, dict):
        raise ConfigSchemaError(
            f"{path}: key 'mcpServers' must be an object of servers by name", path=path, server=None, key="mcpServers"
        )
    env = os.environ if environ is None else environ
    servers = {name: _parse_server(path, name, raw, env) for name, raw in raw_servers.items()}
    return McpConfig(path=path, servers=servers)


def _parse_server(path: Path, name: str, raw: object, environ: Mapping[str, str]) -> ServerConfig:
    def fail(message: str, key: str | None) -> ConfigSchemaError:
        where = f"server '{name}'" + (f", key '{key}'" if key else "")
        return ConfigSchemaError(f"{path}: {where}: {message}", path=path, server=name, key=key)

    if not name:
        raise fail("a server name must not be empty", None)
    if not isinstance(raw, dict):
        raise fail("must be an object with 'command' or 'url'", None)
    if "command" in raw and "url" in raw:
        raise fail("has both 'command' and 'url'; a server is either stdio or remote", "command")
    if "command" not in raw and "url" not in raw:
        raise fail("needs 'command' (a stdio server) or 'url' (a remote server)", None)
    model: type[StdioServerConfig] | type[RemoteServerConfig] = (
        StdioServerConfig if "command" in raw else RemoteServerConfig
    )
    try:
        expanded = _expand_tree(raw, environ, key_path=())
    except _ExpansionError as exc:
        raise fail(
            f"environment variable {exc.variable} is not set (write ${{{exc.variable}:-}} if optional)", exc.key
        ) from exc
    try:
        return model.model_validate(expanded)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or None
        raise fail(first["msg"], key) from exc


class _ExpansionError(Exception):
    def __init__(self, variable: str, key: str) -> None:
        super().__init__(variable)
        self.variable = variable
        self.key = key


_EXPANDED_KEYS = frozenset({"command", "args", "env", "cwd", "url", "headers"})


def _expand_tree(value: Any, environ: Mapping[str, str], key_path: tuple[str, ...]) -> Any:
    """Expand variables in the string values of the keys LM Studio expands; leave the rest as written."""
    if isinstance(value, dict):
        return {
            k: _expand_tree(v, environ, (*key_path, str(k))) if key_path or k in _EXPANDED_KEYS else v
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_expand_tree(item, environ, (*key_path, str(i))) for i, item in enumerate(value)]
    if isinstance(value, str):
        try:
            return expand_vars(value, environ)
        except UndefinedVariableError as exc:
            raise _ExpansionError(exc.name, ".".join(key_path)) from exc
    return value
