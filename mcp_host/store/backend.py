"""The `Backend` interface: the few primitive operations a database gives the `Store`.

    stamp = await backend.write("session", "s1", decide)   # decide(current, now) -> Change | None

`Store` keeps every rule (who may claim, what a release needs, when a lease has run out) in one place;
a backend only stores rows, and beside each the small summary written with its data (`mcp_host_summaries`).
Its one non-trivial duty is `write`, a read-modify-write in one transaction: it locks the row, reads its
current `RowState` and the database's clock, asks `decide` what to write, and writes that, bumping `version`
and `updated` unless the change only extends a lease.

Implementations: `SqliteBackend` (the default, one file) and `PostgresBackend` (shared by instances).

Raises: `StoreError` when the database fails; whatever `decide` raises (a `StoreConflictError`),
after rolling the transaction back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from mcp_host.store.record import Record, SummaryRecord


@dataclass(frozen=True)
class RowState:
    """What a write sees of the row it is about to change (the data itself is never loaded for this)."""

    status: str
    owner: str | None
    lease_until: float | None
    version: int


@dataclass(frozen=True)
class Change:
    """What to write. `data_json` None keeps the stored data (and its summary): a lease renewal, which counts as
    no version. New data is written with `summary_json`, None clearing the summary (it described the old data)."""

    status: str
    owner: str | None
    lease_until: float | None
    data_json: str | None = None
    summary_json: str | None = None


@dataclass(frozen=True)
class SummaryQuery:
    """What `Backend.summaries` reads of each record: its summary without the top-level keys `leave_out`; for a
    record without a summary, its whole data if that is at most `whole_up_to` bytes, else the top-level fields
    `fields` of it (each a plain name, checked by the `Store`; absent ones read as null)."""

    leave_out: tuple[str, ...] = ()
    whole_up_to: int = 0
    fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class Stamp:
    """What the database set on a write."""

    created: float
    updated: float
    version: int


# (the row's state or None if there is none, the database's clock) -> what to write, or None for nothing
Decide = Callable[[RowState | None, float], Change | None]


class Backend(Protocol):
    """Rows of `(kind, id) -> data, status, created, updated, version, owner, lease_until`."""

    @property
    def name(self) -> str:
        """The database, for messages: a path, or a URL with its password masked."""
        ...

    async def read(self, kind: str, id: str) -> Record | None: ...

    async def scan(self, kind: str, *, limit: int, before: float | None, status: str | None) -> list[Record]:
        """Newest `updated` first (ties by id, descending); `before` keeps those updated strictly earlier."""
        ...

    async def summaries(
        self, kind: str, query: SummaryQuery, *, limit: int, before: float | None, status: str | None
    ) -> list[SummaryRecord]:
        """As `scan`, reading `query`'s part of each record: never the data of one written with a summary."""
        ...

    async def attach_summaries(self, kind: str, summaries: Sequence[tuple[str, int, str]]) -> int:
        """Set each `(id, version, summary JSON)` on the record `id` if it is still at `version` and has no summary,
        its version and `updated` kept, all in one transaction; how many were set."""
        ...

    async def write(self, kind: str, id: str, decide: Decide) -> Stamp | None:
        """Run `decide` on the locked row and write its change; None when it decided on nothing."""
        ...

    async def delete(self, kind: str, id: str) -> bool: ...

    async def expire(self, kind: str, id: str | None) -> int:
        """Mark `running` records whose lease has passed `interrupted` (one record, or all of `kind`)."""
        ...

    async def interrupt(self, owner: str) -> int:
        """Mark every `running` record of `owner` `interrupted`: that instance is closing."""
        ...

    async def aclose(self) -> None:
        """Close the connection; idempotent."""
        ...
