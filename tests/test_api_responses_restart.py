"""A Responses turn waiting on an MCP approval, answered after its server restarted: rebuilt from the store.

In-process, two app instances, each with its own store connection, Host (its own stdio fixture server) and
scripted gpt-oss, one after the other over one SQLite file; then real `mcp-host serve` processes killed with
`kill -9`, on SQLite and on PostgreSQL. Driven by the official `openai` client.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import openai
import pytest

from mcp_host.api import create_app
from mcp_host.backends.replay import ReplayBackend
from mcp_host.host import Host
from mcp_host.prompt import harmony_encoding
from mcp_host.store import open_store
from mcp_host.store.records import KindRecords
from tests import test_api_restart as restart
from tests.conftest import fixture_entry, serve_app, write_config
from tests.test_api_openai import scripted
from tests.test_api_restart import CALL, FINAL, server

MODEL = "openai/gpt-oss-20b"
FX = {"type": "mcp", "server_label": "fx", "require_approval": "always"}  # the host's mcp.json server, by label
QUESTION = "What is 20 + 22?"
store_url = restart.store_url  # the fixture: a SQLite file, or a database of a throwaway PostgreSQL cluster
STREAMED = pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])


def final(text: str) -> str:
    return f"<|channel|>analysis<|message|>Done.<|end|><|start|>assistant<|channel|>final<|message|>{text}<|return|>"


def kinds(response: Any) -> list[str]:
    return [item.type for item in response.output]


def item(response: Any, index: int) -> Any:
    """An output item, whatever its type (the client's union has no common fields)."""
    return response.output[index]


@dataclass
class Instance:
    """One life of the server, seen from outside: its client, and the model's prompts."""

    client: openai.AsyncOpenAI
    backend: ReplayBackend

    def prompt(self, index: int) -> str:
        return str(harmony_encoding().decode(self.backend.prompts[index]))


@asynccontextmanager
async def instance(tmp_path: Path, *outputs: str, ephemeral: bool = False) -> AsyncIterator[Instance]:
    """The app over the SQLite store of `tmp_path`, with the stdio fixture server as mcp.json's `fx`; all of
    it (the store connection, the MCP server, the live turns) closed when the block ends."""
    (tmp_path / "settings.toml").write_text("[api]\nallow_ephemeral_mcp = true\n" if ephemeral else "")
    config = write_config(tmp_path / "mcp.json", {"fx": fixture_entry()})
    backend = scripted(*outputs)
    async with (
        await open_store(f"sqlite://{tmp_path}/api.sqlite3") as store,
        Host(config, settings_path=tmp_path / "settings.toml") as host,
        serve_app(create_app(host, backend, store=store)) as url,
        openai.AsyncOpenAI(
            base_url=f"{url}/v1", api_key="x", max_retries=0, _strict_response_validation=True
        ) as client,
    ):
        yield Instance(client, backend)


async def respond(client: openai.AsyncOpenAI, stream: bool, **params: Any) -> tuple[Any, list[str]]:
    """The response, and its stream's event types when streamed (through the client's own stream helper)."""
    if not stream:
        return await client.responses.create(model=MODEL, **params), []
    async with client.responses.stream(model=MODEL, **params) as events:
        seen = [event async for event in events]
        response = await events.get_final_response()
    assert [event.sequence_number for event in seen] == list(range(len(seen)))
    return response, [event.type for event in seen]


async def ask(tmp_path: Path) -> tuple[str, str]:
    """The first life: the question pauses on the approval of `fx.add`; (response id, approval request id)."""
    async with instance(tmp_path, CALL) as first:
        asked = await first.client.responses.create(model=MODEL, input=QUESTION, tools=[FX])  # type: ignore[list-item]
        assert kinds(asked) == ["mcp_list_tools", "reasoning", "mcp_approval_request"]
        request = item(asked, -1)
        assert (request.server_label, request.name, json.loads(request.arguments)) == ("fx", "add", {"a": 20, "b": 22})
        return asked.id, request.id


def approval(request_id: str, approve: bool, reason: str | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"type": "mcp_approval_response", "approval_request_id": request_id, "approve": approve}
    return answer if reason is None else {**answer, "reason": reason}


def result_in(prompt: str, tool: str, text: str) -> bool:
    return f"<|start|>functions.{tool} to=assistant<|channel|>commentary<|message|>{text}<|end|>" in prompt


@pytest.mark.anyio
@STREAMED
async def test_an_approval_answered_after_a_restart_runs_on_the_new_server(tmp_path: Path, stream: bool) -> None:
    asked, request = await ask(tmp_path)

    async with instance(tmp_path, final("It is 42."), final("You're welcome.")) as second:
        client = second.client
        answer = [approval(request, True)]
        done, events = await respond(client, stream, previous_response_id=asked, input=answer, tools=[FX])
        assert kinds(done) == ["mcp_call", "reasoning", "message"]  # as the live turn answers it
        if stream:
            assert events[0] == "response.created" and events[-1] == "response.completed"
            assert events.index("response.mcp_call.completed") < events.index("response.output_text.delta")
        ran = item(done, 0)
        assert (ran.server_label, ran.name, json.loads(ran.arguments)) == ("fx", "add", {"a": 20, "b": 22})
        assert ran.output == "42" and ran.error is None and ran.approval_request_id == request
        assert done.output_text == "It is 42." and done.status == "completed" and done.previous_response_id == asked
        restored = second.prompt(0)  # the new model read the restored conversation, and the call's real result
        assert f"<|start|>user<|message|>{QUESTION}<|end|>" in restored and "Add them." in restored
        assert result_in(restored, "fx__add", "42") and len(second.backend.prompts) == 1

        later = await client.responses.create(model=MODEL, previous_response_id=done.id, input="Thanks!", tools=[FX])  # type: ignore[list-item]
        assert later.output_text == "You're welcome." and result_in(second.prompt(1), "fx__add", "42")
        with pytest.raises(openai.ConflictError) as again:  # a record rebuilds its turn once: nothing runs twice
            await client.responses.create(
                model=MODEL,
                previous_response_id=asked,
                input=[approval(request, True)],  # type: ignore[list-item]
                tools=[FX],  # type: ignore[list-item]
            )
        assert again.value.code == "turn_expired"
        assert (await client.responses.retrieve(done.id)).output_text == "It is 42."


@pytest.mark.anyio
async def test_a_denial_after_a_restart_runs_nothing_and_the_model_is_told(tmp_path: Path) -> None:
    asked, request = await ask(tmp_path)

    async with instance(tmp_path, final("Fine, I won't.")) as second:
        denial = approval(request, False, "not now")
        done = await second.client.responses.create(
            model=MODEL,
            previous_response_id=asked,
            input=[denial],  # type: ignore[list-item]
            tools=[FX],  # type: ignore[list-item]
        )
        assert kinds(done) == ["reasoning", "message"] and done.output_text == "Fine, I won't."
        assert result_in(second.prompt(0), "fx__add", "Error: The user denied this call: not now")


@pytest.mark.anyio
async def test_the_answer_must_bring_the_servers_again_with_their_own_headers(tmp_path: Path, http_server: str) -> None:
    def remote(token: str) -> dict[str, Any]:
        return {
            "type": "mcp",
            "server_label": "remote",
            "server_url": http_server,
            "headers": {"X-Token": token},
            "require_approval": {"never": {"tool_names": ["echo"]}},
        }

    header = (
        "<|channel|>analysis<|message|>Read it.<|end|><|start|>assistant<|channel|>commentary "
        'to=functions.remote__header <|constrain|>json<|message|>{"name": "x-token"}<|call|>'
    )
    async with instance(tmp_path, header, ephemeral=True) as first:
        asked = await first.client.responses.create(
            model=MODEL,
            input="Which token?",
            tools=[remote("first-secret-4711")],  # type: ignore[list-item]
        )
        assert kinds(asked) == ["mcp_list_tools", "reasoning", "mcp_approval_request"]
    stored = b"".join(path.read_bytes() for path in tmp_path.glob("api.sqlite3*"))
    assert b"Which token?" in stored and b"first-secret-4711" not in stored  # the record is there, its secret not

    async with instance(tmp_path, final("It is second."), ephemeral=True) as second:
        client = second.client
        answer = [approval(item(asked, -1).id, True)]
        with pytest.raises(openai.BadRequestError) as bare:
            await client.responses.create(model=MODEL, previous_response_id=asked.id, input=answer)  # type: ignore[arg-type]
        assert bare.value.param == "tools" and "send that server again" in bare.value.message
        elsewhere = {**remote("x"), "server_url": http_server.replace("/mcp", "/other")}
        with pytest.raises(openai.BadRequestError) as moved:
            await client.responses.create(
                model=MODEL,
                previous_response_id=asked.id,
                input=answer,  # type: ignore[arg-type]
                tools=[elsewhere],  # type: ignore[list-item]
            )
        assert moved.value.param == "tools.0" and http_server in moved.value.message
        assert second.backend.prompts == []  # refused before anything ran

        done = await client.responses.create(
            model=MODEL,
            previous_response_id=asked.id,
            input=answer,  # type: ignore[arg-type]
            tools=[remote("second-token")],  # type: ignore[list-item]
        )
        assert kinds(done) == ["mcp_call", "reasoning", "message"]
        assert item(done, 0).output == "second-token"  # the answering request's headers reached the server


@pytest.mark.anyio
async def test_a_record_without_the_turn_still_answers_turn_expired(tmp_path: Path) -> None:
    asked, request = await ask(tmp_path)
    async with await open_store(f"sqlite://{tmp_path}/api.sqlite3") as store:  # as a record of an older version
        records = KindRecords(store, "response")
        record = await records.get(asked)
        assert record is not None and record["waiting_approvals"] == [request]
        del record["paused"]
        await records.put(asked, record)

    async with instance(tmp_path, final("unused")) as second:
        with pytest.raises(openai.ConflictError) as gone:
            await second.client.responses.create(
                model=MODEL,
                previous_response_id=asked,
                input=[approval(request, True)],  # type: ignore[list-item]
                tools=[FX],  # type: ignore[list-item]
            )
        assert gone.value.code == "turn_expired" and second.backend.prompts == []


def test_an_approval_survives_kill_9(tmp_path: Path, store_url: str) -> None:
    with server(tmp_path, store_url, (CALL,), "first") as served:
        with openai.OpenAI(base_url=f"{served.base}/v1", api_key="x", max_retries=0) as client:
            model = client.models.list().data[0].id
            asked = client.responses.create(model=model, input=QUESTION, tools=[FX])  # type: ignore[list-item]
            served.kill_now()
    assert kinds(asked) == ["mcp_list_tools", "reasoning", "mcp_approval_request"]
    request = item(asked, -1).id

    with server(tmp_path, store_url, (FINAL,), "second") as served:
        with openai.OpenAI(base_url=f"{served.base}/v1", api_key="x", max_retries=0) as client:
            answer = approval(request, True)
            done = client.responses.create(model=model, previous_response_id=asked.id, input=[answer], tools=[FX])  # type: ignore[list-item]
            assert kinds(done) == ["mcp_call", "message"] and done.status == "completed"
            assert item(done, 0).output == "42" and item(done, 0).approval_request_id == request
            assert done.output_text == "It is 42."
            assert client.responses.retrieve(done.id).output_text == "It is 42."


@pytest.mark.anyio
async def test_two_servers_sharing_the_store_never_both_run_a_waiting_call(tmp_path: Path) -> None:
    """One answer sent to two servers at once (a load balancer retrying, say): one runs the call, the other 409s."""
    asked, request = await ask(tmp_path)
    outcomes: dict[str, Any] = {}

    async def answer(name: str, server: Instance) -> None:
        try:
            outcomes[name] = await server.client.responses.create(
                model=MODEL,
                previous_response_id=asked,
                input=[approval(request, True)],  # type: ignore[list-item]
                tools=[FX],  # type: ignore[list-item]
            )
        except openai.ConflictError as refused:
            outcomes[name] = refused

    async with instance(tmp_path, final("It is 42.")) as one, instance(tmp_path, final("It is 42.")) as two:
        async with anyio.create_task_group() as tg:
            tg.start_soon(answer, "one", one)
            tg.start_soon(answer, "two", two)
        generated = len(one.backend.prompts) + len(two.backend.prompts)
    refused = [name for name, outcome in outcomes.items() if isinstance(outcome, openai.ConflictError)]
    (winner,) = [outcome for outcome in outcomes.values() if not isinstance(outcome, openai.ConflictError)]
    assert len(refused) == 1 and generated == 1
    assert kinds(winner) == ["mcp_call", "reasoning", "message"] and item(winner, 0).output == "42"
