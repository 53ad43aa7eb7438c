"""A record's summary, written with its data and listed without it (`Store.summaries`), on real SQLite and PostgreSQL.

PostgreSQL runs as the throwaway cluster of `tests/test_store.py`; without its binaries those cases are skipped.
"""

from __future__ import annotations

import pytest

from mcp_host.store import StoreError, SummaryRecord, open_store
from mcp_host.store.schema import CREATE_VERSIONS, RECORDS, SUMMARIES, VERSIONS, pending
from tests.test_store import dialect, query

pytestmark = pytest.mark.anyio


@pytest.fixture
def url(store_url: str) -> str:
    """A fresh, empty database of each kind (`store_url` in tests/conftest.py)."""
    return store_url


def by_id(records: list[SummaryRecord]) -> dict[str, SummaryRecord]:
    return {record.id: record for record in records}


async def test_a_summary_is_written_with_the_data_and_listed_without_it(url: str) -> None:
    async with await open_store(url) as store:
        summary = {"title": "Trip", "messages": 2, "search": "paris in spring"}
        assert await store.delete("session", "s1") is False
        put = await store.put("session", "s1", {"title": "Trip", "big": "x" * 100_000}, summary=summary)
        claimed = await store.claim("session", "s2", {"turn": 1}, summary={"title": "Busy"}, lease_s=30.0)
        assert await store.renew("session", "s2")  # a renewal writes no data: the summary stays
        await store.put("session", "s3", {"title": "Old", "model": "m", "n": 1})  # no summary: as older code wrote
        await store.put("thread", "t1", {"title": "Another kind"}, summary={"title": "Another kind"})
        # Unreadable data, to show it is never read: no list could parse it, a summary list does not look.
        query(url, f"UPDATE {RECORDS} SET data = '\"not an object\"' WHERE id = 's1'")
        with pytest.raises(StoreError, match="not an object"):
            await store.get("session", "s1")

        page = await store.summaries("session", whole_up_to=1024, fields=("title", "model", "missing"))
        assert [record.id for record in page] == ["s3", "s2", "s1"]  # newest first, as `list`
        records = by_id(page)
        assert records["s1"].summary == summary and records["s1"].data is None
        assert (records["s1"].version, records["s1"].updated, records["s1"].status) == (1, put.updated, "done")
        busy = records["s2"]
        assert (busy.summary, busy.status, busy.owner) == ({"title": "Busy"}, "running", store.owner)
        assert busy.lease_until is not None and claimed.lease_until is not None
        assert busy.lease_until > claimed.lease_until  # renewed
        assert records["s3"].summary is None and records["s3"].whole
        assert records["s3"].data == {"title": "Old", "model": "m", "n": 1}

        fields = by_id(await store.summaries("session", whole_up_to=10, fields=("title", "model", "missing")))
        assert (fields["s3"].data, fields["s3"].whole) == ({"title": "Old", "model": "m", "missing": None}, False)
        assert by_id(await store.summaries("session", fields=("title",)))["s3"].data == {"title": "Old"}
        assert by_id(await store.summaries("session"))["s3"].data == {}

        lean = by_id(await store.summaries("session", leave_out=("search", "messages")))
        assert lean["s1"].summary == {"title": "Trip"}  # what a list without a search needs
        assert [r.id for r in await store.summaries("session", limit=1, before=records["s2"].updated)] == ["s1"]
        assert [r.id for r in await store.summaries("session", status="running")] == ["s2"]

        await store.release("session", "s2", {"turn": 1, "answer": "42"})  # a write of data without a summary
        released = by_id(await store.summaries("session", whole_up_to=1024))["s2"]
        assert released.summary is None and released.data == {"turn": 1, "answer": "42"}  # the old one went
        edited = await store.update("session", "s2", {"turn": 2}, version=released.version, summary={"n": "\x00"})
        assert by_id(await store.summaries("session"))["s2"].summary == {"n": "\ufffd"}  # NUL as the data's
        assert edited.version == released.version + 1

        assert await store.delete("session", "s1") is True  # its summary goes with it
        assert query(url, f"SELECT id FROM {SUMMARIES} WHERE id = 's1'") == []
        await store.put("session", "s1", {"title": "New"})
        assert by_id(await store.summaries("session", whole_up_to=1024))["s1"].data == {"title": "New"}


async def test_a_summary_made_later_is_attached_only_to_the_version_it_was_made_of(url: str) -> None:
    async with await open_store(url) as store:
        old = await store.put("session", "old", {"title": "Old"})
        moved = await store.put("session", "moved", {"title": "Moved"})
        await store.put("session", "moved", {"title": "Moved on"})  # written since the summary was made
        summarised = await store.put("session", "summarised", {}, summary={"title": "Own"})
        made = [
            ("old", old.version, {"title": "Old"}),
            ("moved", moved.version, {"title": "Moved"}),
            ("summarised", summarised.version, {"title": "Other"}),
            ("gone", 1, {"title": "Gone"}),
            ("x" * 201, 1, {}),
        ]
        assert await store.attach_summaries("session", made) == 1
        records = by_id(await store.summaries("session", whole_up_to=1 << 20))
        assert records["old"].summary == {"title": "Old"}
        assert (records["old"].version, records["old"].updated) == (old.version, old.updated)  # not a write
        assert records["moved"].summary is None and records["moved"].data == {"title": "Moved on"}
        assert records["summarised"].summary == {"title": "Own"}
        assert await store.attach_summaries("session", []) == 0
        with pytest.raises(StoreError, match="summary is"):
            await store.attach_summaries("session", [("old", old.version, {"search": "x" * (1 << 20)})])


async def test_a_summary_is_bounded_and_its_keys_are_plain_names(url: str) -> None:
    async with await open_store(url) as store:
        with pytest.raises(StoreError, match=r"session/s: summary is \d+ bytes of JSON, over the limit"):
            await store.put("session", "s", {}, summary={"search": "x" * (1 << 20)})
        assert await store.get("session", "s") is None  # nothing written
        for bad in ("a.b", "a'", "$", "", "x" * 65):
            with pytest.raises(ValueError, match="plain names"):
                await store.summaries("session", fields=(bad,))
            with pytest.raises(ValueError, match="plain names"):
                await store.summaries("session", leave_out=(bad,))
        with pytest.raises(ValueError):
            await store.summaries("session", limit=0)
        assert await store.summaries("x" * 201) == []


async def test_records_of_a_version_2_database_are_listed_from_their_data(url: str) -> None:
    """The migration to version 3 keeps every record, and lists them by their data until they have summaries."""
    steps = pending(0, dialect=dialect(url), name="test")[:2]
    old_data = '{"title": "Before"}'
    query(
        url,
        CREATE_VERSIONS,
        *(statement for _, statements in steps for statement in statements),
        f"INSERT INTO {VERSIONS} (version, applied) VALUES (1, 0), (2, 0)",
        f"INSERT INTO {RECORDS} VALUES ('session', 'old', '{old_data}', 'done', 1.0, 2.0, 7, NULL, NULL)",
    )
    async with await open_store(url) as store:
        (old,) = await store.summaries("session", whole_up_to=1 << 20, fields=("title",))
        assert (old.id, old.summary, old.data, old.whole, old.version, old.updated) == (
            "old",
            None,
            {"title": "Before"},
            True,
            7,
            2.0,
        )
        got = await store.get("session", "old")
        assert got is not None and got.data == {"title": "Before"} and got.created == 1.0
        await store.put("session", "old", {"title": "After"}, summary={"title": "After"})
        assert (await store.summaries("session"))[0].summary == {"title": "After"}
    if dialect(url) == "sqlite":  # a list reads its columns of the records from their index, never their rows
        (plan,) = query(
            url,
            "EXPLAIN QUERY PLAN SELECT status, owner, lease_until, version, created FROM"
            f" {RECORDS} WHERE kind = 'session' ORDER BY updated DESC, id DESC",
        )
        assert f"COVERING INDEX {RECORDS}_by_updated" in plan[-1], plan
    assert query(url, f"SELECT max(version) FROM {VERSIONS}") == [(3,)]
