"""The HTTP chat API (`mcp-host serve`)."""

from mcp_host.api.app import create_app
from mcp_host.api.errors import ApiError

__all__ = ["ApiError", "create_app"]
