"""`Store`: sessions, chat threads, responses and approvals that outlive the server process.

    async with await open_store(settings.api.store) as store:     # None: SQLite in the state directory
        await store.put("thread", thread_id, {"messages": [...]})
        rec = await store.claim("session", sid, data, lease_s=30.0)  # a turn starts
        ...                                                          # renew() every few seconds while it runs
        await store.release("session", sid, data)                    # the turn ends: final data, "done"
        done = await store.get("session", sid)
        await store.update("session", sid, edited, version=done.version)  # an edit, if nothing wrote since
        await store.put("session", sid, data, summary={"title": "Trip"})   # a small summary beside the data ...
        page = await store.summaries("session", limit=50)                # ... which a list reads instead

Records are JSON objects keyed by `(kind, id)`; each write is committed before it returns, with the record's
summary if it has one (what `summaries` lists instead of the data, which may be megabytes). A turn holds
its record with `claim`: status `running`, owned by this instance (`store.owner`, random per instance)
under a lease it must `renew`. If the lease runs out (the process was killed, the machine died), the
next `get` or `list` by any instance reports the record `interrupted` and writes that back, so every
instance agrees; an instance never takes a live lease from another (`StoreConflictError`), and one that
closes marks its own unreleased claims interrupted at once. Leases, not "mark everything running as
interrupted at startup", because several instances may share one PostgreSQL database.

Data larger than 64 MiB of JSON is refused, and a summary over 1 MiB; NUL characters in strings are stored as
U+FFFD (PostgreSQL's JSONB cannot hold them, and both databases must give back the same thing). An id or kind
of more than 200 characters is refused by writes and simply absent for reads.

Raises `StoreError` (the database failed, or the store is closed) and `StoreConflictError`;
`ValueError` for arguments no caller should pass (a `running` status outside `claim`, a limit below 1).
"""

from __future__ import annotations

import builtins
import enum
import logging
import os
import re
import secrets
import socket
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from anyio.abc import AsyncResource

from mcp_host.config.paths import state_dir
from mcp_host.store.backend import Backend, Change, RowState, SummaryQuery
from mcp_host.store.errors import StoreConflictError, StoreError
from mcp_host.store.postgres import PostgresBackend
from mcp_host.store.record import (
    DONE,
    INTERRUPTED,
    MAX_KEY_CHARS,
    MAX_SUMMARY_BYTES,
    RUNNING,
    Record,
    SummaryRecord,
    check_status,
    encode,
    valid_key,
)
from mcp_host.store.sqlite import SqliteBackend
from mcp_host.store.url import mask_url

logger = logging.getLogger(__name__)

DEFAULT_FILE = "api.sqlite3"
DEFAULT_TIMEOUT_S = 10.0  # waiting for another writer (SQLite), or for each PostgreSQL operation
DEFAULT_LEASE_S = 30.0

_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")  # a top-level key `summaries` may name: safe in a JSON path


# (the row's state or None, the database's clock) -> the status, owner and lease to write with the data
Rule = Callable[[RowState | None, float], Change]


class StoreState(enum.Enum):
    """A store is open from `open_store` until `aclose`; a closed one raises `StoreError` on every call."""

    OPEN = "open"
    CLOSED = "closed"


async def open_store(url: str | None = None, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> Store:
    """Open (creating and migrating as needed) the store at `url`.

    `None` is `state_dir()/api.sqlite3`; `sqlite:///abs/path.sqlite3` a SQLite file;
    `postgresql://user:password@host:port/db` (or `postgres://`) a PostgreSQL database.
    Raises `StoreError` naming the file or the masked URL.
    """
    if url is None:
        return Store(await SqliteBackend.open(state_dir() / DEFAULT_FILE, timeout_s=timeout_s))
    scheme, separator, rest = url.partition("://")
    if separator and scheme.lower() == "sqlite":
        if not rest.startswith("/"):
            raise StoreError(f"store URL {url!r}: a SQLite URL names an absolute path: sqlite:///abs/path.sqlite3")
        # `sqlite:////abs` (SQLAlchemy's spelling of an absolute path) is the same file.
        return Store(await SqliteBackend.open(Path("/" + rest.lstrip("/")), timeout_s=timeout_s))
    if separator and scheme.lower() in ("postgresql", "postgres"):
        return Store(await PostgresBackend.open(url, timeout_s=timeout_s))
    raise StoreError(f"store URL {mask_url(url)!r}: use sqlite:///abs/path.sqlite3 or postgresql://user@host/db")


class Store(AsyncResource):
    """Records that survive restarts, on a `Backend`; an async resource (`async with`, `aclose()`)."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._owner = f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(8)}"
        self._state = StoreState.OPEN
        self._leases: dict[tuple[str, str], float] = {}  # lease_s of each claim this instance holds

    @property
    def owner(self) -> str:
        """This instance's id in the records it claims: host, process and a random part, new per instance."""
        return self._owner

    @property
    def state(self) -> StoreState:
        return self._state

    @property
    def name(self) -> str:
        """The database: a path, or a URL with its password masked."""
        return self._backend.name

    def __repr__(self) -> str:
        return f"<Store {self.name} owner={self.owner} {self._state.value}>"

    async def aclose(self) -> None:
        """Mark this instance's unreleased claims interrupted and close the connection. Idempotent."""
        if self._state is StoreState.CLOSED:
            return
        self._state = StoreState.CLOSED
        with anyio.CancelScope(shield=True):
            try:
                await self._backend.interrupt(self.owner)
            except StoreError as exc:
                logger.warning("store %s: could not mark this instance's running records interrupted: %s", self, exc)
            finally:
                await self._backend.aclose()

    # -- reading ----------------------------------------------------------------------------

    async def get(self, kind: str, id: str) -> Record | None:
        """The record, or None. A `running` record whose lease has passed comes back `interrupted`."""
        self._check_open()
        if not (valid_key(kind) and valid_key(id)):
            return None
        record = await self._backend.read(kind, id)
        if record is not None and record.status == RUNNING and await self._backend.expire(kind, id):
            record = await self._backend.read(kind, id)
        return record

    async def list(
        self, kind: str, *, limit: int = 100, before: float | None = None, status: str | None = None
    ) -> builtins.list[Record]:
        """Up to `limit` records of `kind`, the most recently updated first.

        `before` keeps those updated strictly before it (the last one's `updated`, for the next page);
        `status` keeps those with that status, after expired leases have become `interrupted`.
        """
        self._check_open()
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        if not valid_key(kind):
            return []
        await self._backend.expire(kind, None)
        return await self._backend.scan(kind, limit=limit, before=before, status=status)

    async def summaries(
        self,
        kind: str,
        *,
        limit: int = 100,
        before: float | None = None,
        status: str | None = None,
        leave_out: Sequence[str] = (),
        whole_up_to: int = 0,
        fields: Sequence[str] = (),
    ) -> builtins.list[SummaryRecord]:
        """The records `list` gives, each read as the summary it was written with (less its top-level keys
        `leave_out`), never its data: what a list of records of megabytes reads. A record written without one
        comes with its whole data if that is at most `whole_up_to` bytes (PostgreSQL counts them as stored, maybe
        compressed), else with its top-level `fields` alone, null where absent. Keys are plain names."""
        self._check_open()
        if limit < 1 or whole_up_to < 0:
            raise ValueError(f"limit must be at least 1 and whole_up_to at least 0, not {limit} and {whole_up_to}")
        odd = [key for key in (*leave_out, *fields) if not _FIELD.fullmatch(key)]
        if odd:
            raise ValueError(f"keys {odd!r} are not plain names ([A-Za-z_][A-Za-z0-9_]*, up to 64)")
        if not valid_key(kind):
            return []
        await self._backend.expire(kind, None)
        query = SummaryQuery(tuple(leave_out), whole_up_to, tuple(fields))
        return await self._backend.summaries(kind, query, limit=limit, before=before, status=status)

    async def attach_summaries(self, kind: str, summaries: Sequence[tuple[str, int, dict[str, Any]]]) -> int:
        """Give records written without a summary the one made of their data: each `(id, version, summary)` is
        set only if the record is still at `version` and has none. Not a write: the record's version and `updated`
        stay. How many were set."""
        self._check_open()
        encoded = [
            (id, version, encode(kind, id, summary, limit=MAX_SUMMARY_BYTES, what="summary")[0])
            for id, version, summary in summaries
            if valid_key(id)
        ]
        if not (valid_key(kind) and encoded):
            return 0
        return await self._backend.attach_summaries(kind, encoded)

    # -- writing ----------------------------------------------------------------------------

    async def put(
        self,
        kind: str,
        id: str,
        data: dict[str, Any],
        *,
        status: str = DONE,
        owner: str | None = None,
        summary: dict[str, Any] | None = None,
    ) -> Record:
        """Create or replace the record, whatever holds it (to end a claimed turn, use `release`).

        Every write of data takes the `summary` that `summaries` reads in its place (None: none, any earlier
        one dropped with the data it described)."""
        if status == RUNNING:
            raise ValueError("a running record needs a lease: use claim()")
        check_status(status)
        if owner is not None and not valid_key(owner):
            raise ValueError(f"an owner is 1 to {MAX_KEY_CHARS} characters without NUL, not {owner[:80]!r}")
        return await self._write(kind, id, data, lambda current, now: Change(status, owner, None), summary)

    async def create(
        self, kind: str, id: str, data: dict[str, Any], *, status: str = DONE, summary: dict[str, Any] | None = None
    ) -> Record:
        """Write the record only if there is none, atomically across instances: what makes something happen once.

        Raises `StoreConflictError` if the record exists.
        """
        if status == RUNNING:
            raise ValueError("a running record needs a lease: use claim()")
        check_status(status)

        def create(current: RowState | None, now: float) -> Change:
            if current is not None:
                raise StoreConflictError(f"{kind}/{id} exists already")
            return Change(status, None, None)

        return await self._write(kind, id, data, create, summary)

    async def update(
        self, kind: str, id: str, data: dict[str, Any], *, version: int, summary: dict[str, Any] | None = None
    ) -> Record:
        """Replace the data of a record at rest only if it is still at `version` (compare-and-set), keeping its
        status and owner: an edit (a session's title) that must neither undo a write it has not seen nor land
        in the middle of a turn.

        Raises `StoreConflictError` if the record was deleted, written since, or is `running` (a turn holds it).
        """

        def update(current: RowState | None, now: float) -> Change:
            if current is None:
                raise StoreConflictError(f"{kind}/{id} does not exist (deleted?)")
            if current.status == RUNNING:
                raise StoreConflictError(f"{kind}/{id} is running: a turn holds it ({current.owner})")
            if current.version != version:
                raise StoreConflictError(f"{kind}/{id} was written since version {version} (now {current.version})")
            return Change(current.status, current.owner, current.lease_until)

        return await self._write(kind, id, data, update, summary)

    async def claim(
        self,
        kind: str,
        id: str,
        data: dict[str, Any],
        *,
        lease_s: float = DEFAULT_LEASE_S,
        summary: dict[str, Any] | None = None,
    ) -> Record:
        """Write the record `running`, owned by this instance until `lease_s` from now (see `renew`).

        Raises `StoreConflictError` if another instance holds it `running` with a lease not yet passed.
        """
        if not lease_s > 0:
            raise ValueError(f"lease_s must be positive, not {lease_s}")
        owner = self.owner

        def claim(current: RowState | None, now: float) -> Change:
            if current is not None and current.status == RUNNING and current.owner != owner:
                if current.lease_until is None or current.lease_until >= now:
                    raise StoreConflictError(f"{kind}/{id} is running on another instance ({current.owner})")
            return Change(RUNNING, owner, now + lease_s)

        record = await self._write(kind, id, data, claim, summary)
        self._leases[kind, id] = lease_s
        return record

    async def renew(self, kind: str, id: str) -> bool:
        """Extend this instance's lease on a record it claimed by the claim's `lease_s`, from now.

        False if the record is not this instance's running claim any more: deleted, released,
        overwritten, or its lease passed first (then it is, or will be reported, `interrupted`).
        """
        self._check_open()
        lease_s = self._leases.get((kind, id))
        if lease_s is None:
            return False
        owner = self.owner

        def renew(current: RowState | None, now: float) -> Change | None:
            if current is None or current.status != RUNNING or current.owner != owner:
                return None
            if current.lease_until is None or current.lease_until < now:
                return None
            return Change(RUNNING, owner, now + lease_s)  # no data: only the lease changes

        if await self._backend.write(kind, id, renew) is not None:
            return True
        self._leases.pop((kind, id), None)
        return False

    async def release(
        self, kind: str, id: str, data: dict[str, Any], *, status: str = DONE, summary: dict[str, Any] | None = None
    ) -> Record:
        """End this instance's claim: write the turn's final data and status, and drop the lease.

        A claim already reported `interrupted` (its lease passed) is still this instance's to release:
        the turn did finish. Raises `StoreConflictError` if the record was deleted, or written since
        by anyone else (`put`, another instance's claim).
        """
        if status == RUNNING:
            raise ValueError("release() ends a turn: give the status it ended with")
        check_status(status)
        owner = self.owner

        def release(current: RowState | None, now: float) -> Change:
            if current is None:
                raise StoreConflictError(f"{kind}/{id} was deleted while its turn ran")
            if current.owner != owner or current.status not in (RUNNING, INTERRUPTED):
                raise StoreConflictError(f"{kind}/{id} was written by someone else while its turn ran")
            return Change(status, owner, None)

        try:
            return await self._write(kind, id, data, release, summary)
        finally:
            self._leases.pop((kind, id), None)

    async def delete(self, kind: str, id: str) -> bool:
        """Delete the record; False if there was none."""
        self._check_open()
        self._leases.pop((kind, id), None)
        if not (valid_key(kind) and valid_key(id)):
            return False
        return await self._backend.delete(kind, id)

    async def _write(
        self, kind: str, id: str, data: dict[str, Any], rule: Rule, summary: dict[str, Any] | None
    ) -> Record:
        """Write `data` (and `summary`) with the status, owner and lease `rule` decides from the current row and
        the clock; the record comes back as `get` would give it (its data decoded from the JSON stored)."""
        self._check_open()
        if not (valid_key(kind) and valid_key(id)):
            raise StoreError(
                f"a kind and an id are 1 to {MAX_KEY_CHARS} characters without NUL: {kind[:50]!r}/{id[:50]!r}"
            )
        data_json, stored = await anyio.to_thread.run_sync(encode, kind, id, data)  # it may be megabytes
        summary_json = None
        if summary is not None:
            summary_json = encode(kind, id, summary, limit=MAX_SUMMARY_BYTES, what="summary")[0]
        written: builtins.list[Change] = []

        def decide(current: RowState | None, now: float) -> Change:
            written.append(replace(rule(current, now), data_json=data_json, summary_json=summary_json))
            return written[-1]

        stamp = await self._backend.write(kind, id, decide)
        assert stamp is not None, "a write with data always writes"
        change = written[-1]  # PostgreSQL decides again when another instance created the row meanwhile
        return Record(
            kind=kind,
            id=id,
            data=stored,
            status=change.status,
            created=stamp.created,
            updated=stamp.updated,
            version=stamp.version,
            owner=change.owner,
            lease_until=change.lease_until,
        )

    def _check_open(self) -> None:
        if self._state is not StoreState.OPEN:
            raise StoreError(f"store {self.name} is {self._state.value}")
