"""The store's exceptions live in `mcp_host.errors` with the rest of the tree; re-exported here."""

from __future__ import annotations

from mcp_host.errors import StoreConflictError as StoreConflictError
from mcp_host.errors import StoreError as StoreError
