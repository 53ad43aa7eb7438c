"""mcp_host: an MCP host and tool-orchestration runtime for local models.

from mcp_host import Host

async with Host() as host:            # reads ~/.lmstudio/mcp.json
    await host.wait_settled()
    result = await host.call_tool("time.get_current_time", {"timezone": "UTC"})
"""

from mcp_host._version import __version__
from mcp_host.agent import (
    ApprovalAnswer,
    ApprovalRequired,
    Chat,
    ChatOptions,
    ErrorEvent,
    Event,
    MessageDelta,
    ReasoningDelta,
    ToolCallCreated,
    ToolCallResult,
    TurnCompleted,
)
from mcp_host.config import HostSettings, McpConfig, RemoteServerConfig, ServerSettings, StdioServerConfig, load_config
from mcp_host.errors import (
    ConfigError,
    ConfigSchemaError,
    ConfigSyntaxError,
    McpHostError,
    ServerError,
    ServerNotReadyError,
    ServerStartError,
    ToolCallError,
    ToolError,
    UnknownServerError,
    UnknownToolError,
)
from mcp_host.host import Host
from mcp_host.servers import ConfigDiff, Connection, ServerManager, ServerState, ServerStatus
from mcp_host.tools import ToolRegistry, ToolResult, ToolSpec

__all__ = [
    "ApprovalAnswer",
    "ApprovalRequired",
    "Chat",
    "ChatOptions",
    "ConfigDiff",
    "ConfigError",
    "ConfigSchemaError",
    "ConfigSyntaxError",
    "Connection",
    "ErrorEvent",
    "Event",
    "Host",
    "HostSettings",
    "McpConfig",
    "McpHostError",
    "MessageDelta",
    "ReasoningDelta",
    "RemoteServerConfig",
    "ServerError",
    "ServerManager",
    "ServerNotReadyError",
    "ServerSettings",
    "ServerStartError",
    "ServerState",
    "ServerStatus",
    "StdioServerConfig",
    "ToolCallCreated",
    "ToolCallError",
    "ToolCallResult",
    "ToolError",
    "ToolRegistry",
    "ToolResult",
    "ToolSpec",
    "TurnCompleted",
    "UnknownServerError",
    "UnknownToolError",
    "__version__",
    "load_config",
]
