"""Turning the exceptions a server connection can raise into one line a user can act on."""

from __future__ import annotations

from typing import TypeVar

import httpx2
from mcp.shared.exceptions import MCPError

from mcp_host.errors import McpHostError

E = TypeVar("E", bound=BaseException)


def leaf_exceptions(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups, or `[exc]` itself."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in leaf_exceptions(inner)]
    return [exc]


def find_exception(exc: BaseException, kind: type[E]) -> E | None:
    """The first exception of `kind` in `exc` or the groups it wraps."""
    return next((leaf for leaf in leaf_exceptions(exc) if isinstance(leaf, kind)), None)


def describe_exception(exc: BaseException) -> str:
    leaves = leaf_exceptions(exc)
    # Prefer the most specific cause: the transport's own error over the session's echo of it.
    leaf = next((e for e in leaves if isinstance(e, httpx2.HTTPError | OSError | MCPError)), leaves[0])
    if isinstance(leaf, httpx2.HTTPStatusError):
        return f"HTTP {leaf.response.status_code} from {safe_url(leaf.request.url)}"
    if isinstance(leaf, httpx2.ConnectError):
        return f"cannot connect to {safe_url(leaf.request.url)}: {leaf}"
    if isinstance(leaf, McpHostError):
        return str(leaf)
    if isinstance(leaf, MCPError):
        return f"MCP error {leaf.error.code}: {leaf.error.message}"
    text = str(leaf).strip()
    return f"{type(leaf).__name__}: {text}" if text else type(leaf).__name__


def safe_url(url: httpx2.URL) -> str:
    """The URL without credentials or query string, which may carry tokens."""
    return str(url.copy_with(username=None, password=None, query=None))
