"""The session API over raw HTTP on a real uvicorn server: SSE events, approvals, 409/404/400, disconnects."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import anyio
import httpx2
import pytest
import uvicorn

from mcp_host.api import create_app
from mcp_host.backends import RecordedGeneration, ReplayBackend
from mcp_host.host import Host
from mcp_host.prompt import harmony_encoding
from tests.conftest import fixture_entry, free_port, write_config
from tests.test_session_list import new_session, serving

pytestmark = pytest.mark.anyio

CALL = (
    "<|channel|>analysis<|message|>Add them.<|end|><|start|>assistant<|channel|>commentary "
    'to=functions.fx__add <|constrain|>json<|message|>{"a": 40, "b": 2}<|call|>'
)
ANSWER = "<|channel|>final<|message|>It is 42.<|return|>"
LONG = "<|channel|>final<|message|>" + "word " * 2000 + "<|return|>"


def tokens(text: str) -> list[int]:
    return list(harmony_encoding().encode(text, allowed_special="all"))


@pytest.fixture
async def served(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, ReplayBackend, Host]]:
    """The session API over the fixture server `fx`; `request.param`: options of `create_app`."""
    app_options = getattr(request, "param", {})
    config = write_config(tmp_path / "mcp.json", {"fx": fixture_entry()})
    backend = ReplayBackend(
        [RecordedGeneration([], tokens(text), "stop") for text in (CALL, ANSWER, LONG, ANSWER)],
        name="openai/gpt-oss-20b",
        tokens_per_second=200,
    )
    port = free_port()
    async with Host(config, settings_path=tmp_path / "settings.toml") as host:
        await host.wait_settled()
        server = uvicorn.Server(
            uvicorn.Config(create_app(host, backend, **app_options), host="127.0.0.1", port=port, log_level="warning")
        )
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve)
            while not server.started:
                await anyio.sleep(0.02)
            try:
                yield f"http://127.0.0.1:{port}", backend, host
            finally:
                server.should_exit = True


async def events(response: httpx2.Response) -> AsyncIterator[tuple[str, dict[str, object]]]:
    kind = ""
    async for line in response.aiter_lines():
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            yield kind, json.loads(line[6:])


async def test_a_turn_with_an_approval_over_sse(served: tuple[str, ReplayBackend, Host]) -> None:
    url, _, _ = served
    async with httpx2.AsyncClient(base_url=url, timeout=30) as http:
        created = await http.post("/v1/sessions", json={"reasoning_effort": "low"})
        assert created.status_code == 201
        session = created.json()["id"]
        seen: list[str] = []
        async with http.stream("POST", f"/v1/sessions/{session}/messages", json={"content": "40 + 2?"}) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            async for kind, data in events(response):
                seen.append(kind)
                if kind == "approval.required":
                    assert data["tool"] == "fx.add"
                    busy = await http.post(f"/v1/sessions/{session}/messages", json={"content": "again"})
                    assert busy.status_code == 409 and busy.json()["error"]["type"] == "conflict_error"
                    bad = await http.post(
                        f"/v1/sessions/{session}/approvals/{data['call_id']}", json={"decision": "maybe"}
                    )
                    assert bad.status_code == 400
                    answer = await http.post(
                        f"/v1/sessions/{session}/approvals/{data['call_id']}",
                        json={"decision": "allow", "arguments": {"a": 40, "b": 2}},
                    )
                    assert answer.status_code == 200
                if kind == "tool_call.result":
                    assert data["text"] == "42"
                if kind == "turn.completed":
                    assert data["stop_reason"] == "answered" and data["answer"] == "It is 42."
        assert seen[0] == "reasoning.delta" and "tool_call.created" in seen and seen[-1] == "turn.completed"
        state = (await http.get(f"/v1/sessions/{session}")).json()
        assert state["busy"] is False and any(m.get("recipient") == "functions.fx__add" for m in state["history"])
        assert (
            await http.post(f"/v1/sessions/{session}/approvals/call_99", json={"decision": "allow"})
        ).status_code == 404
        assert (await http.delete(f"/v1/sessions/{session}")).json()["deleted"] is True
        assert (await http.get(f"/v1/sessions/{session}")).status_code == 404
        assert (await http.post("/v1/sessions/nope/messages", json={"content": "x"})).status_code == 404


@pytest.mark.parametrize("served", [{"sse_ping_s": 0.05}], indirect=True)
async def test_a_stream_waiting_on_an_approval_is_kept_alive_with_pings(
    served: tuple[str, ReplayBackend, Host],
) -> None:
    url, _, _ = served
    async with httpx2.AsyncClient(base_url=url, timeout=30) as http:
        session = (await http.post("/v1/sessions")).json()["id"]
        waiting, pings, last = None, 0, ""
        async with http.stream("POST", f"/v1/sessions/{session}/messages", json={"content": "40 + 2?"}) as response:
            async for line in response.aiter_lines():
                if line.startswith("data: ") and '"approval.required"' in line:
                    waiting = json.loads(line[6:])["call_id"]
                elif line.startswith(":") and waiting is not None:
                    pings += 1  # a comment: proxies see traffic, SSE readers ignore it
                    if pings == 3:
                        allowed = await http.post(
                            f"/v1/sessions/{session}/approvals/{waiting}", json={"decision": "allow"}
                        )
                        assert allowed.status_code == 200
                elif line.startswith("event: "):
                    last = line[7:]
        assert pings >= 3 and last == "turn.completed"


async def test_a_client_that_disconnects_cancels_its_generation(served: tuple[str, ReplayBackend, Host]) -> None:
    url, backend, _ = served
    backend._next = 2  # the long answer, paced at 200 tokens/s: about 10 s if nobody stops it
    async with httpx2.AsyncClient(base_url=url, timeout=30) as http:
        session = (await http.post("/v1/sessions")).json()["id"]
        async with http.stream("POST", f"/v1/sessions/{session}/messages", json={"content": "talk"}) as response:
            async for kind, _ in events(response):
                if kind == "message.delta":
                    break  # hang up mid-answer
        left = time.perf_counter()
        while (await http.get(f"/v1/sessions/{session}")).json()["busy"]:
            assert time.perf_counter() - left < 1.0, "the turn was still running a second after the disconnect"
            await anyio.sleep(0.02)
        again = await http.post(f"/v1/sessions/{session}/messages", json={"content": "hi"})
        assert again.status_code == 200 and "It is 42." in again.text


async def test_tools_servers_and_restart(served: tuple[str, ReplayBackend, Host]) -> None:
    url, _, host = served
    async with httpx2.AsyncClient(base_url=url, timeout=30) as http:
        tools = (await http.get("/v1/tools")).json()["data"]
        assert {"fx.add", "fx.echo"} <= {tool["name"] for tool in tools}
        servers = (await http.get("/v1/servers")).json()["data"]
        assert [(s["name"], s["state"]) for s in servers] == [("fx", "ready")]
        pid = servers[0]["pid"]
        restarted = await http.post("/v1/servers/fx/restart")
        assert restarted.status_code == 200 and restarted.json()["state"] == "ready" and restarted.json()["pid"] != pid
        assert (await http.post("/v1/servers/nope/restart")).status_code == 404
        bad = await http.post("/v1/sessions", json={"reasoning_effort": "extreme"})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "reasoning_effort"


async def test_chat_completions_with_the_hosts_own_tools(served: tuple[str, ReplayBackend, Host]) -> None:
    url, backend, _ = served
    async with httpx2.AsyncClient(base_url=url, timeout=30) as http:
        unknown = await http.post(
            "/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "x"}], "mcp_host": {"tools": ["nope"]}},
        )
        assert unknown.status_code == 400 and unknown.json()["error"]["param"] == "mcp_host.tools"
        answer = await http.post(
            "/v1/chat/completions",
            json={
                "model": "openai/gpt-oss-20b",
                "messages": [{"role": "user", "content": "40 + 2?"}],
                "mcp_host": {"tools": ["fx"]},
            },
        )
    body = answer.json()
    assert answer.status_code == 200 and body["choices"][0]["message"]["content"] == "It is 42."
    (call,) = body["mcp_host"]["tool_calls"]
    # fx.add has no annotations, so it needs an approval nobody can give here: denied, and the model is told why.
    assert call["tool"] == "fx.add" and call["is_error"] is True and "nobody can give one" in call["result"]
    assert "nobody can give one on this endpoint" in harmony_encoding().decode(backend.prompts[1])


async def test_deleting_a_session_mid_turn_ends_its_stream(served: tuple[str, ReplayBackend, Host]) -> None:
    url, _, _ = served
    async with httpx2.AsyncClient(base_url=url, timeout=30) as http:
        session = (await http.post("/v1/sessions")).json()["id"]
        seen: list[str] = []
        with anyio.fail_after(10):
            async with http.stream("POST", f"/v1/sessions/{session}/messages", json={"content": "40 + 2?"}) as response:
                async for kind, _ in events(response):
                    seen.append(kind)
                    if kind == "approval.required":  # the turn waits on a person: delete the session meanwhile
                        deleted = await http.delete(f"/v1/sessions/{session}")
                        assert deleted.status_code == 200 and deleted.json()["deleted"] is True
        assert "approval.required" in seen and "tool_call.result" not in seen
        assert (await http.get(f"/v1/sessions/{session}")).status_code == 404


async def test_deleting_a_session_mid_generation_stops_the_generation(served: tuple[str, ReplayBackend, Host]) -> None:
    url, backend, _ = served
    backend._next = 2  # the long answer: 2,000 words at 200 tokens/s if nobody stops it
    async with httpx2.AsyncClient(base_url=url, timeout=30) as http:
        session = (await http.post("/v1/sessions")).json()["id"]
        after_delete: list[str] = []
        deleted = None
        async with http.stream("POST", f"/v1/sessions/{session}/messages", json={"content": "talk"}) as response:
            async for kind, data in events(response):
                if deleted is not None:
                    after_delete.append(kind)
                elif kind == "message.delta":
                    deleted = await http.delete(f"/v1/sessions/{session}")
                if kind == "turn.completed":
                    assert data["stop_reason"] == "cancelled"
        assert deleted is not None and deleted.status_code == 200
        # The DELETE answered once the turn had stopped: what the stream still carried was already queued.
        assert after_delete.count("message.delta") < 50 and after_delete[-1] == "turn.completed", after_delete
        assert (await http.get(f"/v1/sessions/{session}")).status_code == 404


async def all_at_once(*requests: Callable[[], Awaitable[httpx2.Response]]) -> list[httpx2.Response]:
    """The answers to requests sent at once, in the order given."""
    answers: dict[int, httpx2.Response] = {}

    async def send(index: int) -> None:
        answers[index] = await requests[index]()

    async with anyio.create_task_group() as tg:
        for index in range(len(requests)):
            tg.start_soon(send, index)
    return [answers[index] for index in range(len(requests))]


@pytest.mark.parametrize("stored", [True, False], ids=["store", "memory"])
async def test_deleting_one_session_at_once_is_200_once_and_404_for_the_others(tmp_path: Path, stored: bool) -> None:
    async with serving(tmp_path, stored=stored) as (http, _):
        for _ in range(5):
            session = await new_session(http)
            answers = await all_at_once(*[functools.partial(http.delete, f"/v1/sessions/{session}")] * 3)
            assert sorted(answer.status_code for answer in answers) == [200, 404, 404], [a.text for a in answers]
            for answer in answers:
                if answer.status_code == 404:
                    assert answer.json()["error"]["message"] == f"no session {session!r}"
            assert (await http.get(f"/v1/sessions/{session}")).status_code == 404
            assert (await http.delete(f"/v1/sessions/{session}")).status_code == 404
        # A rename racing a delete lands before it (200) or finds the session gone (404), never a 409 or a 500.
        session = await new_session(http)
        renamed, deleted = await all_at_once(
            functools.partial(http.patch, f"/v1/sessions/{session}", json={"title": "Late"}),
            functools.partial(http.delete, f"/v1/sessions/{session}"),
        )
        assert deleted.status_code == 200 and renamed.status_code in (200, 404), renamed.text
        assert (await http.get("/v1/sessions")).json()["data"] == []


async def test_requests_reopening_one_stored_session_at_once_share_one_chat(tmp_path: Path) -> None:
    """After a restart the first requests for a session bring it back from the store: one chat, not one each (a
    second would be left open, and the server could not stop)."""
    async with serving(tmp_path) as (http, _):
        session = await new_session(http)
    with anyio.fail_after(30):  # stopping the server waits for every chat it opened
        async with serving(tmp_path) as (http, _):
            reads = await all_at_once(*[functools.partial(http.get, f"/v1/sessions/{session}")] * 4)
            assert [read.status_code for read in reads] == [200] * 4
            assert (await http.delete(f"/v1/sessions/{session}")).status_code == 200


async def test_an_approval_whose_client_went_away_is_a_409_and_nothing_runs(
    served: tuple[str, ReplayBackend, Host],
) -> None:
    url, _, _ = served
    async with httpx2.AsyncClient(base_url=url, timeout=30) as http:
        session = (await http.post("/v1/sessions")).json()["id"]
        call_id = None
        async with http.stream("POST", f"/v1/sessions/{session}/messages", json={"content": "40 + 2?"}) as response:
            async for kind, data in events(response):
                if kind == "approval.required":
                    call_id = data["call_id"]
                    break  # the client goes away while the call waits for a person
        assert call_id is not None
        with anyio.fail_after(10):
            while (await http.get(f"/v1/sessions/{session}")).json()["busy"]:
                await anyio.sleep(0.02)
        late = await http.post(f"/v1/sessions/{session}/approvals/{call_id}", json={"decision": "allow"})
        assert late.status_code == 409 and "nothing was run" in late.json()["error"]["message"]
        history = (await http.get(f"/v1/sessions/{session}")).json()["history"]
        assert not any(
            message.get("role") == "tool" or message.get("author") == "functions.fx__add" for message in history
        )
        assert "42" not in json.dumps(history)
        never = await http.post(f"/v1/sessions/{session}/approvals/call_never", json={"decision": "allow"})
        assert never.status_code == 404


@pytest.mark.parametrize("served", [{"session_idle_s": 0.2}], indirect=True)
async def test_idle_sessions_expire_and_their_working_directories_go(served: tuple[str, ReplayBackend, Host]) -> None:
    url, _, host = served
    async with httpx2.AsyncClient(base_url=url, timeout=30) as http:
        session = (await http.post("/v1/sessions", json={"python": True})).json()["id"]
        (chat,) = host._chats
        assert chat.workdir is not None and chat.workdir.is_dir()
        for _ in range(5):  # requests keep it alive
            await anyio.sleep(0.1)
            assert (await http.get(f"/v1/sessions/{session}")).status_code == 200
        with anyio.fail_after(10):
            while chat.workdir.exists():  # nobody touches the session now
                await anyio.sleep(0.05)
        assert (await http.get(f"/v1/sessions/{session}")).status_code == 404
