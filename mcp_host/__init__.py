"""mcp_host: an MCP host and tool-orchestration runtime for local models."""

__version__ = "0.1.0"
