"""The store's tables and their migrations, one ordered list for SQLite and PostgreSQL alike.

    for version, statements in pending(found, dialect="postgresql", name=url):  # raises on a newer database
        ...                                    # run the statements, record the version: all in one transaction

A database records each version applied in `mcp_host_schema_version`; opening one applies the steps it
lacks in a single transaction, and refuses one written by newer code (never a silent downgrade). A new
version is a new entry at the end of `MIGRATIONS`; published entries are never edited.
"""

from __future__ import annotations

from collections.abc import Mapping

from mcp_host.store.errors import StoreError

RECORDS = "mcp_host_records"
SUMMARIES = "mcp_host_summaries"
VERSIONS = "mcp_host_schema_version"

CREATE_VERSIONS = f"CREATE TABLE IF NOT EXISTS {VERSIONS} (version INTEGER PRIMARY KEY, applied DOUBLE PRECISION)"

# `{json}` in a statement: JSONB on PostgreSQL, TEXT on SQLite (where a type named JSONB would get numeric affinity).
JSON_TYPES = {"sqlite": "TEXT", "postgresql": "JSONB"}

# Each entry is one version's statements, each for both databases, or (a mapping) for those it names.
# DOUBLE PRECISION and BIGINT mean REAL and INTEGER to SQLite.
MIGRATIONS: tuple[tuple[str | Mapping[str, str], ...], ...] = (
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
    # 3: a small summary of each record, written with its data (in the same transaction), which a list reads
    # instead of the data; beside the records, so that a summary made later of an older record writes no data.
    # SQLite reads a row's columns in order, through megabytes of data to the status after it: there the
    # list's columns are in its index, so a list of records with summaries never reads their rows.
    (
        f"""CREATE TABLE {SUMMARIES} (
            kind TEXT NOT NULL,
            id TEXT NOT NULL,
            summary {{json}} NOT NULL,
            PRIMARY KEY (kind, id)
        )""",
        {"sqlite": f"DROP INDEX {RECORDS}_by_updated"},
        {
            "sqlite": f"CREATE INDEX {RECORDS}_by_updated ON {RECORDS}"
            " (kind, updated DESC, id DESC, status, created, version, owner, lease_until)"
        },
    ),
)

SCHEMA_VERSION = len(MIGRATIONS)


def pending(found: int, *, dialect: str, name: str) -> list[tuple[int, list[str]]]:
    """(version, its statements for `dialect`: "sqlite" or "postgresql") for each version a database at version
    `found` lacks, in order.

    Raises `StoreError` when `found` is newer than this code knows.
    """
    if found > SCHEMA_VERSION:
        raise StoreError(
            f"{name}: the store's schema is version {found}, newer than this mcp_host knows "
            f"({SCHEMA_VERSION}); upgrade mcp_host to use it"
        )
    json_type = JSON_TYPES[dialect]
    return [
        (version, [sql.format(json=json_type) for sql in _for(dialect, statements)])
        for version, statements in enumerate(MIGRATIONS, start=1)
        if version > found
    ]


def _for(dialect: str, statements: tuple[str | Mapping[str, str], ...]) -> list[str]:
    return [
        statement if isinstance(statement, str) else statement[dialect]
        for statement in statements
        if isinstance(statement, str) or dialect in statement
    ]
