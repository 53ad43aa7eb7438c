"""Configuration: LM Studio's mcp.json, its safe editing and watching, the host's own TOML settings, and approvals."""

from mcp_host.config.edit import add_server
from mcp_host.config.mcpjson import (
    McpConfig,
    RemoteServerConfig,
    ServerConfig,
    StdioServerConfig,
    load_config,
    parse_config,
)
from mcp_host.config.paths import cache_dir, default_config_path, default_settings_path
from mcp_host.config.settings import HostSettings, ServerSettings, load_settings

__all__ = [
    "HostSettings",
    "McpConfig",
    "RemoteServerConfig",
    "ServerConfig",
    "ServerSettings",
    "StdioServerConfig",
    "add_server",
    "cache_dir",
    "default_config_path",
    "default_settings_path",
    "load_config",
    "load_settings",
    "parse_config",
]
