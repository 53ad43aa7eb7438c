"""LM Studio's `mcp.json`: its models and the loader that turns a file into them.

    config = load_config(Path("~/.lmstudio/mcp.json").expanduser())
    for name, server in config.servers.items(): ...

The file is read as LM Studio writes it (Cursor notation). Every error names the file and
either the line and column (JSON) or the server and key (shape), and variable expansion
happens here so that the rest of the host only ever sees final values.

Types are strict: `"disabled": "yes"` or `"timeout": "100"` is an error, not a guess. A key the
host does not know in a server entry is a warning, not an error (LM Studio and other clients may
know it): it lands in `McpConfig.warnings`, naming the closest known key, and is logged by
`load_config`; the host keeps it when it writes the file.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Self

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, ValidationError, model_validator

from mcp_host.config.expand import UndefinedVariableError, expand_vars
from mcp_host.config.paths import lmstudio_config_path
from mcp_host.errors import ConfigSchemaError, ConfigSyntaxError

if TYPE_CHECKING:
    from mcp_host.servers.oauth import LoginHandlers

logger = logging.getLogger(__name__)

_SECRET_MASK = "***"
MAX_WARNINGS = 50  # each named; the rest counted in one more warning, so a hostile file cannot flood a log
MAX_SHOWN_NAME = 200  # characters of a server, key or variable name shown in a message
# A JSON string, or a number (group 1: the digits of an integer).
_STRING_OR_NUMBER = re.compile(
    r'"[^"\\]*(?:\\.[^"\\]*)*"|-?([0-9]+)(?![.eE0-9])|-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?'
)


class _ServerBase(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    timeout: int | None = Field(default=None, gt=0, description="LM Studio's per-server timeout, in milliseconds.")
    disabled: bool = False
    roots: list[str] | None = Field(
        default=None,
        description="The folders this server may work in (paths or file:// URIs); default: the working directory.",
    )

    @property
    def timeout_s(self) -> float | None:
        return None if self.timeout is None else self.timeout / 1000


class StdioServerConfig(_ServerBase):
    """A server the host starts as a subprocess and talks to over stdin/stdout."""

    command: str = Field(min_length=1)
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    type: Literal["stdio"] | None = Field(default=None, description="Cursor's notation says it; nothing depends on it.")

    @property
    def transport(self) -> Literal["stdio"]:
        return "stdio"

    def __repr_args__(self) -> Any:
        for key, value in super().__repr_args__():
            yield key, ({k: _SECRET_MASK for k in value} if key == "env" else value)


class AuthConfig(BaseModel):
    """A remote server's `auth` block: how the host gets its OAuth tokens (an mcp-host key; LM Studio has none).

        "auth": {"client_id": "host-app", "client_secret": "${SECRET}", "scope": "files:read"}
        "auth": {"grant_type": "client_credentials", "client_id": "bot", "client_secret": "${SECRET}",
                 "issuer": "https://auth.example.com"}

    Without the block a remote server that answers 401 gets the authorization code flow with PKCE
    through the user's browser (`mcp-host auth login NAME`), registering the host dynamically or
    with `client_metadata_url` where the authorization server accepts it. `client_id` (and
    `client_secret`) name a client registered beforehand. Client credentials, with a secret or a
    `private_key_jwt` assertion signed with `private_key_path`, need no person at all; so does the
    SEP-990 `jwt_bearer` grant, whose identity assertion a library caller hands over.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    grant_type: Literal["authorization_code", "client_credentials", "jwt_bearer"] = "authorization_code"
    client_id: str | None = Field(default=None, min_length=1)
    client_secret: SecretStr | None = None
    token_endpoint_auth_method: (
        Literal["none", "client_secret_basic", "client_secret_post", "private_key_jwt"] | None
    ) = None
    scope: str | None = Field(default=None, description="Scopes to ask for; default: what the server challenges.")
    issuer: str | None = Field(
        default=None, pattern=r"^https?://", description="The authorization server the credentials belong to."
    )
    private_key_path: str | None = Field(default=None, min_length=1, description="PEM key for private_key_jwt.")
    signing_algorithm: str = Field(default="RS256", min_length=1)
    client_metadata_url: str | None = Field(default=None, pattern=r"^https://[^/]+/.")
    callback_port: int | None = Field(default=None, ge=1, le=65535, description="Fixed loopback redirect port.")

    @model_validator(mode="after")
    def _complete(self) -> Self:
        method = self.token_endpoint_auth_method
        if self.grant_type == "authorization_code":
            if self.client_secret is not None and self.client_id is None:
                raise ValueError("'client_secret' needs 'client_id'")
            if method == "private_key_jwt":
                raise ValueError("private_key_jwt is only used with grant_type 'client_credentials'")
            return self
        if self.client_id is None:
            raise ValueError(f"grant_type {self.grant_type!r} needs 'client_id'")
        if self.issuer is None:
            raise ValueError(f"grant_type {self.grant_type!r} needs 'issuer', the only server its credentials go to")
        if method == "private_key_jwt":
            if self.grant_type != "client_credentials" or self.private_key_path is None:
                raise ValueError("private_key_jwt needs grant_type 'client_credentials' and 'private_key_path'")
        elif self.client_secret is None:
            raise ValueError(f"grant_type {self.grant_type!r} needs 'client_secret' (or private_key_jwt)")
        if method == "none":
            raise ValueError(f"grant_type {self.grant_type!r} needs client authentication, not 'none'")
        return self


class RemoteServerConfig(_ServerBase):
    """A server reached over HTTP: Streamable HTTP, or legacy SSE when `type` is `"sse"`.

    `login` is never read from a file: it is how a caller that can reach the user (`mcp-host auth
    login`, a test) lets this server's connection log in interactively; see `with_login`.
    """

    url: str = Field(pattern=r"^https?://")
    headers: dict[str, str] = Field(default_factory=dict)
    type: Literal["sse", "http", "streamable-http", "streamableHttp"] | None = None
    auth: AuthConfig | None = None
    _login: LoginHandlers | None = PrivateAttr(default=None)

    @property
    def transport(self) -> Literal["sse", "http"]:
        return "sse" if self.type == "sse" else "http"

    @property
    def login(self) -> LoginHandlers | None:
        return self._login

    def with_login(self, login: LoginHandlers | None) -> Self:
        """A copy whose connection may log in through `login`; without one, a login needed is a failure.

        config = RemoteServerConfig(url=url).with_login(handlers)
        """
        copy = self.model_copy()
        copy._login = login
        return copy

    def __repr_args__(self) -> Any:
        for key, value in super().__repr_args__():
            yield key, ({k: _SECRET_MASK for k in value} if key == "headers" else value)


ServerConfig = StdioServerConfig | RemoteServerConfig


class UnknownKey(NamedTuple):
    """The server and (dotted) key an unknown-key warning is about, in full."""

    server: str
    key: str


class McpConfig(BaseModel):
    """A loaded mcp.json: every server by name, disabled ones included, and what the user should know about it.

    `warnings` are for the user's eyes (`for w in config.warnings: print(w)`): unknown keys, each
    naming the file, the server, the key and the closest known key; past `MAX_WARNINGS` of them, a last
    warning counts the rest. `unknown_keys[i]` is what `warnings[i]` is about, for each one named.
    """

    model_config = ConfigDict(frozen=True)

    path: Path | None = None
    servers: dict[str, ServerConfig] = Field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    unknown_keys: tuple[UnknownKey, ...] = Field(default=(), repr=False)

    @property
    def enabled(self) -> dict[str, ServerConfig]:
        return {name: server for name, server in self.servers.items() if not server.disabled}


def load_config(path: Path, environ: Mapping[str, str] | None = None, *, missing_ok: bool | None = None) -> McpConfig:
    """Read and validate `path`; an empty `mcpServers` is not an error.

        config = load_config(Path("~/.lmstudio/mcp.json").expanduser())   # no file yet: no servers

    A missing file is an error unless `missing_ok`, which by default holds for LM Studio's own
    `~/.lmstudio/mcp.json` only: LM Studio writes it when the first server is added, so its absence
    means no servers, while a path someone named must exist. Each of the result's `warnings` is also
    logged. Raises `ConfigSyntaxError` (bad JSON) or `ConfigSchemaError` (bad shape, a wrong type,
    a missing file).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        if missing_ok or (missing_ok is None and is_lmstudio_config(path)):
            return McpConfig(path=path)
        raise ConfigSchemaError(f"{path}: file not found", path=path, server=None, key=None) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigSchemaError(f"{path}: cannot be read: {exc}", path=path, server=None, key=None) from exc
    config = parse_config(text, path=path, environ=environ)
    for warning in config.warnings:
        logger.warning("%s", warning)
    return config


def is_lmstudio_config(path: Path) -> bool:
    """Whether `path` is LM Studio's own `~/.lmstudio/mcp.json`, the file whose absence means no servers."""
    return path.expanduser().absolute() == lmstudio_config_path().absolute()


def parse_config(text: str, *, path: Path, environ: Mapping[str, str] | None = None) -> McpConfig:
    """Validate the text of an mcp.json; `path` is only used in messages and kept on the result.

    Warnings are returned in `McpConfig.warnings`, not logged.
    """
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigSyntaxError(
            f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}", path=path, line=exc.lineno, column=exc.colno
        ) from exc
    except RecursionError as exc:  # `[[[[…` thousands deep: refused, not a crash of the CLI or the watcher
        raise ConfigSyntaxError(f"{path}: invalid JSON: nested too deeply", path=path, line=1, column=1) from exc
    except ValueError as exc:  # Python's limit on an int's digits (`sys.get_int_max_str_digits`)
        raise _number_too_long(text, path) from exc
    if not isinstance(document, dict):
        raise ConfigSchemaError(f"{path}: the top level must be a JSON object", path=path, server=None, key=None)
    raw_servers = document.get("mcpServers", {})
    if not isinstance(raw_servers, dict):
        raise ConfigSchemaError(
            f"{path}: key 'mcpServers' must be an object of servers by name", path=path, server=None, key="mcpServers"
        )
    env = os.environ if environ is None else environ
    servers: dict[str, ServerConfig] = {}
    unknown: list[UnknownKey] = []
    for name, raw in raw_servers.items():
        servers[name] = _parse_server(path, name, raw, env)
        unknown.extend(UnknownKey(name, key) for key in _unknown_keys(raw, type(servers[name])))
    named = unknown[:MAX_WARNINGS]  # a hint costs a fuzzy match: only for the keys named
    warnings = [_unknown_key_warning(path, place, type(servers[place.server])) for place in named]
    if len(unknown) > len(named):
        warnings.append(f"{path}: and {len(unknown) - len(named)} more unknown keys, ignored")
    return McpConfig(path=path, servers=servers, warnings=tuple(warnings), unknown_keys=tuple(named))


def shown_name(name: str) -> str:
    """`name` (of a server, key or variable) as a message shows it: at most `MAX_SHOWN_NAME` characters."""
    if len(name) <= MAX_SHOWN_NAME:
        return name
    return f"{name[: MAX_SHOWN_NAME - 1]}… ({len(name)} characters)"


def _number_too_long(text: str, path: Path) -> ConfigSyntaxError:
    """The error for a number of more digits than Python converts, placed at the number."""
    limit = sys.get_int_max_str_digits()
    # Everything before the number parsed, so its strings and numbers are read whole: the first integer too long.
    integers = (match for match in _STRING_OR_NUMBER.finditer(text) if match[1] is not None)
    offset = next((match.start() for match in integers if len(match[1]) > limit), 0)
    line, column = text.count("\n", 0, offset) + 1, offset - text.rfind("\n", 0, offset)
    message = f"{path}:{line}:{column}: invalid JSON: a number of more than {limit} digits"
    return ConfigSyntaxError(message, path=path, line=line, column=column)


def _parse_server(path: Path, name: str, raw: object, environ: Mapping[str, str]) -> ServerConfig:
    def fail(message: str, key: str | None) -> ConfigSchemaError:
        where = f"server '{shown_name(name)}'" + (f", key '{shown_name(key)}'" if key else "")
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
        variable = shown_name(exc.variable)
        raise fail(
            f"environment variable {variable} is not set (write ${{{variable}:-}} if optional)", exc.key
        ) from exc
    try:
        return model.model_validate(expanded, strict=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or None
        message = first["msg"]
        if first["type"].endswith("_type"):  # a wrong type: say what was there, never a string's text
            message += f" (got {_json_kind(first['input'])})"
        raise fail(message, key) from exc


def _unknown_keys(raw: dict[str, Any], model: type[BaseModel]) -> list[str]:
    """The keys of a server entry that `model` does not read (`auth.KEY` for its `auth` block's)."""
    unknown = [key for key in raw if key not in model.model_fields]
    if model is RemoteServerConfig and isinstance(auth := raw.get("auth"), dict):
        unknown.extend(f"auth.{key}" for key in auth if key not in AuthConfig.model_fields)
    return unknown


def _unknown_key_warning(path: Path, place: UnknownKey, model: type[BaseModel]) -> str:
    """The warning for an unknown key, with the likeliest intended key."""
    other_transport = RemoteServerConfig if model is StdioServerConfig else StdioServerConfig
    key = place.key
    if key.startswith("auth.") and model is RemoteServerConfig:
        fields = sorted(AuthConfig.model_fields)
        close = _close_match(key.removeprefix("auth."), fields, _snake)
        hint = f'did you mean "{close}"?' if close else "known keys: " + ", ".join(fields)
    elif key in other_transport.model_fields:
        users = "remote servers (with 'url')" if model is StdioServerConfig else "stdio servers (with 'command')"
        hint = f"only {users} use it"
    elif close := _close_match(key, sorted(model.model_fields), str.lower):
        hint = f'did you mean "{close}"?'
    else:
        hint = "known keys: " + ", ".join(sorted(model.model_fields))
    return f"{path}: server '{shown_name(place.server)}', key '{shown_name(key)}': unknown key, ignored ({hint})"


def _close_match(word: str, known: list[str], spelling: Callable[[str], str]) -> str | None:
    """The known key `word` (in our `spelling`) likely means, if any."""
    # A word much longer than every known key cannot be close to one: neither respelt nor matched, it costs nothing.
    if len(word) > 2 * max(map(len, known)):
        return None
    close = difflib.get_close_matches(spelling(word), known, n=1, cutoff=0.6)
    return close[0] if close else None


def _snake(key: str) -> str:
    """`clientId` -> `client_id`, so that other clients' spelling finds ours."""
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in key).lstrip("_")


def _json_kind(value: object) -> str:
    """What a JSON value is, in words, never the value: a number or a string may be a secret."""
    kinds = ((bool, "a boolean"), (int | float, "a number"), (str, "a string"), (list, "a list"), (dict, "an object"))
    return "null" if value is None else next((kind for cls, kind in kinds if isinstance(value, cls)), "a value")


class _ExpansionError(Exception):
    def __init__(self, variable: str, key: str) -> None:
        super().__init__(variable)
        self.variable = variable
        self.key = key


_EXPANDED_KEYS = frozenset({"command", "args", "env", "cwd", "url", "headers", "auth"})
# No string the models read is deeper than `auth.client_secret`; past this the values are left for the models
# to refuse, rather than walked a few hundred levels down into a RecursionError.
_EXPANDED_DEPTH = 3


def _expand_tree(value: Any, environ: Mapping[str, str], key_path: tuple[str, ...]) -> Any:
    """Expand variables in the string values of the keys LM Studio expands; leave the rest as written."""
    if len(key_path) > _EXPANDED_DEPTH:
        return value
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
