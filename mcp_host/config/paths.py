"""Where mcp_host looks for its files by default."""

from __future__ import annotations

import os
from pathlib import Path

CONFIG_ENV = "MCP_HOST_CONFIG"
SETTINGS_ENV = "MCP_HOST_SETTINGS"


def default_config_path() -> Path:
    """`--config` wins over this; then `$MCP_HOST_CONFIG`; then LM Studio's `~/.lmstudio/mcp.json`."""
    configured = os.environ.get(CONFIG_ENV)
    if configured:
        return Path(configured).expanduser()
    return lmstudio_config_path()


def lmstudio_config_path() -> Path:
    """LM Studio's own `~/.lmstudio/mcp.json`, which LM Studio writes only once a server is added."""
    return Path.home() / ".lmstudio" / "mcp.json"


def default_settings_path() -> Path:
    """`$MCP_HOST_SETTINGS`, else `$XDG_CONFIG_HOME/mcp-host/settings.toml`."""
    configured = os.environ.get(SETTINGS_ENV)
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "mcp-host" / "settings.toml"


def cache_dir() -> Path:
    """`$XDG_CACHE_HOME/mcp-host` (default `~/.cache/mcp-host`); created by whoever writes there."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mcp-host"


def state_dir() -> Path:
    """`$XDG_STATE_HOME/mcp-host` (default `~/.local/state/mcp-host`); created by whoever writes there."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "mcp-host"


def audit_log_path() -> Path:
    """`$XDG_STATE_HOME/mcp-host/audit.jsonl` (default `~/.local/state/mcp-host/audit.jsonl`)."""
    return state_dir() / "audit.jsonl"


def oauth_dir() -> Path:
    """`$XDG_STATE_HOME/mcp-host/oauth`: one private JSON file of OAuth tokens per remote server."""
    return state_dir() / "oauth"


def user_plugins_dir() -> Path:
    """`$XDG_CONFIG_HOME/mcp-host/plugins`: the user's own plugins, one folder (or `.py` file) each."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "mcp-host" / "plugins"


def implicit_roots() -> tuple[Path, ...]:
    """The folders tools may work in when nobody named any: the working directory, unless it is `/`
    (a service's default), which would open the whole machine: then none."""
    cwd = Path.cwd().resolve()
    return () if cwd == Path(cwd.anchor) else (cwd,)
