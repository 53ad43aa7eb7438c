"""The stored-chats list (`GET /v1/sessions`), titles and renames (`PATCH /v1/sessions/{id}`), and the store's
compare-and-set write that keeps a rename from undoing a turn's write.

Real uvicorn servers over real stores (a SQLite file in `tmp_path`; the store cases on PostgreSQL too), the
stdio fixture MCP server, raw HTTP through httpx2, gpt-oss scripted by a `ReplayBackend`.
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx2
import pytest

from mcp_host.api import create_app
from mcp_host.api.session_index import MAX_SEARCHED
from mcp_host.api.session_ledger import SessionLedger, SessionState
from mcp_host.api.session_summary import Listing, default_title, shown_messages
from mcp_host.backends import ReplayBackend
from mcp_host.host import Host
from mcp_host.store import INTERRUPTED, StoreConflictError, open_store
from tests.conftest import fixture_entry, serve_app, write_config
from tests.test_api_openai import scripted

pytestmark = pytest.mark.anyio

CALL = (
    "<|channel|>analysis<|message|>Add them.<|end|><|start|>assistant<|channel|>commentary "
    'to=functions.fx__add <|constrain|>json<|message|>{"a": 40, "b": 2}<|call|>'
)


def final(text: str) -> str:
    reasoning = "<|channel|>analysis<|message|>Thinking about penguins.<|end|><|start|>assistant"
    return f"{reasoning}<|channel|>final<|message|>{text}<|return|>"


@asynccontextmanager
async def serving(
    tmp_path: Path, *outputs: str, stored: bool = True
) -> AsyncIterator[tuple[httpx2.AsyncClient, ReplayBackend]]:
    """The app (over the SQLite store of `tmp_path` when `stored`) with mcp.json's `fx`, and a client for it."""
    config = write_config(tmp_path / "mcp.json", {"fx": fixture_entry()})
    backend = scripted(*outputs)
    async with AsyncExitStack() as stack:
        store = (
            await stack.enter_async_context(await open_store(f"sqlite://{tmp_path}/api.sqlite3")) if stored else None
        )
        host = await stack.enter_async_context(Host(config, settings_path=tmp_path / "settings.toml"))
        url = await stack.enter_async_context(serve_app(create_app(host, backend, store=store)))
        yield await stack.enter_async_context(httpx2.AsyncClient(base_url=url, timeout=30)), backend


async def chat(http: httpx2.AsyncClient, session: str, content: str) -> list[dict[str, Any]]:
    """One turn, its events read to the end."""
    seen: list[dict[str, Any]] = []
    async with http.stream("POST", f"/v1/sessions/{session}/messages", json={"content": content}) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                seen.append(json.loads(line[6:]))
    assert seen[-1]["type"] == "turn.completed", seen
    return seen


async def new_session(http: httpx2.AsyncClient, *messages: str) -> str:
    created = await http.post("/v1/sessions", json={})
    assert created.status_code == 201
    session: str = created.json()["id"]
    for message in messages:
        await chat(http, session, message)
    return session


async def listed(http: httpx2.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await http.get("/v1/sessions", params=params)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    assert page["object"] == "list"
    return page


def ids(page: dict[str, Any]) -> list[str]:
    return [item["id"] for item in page["data"]]


def error(response: httpx2.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()["error"]
    return body


# -- the list ------------------------------------------------------------------------------------------


async def test_the_list_is_newest_first_summarised_searchable_and_pages(tmp_path: Path) -> None:
    outputs = (final("Sure, Paris it is."), final("Hi!"), final("Pelicans are big birds."))
    async with serving(tmp_path, *outputs) as (http, _):
        trip = await new_session(http, "  Plan a trip to Paris with the kids, in spring, for a week or so\nBudget: low")
        birds = await new_session(http, "Hello there", "And what about PELICANS?")
        empty = await new_session(http)

        page = await listed(http)
        assert ids(page) == [empty, birds, trip] and page["has_more"] is False and page["next_before"] is None
        assert (page["searched"], page["truncated"]) == (3, False)
        by_id = {item["id"]: item for item in page["data"]}
        assert by_id[trip]["title"] == "Plan a trip to Paris with the kids, in spring, for a week o…"
        assert len(by_id[trip]["title"]) == 60
        assert by_id[trip]["messages"] == 2 and by_id[trip]["preview"] == "Sure, Paris it is."  # no reasoning
        assert by_id[birds]["title"] == "Hello there" and by_id[birds]["messages"] == 4
        assert by_id[birds]["preview"] == "Pelicans are big birds."
        assert by_id[empty] | {"created": 0, "updated": 0} == {
            "id": empty,
            "object": "session",
            "title": None,
            "created": 0,
            "updated": 0,
            "model": "openai/gpt-oss-20b",
            "state": "idle",
            "messages": 0,
            "preview": None,
        }
        assert by_id[empty]["updated"] > by_id[birds]["updated"] > by_id[trip]["updated"] > 0

        assert ids(await listed(http, q="pelican")) == [birds]  # the user's second message, any case
        assert ids(await listed(http, q="BIG BIRDS")) == [birds]  # the assistant's answer
        assert ids(await listed(http, q="paris")) == [trip]
        assert ids(await listed(http, q="penguins")) == []  # reasoning is not what the chat shows
        assert ids(await listed(http, q="   ")) == [empty, birds, trip]  # a blank search box lists everything

        first = await listed(http, limit=2)
        assert ids(first) == [empty, birds] and first["has_more"] is True
        assert first["next_before"] == first["data"][-1]["updated"]
        second = await listed(http, limit=2, before=first["next_before"])
        assert ids(second) == [trip] and second["has_more"] is False
        searched = await listed(http, q="e", limit=1)  # "Plan a trip..." and "Hello there" hold an e
        assert ids(searched) == [birds] and searched["has_more"] is True
        assert ids(await listed(http, q="e", limit=1, before=searched["next_before"])) == [trip]

        assert (await http.get(f"/v1/sessions/{birds}")).json()["title"] == "Hello there"


async def test_bad_parameters_are_refused_naming_them(tmp_path: Path) -> None:
    async with serving(tmp_path) as (http, _):
        for limit in ("0", "201", "ten", "-1", "1.5", "9" * 5000):
            refused = error(await http.get("/v1/sessions", params={"limit": limit}), 400)
            assert refused["param"] == "limit" and "1 to 200" in refused["message"]
        for before in ("nan", "inf", "yesterday"):
            assert error(await http.get("/v1/sessions", params={"before": before}), 400)["param"] == "before"
        long = error(await http.get("/v1/sessions", params={"q": "x" * 201}), 400)
        assert long["param"] == "q" and "at most 200" in long["message"]
        assert error(await http.get("/v1/sessions", params={"q": "x" * 10_000}), 400)["param"] == "q"
        unknown = error(await http.get("/v1/sessions", params={"query": "x"}), 400)
        assert unknown["param"] == "query" and "'q'" in unknown["message"]
        assert (await listed(http, q="x" * 200))["data"] == []  # the longest search is fine
        # Longer URLs: no client builds 10 MB ones (httpx2 refuses), so they are written on a socket as they are.
        # The HTTP server refuses a request line over its 16 KiB buffer before the app sees it: a 400 it
        # answers, or (10 MB it stops reading midway) a reset; either way it goes on serving.
        assert (await raw_get(http, "x" * 20_000)).startswith(b"HTTP/1.1 400 ")
        answer = await raw_get(http, "x" * 10_000_000)
        assert answer.startswith(b"HTTP/1.1 400 ") or answer == b"reset"
        assert (await listed(http))["data"] == []


async def raw_get(http: httpx2.AsyncClient, q: str) -> bytes:
    """The start of the answer to `GET /v1/sessions?q=...`, or b"reset" if the server reset the connection."""
    request = f"GET /v1/sessions?q={q} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", http.base_url.port or 80), timeout=10) as connection:
        try:
            await anyio.to_thread.run_sync(connection.sendall, request)
        except OSError:
            pass  # it stopped reading: its answer may be waiting
        try:
            return await anyio.to_thread.run_sync(connection.recv, 65536)
        except ConnectionResetError:
            return b"reset"


async def test_a_search_reads_a_bounded_number_of_records_and_says_so(tmp_path: Path) -> None:
    async with serving(tmp_path, final("Found the needle.")) as (http, _):
        needle = await new_session(http, "Where is the needle?")
        async with await open_store(f"sqlite://{tmp_path}/api.sqlite3") as store:  # newer chats, as other servers'
            record = await store.get("session", needle)
            assert record is not None
            haystack = {**record.data, "snapshot": None, "title": "hay"}
            for index in range(MAX_SEARCHED + 10):
                await store.put("session", f"sess_hay{index:05}", haystack)
        page = await listed(http, q="needle")
        assert page["data"] == [] and page["truncated"] is True and page["searched"] == MAX_SEARCHED
        assert page["has_more"] is True
        rest = await listed(http, q="needle", before=page["next_before"])
        assert ids(rest) == [needle] and rest["truncated"] is False and rest["searched"] == 11
        assert len((await listed(http, limit=200))["data"]) == 200


# -- titles and renames ----------------------------------------------------------------------------


async def test_a_rename_is_listed_and_survives_a_restart(tmp_path: Path) -> None:
    async with serving(tmp_path, final("Noted."), final("Again.")) as (http, _):
        session = await new_session(http, "First words\nsecond line")
        assert (await http.get(f"/v1/sessions/{session}")).json()["title"] == "First words"
        renamed = await http.patch(f"/v1/sessions/{session}", json={"title": "  Shopping list  "})
        assert renamed.status_code == 200
        body = renamed.json()
        assert (body["id"], body["title"], body["messages"], body["state"]) == (session, "Shopping list", 2, "idle")
        assert body["updated"] == (await listed(http))["data"][0]["updated"]
        await chat(http, session, "More words")  # a later turn keeps the name
        assert (await listed(http))["data"][0]["title"] == "Shopping list"

        assert error(await http.patch(f"/v1/sessions/{session}", json={"title": "   "}), 400)["param"] == "title"
        assert error(await http.patch(f"/v1/sessions/{session}", json={"title": "x" * 201}), 400)["param"] == "title"
        assert error(await http.patch(f"/v1/sessions/{session}", json={"title": 7}), 400)["param"] == "title"
        assert error(await http.patch(f"/v1/sessions/{session}", json={"title": "a", "color": "red"}), 400)
        assert error(await http.patch("/v1/sessions/sess_nope", json={"title": "a"}), 404)

    async with serving(tmp_path) as (http, _):  # a new server over the same store file
        (item,) = (await listed(http, q="shopping"))["data"]
        assert (item["id"], item["title"], item["messages"]) == (session, "Shopping list", 4)
        assert (await http.get(f"/v1/sessions/{session}")).json()["title"] == "Shopping list"


async def test_a_record_from_before_titles_is_titled_by_its_first_message(tmp_path: Path) -> None:
    async with serving(tmp_path, final("One."), final("Two.")) as (http, _):
        session = await new_session(http, "The original question")
    async with await open_store(f"sqlite://{tmp_path}/api.sqlite3") as store:
        record = await store.get("session", session)
        assert record is not None and record.data["title"] == "The original question"
        await store.put("session", session, {k: v for k, v in record.data.items() if k != "title"})
    async with serving(tmp_path, final("Three.")) as (http, _):
        assert (await listed(http))["data"][0]["title"] == "The original question"
        await chat(http, session, "A later question")  # the title it is given is still the first message's
        assert (await http.get(f"/v1/sessions/{session}")).json()["title"] == "The original question"


async def test_a_rename_while_a_turn_runs_is_409_and_the_turns_write_is_kept(tmp_path: Path) -> None:
    async with serving(tmp_path, CALL, final("It is 42.")) as (http, _):
        session = await new_session(http)
        async with http.stream("POST", f"/v1/sessions/{session}/messages", json={"content": "40 + 2?"}) as response:
            async for line in response.aiter_lines():
                if line.startswith("data: ") and '"approval.required"' in line:
                    refused = error(await http.patch(f"/v1/sessions/{session}", json={"title": "Sums"}), 409)
                    assert refused["type"] == "conflict_error" and "answering a message" in refused["message"]
                    (busy,) = (await listed(http))["data"]
                    assert busy["state"] == "busy" and busy["title"] == "40 + 2?"  # its words, before they are saved
                    answered = await http.post(f"/v1/sessions/{session}/approvals/call_1", json={"decision": "allow"})
                    assert answered.status_code == 200
        (done,) = (await listed(http))["data"]
        assert (done["state"], done["title"], done["messages"], done["preview"]) == ("idle", "40 + 2?", 2, "It is 42.")
        assert (await http.patch(f"/v1/sessions/{session}", json={"title": "Sums"})).json()["title"] == "Sums"
        history = (await http.get(f"/v1/sessions/{session}")).json()["history"]
        assert any(message.get("recipient") == "functions.fx__add" for message in history)  # the turn's write
    async with serving(tmp_path) as (http, _):
        (item,) = (await listed(http))["data"]
        assert (item["title"], item["messages"], item["preview"]) == ("Sums", 2, "It is 42.")


async def test_a_rename_on_one_server_while_another_runs_the_turn_is_409(tmp_path: Path) -> None:
    """Two servers over one store: the one not running the turn cannot rename it, nor undo its write."""
    config = write_config(tmp_path / "mcp.json", {"fx": fixture_entry()})
    async with AsyncExitStack() as stack:
        clients: list[httpx2.AsyncClient] = []
        for outputs in ((CALL, final("It is 42.")), ()):
            store = await stack.enter_async_context(await open_store(f"sqlite://{tmp_path}/api.sqlite3"))
            host = await stack.enter_async_context(Host(config, settings_path=tmp_path / "settings.toml"))
            url = await stack.enter_async_context(serve_app(create_app(host, scripted(*outputs), store=store)))
            clients.append(await stack.enter_async_context(httpx2.AsyncClient(base_url=url, timeout=30)))
        first, second = clients
        session = await new_session(first)
        async with first.stream("POST", f"/v1/sessions/{session}/messages", json={"content": "40 + 2?"}) as response:
            async for line in response.aiter_lines():
                if line.startswith("data: ") and '"approval.required"' in line:
                    refused = error(await second.patch(f"/v1/sessions/{session}", json={"title": "Sums"}), 409)
                    assert "running" in refused["message"]
                    assert (await listed(second))["data"][0]["state"] == "busy"  # running on the other server
                    await first.post(f"/v1/sessions/{session}/approvals/call_1", json={"decision": "allow"})
        renamed = await second.patch(f"/v1/sessions/{session}", json={"title": "Sums"})
        assert renamed.status_code == 200 and renamed.json()["messages"] == 2  # it read the turn's write first
        (item,) = (await listed(first))["data"]
        assert (item["title"], item["messages"]) == ("Sums", 2)


async def test_a_deleted_session_leaves_the_list(tmp_path: Path) -> None:
    async with serving(tmp_path, final("Bye.")) as (http, _):
        kept = await new_session(http)
        gone = await new_session(http, "Delete me")
        assert ids(await listed(http)) == [gone, kept]
        assert (await http.delete(f"/v1/sessions/{gone}")).json()["deleted"] is True
        assert ids(await listed(http)) == [kept] and ids(await listed(http, q="delete")) == []
        assert error(await http.patch(f"/v1/sessions/{gone}", json={"title": "x"}), 404)


async def test_without_a_store_the_open_sessions_are_listed(tmp_path: Path) -> None:
    async with serving(tmp_path, final("Hi."), stored=False) as (http, _):
        quiet = await new_session(http)
        talked = await new_session(http, "Talk to me")
        page = await listed(http)
        assert ids(page) == [talked, quiet] and page["data"][0]["title"] == "Talk to me"
        assert page["data"][0]["messages"] == 2 and page["data"][0]["preview"] == "Hi."
        assert (await http.patch(f"/v1/sessions/{quiet}", json={"title": "Quiet one"})).json()["title"] == "Quiet one"
        assert ids(await listed(http)) == [quiet, talked]  # renaming is activity
        assert ids(await listed(http, q="QUIET")) == [quiet]
        assert ids(await listed(http, limit=1, before=(await listed(http))["data"][0]["updated"])) == [talked]
        await http.delete(f"/v1/sessions/{talked}")
        assert ids(await listed(http)) == [quiet]


def test_the_chat_format_and_odd_records_are_summarised_too() -> None:
    """Sessions of models without Harmony keep OpenAI-shaped messages; a record of any shape never breaks the list."""
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Weather in Oslo?"}]},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "function": {"name": "weather"}}]},
        {"role": "tool", "content": "rain"},
        {"role": "assistant", "content": "It   rains\nin Oslo."},
    ]
    state = SessionState("sess_chat", "qwen", {}, snapshot={"format": "chat", "turn": {"messages": messages}})
    assert shown_messages(state) == [("user", "Weather in Oslo?"), ("assistant", "It   rains\nin Oslo.")]
    summary = Listing.of(state, busy=False).item()
    assert (summary["title"], summary["messages"], summary["preview"]) == ("Weather in Oslo?", 2, "It rains in Oslo.")
    odd: Any
    for odd in (None, {}, {"turn": []}, {"turn": {"history": "x"}}, {"turn": {"messages": [1, {"role": 2}]}}):
        assert shown_messages(SessionState("sess_odd", "m", {}, snapshot=odd)) == []
    assert default_title("\n  \n") is None and default_title("x" * 100) == "x" * 59 + "…"


# -- the store's compare-and-set -------------------------------------------------------------------


@pytest.fixture
def url(store_url: str) -> str:
    """A fresh, empty database of each kind (`store_url` in tests/conftest.py)."""
    return store_url


async def test_update_writes_only_over_the_version_it_read(url: str) -> None:
    async with await open_store(url) as store, await open_store(url) as other:
        written = await store.put("session", "s1", {"title": None}, status=INTERRUPTED)
        updated = await store.update("session", "s1", {"title": "a"}, version=written.version)
        assert (updated.version, updated.status, updated.data) == (written.version + 1, INTERRUPTED, {"title": "a"})
        with pytest.raises(StoreConflictError, match="written since"):  # a stale version: it would undo a write
            await other.update("session", "s1", {"title": "b"}, version=written.version)
        claimed = await other.claim("session", "s1", {"title": "a", "turn": 1}, lease_s=30.0)
        with pytest.raises(StoreConflictError, match="running"):  # a turn holds it, even at its own version
            await store.update("session", "s1", {"title": "c"}, version=claimed.version)
        with pytest.raises(StoreConflictError, match="running"):
            await other.update("session", "s1", {"title": "c"}, version=claimed.version)
        released = await other.release("session", "s1", {"title": "a", "turn": 2})
        assert (
            await store.update("session", "s1", {"title": "d", "turn": 2}, version=released.version)
        ).owner == other.owner
        got = await other.get("session", "s1")
        assert got is not None and got.data == {"title": "d", "turn": 2} and got.status == "done"
        await store.delete("session", "s1")
        with pytest.raises(StoreConflictError, match="does not exist"):
            await store.update("session", "s1", {"title": "e"}, version=got.version)
        assert await store.get("session", "s1") is None


async def test_the_ledger_edits_a_record_only_as_it_was_read(tmp_path: Path) -> None:
    """`SessionLedger.edit`, which renames and tool changes share: over the version read, the status kept."""
    url = f"sqlite://{tmp_path}/api.sqlite3"
    async with await open_store(url) as store, await open_store(url) as other:
        ledger = SessionLedger(store)
        waiting = [{"call_id": "call_1", "tool": "fx.add", "arguments": {}}]
        await store.put("session", "s1", SessionState("s1", "m", {}, waiting=waiting).to_data(), status=INTERRUPTED)
        state = await ledger.load("s1")
        assert state is not None and state.interrupted
        await ledger.edit(state, title="Sums", options={"python": True})
        record = await store.get("session", "s1")
        assert record is not None and record.status == INTERRUPTED and record.version == state.version
        assert (record.data["title"], record.data["options"]) == ("Sums", {"python": True})
        assert record.data["waiting"] == waiting and (state.title, state.options) == ("Sums", {"python": True})

        stale = await ledger.load("s1")
        assert stale is not None
        await other.put("session", "s1", {**record.data, "snapshot": {"turn": 2}}, status=INTERRUPTED)  # elsewhere
        with pytest.raises(StoreConflictError, match="written since"):
            await ledger.edit(stale, title="Lost")
        assert (stale.title, stale.version) == ("Sums", record.version)  # the state keeps what it was read as
        with pytest.raises(ValueError, match="snapshot"):  # a turn's fields are the turn's to write
            await ledger.edit(stale, snapshot=None)
        got = await store.get("session", "s1")
        assert got is not None and got.data["title"] == "Sums" and got.data["snapshot"] == {"turn": 2}

        unstored = SessionState("s2", "m", {}, updated=0.0)
        await SessionLedger(None).edit(unstored, title="Kept in memory")
        assert unstored.title == "Kept in memory" and unstored.updated > 0


async def test_two_updates_of_one_version_at_once_one_wins(url: str) -> None:
    async with await open_store(url) as store, await open_store(url) as other:
        version = (await store.put("session", "s1", {"title": None})).version
        outcomes: list[str] = []

        async def rename(on: Any, title: str) -> None:
            try:
                await on.update("session", "s1", {"title": title}, version=version)
                outcomes.append(title)
            except StoreConflictError:
                outcomes.append("conflict")

        async with anyio.create_task_group() as tg:
            tg.start_soon(rename, store, "a")
            tg.start_soon(rename, other, "b")
        assert sorted(outcomes) in (["a", "conflict"], ["b", "conflict"])
        got = await store.get("session", "s1")
        assert got is not None and got.data["title"] in outcomes
