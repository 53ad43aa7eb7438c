"""The MCP servers one API request brings to its turn: mcp.json servers it names, and servers of its own.

    servers = [
        ConfiguredServer("playwright", allowed_tools=("browser_navigate",), param="integrations.1"),
        EphemeralServer("huggingface", "https://huggingface.co/mcp", headers={"Authorization": "Bearer …"},
                        allowed_tools=("model_search",), param="integrations.0"),
    ]
    tools = RequestTools(host, servers, allow_configured=True, allow_ephemeral=False)  # ApiError 400 / 403 at once
    async with tools:                                   # connects the request's own servers; ApiError 502 / 503
        chat = tools.chat(backend, options)             # a host chat offering only these tools
        tools.provider("huggingface.model_search")      # Provider("ephemeral", "huggingface", "model_search")
    # leaving the block closes the request's own connections; mcp.json servers keep running in the host

The public interface, kept stable for every endpoint that takes MCP servers per request (LM Studio's
`/api/v1/chat` `integrations`, OpenAI's Responses API `{"type": "mcp", ...}` tools):

- `ConfiguredServer(name, allowed_tools=None, param=None)`: a server of the host's mcp.json, used through the
  host (its connection, its restarts); `EphemeralServer(label, url, headers={}, allowed_tools=None, param=None)`:
  a Streamable HTTP server the request names by URL, connected for this request only. `allowed_tools` (None: every
  tool) is what the model is offered, so fewer tools make a shorter prompt; `param` is the request field named in
  errors.
- `RequestTools(host, servers, *, allow_configured, allow_ephemeral)`: an async context manager. The constructor
  checks the request (raises `ApiError`: 403 when a kind of server is not allowed, 400 for an unknown mcp.json
  server, a label taken twice or by an mcp.json server, an allowed tool the server does not have); entering it
  waits for the mcp.json servers to be ready (503 `plugin_connection_error` when one is not) and connects the
  request's own (502 `mcp_connection_error` when one cannot be reached, 400 for an unknown allowed tool).
- `.registry` (`ToolRegistry`): the tools the turn offers, ephemeral ones under their label as server name
  (`huggingface.model_search`); `.provider(qualified)`: where a tool came from, a `Provider(kind, server, tool)`
  (`kind` "mcp_json" or "ephemeral"; `.lmstudio_info()` is LM Studio's `provider_info`) or None; `.servers`
  (filled on entry): the servers in request order with their offered tools (`ServerTools`); `.statuses()`: the
  request's own connections; `.call_tool(...)`: the `ToolCaller` that sends each call to its server;
  `.chat(backend, options)`: `Host.chat` with these tools and that caller.

Permissions are the host's: a tool the policy would ask about still asks (the endpoint decides who answers),
and rules name ephemeral servers by their label (`[permissions.servers] huggingface = "allow"` allows the tools
of whatever server a request labels so: the label, not the URL, is what the rule sees). Labels cannot take the
name of an mcp.json server. The request's own connections are named `ephemeral:<label>` inside the host, so
they never share an mcp.json server's stored OAuth login; headers sent with the request are never `${VAR}`
expanded. What a request's own server asks during a call (a form, a sample) goes to the turn, like any server's.
A request's server is reached from this machine, so a client allowed to name one can make the host connect to
whatever this machine reaches (its loopback, its network): allow them only to clients trusted that far.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx2
from anyio.abc import AsyncResource
from pydantic import ValidationError

from mcp_host.agent import Chat, ChatOptions
from mcp_host.backends.base import Backend, ChatBackend
from mcp_host.config.mcpjson import McpConfig, RemoteServerConfig, ServerConfig
from mcp_host.errors import ApiError, UnknownServerError, UnknownToolError
from mcp_host.host import Host
from mcp_host.servers.asks import ServerAsks
from mcp_host.servers.connection import Connection
from mcp_host.servers.describe import safe_url
from mcp_host.servers.manager import ServerManager
from mcp_host.servers.state import ServerState, ServerStatus
from mcp_host.tools.registry import ToolRegistry
from mcp_host.tools.spec import ToolResult, ToolSpec

EPHEMERAL_PREFIX = "ephemeral:"  # the host-side name of a request's own connection: `ephemeral:<label>`


@dataclass(frozen=True)
class ConfiguredServer:
    """A server of the host's mcp.json, by name (LM Studio's plugin `mcp/<name>`)."""

    name: str
    allowed_tools: tuple[str, ...] | None = None
    param: str | None = None


@dataclass(frozen=True)
class EphemeralServer:
    """A Streamable HTTP server the request names by URL, connected for the request and closed after it."""

    label: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    allowed_tools: tuple[str, ...] | None = None
    param: str | None = None

    def __repr__(self) -> str:  # headers, and a URL's userinfo or query, may carry credentials
        return f"EphemeralServer(label={self.label!r}, url={self.shown_url!r}, headers={sorted(self.headers)})"

    @property
    def shown_url(self) -> str:
        """The URL as errors and logs may show it: no userinfo, no query (either may hold a token)."""
        try:
            return safe_url(httpx2.URL(self.url))
        except (httpx2.InvalidURL, ValueError):
            return "<an unreadable URL>"


ServerRef = ConfiguredServer | EphemeralServer


@dataclass(frozen=True)
class Provider:
    """Where one offered tool comes from: `kind` "mcp_json" (`server` is its mcp.json name) or "ephemeral"
    (`server` is the request's label); `tool` is its name on that server."""

    kind: Literal["mcp_json", "ephemeral"]
    server: str
    tool: str

    def lmstudio_info(self) -> dict[str, str]:
        """LM Studio's `provider_info` of a tool call."""
        if self.kind == "ephemeral":
            return {"type": "ephemeral_mcp", "server_label": self.server}
        return {"type": "plugin", "plugin_id": f"mcp/{self.server}"}


@dataclass(frozen=True)
class ServerTools:
    """One server of the request and the tools the turn offers from it."""

    ref: ServerRef
    tools: tuple[ToolSpec, ...]

    @property
    def name(self) -> str:
        """The mcp.json name or the label."""
        return self.ref.name if isinstance(self.ref, ConfiguredServer) else self.ref.label


class RequestTools(AsyncResource):
    """The tools of one request's servers; an async context manager (see the module's docstring)."""

    def __init__(
        self, host: Host, servers: Sequence[ServerRef], *, allow_configured: bool, allow_ephemeral: bool
    ) -> None:
        """Raises `ApiError` (403, 400) for servers the request may not use or that do not exist."""
        self.host = host
        self.refs = tuple(servers)
        self.registry = ToolRegistry()
        self.servers: list[ServerTools] = []
        self._providers: dict[str, Provider] = {}
        self._ephemeral: ServerManager | None = None
        self._connections: list[Connection] = []
        self._stack = AsyncExitStack()
        _check(host, self.refs, allow_configured=allow_configured, allow_ephemeral=allow_ephemeral)

    async def __aenter__(self) -> RequestTools:
        async with AsyncExitStack() as stack:
            stack.push_async_callback(self.aclose)
            await self._ready_configured()
            ephemeral = [ref for ref in self.refs if isinstance(ref, EphemeralServer)]
            if ephemeral:
                settings = self.host.settings.servers.model_copy(update={"restart_attempts": 0})
                self._ephemeral = await self._stack.enter_async_context(ServerManager(settings))
                await self._connect(self._ephemeral, ephemeral)
            for ref in self.refs:
                self._offer(ref)
            stack.pop_all()
        return self

    async def aclose(self) -> None:
        """Close the request's own connections (mcp.json servers keep running). Idempotent."""
        await self._stack.aclose()

    def provider(self, qualified: str) -> Provider | None:
        """Where the offered tool `server.tool` comes from; None for a tool this request does not offer."""
        return self._providers.get(qualified)

    def statuses(self) -> list[ServerStatus]:
        """The request's own connections (named `ephemeral:<label>`): `stopped` once the block is left."""
        return [connection.status() for connection in self._connections]

    def chat(self, backend: Backend | ChatBackend, options: ChatOptions | None = None) -> Chat:
        """A host chat that offers exactly these tools and sends each call to its server."""
        return self.host.chat(backend, options, tools=self.registry, call_tool=self.call_tool)

    async def call_tool(
        self, name: str, arguments: dict[str, Any], timeout_s: float | None, asks: ServerAsks | None
    ) -> ToolResult:
        """Call an offered tool by qualified name. Raises `UnknownToolError` and what the connection raises."""
        provider = self._providers.get(name)
        if provider is None:
            raise UnknownToolError(f"no tool named {name!r} is offered to this request", tool=name)
        if provider.kind == "mcp_json":
            return await self.host.call_tool(name, arguments, timeout_s=timeout_s, asks=asks)
        assert self._ephemeral is not None, "an ephemeral tool is offered only while its connection is open"
        connection = self._ephemeral.connection(EPHEMERAL_PREFIX + provider.server)
        return await connection.call_tool(provider.tool, arguments, timeout_s=timeout_s, asks=asks)

    async def _ready_configured(self) -> None:
        for ref in self.refs:
            if not isinstance(ref, ConfiguredServer):
                continue
            try:
                connection = self.host.manager.connection(ref.name)
            except UnknownServerError:  # mcp.json changed since the request was checked
                raise ApiError(400, f"the MCP server {ref.name!r} is not in mcp.json", param=ref.param) from None
            await connection.wait_started()  # a lazy server starts for its first use
            if connection.state is not ServerState.READY:
                reason = f": {connection.error}" if connection.error else ""
                raise ApiError(
                    503,
                    f"the mcp.json server {ref.name!r} is {connection.state.value}{reason}",
                    param=ref.param,
                    code="plugin_connection_error",
                )

    async def _connect(self, manager: ServerManager, refs: list[EphemeralServer]) -> None:
        servers: dict[str, ServerConfig] = {}
        for ref in refs:
            try:
                servers[EPHEMERAL_PREFIX + ref.label] = RemoteServerConfig(url=ref.url, headers=dict(ref.headers))
            except ValidationError:
                raise ApiError(400, "an MCP server URL must start with http:// or https://", param=ref.param) from None
        await manager.apply(McpConfig(servers=servers))
        await manager.wait_settled()
        self._connections = [manager.connection(EPHEMERAL_PREFIX + ref.label) for ref in refs]
        for ref, connection in zip(refs, self._connections, strict=True):
            if connection.state is not ServerState.READY:
                reason = connection.error or connection.state.value
                raise ApiError(
                    502,
                    f"cannot connect to the MCP server {ref.label!r} at {ref.shown_url}: {reason}",
                    param=ref.param,
                    code="mcp_connection_error",
                )

    def _offer(self, ref: ServerRef) -> None:
        if isinstance(ref, ConfiguredServer):
            kind: Literal["mcp_json", "ephemeral"] = "mcp_json"
            name, specs = ref.name, self.host.registry.server_tools(ref.name)
        else:
            assert self._ephemeral is not None
            kind, name = "ephemeral", ref.label
            found = self._ephemeral.registry.server_tools(EPHEMERAL_PREFIX + ref.label)
            specs = [dataclasses.replace(spec, server=ref.label) for spec in found]
        offered = _allowed(name, specs, ref.allowed_tools, ref.param)
        self.registry.replace_server(name, offered)
        self.servers.append(ServerTools(ref, tuple(offered)))
        for spec in offered:
            self._providers[spec.name] = Provider(kind, name, spec.tool)


def _check(host: Host, refs: Sequence[ServerRef], *, allow_configured: bool, allow_ephemeral: bool) -> None:
    configured = host.config.servers if host.config is not None else {}
    enabled = sorted(name for name, server in configured.items() if not server.disabled)
    taken: set[str] = set()
    for ref in refs:
        if isinstance(ref, ConfiguredServer):
            name = ref.name
            if not allow_configured:
                raise ApiError(
                    403,
                    f"Permission denied to use plugin 'mcp/{name}': this server's settings do not allow requests "
                    "to use mcp.json servers ([api] allow_mcp_json_servers = false)",
                    param=ref.param,
                    code="permission_denied",
                )
            if name not in configured or configured[name].disabled:
                state = "is disabled in mcp.json" if name in configured else "is not in mcp.json"
                available = ", ".join(f"mcp/{server}" for server in enabled) or "none"
                raise ApiError(400, f"the MCP server {name!r} {state}; available: {available}", param=ref.param)
        else:
            name = ref.label
            if not allow_ephemeral:
                raise ApiError(
                    403,
                    f"Permission denied to use the ephemeral MCP server {name!r}: this server's settings do not "
                    "allow requests to bring their own MCP servers (set [api] allow_ephemeral_mcp = true)",
                    param=ref.param,
                    code="permission_denied",
                )
            if name in configured:
                raise ApiError(
                    400,
                    f"the label {name!r} is the name of an mcp.json server; give the request's server another label",
                    param=ref.param,
                )
        if name in taken:
            raise ApiError(400, f"the MCP server {name!r} is named twice in one request", param=ref.param)
        taken.add(name)


def _allowed(
    server: str, specs: Sequence[ToolSpec], allowed: tuple[str, ...] | None, param: str | None
) -> list[ToolSpec]:
    if allowed is None:
        return list(specs)
    names = {spec.tool for spec in specs}
    unknown = [tool for tool in allowed if tool not in names]
    if unknown:
        raise ApiError(
            400,
            f"the MCP server {server!r} has no tools {unknown}; its tools: {sorted(names)}",
            param=f"{param}.allowed_tools" if param else "allowed_tools",
        )
    return [spec for spec in specs if spec.tool in allowed]
