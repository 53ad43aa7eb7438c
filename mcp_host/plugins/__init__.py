"""Plugins: Python tools and prompt hooks, bundled in `plugins/`, in the user's plugin folder, or installed."""

from mcp_host.errors import ToolDefinitionError
from mcp_host.plugins.api import Plugin, ToolCallInfo, UserMessage, functions_plugin
from mcp_host.plugins.functions import FunctionTool, PluginContext, parse_docstring

__all__ = [
    "FunctionTool",
    "Plugin",
    "PluginContext",
    "ToolCallInfo",
    "ToolDefinitionError",
    "UserMessage",
    "functions_plugin",
    "parse_docstring",
]
