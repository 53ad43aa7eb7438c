"""The stored-chats list reads each session's summary, written with its record, never its conversation; titles and
previews never carry control characters or bidirectional controls.

Real uvicorn servers over a SQLite store in `tmp_path`, the stdio fixture MCP server, raw HTTP through httpx2,
gpt-oss scripted by a `ReplayBackend` (`serving` of `tests/test_session_list.py`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mcp_host.api.session_ledger import WHOLE_UP_TO
from mcp_host.api.session_summary import SEARCH_CHARS
from mcp_host.store import open_store
from mcp_host.store.schema import RECORDS
from tests.test_session_list import error, final, ids, listed, new_session, serving
from tests.test_store import query

pytestmark = pytest.mark.anyio

# Each bidirectional control, and control characters of every kind, line and paragraph separators included.
UNSAFE = [
    *"\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069",
    *"\x00\t\n\r\x1b\x7f\x85\u2028\u2029",
]


async def test_the_list_reads_summaries_not_conversations(tmp_path: Path) -> None:
    async with serving(tmp_path, final("Pelicans are big birds.")) as (http, _):
        session = await new_session(http, "Tell me about pelicans")
    # Data no list could read: the summary beside it is what the list shows and searches.
    query(f"sqlite://{tmp_path}/api.sqlite3", f"UPDATE {RECORDS} SET data = '\"unreadable\"' WHERE id = '{session}'")
    async with serving(tmp_path) as (http, _):
        (item,) = (await listed(http))["data"]
        assert (item["id"], item["title"], item["messages"], item["preview"], item["state"]) == (
            session,
            "Tell me about pelicans",
            2,
            "Pelicans are big birds.",
            "idle",
        )
        assert ids(await listed(http, q="BIG BIRDS")) == [session]
        assert ids(await listed(http, q="penguins")) == []


async def test_a_search_looks_in_the_start_of_a_long_chat(tmp_path: Path) -> None:
    long = "early words " + "filler " * (SEARCH_CHARS // 7) + " late words"
    async with serving(tmp_path, final("Noted.")) as (http, _):
        session = await new_session(http, long)
        assert ids(await listed(http, q="early words")) == [session]
        assert ids(await listed(http, q="late words")) == []  # past the first 64 KiB of its text
        assert ids(await listed(http, q="noted")) == []  # the answer too comes after them
        (item,) = (await listed(http))["data"]
        assert item["messages"] == 2 and item["preview"] == "Noted."  # counted and shown all the same


async def test_older_records_are_read_whole_when_small_and_by_title_when_large(tmp_path: Path) -> None:
    """Records written before summaries: small ones parsed as before, large ones listed by their title alone."""
    async with serving(tmp_path, final("Short answer.")) as (http, _):
        small = await new_session(http, "A small question")
    async with await open_store(f"sqlite://{tmp_path}/api.sqlite3") as store:
        record = await store.get("session", small)
        assert record is not None
        await store.put("session", small, record.data)  # as older code wrote it: no summary
        words = "needle " * (WHOLE_UP_TO // 7 + 1)
        large = {
            **record.data,
            "title": "Large \u202eold chat",
            "snapshot": {"turn": {"history": [{"role": "user", "content": words}]}},
        }
        await store.put("session", "sess_large", large)
    async with serving(tmp_path) as (http, _):
        page = await listed(http)
        assert ids(page) == ["sess_large", small] and page["searched"] == 2
        items = {item["id"]: item for item in page["data"]}
        assert (items["sess_large"]["title"], items["sess_large"]["messages"], items["sess_large"]["preview"]) == (
            "Large old chat",  # its bidirectional control taken out
            None,
            None,
        )
        assert items["sess_large"]["model"] == "openai/gpt-oss-20b" and items["sess_large"]["created"] > 0
        assert (items[small]["title"], items[small]["messages"], items[small]["preview"]) == (
            "A small question",
            2,
            "Short answer.",
        )
        assert ids(await listed(http, q="short answer")) == [small]
        assert ids(await listed(http, q="old chat")) == ["sess_large"]
        assert ids(await listed(http, q="needle")) == []  # its conversation is not read

        # The first list kept what it made of them beside the records (their version and time untouched): later
        # lists read that, and no longer the data.
        query(f"sqlite://{tmp_path}/api.sqlite3", f"UPDATE {RECORDS} SET data = '\"unreadable\"'")
        assert (await listed(http))["data"] == page["data"]
        assert ids(await listed(http, q="short answer")) == [small]
        async with await open_store(f"sqlite://{tmp_path}/api.sqlite3") as store:
            kept = {record.id: record for record in await store.summaries("session")}
        assert kept[small].version == record.version + 1 and kept[small].updated == items[small]["updated"]
        assert kept["sess_large"].summary == {
            "title": "Large \u202eold chat",  # as stored: what the list shows is cleaned as it is read
            "created": record.data["created"],
            "model": "openai/gpt-oss-20b",
            "messages": None,
            "preview": None,
            "search": "",
        }


async def test_a_title_holds_no_control_or_bidirectional_characters(tmp_path: Path) -> None:
    first = "\u202eevil\x00 name\u2066 \x1b[31m\nsecond line"
    async with serving(tmp_path, final("Fine.\u202e gnirts\x07")) as (http, _):
        session = await new_session(http, first)
        (item,) = (await listed(http))["data"]
        assert (item["title"], item["preview"]) == ("evil name [31m", "Fine. gnirts")
        assert (await http.get(f"/v1/sessions/{session}")).json()["title"] == "evil name [31m"
        blank = await new_session(http, "\u202a\u202c\n\x00\nreal words")  # a first line with nothing to show
        assert (await http.get(f"/v1/sessions/{blank}")).json()["title"] == "real words"

        for char in UNSAFE:
            refused = error(await http.patch(f"/v1/sessions/{session}", json={"title": f"Trip{char}plans"}), 400)
            assert refused["param"] == "title" and f"U+{ord(char):04X}" in refused["message"], refused
        renamed = await http.patch(f"/v1/sessions/{session}", json={"title": " \n Trip ✈ to תל אביב \t"})
        assert renamed.status_code == 200 and renamed.json()["title"] == "Trip ✈ to תל אביב"  # only the ends stripped
    async with await open_store(f"sqlite://{tmp_path}/api.sqlite3") as store:  # a title stored before the rule
        record = await store.get("session", session)
        assert record is not None
        await store.put("session", session, {**record.data, "title": "Trip\u202e\x07plans"})
    async with serving(tmp_path) as (http, _):
        assert {item["title"] for item in (await listed(http))["data"]} == {"Trip plans", "real words"}
        assert (await http.get(f"/v1/sessions/{session}")).json()["title"] == "Trip plans"
