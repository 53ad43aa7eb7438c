"""A chat's tools as the API takes and shows them: names checked against the host, the choice in effect, the budget.

servers = chosen_servers(host, body.servers)      # ApiError 400 naming the unknown ones and those that exist
tool_choice_json(host, chat)                      # {"servers", "plugins", "python", "browser"}
await budget_context(models, "gpt-oss-20b", settings)  # the model's context, else the settings'
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import anyio.to_thread

from mcp_host.agent import Chat
from mcp_host.backends.gguf_info import read_gguf_info
from mcp_host.backends.registry import ModelRegistry
from mcp_host.config.settings import HostSettings
from mcp_host.errors import ApiError, ModelLoadError, ModelNotFoundError
from mcp_host.host import Host

_LISTED = 50  # names quoted in an error


def chosen_servers(host: Host, names: Sequence[str] | None, *, drop_unknown: bool = False) -> tuple[str, ...] | None:
    """`names` without repeats, each a server of mcp.json (enabled or not); None: every server. Raises `ApiError`
    for an unknown one, unless `drop_unknown` (a stored session's choice: the server left mcp.json since)."""
    configured = sorted(host.config.servers) if host.config is not None else []
    return _checked(names, configured, "servers", "in mcp.json:", drop_unknown)


def chosen_plugins(host: Host, names: Sequence[str] | None, *, drop_unknown: bool = False) -> tuple[str, ...] | None:
    """`names` without repeats, each a plugin loaded here; None: those on by default. Raises `ApiError` as
    `chosen_servers` does."""
    return _checked(names, host.plugins.names, "plugins", "loaded here:", drop_unknown)


def _checked(
    names: Sequence[str] | None, listed: list[str], param: str, where: str, drop_unknown: bool
) -> tuple[str, ...] | None:
    if names is None:
        return None
    known = set(listed)
    chosen = tuple(dict.fromkeys(names))
    unknown = [name for name in chosen if name not in known]
    if unknown and drop_unknown:
        return tuple(name for name in chosen if name in known)
    if unknown:
        more = f" and {len(listed) - _LISTED} more" if len(listed) > _LISTED else ""
        raise ApiError(400, f"unknown {param} {unknown}; {where} {listed[:_LISTED]}{more}", param=param)
    return chosen


def tool_choice_json(host: Host, chat: Chat) -> dict[str, Any]:
    """The tools `chat` offers from its next turn on: the servers and plugins in effect, python and the browser."""
    harmony = chat.options.harmony
    return choice_json(host, chat.enabled_servers, chat.enabled_plugins, python=harmony.python, browser=harmony.browser)


def choice_json(
    host: Host, servers: Collection[str] | None, plugins: Collection[str] | None, *, python: bool, browser: bool
) -> dict[str, Any]:
    """A choice of tools as the API shows it: None for servers is those mcp.json does not disable, for plugins
    those on by default."""
    if servers is None:
        servers = {name for name, server in (host.config.servers if host.config else {}).items() if not server.disabled}
    return {
        "servers": sorted(servers),
        "plugins": sorted(host.plugins.default_names if plugins is None else plugins),
        "python": python,
        "browser": browser,
    }


async def budget_context(models: ModelRegistry, model: str | None, settings: HostSettings) -> int:
    """The context of `model` (None: the default one) when the registry knows it: the loaded instance's, else what
    its file's header says; otherwise the settings' `prompt.context_tokens`. Raises `ModelNotFoundError` for a
    `model` named but not found."""
    fallback = settings.prompt.context_tokens
    try:
        name, path = models.resolve(model)
    except ModelNotFoundError:
        if model is not None:
            raise
        return fallback  # no model here at all
    for _instance, backend in models.loaded():
        if backend.name == name and backend.context_length:
            return backend.context_length
    if path is None:
        return fallback
    try:
        info = await anyio.to_thread.run_sync(read_gguf_info, path)
    except ModelLoadError:
        return fallback
    return info.context_length or fallback
