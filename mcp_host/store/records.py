"""One kind of record as a plain async map from id to JSON data: what the API's threads and responses need.

    threads = KindRecords(store, "thread")
    await threads.put("resp_1", {"model": ..., "messages": [...]})
    data = await threads.get("resp_1")        # dict | None
    await threads.delete("resp_1")            # whether there was one
    await threads.take("resp_1")              # True once, whichever instance asks first

The in-memory stores of `mcp_host.api` have the same three methods, so either can stand behind them.
"""

from __future__ import annotations

from typing import Any

from mcp_host.store.errors import StoreConflictError
from mcp_host.store.record import valid_key
from mcp_host.store.store import Store


class KindRecords:
    """The records of one `kind` in `store`, by id; their data only (status and leases are the store's business)."""

    def __init__(self, store: Store, kind: str) -> None:
        if not valid_key(kind):
            raise ValueError(f"not a record kind: {kind!r}")
        self.store = store
        self.kind = kind

    def __repr__(self) -> str:
        return f"KindRecords({self.store!r}, {self.kind!r})"

    async def get(self, id: str) -> dict[str, Any] | None:
        record = await self.store.get(self.kind, id)
        return None if record is None else dict(record.data)

    async def put(self, id: str, data: dict[str, Any]) -> None:
        await self.store.put(self.kind, id, data)

    async def delete(self, id: str) -> bool:
        await self.store.delete(self._taken, id)
        return await self.store.delete(self.kind, id)

    async def take(self, id: str) -> bool:
        """True the first time any instance sharing the store asks for `id`, False ever after (until deleted)."""
        try:
            await self.store.create(self._taken, id, {})
        except StoreConflictError:
            return False
        return True

    @property
    def _taken(self) -> str:
        return f"{self.kind}.taken"
