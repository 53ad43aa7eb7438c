"""`Record`: one stored thing (a session, a chat thread, a response, an approval), as the store returns it.

    rec = await store.get("session", session_id)
    if rec is not None and rec.status == INTERRUPTED:
        ...                                   # its turn died with its server: tell the client

A record's `status` is free text, except for two the store itself gives meaning to: `running` (a turn
holds it under a lease, see `Store.claim`) and `interrupted` (the lease ran out: its owner died).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from mcp_host.store.errors import StoreError

RUNNING = "running"  # only `Store.claim` writes it, always with a lease
INTERRUPTED = "interrupted"  # a running record whose lease ran out, or whose owner closed without releasing it
DONE = "done"

MAX_KEY_CHARS = 200  # a kind or an id
MAX_STATUS_CHARS = 64
MAX_DATA_BYTES = 64 * 1024 * 1024  # the record's JSON, UTF-8


@dataclass(frozen=True)
class Record:
    """A stored record. Times are epoch seconds, from the database's clock (PostgreSQL) or this machine's.

    `version` counts the writes of data or status (1 when created); renewing a lease is not one.
    `owner` and `lease_until` name the store instance that claimed the record, and kept after the claim
    ends so that a reader can see who ran the last turn.
    """

    kind: str
    id: str
    data: dict[str, Any] = field(repr=False)
    status: str
    created: float
    updated: float
    version: int
    owner: str | None = None
    lease_until: float | None = None


def valid_key(value: str) -> bool:
    """A kind or an id the store accepts: 1 to 200 characters, no NUL (PostgreSQL text cannot hold one)."""
    return 0 < len(value) <= MAX_KEY_CHARS and "\x00" not in value


def record_from_row(row: tuple[Any, ...], where: str) -> Record:
    """A `Record` from the columns `kind, id, data (JSON text), status, created, updated, version, owner,
    lease_until`; raises `StoreError` naming `where` (the database) if the data is not a JSON object."""
    kind, id, data, status, created, updated, version, owner, lease_until = row
    try:
        value = json.loads(data)
    except ValueError as exc:
        raise StoreError(f"{where}: record {kind}/{id} holds data that is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise StoreError(f"{where}: record {kind}/{id} holds JSON that is not an object")
    return Record(kind, id, value, status, created, updated, version, owner, lease_until)
