"""Tools: what the host knows of each tool, the registry that merges them, schema normalisation."""

from mcp_host.tools.names import NameCollision, NameMap, identifier_for
from mcp_host.tools.registry import ToolRegistry
from mcp_host.tools.schema import normalise_schema
from mcp_host.tools.spec import ToolResult, ToolSpec

__all__ = ["NameCollision", "NameMap", "ToolRegistry", "ToolResult", "ToolSpec", "identifier_for", "normalise_schema"]
