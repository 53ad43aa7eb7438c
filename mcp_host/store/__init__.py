"""A durable store for the HTTP API's state: sessions, chat threads, responses, pending approvals.

    from mcp_host.store import open_store

    async with await open_store(url) as store:   # None: SQLite at state_dir()/api.sqlite3
        await store.put("response", rid, {...})
        rec = await store.get("response", rid)   # Record | None

SQLite (WAL, one private file) by default; `postgresql://…` lets several server instances behind a load
balancer share one database. A turn `claim`s its record under a lease, `renew`s it while it runs and
`release`s it when it ends; a claim whose owner died (`kill -9`) is reported `interrupted`. See
`mcp_host.store.store` for the rules, `schema` for the migrations, `backend` for the database interface.
"""

from mcp_host.store.errors import StoreConflictError, StoreError
from mcp_host.store.record import DONE, INTERRUPTED, RUNNING, Record, SummaryRecord
from mcp_host.store.store import Store, StoreState, open_store

__all__ = [
    "DONE",
    "INTERRUPTED",
    "RUNNING",
    "Record",
    "Store",
    "StoreConflictError",
    "StoreError",
    "StoreState",
    "SummaryRecord",
    "open_store",
]
