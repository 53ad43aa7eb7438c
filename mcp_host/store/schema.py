"""The store's tables and their migrations, one ordered list for SQLite and PostgreSQL alike.

    for version, statements in pending(found, json_type="JSONB", name=url):  # raises on a newer database
        ...                                    # run the statements, record the version: all in one transaction

A database records each version applied in `mcp_host_schema_version`; opening one applies the steps it
lacks in a single transaction, and refuses one written by newer code (never a silent downgrade). A new
version is a new entry at the end of `MIGRATIONS`; published entries are never edited.
"""

from __future__ import annotations

from mcp_host.store.errors import StoreError

RECORDS = "mcp_host_records"
VERSIONS = "mcp_host_schema_version"

CREATE_VERSIONS = f"CREATE TABLE IF NOT EXISTS {VERSIONS} (version INTEGER PRIMARY KEY, applied DOUBLE PRECISION)"

# Each entry is one version's statements; `{json}` is JSONB on PostgreSQL, TEXT on SQLite (where a type
# named JSONB would get numeric affinity). DOUBLE PRECISION and BIGINT mean REAL and INTEGER to SQLite.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: the records
    (
        f"""CREATE TABLE {RECORDS} (
            kind TEXT NOT NULL,
            id TEXT NOT NULL,
            data {{json}} NOT NULL,
            status TEXT NOT NULL,
            created DOUBLE PRECISION NOT NULL,
            updated DOUBLE PRECISION NOT NULL,
            version BIGINT NOT NULL,
            owner TEXT,
            lease_until DOUBLE PRECISION,
            PRIMARY KEY (kind, id)
        )""",
    ),
    # 2: `list()` newest first, by status, and the sweep for expired leases
    (
        f"CREATE INDEX {RECORDS}_by_updated ON {RECORDS} (kind, updated DESC, id DESC)",
        f"CREATE INDEX {RECORDS}_by_status ON {RECORDS} (kind, status, updated DESC)",
    ),
)

SCHEMA_VERSION = len(MIGRATIONS)


def pending(found: int, *, json_type: str, name: str) -> list[tuple[int, list[str]]]:
    """(version, its statements) for each version a database at version `found` lacks, in order.

    Raises `StoreError` when `found` is newer than this code knows.
    """
    if found > SCHEMA_VERSION:
        raise StoreError(
            f"{name}: the store's schema is version {found}, newer than this mcp_host knows "
            f"({SCHEMA_VERSION}); upgrade mcp_host to use it"
        )
    return [
        (version, [statement.format(json=json_type) for statement in statements])
        for version, statements in enumerate(MIGRATIONS, start=1)
        if version > found
    ]
