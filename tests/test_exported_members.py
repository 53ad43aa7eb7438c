"""The public surface is deliberate: everything in `__all__` exists, and nothing public is left out."""

from __future__ import annotations

import mcp_host


def test_all_is_sorted_and_complete() -> None:
    assert mcp_host.__all__ == sorted(mcp_host.__all__)
    for name in mcp_host.__all__:
        assert hasattr(mcp_host, name), name
    public = {
        name
        for name in vars(mcp_host)
        if not name.startswith("_") and not isinstance(getattr(mcp_host, name), type(mcp_host))
    }
    assert public <= set(mcp_host.__all__), public - set(mcp_host.__all__)


def test_errors_share_one_root() -> None:
    for name in mcp_host.__all__:
        value = getattr(mcp_host, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, mcp_host.McpHostError), name


def test_every_error_is_exported() -> None:
    from mcp_host import errors

    public = {name for name, value in vars(errors).items() if isinstance(value, type) and issubclass(value, Exception)}
    assert public <= set(mcp_host.__all__), public - set(mcp_host.__all__)
