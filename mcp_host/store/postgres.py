"""`PostgresBackend`: the store in PostgreSQL, shared by every server instance behind a load balancer.

    backend = await PostgresBackend.open("postgresql://app:secret@db:5432/mcp", timeout_s=10.0)

One `psycopg.AsyncConnection` (asyncio only, which is what uvicorn runs) in autocommit mode, used under
a lock; a connection that breaks, or that an operation leaves mid-query (a timeout, a cancelled
request), is dropped and the next operation connects again. Each statement has `timeout_s` on the
server (`statement_timeout`: a write waiting on another's row lock gives up and rolls back cleanly);
each operation, connecting included, has twice that on the client, for a network that stops answering.

Times come from the database's clock (`now()`), so instances whose clocks disagree still agree on when
a lease has run out. A write locks its row (`SELECT ... FOR UPDATE`); two instances creating the same
record at once both end up deciding on the one that won. Data is JSONB: key order is not kept.

psycopg is imported only here, when a PostgreSQL URL is opened: `pip install 'mcp_host[postgres]'`.

Raises `StoreError` with the URL's password masked, in the message and in the exception it chains.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.to_thread

from mcp_host.store.backend import Decide, RowState, Stamp, SummaryQuery
from mcp_host.store.errors import StoreError
from mcp_host.store.record import INTERRUPTED, RUNNING, Record, SummaryRecord, record_from_row, summary_record_from_row
from mcp_host.store.schema import CREATE_VERSIONS, RECORDS, SUMMARIES, VERSIONS, pending
from mcp_host.store.url import mask_url, scrub, url_secrets

if TYPE_CHECKING:
    from psycopg import AsyncConnection, AsyncCursor

T = TypeVar("T")
Row = tuple[Any, ...]

DRIVER_MISSING = "PostgreSQL needs its driver: pip install 'mcp_host[postgres]'"
COLUMNS = "kind, id, data::text, status, created, updated, version, owner, lease_until"
HEAD = "r.kind, r.id, r.status, r.created, r.updated, r.version, r.owner, r.lease_until"
# The data's stored size: TOAST's, maybe compressed, known without reading it (its text would mean reading it all).
SIZE = "pg_column_size(r.data)"
NOW = "extract(epoch FROM now())::float8"  # the transaction's start, on the database's clock
STALE = f"kind = %s AND status = '{RUNNING}' AND lease_until < {NOW}"
MIGRATION_LOCK = int.from_bytes(b"mcp_host", "big")  # pg_advisory_xact_lock key: one migrator at a time


class PostgresBackend:
    """The `Backend` on a PostgreSQL database; see the module docstring."""

    def __init__(self, url: str, *, timeout_s: float) -> None:
        self._url = url
        self._secrets = url_secrets(url)
        self._name = mask_url(url)
        self._timeout_s = timeout_s
        self._connection: AsyncConnection[Row] | None = None
        self._lock = anyio.Lock()
        self._closed = False

    @classmethod
    async def open(cls, url: str, *, timeout_s: float) -> PostgresBackend:
        """Connect to `url` and migrate its tables."""
        try:
            url_secrets(url)
        except ValueError:
            raise StoreError(f"{mask_url(url)}: not a valid PostgreSQL URL") from None
        try:
            import psycopg  # noqa: F401  (only to say early and clearly that it is missing)
        except ImportError as exc:
            raise StoreError(f"{mask_url(url)}: {DRIVER_MISSING}") from exc
        backend = cls(url, timeout_s=timeout_s)
        try:
            await backend._run(backend._migrate)
        except BaseException:
            await backend.aclose()
            raise
        return backend

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"PostgresBackend({self._name!r})"

    # -- the connection ---------------------------------------------------------------------

    async def _run(self, operation: Callable[[AsyncConnection[Row]], Awaitable[T]]) -> T:
        import psycopg

        async with self._lock:
            if self._closed:
                raise StoreError(f"{self._name}: the store is closed")
            failure: psycopg.Error | None = None
            try:
                with anyio.fail_after(2 * self._timeout_s):
                    return await operation(await self._connect())
            except psycopg.Error as exc:
                failure = exc
            except TimeoutError as exc:
                raise StoreError(f"{self._name}: no answer within {2 * self._timeout_s:g} s") from exc
            finally:
                await self._drop_if_unusable()
        # Raised out here so that an error that quoted the password is not chained as the context.
        message = str(failure).strip()
        masked = scrub(message, self._secrets)
        if masked != message:
            raise StoreError(f"{self._name}: {masked}")
        raise StoreError(f"{self._name}: {message}") from failure

    async def _connect(self) -> AsyncConnection[Row]:
        import psycopg

        if self._connection is None:
            connection = await psycopg.AsyncConnection.connect(
                self._url, autocommit=True, connect_timeout=max(2, math.ceil(self._timeout_s))
            )
            try:
                timeout = f"{math.ceil(self._timeout_s * 1000)}ms"
                await connection.execute("SELECT set_config('statement_timeout', %s, false)", (timeout,))
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await connection.close()
                raise
            self._connection = connection
        return self._connection

    async def _drop_if_unusable(self) -> None:
        """Forget a connection that is broken or was left mid-query or mid-transaction."""
        import psycopg
        from psycopg.pq import TransactionStatus

        connection = self._connection
        if connection is None or (
            not connection.closed and connection.info.transaction_status == TransactionStatus.IDLE
        ):
            return
        self._connection = None
        with anyio.CancelScope(shield=True), anyio.move_on_after(self._timeout_s), suppress(psycopg.Error, OSError):
            if not connection.closed and connection.info.transaction_status == TransactionStatus.ACTIVE:
                await connection.cancel_safe()  # the server would otherwise finish the query, holding its locks
            await connection.close()

    async def _migrate(self, connection: AsyncConnection[Row]) -> None:
        async with connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            await connection.execute(CREATE_VERSIONS)
            (found,) = await one(await connection.execute(f"SELECT coalesce(max(version), 0) FROM {VERSIONS}"))
            for version, statements in pending(found, dialect="postgresql", name=self._name):
                for statement in statements:
                    await connection.execute(statement)
                insert = f"INSERT INTO {VERSIONS} (version, applied) VALUES (%s, {NOW})"
                await connection.execute(insert, (version,))

    async def _records(self, rows: Sequence[Row]) -> list[Record]:
        """Rows to records, their JSON parsed in a worker thread (a record may hold megabytes)."""
        return await anyio.to_thread.run_sync(partial(records_from_rows, rows, self._name))

    # -- the Backend ------------------------------------------------------------------------

    async def read(self, kind: str, id: str) -> Record | None:
        async def read(connection: AsyncConnection[Row]) -> Row | None:
            query = f"SELECT {COLUMNS} FROM {RECORDS} WHERE kind = %s AND id = %s"
            return await (await connection.execute(query, (kind, id))).fetchone()

        row = await self._run(read)
        return None if row is None else (await self._records([row]))[0]

    async def scan(self, kind: str, *, limit: int, before: float | None, status: str | None) -> list[Record]:
        where, params = _where(kind, before, status)
        query = f"SELECT {COLUMNS} FROM {RECORDS} WHERE {where} ORDER BY updated DESC, id DESC LIMIT %s"

        async def scan(connection: AsyncConnection[Row]) -> list[Row]:
            return await (await connection.execute(query, (*params, limit))).fetchall()

        return await self._records(await self._run(scan))

    async def summaries(
        self, kind: str, query: SummaryQuery, *, limit: int, before: float | None, status: str | None
    ) -> list[SummaryRecord]:
        where, params = _where(kind, before, status, table="r.")
        fields = ", ".join("%s::text, r.data -> %s::text" for _ in query.fields)
        select = (
            f"SELECT {HEAD}, (s.summary - %s::text[])::text,"
            f" CASE WHEN s.summary IS NULL AND {SIZE} <= %s THEN r.data::text END,"
            f" CASE WHEN s.summary IS NULL AND {SIZE} > %s THEN jsonb_build_object({fields})::text END"
            f" FROM {RECORDS} AS r LEFT JOIN {SUMMARIES} AS s ON s.kind = r.kind AND s.id = r.id"
            f" WHERE {where} ORDER BY r.updated DESC, r.id DESC LIMIT %s"
        )
        values = (
            list(query.leave_out),
            query.whole_up_to,
            query.whole_up_to,
            *(part for field in query.fields for part in (field, field)),
            *params,
            limit,
        )

        async def summaries(connection: AsyncConnection[Row]) -> list[Row]:
            return await (await connection.execute(select, values)).fetchall()

        rows = await self._run(summaries)
        return await anyio.to_thread.run_sync(partial(summary_records_from_rows, rows, self._name, query.fields))

    async def write(self, kind: str, id: str, decide: Decide) -> Stamp | None:
        async def write(connection: AsyncConnection[Row]) -> Stamp | None:
            async with connection.transaction():
                (now,) = await one(await connection.execute(f"SELECT {NOW}"))
                select = (
                    f"SELECT status, owner, lease_until, created, updated, version FROM {RECORDS}"
                    " WHERE kind = %s AND id = %s FOR UPDATE"
                )
                while True:
                    row = await (await connection.execute(select, (kind, id))).fetchone()
                    change = decide(None if row is None else RowState(row[0], row[1], row[2], row[5]), now)
                    if change is None:
                        return None
                    if row is not None:
                        break
                    assert change.data_json is not None, "a new record needs its data"
                    insert = (
                        f"INSERT INTO {RECORDS} (kind, id, data, status, created, updated, version, owner, lease_until)"
                        " VALUES (%s, %s, %s::jsonb, %s, %s, %s, 1, %s, %s) ON CONFLICT (kind, id) DO NOTHING"
                    )
                    row_values = (kind, id, change.data_json, change.status, now, now, change.owner, change.lease_until)
                    if (await connection.execute(insert, row_values)).rowcount == 1:
                        await write_summary(connection, kind, id, change.summary_json)
                        return Stamp(created=now, updated=now, version=1)
                    # Another instance created it since our SELECT: now it exists, lock it and decide again.
                created, updated, version = row[3:]
                if change.data_json is None:
                    update = (
                        f"UPDATE {RECORDS} SET status = %s, owner = %s, lease_until = %s WHERE kind = %s AND id = %s"
                    )
                    await connection.execute(update, (change.status, change.owner, change.lease_until, kind, id))
                    return Stamp(created=created, updated=updated, version=version)
                update = (
                    f"UPDATE {RECORDS} SET data = %s::jsonb, status = %s, owner = %s, lease_until = %s, updated = %s,"
                    " version = version + 1 WHERE kind = %s AND id = %s"
                )
                changes = (change.data_json, change.status, change.owner, change.lease_until, now, kind, id)
                await connection.execute(update, changes)
                await write_summary(connection, kind, id, change.summary_json)
                return Stamp(created=created, updated=now, version=version + 1)

        return await self._run(write)

    async def attach_summaries(self, kind: str, summaries: Sequence[tuple[str, int, str]]) -> int:
        # The record's row locked as a write locks it: no write of new data (and its summary) lands in between.
        lock = f"SELECT 1 FROM {RECORDS} WHERE kind = %s AND id = %s AND version = %s FOR SHARE"
        insert = (
            f"INSERT INTO {SUMMARIES} (kind, id, summary) VALUES (%s, %s, %s::jsonb) ON CONFLICT (kind, id) DO NOTHING"
        )

        async def attach(connection: AsyncConnection[Row]) -> int:
            attached = 0
            async with connection.transaction():
                for id, version, summary in summaries:
                    if await (await connection.execute(lock, (kind, id, version))).fetchone() is not None:
                        attached += (await connection.execute(insert, (kind, id, summary))).rowcount
            return attached

        return await self._run(attach)

    async def delete(self, kind: str, id: str) -> bool:
        async def delete(connection: AsyncConnection[Row]) -> bool:
            async with connection.transaction():  # the record first: it waits for a write holding it to end
                cursor = await connection.execute(f"DELETE FROM {RECORDS} WHERE kind = %s AND id = %s", (kind, id))
                await connection.execute(f"DELETE FROM {SUMMARIES} WHERE kind = %s AND id = %s", (kind, id))
            return cursor.rowcount > 0

        return await self._run(delete)

    async def expire(self, kind: str, id: str | None) -> int:
        where, params = (STALE, (kind,)) if id is None else (f"{STALE} AND id = %s", (kind, id))
        update = f"UPDATE {RECORDS} SET status = '{INTERRUPTED}', version = version + 1, updated = {NOW} WHERE {where}"

        async def expire(connection: AsyncConnection[Row]) -> int:
            return (await connection.execute(update, params)).rowcount

        return await self._run(expire)

    async def interrupt(self, owner: str) -> int:
        update = (
            f"UPDATE {RECORDS} SET status = '{INTERRUPTED}', version = version + 1, updated = {NOW}"
            f" WHERE status = '{RUNNING}' AND owner = %s"
        )

        async def interrupt(connection: AsyncConnection[Row]) -> int:
            return (await connection.execute(update, (owner,))).rowcount

        return await self._run(interrupt)

    async def aclose(self) -> None:
        import psycopg

        with anyio.CancelScope(shield=True):
            async with self._lock:
                self._closed = True
                connection, self._connection = self._connection, None
                if connection is not None:
                    with anyio.move_on_after(self._timeout_s), suppress(psycopg.Error, OSError):
                        await connection.close()


async def one(cursor: AsyncCursor[Row]) -> Row:
    row = await cursor.fetchone()
    assert row is not None, "a query that always returns a row returned none"
    return row


def records_from_rows(rows: Sequence[Row], where: str) -> list[Record]:
    return [record_from_row(row, where) for row in rows]


def summary_records_from_rows(rows: Sequence[Row], where: str, fields: Sequence[str]) -> list[SummaryRecord]:
    return [summary_record_from_row(row, where, fields) for row in rows]


async def write_summary(connection: AsyncConnection[Row], kind: str, id: str, summary_json: str | None) -> None:
    """Replace the record's summary with `summary_json` (None: none), in the transaction that writes its data."""
    if summary_json is None:
        await connection.execute(f"DELETE FROM {SUMMARIES} WHERE kind = %s AND id = %s", (kind, id))
    else:
        upsert = (
            f"INSERT INTO {SUMMARIES} (kind, id, summary) VALUES (%s, %s, %s::jsonb)"
            " ON CONFLICT (kind, id) DO UPDATE SET summary = excluded.summary"
        )
        await connection.execute(upsert, (kind, id, summary_json))


def _where(kind: str, before: float | None, status: str | None, *, table: str = "") -> tuple[str, list[object]]:
    """The condition of a scan (records of `kind` updated before `before`, of `status`) and its parameters;
    `table` prefixes the columns (`"r."`)."""
    where, params = [f"{table}kind = %s"], list[object]([kind])
    if before is not None:
        where.append(f"{table}updated < %s")
        params.append(before)
    if status is not None:
        where.append(f"{table}status = %s")
        params.append(status)
    return " AND ".join(where), params
