"""`SqliteBackend`: the store in one SQLite file, the default (`state_dir()/api.sqlite3`).

    backend = await SqliteBackend.open(Path("/var/lib/mcp-host/api.sqlite3"), timeout_s=10.0)

One connection, used from `anyio.to_thread` under a lock, so the event loop never waits on the disk.
The file is in WAL mode with `synchronous=NORMAL`: a commit survives the process being killed (only a
power cut can lose the last ones), and readers never wait for the writer. Several processes may open
the same file: a writer waits up to `timeout_s` for another (`busy_timeout`). Writes that read first
take the write lock up front (`BEGIN IMMEDIATE`), so two of them never both decide on the same row.

The file is created private (0600), and its folder (0700) if it has to be. Times are `time.time()`.

Raises `StoreError` naming the file for anything SQLite or the file system refuses.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TypeVar

import anyio
import anyio.to_thread

from mcp_host.store.backend import Decide, RowState, Stamp, SummaryQuery
from mcp_host.store.errors import StoreError
from mcp_host.store.record import INTERRUPTED, RUNNING, Record, SummaryRecord, record_from_row, summary_record_from_row
from mcp_host.store.schema import CREATE_VERSIONS, RECORDS, SUMMARIES, VERSIONS, pending

T = TypeVar("T")

COLUMNS = "kind, id, data, status, created, updated, version, owner, lease_until"
# What a list reads of a record: the columns of its index `_by_updated` (its row is not read), and its summary.
HEAD = "r.kind, r.id, r.status, r.created, r.updated, r.version, r.owner, r.lease_until"
SIZE = "length(CAST(r.data AS BLOB))"  # bytes: a TEXT's length() counts characters
STALE = f"kind = :kind AND status = '{RUNNING}' AND lease_until < :now"  # a running record whose lease has passed


class SqliteBackend:
    """The `Backend` on one SQLite file; see the module docstring."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._connection: sqlite3.Connection | None = connection
        self._path = path
        self._lock = anyio.Lock()

    @classmethod
    async def open(cls, path: Path, *, timeout_s: float) -> SqliteBackend:
        """Open (creating if needed) and migrate the file at `path`."""
        connection = await anyio.to_thread.run_sync(partial(connect, path, timeout_s=timeout_s))
        return cls(connection, path)

    @property
    def name(self) -> str:
        return str(self._path)

    async def _run(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        async with self._lock:
            if self._connection is None:
                raise StoreError(f"{self._path}: the store is closed")
            try:
                return await anyio.to_thread.run_sync(operation, self._connection)
            except sqlite3.Error as exc:
                raise StoreError(f"{self._path}: {exc}") from exc

    async def read(self, kind: str, id: str) -> Record | None:
        def read(connection: sqlite3.Connection) -> Record | None:
            query = f"SELECT {COLUMNS} FROM {RECORDS} WHERE kind = ? AND id = ?"
            row = connection.execute(query, (kind, id)).fetchone()
            return None if row is None else record_from_row(row, self.name)

        return await self._run(read)

    async def scan(self, kind: str, *, limit: int, before: float | None, status: str | None) -> list[Record]:
        where, params = _where(kind, before, status)
        query = f"SELECT {COLUMNS} FROM {RECORDS} WHERE {where} ORDER BY updated DESC, id DESC LIMIT ?"

        def scan(connection: sqlite3.Connection) -> list[Record]:
            return [record_from_row(row, self.name) for row in connection.execute(query, (*params, limit))]

        return await self._run(scan)

    async def summaries(
        self, kind: str, query: SummaryQuery, *, limit: int, before: float | None, status: str | None
    ) -> list[SummaryRecord]:
        where, params = _where(kind, before, status, table="r.")
        summary = f"json_remove(s.summary{', ?' * len(query.leave_out)})" if query.leave_out else "s.summary"
        # The fields' values as a JSON array: json_extract parses the data once for all its paths (two or more).
        fields = {0: "'[]'", 1: "json_array(r.data -> ?)"}.get(
            len(query.fields), f"json_extract(r.data{', ?' * len(query.fields)})"
        )
        # `s.summary IS NULL AND` first: the row of a record with a summary is never read, not even for its size.
        select = (
            f"SELECT {HEAD}, {summary}, CASE WHEN s.summary IS NULL AND {SIZE} <= ? THEN r.data END,"
            f" CASE WHEN s.summary IS NULL AND {SIZE} > ? THEN {fields} END"
            f" FROM {RECORDS} AS r LEFT JOIN {SUMMARIES} AS s ON s.kind = r.kind AND s.id = r.id"
            f" WHERE {where} ORDER BY r.updated DESC, r.id DESC LIMIT ?"
        )
        values = (
            *(f"$.{key}" for key in query.leave_out),
            query.whole_up_to,
            query.whole_up_to,
            *(f"$.{field}" for field in query.fields),
            *params,
            limit,
        )

        def summaries(connection: sqlite3.Connection) -> list[SummaryRecord]:
            rows = connection.execute(select, values)
            return [summary_record_from_row(row, self.name, query.fields) for row in rows]

        return await self._run(summaries)

    async def write(self, kind: str, id: str, decide: Decide) -> Stamp | None:
        def write(connection: sqlite3.Connection) -> Stamp | None:
            with immediate(connection):
                now = time.time()
                columns = "status, owner, lease_until, created, updated, version"
                row = connection.execute(
                    f"SELECT {columns} FROM {RECORDS} WHERE kind = ? AND id = ?", (kind, id)
                ).fetchone()
                change = decide(None if row is None else RowState(row[0], row[1], row[2], row[5]), now)
                if change is None:
                    return None
                if row is None:
                    assert change.data_json is not None, "a new record needs its data"
                    connection.execute(
                        f"INSERT INTO {RECORDS} ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?)",
                        (kind, id, change.data_json, change.status, now, now, change.owner, change.lease_until),
                    )
                    write_summary(connection, kind, id, change.summary_json)
                    return Stamp(created=now, updated=now, version=1)
                created, updated, version = row[3:]
                if change.data_json is None:
                    connection.execute(
                        f"UPDATE {RECORDS} SET status = ?, owner = ?, lease_until = ? WHERE kind = ? AND id = ?",
                        (change.status, change.owner, change.lease_until, kind, id),
                    )
                    return Stamp(created=created, updated=updated, version=version)
                connection.execute(
                    f"UPDATE {RECORDS} SET data = ?, status = ?, owner = ?, lease_until = ?, updated = ?,"
                    " version = version + 1 WHERE kind = ? AND id = ?",
                    (change.data_json, change.status, change.owner, change.lease_until, now, kind, id),
                )
                write_summary(connection, kind, id, change.summary_json)
                return Stamp(created=created, updated=now, version=version + 1)

        return await self._run(write)

    async def attach_summaries(self, kind: str, summaries: Sequence[tuple[str, int, str]]) -> int:
        insert = (
            f"INSERT INTO {SUMMARIES} (kind, id, summary) SELECT kind, id, ? FROM {RECORDS}"
            " WHERE kind = ? AND id = ? AND version = ? ON CONFLICT (kind, id) DO NOTHING"
        )

        def attach(connection: sqlite3.Connection) -> int:
            with immediate(connection):
                return sum(
                    connection.execute(insert, (summary, kind, id, version)).rowcount
                    for id, version, summary in summaries
                )

        return await self._run(attach)

    async def delete(self, kind: str, id: str) -> bool:
        def delete(connection: sqlite3.Connection) -> bool:
            with immediate(connection):
                deleted = connection.execute(f"DELETE FROM {RECORDS} WHERE kind = ? AND id = ?", (kind, id)).rowcount
                connection.execute(f"DELETE FROM {SUMMARIES} WHERE kind = ? AND id = ?", (kind, id))
            return deleted > 0

        return await self._run(delete)

    async def expire(self, kind: str, id: str | None) -> int:
        where = STALE if id is None else f"{STALE} AND id = :id"

        def expire(connection: sqlite3.Connection) -> int:
            params = {"kind": kind, "id": id, "now": time.time()}
            # Look first: an UPDATE takes the write lock even when it matches nothing, and list() calls this.
            if connection.execute(f"SELECT 1 FROM {RECORDS} WHERE {where} LIMIT 1", params).fetchone() is None:
                return 0
            update = (
                f"UPDATE {RECORDS} SET status = '{INTERRUPTED}', version = version + 1, updated = :now WHERE {where}"
            )
            return connection.execute(update, params).rowcount

        return await self._run(expire)

    async def interrupt(self, owner: str) -> int:
        def interrupt(connection: sqlite3.Connection) -> int:
            update = (
                f"UPDATE {RECORDS} SET status = '{INTERRUPTED}', version = version + 1, updated = ?"
                f" WHERE status = '{RUNNING}' AND owner = ?"
            )
            return connection.execute(update, (time.time(), owner)).rowcount

        return await self._run(interrupt)

    async def aclose(self) -> None:
        with anyio.CancelScope(shield=True):
            async with self._lock:
                connection, self._connection = self._connection, None
                if connection is not None:
                    await anyio.to_thread.run_sync(connection.close)


def connect(path: Path, *, timeout_s: float) -> sqlite3.Connection:
    """Create the file privately if it is missing, open it in WAL mode and migrate it (blocking)."""
    try:
        create_private(path)
        connection = sqlite3.connect(path, timeout=timeout_s, isolation_level=None, check_same_thread=False)
    except (OSError, sqlite3.Error) as exc:
        raise StoreError(f"{path}: cannot open the store: {exc}") from exc
    try:
        (mode,) = connection.execute("PRAGMA journal_mode=WAL").fetchone()
        if mode != "wal":
            raise StoreError(f"{path}: cannot use WAL mode here (journal mode {mode})")
        connection.execute("PRAGMA synchronous=NORMAL")
        migrate(connection, path)
    except sqlite3.Error as exc:
        connection.close()
        raise StoreError(f"{path}: cannot open the store: {exc}") from exc
    except BaseException:
        connection.close()
        raise
    return connection


def create_private(path: Path) -> None:
    """Make the folder (0700) and the file (0600) if they are missing; an existing one keeps its mode."""
    try:
        path.parent.mkdir(parents=True, mode=0o700)
        path.parent.chmod(0o700)  # mkdir's mode passes through the umask
    except FileExistsError:
        pass
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))


def migrate(connection: sqlite3.Connection, path: Path) -> None:
    with immediate(connection):
        connection.execute(CREATE_VERSIONS)
        (found,) = connection.execute(f"SELECT coalesce(max(version), 0) FROM {VERSIONS}").fetchone()
        for version, statements in pending(found, dialect="sqlite", name=str(path)):
            for statement in statements:
                connection.execute(statement)
            connection.execute(f"INSERT INTO {VERSIONS} (version, applied) VALUES (?, ?)", (version, time.time()))


@contextmanager
def immediate(connection: sqlite3.Connection) -> Iterator[None]:
    """A transaction holding the write lock from its start; rolled back if anything in it raises."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:  # SQLite ends some failed transactions itself
            connection.execute("ROLLBACK")
        raise


def write_summary(connection: sqlite3.Connection, kind: str, id: str, summary_json: str | None) -> None:
    """Replace the record's summary with `summary_json` (None: none), in the transaction that writes its data."""
    if summary_json is None:
        connection.execute(f"DELETE FROM {SUMMARIES} WHERE kind = ? AND id = ?", (kind, id))
    else:
        upsert = (
            f"INSERT INTO {SUMMARIES} (kind, id, summary) VALUES (?, ?, ?)"
            " ON CONFLICT (kind, id) DO UPDATE SET summary = excluded.summary"
        )
        connection.execute(upsert, (kind, id, summary_json))


def _where(kind: str, before: float | None, status: str | None, *, table: str = "") -> tuple[str, list[object]]:
    """The condition of a scan (records of `kind` updated before `before`, of `status`) and its parameters;
    `table` prefixes the columns (`"r."`)."""
    where, params = [f"{table}kind = ?"], list[object]([kind])
    if before is not None:
        where.append(f"{table}updated < ?")
        params.append(before)
    if status is not None:
        where.append(f"{table}status = ?")
        params.append(status)
    return " AND ".join(where), params
