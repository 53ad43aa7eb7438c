"""Host-level settings, kept in a TOML file (`~/.config/mcp-host/settings.toml` by default).

    [servers]
    connect_timeout_s = 30
    call_timeout_s = 60

mcp.json stays LM Studio's file; what only this host knows lives here. The file is the user's:
the host reads it and never writes it, so rules and comments are kept exactly as typed. The
user's "always allow" answers go to a file of their own beside it (see `mcp_host.config.approvals`);
`[permissions] always = [...]` entries written by earlier versions are still honoured.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from mcp_host.config.approvals import AlwaysAllowed
from mcp_host.errors import ConfigSchemaError, ConfigSyntaxError


class ServerSettings(BaseModel):
    """How the host talks to servers: timeouts, restarts after a crash, protocol era.

    A server's own `timeout` in mcp.json (milliseconds) replaces both `call_timeout_s` and
    `connect_timeout_s` for that server: it bounds the start as well as each request.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    connect_timeout_s: float = Field(default=30.0, gt=0)
    call_timeout_s: float = Field(default=60.0, gt=0)
    restart_attempts: int = Field(default=3, ge=0)
    restart_backoff_s: float = Field(default=1.0, ge=0)
    restart_backoff_max_s: float = Field(default=30.0, ge=0)
    stable_after_s: float = Field(default=60.0, ge=0, description="Uptime after which the restart count resets.")
    stderr_lines: int = Field(default=50, ge=1)
    protocol: str = Field(
        default="auto",
        description="'auto' negotiates the era per server; 'legacy' forces the initialize handshake; "
        "a 2026-07-28-era version string adopts that version without probing.",
    )
    log_level: Literal["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"] = Field(
        default="info", description="The least severe server log message the host asks servers to send."
    )
    lazy: tuple[str, ...] = Field(
        default=(),
        description="Servers (by their mcp.json name) started only when a call or request first needs them; "
        "until then their tools come from the tool catalog. One the catalog does not know yet starts at once.",
    )
    tool_catalog: bool = Field(
        default=True,
        description="Keep each server's tools in the cache folder, so the next start offers them at once "
        "while the servers start.",
    )


class PromptSettings(BaseModel):
    """How prompts are built for gpt-oss, and when the host warns that tools crowd the context."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reasoning_effort: Literal["low", "medium", "high"] = "medium"
    context_tokens: int = Field(default=16384, gt=0, description="The model's context window, for the warning.")
    tools_warn_share: float = Field(default=0.25, gt=0, le=1, description="Warn when tools take more than this.")


class ToolSettings(BaseModel):
    """`[tools]`: tools at scale. When every tool together takes more than `select_above_share` of the model's
    context, each turn offers a selection instead: the pinned tools, those used earlier in the chat, and the
    tools that best match the conversation, up to `budget_share` of the context (`mcp_host.agent.selection`).

        [tools]
        pinned = ["time.get_current_time", "fs.*"]
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    selection: Literal["auto", "always", "off"] = Field(
        default="auto",
        description="'auto': select above `select_above_share`; 'always': every turn; 'off': offer every tool.",
    )
    select_above_share: float = Field(
        default=0.25, gt=0, le=1, description="Select when all the tools take more than this share of the context."
    )
    budget_share: float = Field(
        default=0.15, gt=0, le=1, description="What the selected tools may take of the context (built-ins included)."
    )
    pinned: tuple[str, ...] = Field(
        default=(), description="Tools every turn offers: qualified names (`server.tool`) or patterns (`fs.*`)."
    )
    pin_plugins: bool = Field(default=True, description="Every turn offers the plugins' tools (the chat's own).")
    recent_messages: int = Field(
        default=4, ge=0, description="Earlier messages that count in the ranking, each half as much as the next."
    )


Policy = Literal["allow", "ask", "deny"]


class PermissionSettings(BaseModel):
    """Who may run what without asking. Tool policies win over server policies, which win over defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    allow_read_only: bool = Field(default=False, description="Run tools annotated readOnlyHint without asking.")
    servers: dict[str, Policy] = Field(default_factory=dict)
    tools: dict[str, Policy] = Field(default_factory=dict, description="By qualified name, `server.tool`.")
    sampling: dict[str, Policy] = Field(
        default_factory=dict,
        description="Per server: may it have the chat's model write messages (MCP sampling)? Default: ask. "
        "Server-wide tool rules do not apply to sampling.",
    )
    always: list[AlwaysAllowed] = Field(
        default_factory=list, description="Answers saved here by earlier versions; read, never written."
    )


class BrowserSettings(BaseModel):
    """The browser tool: fetching pages needs nothing; search needs an engine (a SearXNG instance)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    search_url: str | None = Field(default=None, description="A SearXNG address, e.g. http://127.0.0.1:8888.")
    search_api: Literal["searxng", "brave"] = "searxng"
    search_api_key: SecretStr | None = Field(default=None, description="For a hosted search API (Brave Search).")
    allow_private_addresses: bool = Field(
        default=False,
        description="Let the browser open loopback, link-local and private addresses (off: a page the model "
        "reads cannot make it reach this machine's or the LAN's services).",
    )


class PluginSettings(BaseModel):
    """`[plugins]`: which plugins are off, and each plugin's own table (`[plugins.NAME]`, read by its config model)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    enabled: list[str] = Field(
        default_factory=list,
        description="Bundled plugins every chat uses (the project's `plugins/`: off unless named here or per chat). "
        "Your own plugins and installed ones are on unless disabled.",
    )
    disabled: list[str] = Field(default_factory=list, description="Plugins that are not loaded at all.")
    folder: str | None = Field(default=None, description="The user plugin folder (default: next to the settings).")

    def __repr_args__(self) -> Any:
        # A plugin's table may hold secrets until its own model (with SecretStr) has read it: keys only.
        extra = self.model_extra or {}
        for key, value in super().__repr_args__():
            if key in extra:
                yield key, f"<[plugins.{key}]: {', '.join(sorted(value)) if isinstance(value, dict) else '…'}>"
            else:
                yield key, value

    def table(self, name: str) -> dict[str, Any]:
        """`[plugins.NAME]` as written (an empty table when absent)."""
        value = (self.model_extra or {}).get(name, {})
        return value if isinstance(value, dict) else {"": value}


class ModelSettings(BaseModel):
    """`[models]`: where models are found besides LM Studio's folder and the Hugging Face cache; how many stay loaded.

    A model named by a request is loaded just in time; past `resident` loaded models, the one idle the longest
    is unloaded first; a model loaded just in time is unloaded after `idle_ttl_s` unused (none: never).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    paths: list[str] = Field(default_factory=list, description="More GGUF files or folders (searched 3 levels deep).")
    resident: int = Field(default=1, ge=1, description="How many models stay loaded at once.")
    idle_ttl_s: float | None = Field(default=3600.0, gt=0, description="Unload a just-in-time model idle this long.")


class ApiSettings(BaseModel):
    """`[api]`: what requests to `mcp-host serve` may use, and where its state is kept.

    A tool call that the permission policy would ask about cannot be asked about on the stateless endpoints
    (`/v1/chat/completions` with host tools, `/api/v1/chat`): it is denied with a reason the model reads,
    unless `unattended_calls = "allow"`. The Responses API asks through `mcp_approval_request` items instead.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    allow_mcp_json_servers: bool = Field(
        default=True, description="Requests may use mcp.json servers as integrations (`mcp/<name>`)."
    )
    allow_ephemeral_mcp: bool = Field(
        default=False, description="Requests may name MCP servers of their own by URL (connected for the request)."
    )
    unattended_calls: Literal["deny", "allow"] = Field(
        default="deny", description="A call the policy would ask about, where no one can be asked: deny or allow."
    )
    turn_lease_s: float = Field(
        default=15.0, gt=0, description="A turn of a server that died is reported interrupted this long after."
    )
    store: SecretStr | None = Field(
        default=None,
        description="Where sessions, threads and responses are kept: `sqlite:///path` or `postgresql://…` "
        "(default: SQLite in the state directory).",
    )
    config_editor: bool = Field(
        default=True,
        description="Clients of the API may read and replace mcp.json (`/v1/config/mcp.json`); whoever writes it "
        "chooses the commands the host runs. Off: those endpoints answer 403.",
    )


class HostSettings(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    browser: BrowserSettings = Field(default_factory=BrowserSettings)
    servers: ServerSettings = Field(default_factory=ServerSettings)
    prompt: PromptSettings = Field(default_factory=PromptSettings)
    tools: ToolSettings = Field(default_factory=ToolSettings)
    permissions: PermissionSettings = Field(default_factory=PermissionSettings)
    plugins: PluginSettings = Field(default_factory=PluginSettings)
    models: ModelSettings = Field(default_factory=ModelSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)


def load_settings(path: Path) -> HostSettings:
    """Read the settings file; a missing file means the defaults. Raises `ConfigError`."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return HostSettings()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigSchemaError(f"{path}: cannot be read: {exc}", path=path, server=None, key=None) from exc
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line, column = _toml_position(str(exc))
        raise ConfigSyntaxError(
            f"{path}:{line}:{column}: invalid TOML: {exc}", path=path, line=line, column=column
        ) from exc
    try:
        return HostSettings.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        raise ConfigSchemaError(f"{path}: key '{key}': {first['msg']}", path=path, server=None, key=key) from exc


def _toml_position(message: str) -> tuple[int, int]:
    match = re.search(r"line (\d+), column (\d+)", message)
    return (int(match.group(1)), int(match.group(2))) if match else (1, 1)
