"""MCP server connections: one `Connection` per server, owned by the `ServerManager`."""

from mcp_host.servers.connection import Connection
from mcp_host.servers.manager import ConfigDiff, ServerManager
from mcp_host.servers.state import ServerState, ServerStatus
from mcp_host.servers.stdio import StdioLaunch, StdioTransport

__all__ = ["ConfigDiff", "Connection", "ServerManager", "ServerState", "ServerStatus", "StdioLaunch", "StdioTransport"]
