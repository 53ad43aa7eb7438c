"""The state store keeps the API's records across restarts and crashes, on real SQLite and real PostgreSQL.

PostgreSQL runs as a throwaway cluster started here from the Debian server binaries (`apt-get install
postgresql`; `.ci/run` installs them); without them the PostgreSQL cases are skipped, saying so.
"""

from __future__ import annotations

import sqlite3
import stat
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import anyio
import pytest

import mcp_host.store
from mcp_host.errors import McpHostError
from mcp_host.store import (
    INTERRUPTED,
    RUNNING,
    Record,
    Store,
    StoreConflictError,
    StoreError,
    StoreState,
    open_store,
)
from mcp_host.store.records import KindRecords
from mcp_host.store.schema import CREATE_VERSIONS, RECORDS, SCHEMA_VERSION, VERSIONS, pending
from tests.conftest import POSTGRES_PASSWORD as PASSWORD
from tests.conftest import free_port

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parent.parent

# Opens the store, claims a record under a 1 s lease, says so, and waits to be killed.
CLAIMING_CHILD = """
import sys, anyio
from mcp_host.store import open_store

async def main():
    store = await open_store(sys.argv[1])
    await store.claim("session", "killed", {"turn": 1}, lease_s=1.0)
    print("claimed", flush=True)
    await anyio.sleep(60)

anyio.run(main)
"""


# -- databases -------------------------------------------------------------------------------


@pytest.fixture
def url(store_url: str) -> str:
    """A fresh, empty database of each kind (`store_url` in tests/conftest.py)."""
    return store_url


def query(url: str, *statements: str) -> list[tuple[Any, ...]]:
    """Run statements on the database directly, in one transaction; the last one's rows."""
    rows: list[tuple[Any, ...]] = []
    if url.startswith("sqlite"):
        with closing(sqlite3.connect(url.removeprefix("sqlite://"))) as connection:
            for statement in statements:
                rows = connection.execute(statement).fetchall()
            connection.commit()
        return rows
    import psycopg

    with psycopg.connect(url) as connection:  # commits on leaving
        for statement in statements:
            cursor = connection.execute(statement.encode())
            rows = cursor.fetchall() if cursor.description else []
    return rows


def dialect(url: str) -> str:
    return "sqlite" if url.startswith("sqlite") else "postgresql"


async def wait_for_status(store: Store, kind: str, id: str, status: str, timeout_s: float = 5.0) -> Record:
    with anyio.fail_after(timeout_s):
        while True:
            record = await store.get(kind, id)
            if record is not None and record.status == status:
                return record
            await anyio.sleep(0.05)


# -- reading and writing ---------------------------------------------------------------------


async def test_put_get_delete_round_trip(url: str) -> None:
    async with await open_store(url) as store:
        data = {"messages": [{"role": "user", "content": "héllo ✓"}], "n": 1.5, "nul": "a\x00b"}
        first = await store.put("session", "s1", data)
        assert (first.kind, first.id, first.status, first.version, first.owner) == ("session", "s1", "done", 1, None)
        assert first.created == first.updated and first.lease_until is None
        assert first.data["nul"] == "a\ufffdb"  # PostgreSQL's JSONB cannot hold a NUL: both databases agree
        assert await store.get("session", "s1") == first

        second = await store.put("session", "s1", {"messages": []}, status="error", owner="api-key-1")
        assert second.version == 2 and second.created == first.created and second.updated >= first.updated
        assert (second.status, second.owner, second.data) == ("error", "api-key-1", {"messages": []})
        assert await store.get("session", "s1") == second
        assert await store.get("thread", "s1") is None  # kinds are separate
        assert await store.get("session", "x" * 201) is None  # no such id can exist: no query at all

        assert await store.delete("session", "s1") is True
        assert await store.get("session", "s1") is None
        assert await store.delete("session", "s1") is False


async def test_list_is_newest_first_with_limit_before_and_status(url: str) -> None:
    async with await open_store(url) as store:
        written = [
            await store.put("response", f"r{i}", {"i": i}, status="done" if i % 2 else "failed") for i in range(5)
        ]
        await store.put("thread", "other", {})
        newest_first = [record.id for record in reversed(written)]

        assert [record.id for record in await store.list("response")] == newest_first
        assert [record.id for record in await store.list("response", limit=2)] == newest_first[:2]
        page = await store.list("response", limit=2, before=written[3].updated)
        assert [record.id for record in page] == ["r2", "r1"]
        assert [record.id for record in await store.list("response", status="failed")] == ["r4", "r2", "r0"]
        assert await store.list("nothing") == []
        with pytest.raises(ValueError):
            await store.list("response", limit=0)


async def test_records_survive_close_and_reopen(url: str) -> None:
    async with await open_store(url) as store:
        written = await store.put("session", "kept", {"history": ["a", "b"]})
    assert store.state is StoreState.CLOSED
    async with await open_store(url) as reopened:
        assert await reopened.get("session", "kept") == written


async def test_a_closed_store_says_so(url: str) -> None:
    store = await open_store(url)
    await store.aclose()
    await store.aclose()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        await store.get("session", "s")
    with pytest.raises(StoreError, match="closed"):
        await store.put("session", "s", {})


# -- claims and leases -----------------------------------------------------------------------


async def test_a_claim_whose_process_was_killed_is_interrupted(url: str) -> None:
    async with await anyio.open_process([sys.executable, "-c", CLAIMING_CHILD, url], cwd=ROOT) as child:
        assert child.stdout is not None
        output = b""
        with anyio.fail_after(20):
            while b"claimed" not in output:
                output += await child.stdout.receive()
        child.kill()  # SIGKILL: no chance to release or close anything
        await child.wait()

    async with await open_store(url) as store:
        record = await store.get("session", "killed")
        assert record is not None and record.owner is not None and record.lease_until is not None
        if time.time() < record.lease_until - 0.3:  # the lease has not passed yet: nobody may call it dead
            assert record.status == RUNNING
        interrupted = await wait_for_status(store, "session", "killed", INTERRUPTED)
        assert interrupted.data == {"turn": 1} and interrupted.version == 2 and interrupted.owner == record.owner
    # Written back, not only reported: every instance sees the same.
    assert query(url, f"SELECT status FROM {RECORDS} WHERE id = 'killed'") == [(INTERRUPTED,)]


async def test_a_live_claim_is_never_taken_by_another_instance(url: str) -> None:
    async with await open_store(url) as a, await open_store(url) as b:
        assert a.owner != b.owner
        claimed = await a.claim("session", "s", {"turn": 1}, lease_s=1.0)
        assert (claimed.status, claimed.owner) == (RUNNING, a.owner)
        assert claimed.lease_until is not None and claimed.lease_until > claimed.updated
        with pytest.raises(StoreConflictError, match="another instance"):
            await b.claim("session", "s", {"turn": 2})

        deadline = time.monotonic() + 2.0  # twice the lease, renewed all along
        while time.monotonic() < deadline:
            assert await a.renew("session", "s")
            seen = await b.get("session", "s")
            assert seen is not None and (seen.status, seen.owner, seen.version) == (RUNNING, a.owner, 1)
            assert [record.status for record in await b.list("session")] == [RUNNING]
            await anyio.sleep(0.2)

        interrupted = await wait_for_status(b, "session", "s", INTERRUPTED)  # A stopped renewing
        assert interrupted.version == 2
        assert await a.renew("session", "s") is False

        # A's turn did end: its final data still belongs in the record.
        done = await a.release("session", "s", {"turn": 1, "answer": "42"})
        assert (done.status, done.version, done.lease_until) == ("done", 3, None)

        await b.claim("session", "s", {"turn": 2}, lease_s=5.0)
        with pytest.raises(StoreConflictError):
            await a.release("session", "s", {"late": True})  # no longer A's
        assert await b.delete("session", "s")
        with pytest.raises(StoreConflictError, match="deleted"):
            await b.release("session", "s", {})


async def test_closing_marks_the_instances_own_claims_interrupted(url: str) -> None:
    async with await open_store(url) as b:
        async with await open_store(url) as a:
            await a.claim("session", "s", {}, lease_s=60.0)
            await a.claim("session", "t", {}, lease_s=60.0)
            await a.release("session", "t", {})
        record = await b.get("session", "s")
        assert record is not None and record.status == INTERRUPTED  # at once, not after 60 s
        released = await b.get("session", "t")
        assert released is not None and released.status == "done"


async def test_two_instances_creating_one_record_at_once_one_wins(url: str) -> None:
    async with await open_store(url) as a, await open_store(url) as b:
        outcomes: list[str] = []

        async def claim(store: Store) -> None:
            try:
                await store.claim("session", "race", {"by": store.owner})
                outcomes.append("won")
            except StoreConflictError:
                outcomes.append("lost")

        async with anyio.create_task_group() as tg:
            tg.start_soon(claim, a)
            tg.start_soon(claim, b)
        assert sorted(outcomes) == ["lost", "won"]


async def test_create_writes_once_across_instances_and_take_is_true_once(url: str) -> None:
    async with await open_store(url) as a, await open_store(url) as b:
        outcomes: list[str] = []

        async def create(store: Store, round: int) -> None:
            try:
                await store.create("marker", f"race{round}", {"by": store.owner})
                outcomes.append("won")
            except StoreConflictError:
                outcomes.append("lost")

        for round in range(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(create, a, round)
                tg.start_soon(create, b, round)
        assert sorted(outcomes) == ["lost"] * 5 + ["won"] * 5
        with pytest.raises(ValueError, match="claim"):
            await a.create("marker", "running", {}, status=RUNNING)

        first, second = KindRecords(a, "response"), KindRecords(b, "response")
        await first.put("resp_1", {"n": 1})
        taken = [await first.take("resp_1"), await second.take("resp_1"), await first.take("resp_1")]
        assert taken == [True, False, False]
        assert await second.get("resp_1") == {"n": 1}  # taking leaves the record as it is
        assert await second.delete("resp_1") and await first.get("resp_1") is None
        assert await first.take("resp_1")  # deleting forgets it was taken


async def test_running_is_only_written_by_claim(url: str) -> None:
    async with await open_store(url) as store:
        with pytest.raises(ValueError, match="claim"):
            await store.put("session", "s", {}, status=RUNNING)
        await store.claim("session", "s", {})
        with pytest.raises(ValueError):
            await store.release("session", "s", {}, status=RUNNING)


async def test_a_write_that_waits_too_long_fails_and_the_store_recovers(url: str) -> None:
    async with await open_store(url, timeout_s=1.0) as store:
        await store.put("session", "s", {"n": 1})
        if dialect(url) == "sqlite":
            holder: Any = sqlite3.connect(url.removeprefix("sqlite://"), isolation_level=None)
            holder.execute("BEGIN IMMEDIATE")  # another process in the middle of a write
        else:
            import psycopg

            holder = psycopg.connect(url)
            holder.execute(f"SELECT * FROM {RECORDS} WHERE id = 's' FOR UPDATE")  # another instance's write
        try:
            started = time.monotonic()
            with pytest.raises(StoreError) as waited:
                await store.put("session", "s", {"n": 2})
            assert 0.9 < time.monotonic() - started < 5.0
            assert ("database is locked" if dialect(url) == "sqlite" else "statement timeout") in str(waited.value)
            if dialect(url) == "postgresql":  # the server gave up the wait itself: nothing is left queued on the lock
                database = url.rsplit("/", 1)[1]
                waiting = (
                    f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{database}' AND wait_event_type = 'Lock'"
                )
                assert holder.execute(waiting).fetchone() == (0,)
        finally:
            if dialect(url) == "sqlite":
                holder.execute("ROLLBACK")
            else:
                holder.rollback()
            holder.close()
        written = await store.put("session", "s", {"n": 3})
        assert written.version == 2 and await store.get("session", "s") == written


# -- schema ----------------------------------------------------------------------------------


async def test_a_version_1_database_is_migrated(url: str) -> None:
    ((version, v1),) = pending(0, dialect=dialect(url), name="test")[:1]
    assert version == 1 and SCHEMA_VERSION >= 2
    query(
        url,
        CREATE_VERSIONS,
        *v1,
        f"INSERT INTO {VERSIONS} (version, applied) VALUES (1, 0)",
        f"INSERT INTO {RECORDS} VALUES ('session', 'old', '{{\"a\": 1}}', 'done', 1.0, 2.0, 7, NULL, NULL)",
    )
    async with await open_store(url) as store:
        old = await store.get("session", "old")
        assert old is not None and (old.data, old.created, old.updated, old.version) == ({"a": 1}, 1.0, 2.0, 7)
    versions = query(url, f"SELECT version FROM {VERSIONS} ORDER BY version")
    assert [row[0] for row in versions] == list(range(1, SCHEMA_VERSION + 1))
    index = f"{RECORDS}_by_updated"
    if dialect(url) == "sqlite":
        assert query(url, f"SELECT name FROM sqlite_master WHERE type = 'index' AND name = '{index}'")
    else:
        assert query(url, f"SELECT indexname FROM pg_indexes WHERE indexname = '{index}'")
    async with await open_store(url):  # and opening it again changes nothing
        pass
    assert len(query(url, f"SELECT version FROM {VERSIONS}")) == SCHEMA_VERSION


async def test_a_database_from_newer_code_is_refused(url: str) -> None:
    async with await open_store(url):
        pass
    query(url, f"INSERT INTO {VERSIONS} (version, applied) VALUES (99, 0)")
    with pytest.raises(StoreError, match=f"version 99, newer than this mcp_host knows \\({SCHEMA_VERSION}\\)"):
        await open_store(url)
    assert query(url, f"SELECT max(version) FROM {VERSIONS}") == [(99,)]  # untouched


# -- limits and errors -----------------------------------------------------------------------


async def test_data_over_64_mib_is_refused(url: str) -> None:
    async with await open_store(url) as store:
        big = await store.put("response", "big", {"text": "x" * (1 << 20)})  # a megabyte is fine
        assert len(big.data["text"]) == 1 << 20
        with pytest.raises(StoreError, match="over the limit"):
            await store.put("response", "huge", {"text": "x" * (64 << 20)})
        assert await store.get("response", "huge") is None
        with pytest.raises(StoreError, match="not storable JSON"):
            await store.put("response", "nan", {"x": float("nan")})
        with pytest.raises(StoreError, match="1 to 200 characters"):
            await store.put("response", "x" * 201, {})


async def test_postgres_passwords_never_show(postgres_server: str) -> None:
    async with await open_store(postgres_server) as store:
        assert PASSWORD not in repr(store) and PASSWORD not in store.name
        assert ":***@" in repr(store)

    wrong = postgres_server.replace(PASSWORD, PASSWORD + "-wrong")
    with pytest.raises(StoreError) as refused:
        await open_store(wrong)
    assert "password authentication failed" in str(refused.value)
    assert PASSWORD not in str(refused.value) and PASSWORD not in repr(refused.value)
    assert PASSWORD not in str(refused.value.__cause__) and PASSWORD not in str(refused.value.__context__)

    nobody = f"postgres://app:{PASSWORD}@127.0.0.1:{free_port()}/db?password={PASSWORD}"
    with pytest.raises(StoreError) as unreachable:
        await open_store(nobody, timeout_s=5.0)
    assert "postgres://app:***@127.0.0.1" in str(unreachable.value) and PASSWORD not in str(unreachable.value)


async def test_missing_driver_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # what `import psycopg` meets where it is not installed
    with pytest.raises(StoreError, match=r"pip install 'mcp_host\[postgres\]'") as missing:
        await open_store(f"postgresql://app:{PASSWORD}@localhost/db")
    assert PASSWORD not in str(missing.value)


async def test_bad_urls_and_unopenable_paths_name_what_failed(tmp_path: Path) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    with pytest.raises(StoreError, match=str(a_file / "x.sqlite3")):
        await open_store(f"sqlite://{a_file}/x.sqlite3")
    with pytest.raises(StoreError, match=str(tmp_path)):
        await open_store(f"sqlite://{tmp_path}")  # a folder
    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(b"\x01" * 4096)
    with pytest.raises(StoreError, match=str(garbage)):
        await open_store(f"sqlite://{garbage}")
    with pytest.raises(StoreError, match="absolute path"):
        await open_store("sqlite://relative.sqlite3")
    with pytest.raises(StoreError, match=r"mysql://root:\*\*\*@db") as unknown:
        await open_store(f"mysql://root:{PASSWORD}@db/x")
    assert PASSWORD not in str(unknown.value)


async def test_the_default_store_is_a_private_file_in_the_state_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    async with await open_store(None) as store:
        await store.put("session", "s", {})
        folder = tmp_path / "state" / "mcp-host"
        assert store.name == str(folder / "api.sqlite3")
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        for name in ("api.sqlite3", "api.sqlite3-wal"):  # the log holds the same data
            assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600, name
        assert query(f"sqlite://{folder / 'api.sqlite3'}", "PRAGMA journal_mode") == [("wal",)]


def test_public_surface() -> None:
    assert mcp_host.store.__all__ == sorted(mcp_host.store.__all__)
    for name in mcp_host.store.__all__:
        assert hasattr(mcp_host.store, name), name
    assert issubclass(StoreConflictError, StoreError) and issubclass(StoreError, McpHostError)


def test_sqlite_users_never_import_psycopg(tmp_path: Path) -> None:
    script = (
        "import sys, anyio\n"
        "from mcp_host.store import open_store\n"
        "async def main():\n"
        f"    async with await open_store('sqlite://{tmp_path}/a.sqlite3') as store:\n"
        "        await store.put('session', 's', {})\n"
        "anyio.run(main)\n"
        "assert 'psycopg' not in sys.modules, 'psycopg was imported'\n"
    )
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True, timeout=60)
