"""Per-chat servers, plugins and built-in tools, switched between turns, and what tools cost in context.

A real uvicorn server over a host with the fixture MCP server twice (`alpha`, `beta`), driven over HTTP; the model
is scripted Harmony (ReplayBackend), which keeps every prompt it was given: the tests read what the model saw.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from starlette.applications import Starlette

from mcp_host.api import create_app
from mcp_host.api.requests import MAX_NAMES
from mcp_host.api.sessions import Sessions
from mcp_host.backends import RecordedGeneration, ReplayBackend
from mcp_host.host import Host
from mcp_host.prompt import harmony_encoding
from mcp_host.store import Store, open_store
from tests.conftest import ROOT, fixture_entry, serve_app, write_config

pytestmark = pytest.mark.anyio

ANSWER = "<|channel|>final<|message|>Done.<|return|>"
PYTHON_TOOL = "## python"


def call(function: str, arguments: dict[str, Any]) -> str:
    return (
        "<|channel|>analysis<|message|>Use a tool.<|end|><|start|>assistant<|channel|>commentary "
        f"to=functions.{function} <|constrain|>json<|message|>{json.dumps(arguments)}<|call|>"
    )


def decoded(tokens: list[int]) -> str:
    return str(harmony_encoding().decode(tokens))


def offered(tokens: list[int]) -> str:
    """A prompt up to its first user message: the system and developer messages, where Harmony lists the tools."""
    prompt = decoded(tokens)
    return prompt[: prompt.index("<|start|>user")]


@dataclass
class Served:
    url: str
    backend: ReplayBackend
    sessions: Sessions


@asynccontextmanager
async def serving(
    host: Host, outputs: tuple[str, ...], *, store: Store | None = None, context_length: int = 131072
) -> AsyncIterator[Served]:
    backend = ReplayBackend(
        [
            RecordedGeneration([], list(harmony_encoding().encode(text, allowed_special="all")), "stop")
            for text in outputs
        ],
        name="openai/gpt-oss-20b",
        context_length=context_length,
    )
    app: Starlette = create_app(host, backend, store=store)
    sessions: Sessions = app.state.sessions
    async with serve_app(app) as url:
        yield Served(url, backend, sessions)


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[Host]:
    config = write_config(tmp_path / "mcp.json", {"alpha": fixture_entry(), "beta": fixture_entry()})
    settings = tmp_path / "settings.toml"
    settings.write_text("[permissions]\nallow_read_only = true\n")  # `echo` runs unasked; `add` asks
    async with Host(config, settings_path=settings, plugins=False) as running:
        await running.wait_settled()
        yield running


async def turn(http: httpx2.AsyncClient, session: str, text: str) -> list[dict[str, Any]]:
    """Every event of one turn, each call that asks allowed."""
    seen: list[dict[str, Any]] = []
    async with http.stream("POST", f"/v1/sessions/{session}/messages", json={"content": text}) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                seen.append(json.loads(line[6:]))
                if seen[-1]["type"] == "approval.required":
                    allowed = {"decision": "allow"}
                    approval = f"/v1/sessions/{session}/approvals/{seen[-1]['call_id']}"
                    assert (await http.post(approval, json=allowed)).is_success
    assert seen[-1]["type"] == "turn.completed"
    return seen


async def test_a_server_switched_off_is_not_offered_and_its_calls_are_refused(host: Host, tmp_path: Path) -> None:
    outputs = (call("beta__echo", {"text": "hi"}), ANSWER, ANSWER, call("gamma__echo", {"text": "late"}), ANSWER)
    async with serving(host, outputs) as served, httpx2.AsyncClient(base_url=served.url, timeout=30) as http:
        created = await http.post("/v1/sessions", json={"servers": ["alpha", "alpha"]})
        assert created.status_code == 201
        only_alpha = created.json()["id"]
        events = await turn(http, only_alpha, "Echo hi with beta.")
        assert "alpha__echo" in offered(served.backend.prompts[0]) and "beta__" not in offered(
            served.backend.prompts[0]
        )
        # The call reached no server: the model reads that no such tool is here, and the turn goes on.
        assert not [event for event in events if event["type"] == "tool_call.created"]
        assert any(event["type"] == "error" and event["kind"] == "model_output.unknown_tool" for event in events)
        assert "There is no tool named 'functions.beta__echo'" in decoded(served.backend.prompts[1])
        assert events[-1]["stop_reason"] == "answered"

        # The host's other chats still see every server.
        every = (await http.post("/v1/sessions")).json()["id"]
        await turn(http, every, "Hello.")
        assert "beta__echo" in offered(served.backend.prompts[2])

        # A server added to mcp.json later, once chosen, is offered and called.
        write_config(
            tmp_path / "mcp.json", {"alpha": fixture_entry(), "beta": fixture_entry(), "gamma": fixture_entry()}
        )
        await host.reload()
        await host.wait_settled()
        changed = await http.patch(f"/v1/sessions/{only_alpha}/tools", json={"servers": ["alpha", "gamma"]})
        assert changed.status_code == 200, changed.text
        assert changed.json()["servers"] == ["alpha", "gamma"]
        assert {tool["server"] for tool in changed.json()["budget"]["tools"]} == {"alpha", "gamma"}
        events = await turn(http, only_alpha, "Echo late with gamma.")
        tools = offered(served.backend.prompts[3])
        assert "alpha__echo" in tools and "gamma__echo" in tools and "beta__" not in tools
        results = [event for event in events if event["type"] == "tool_call.result"]
        assert [(r["tool"], r["text"], r["is_error"]) for r in results] == [("gamma.echo", "late", False)]
        state = (await http.get(f"/v1/sessions/{every}/tools")).json()
        assert state["servers"] == ["alpha", "beta", "gamma"]


async def test_python_switched_on_mid_chat_is_in_the_next_prompt_and_busy_is_409(host: Host) -> None:
    run_python = "<|channel|>analysis to=python code<|message|>print(6 * 7)<|call|>"
    outputs = (call("alpha__add", {"a": 40, "b": 2}), ANSWER, run_python, ANSWER)
    async with serving(host, outputs) as served, httpx2.AsyncClient(base_url=served.url, timeout=30) as http:
        session = (await http.post("/v1/sessions", json={})).json()["id"]
        async with http.stream("POST", f"/v1/sessions/{session}/messages", json={"content": "40 + 2?"}) as response:
            async for line in response.aiter_lines():
                if not line.startswith("data: "):
                    continue
                event = json.loads(line[6:])
                if event["type"] == "approval.required":  # the turn is waiting: its tools cannot change now
                    busy = await http.patch(f"/v1/sessions/{session}/tools", json={"python": True})
                    assert busy.status_code == 409 and busy.json()["error"]["type"] == "conflict_error"
                    answer = {"decision": "allow"}
                    assert (
                        await http.post(f"/v1/sessions/{session}/approvals/{event['call_id']}", json=answer)
                    ).is_success
        assert PYTHON_TOOL not in offered(served.backend.prompts[0])

        switched = await http.patch(f"/v1/sessions/{session}/tools", json={"python": True})
        assert switched.status_code == 200, switched.text
        answer = switched.json()
        assert answer["python"] is True and answer["browser"] is False and answer["servers"] == ["alpha", "beta"]
        assert "built-in tools" in [part["label"] for part in answer["budget"]["parts"]]
        chat = served.sessions.sessions[session].chat
        workdir = chat.workdir
        assert workdir is not None and workdir.is_dir()

        events = await turn(http, session, "Now compute with python.")
        prompt = decoded(served.backend.prompts[2])
        assert PYTHON_TOOL in offered(served.backend.prompts[2]) and "40 + 2?" in prompt  # the conversation goes on
        results = [event for event in events if event["type"] == "tool_call.result"]
        assert [(r["tool"], r["text"].strip()) for r in results] == [("python", "42")]
        assert (await http.get(f"/v1/sessions/{session}/tools")).json()["python"] is True

        off = (await http.patch(f"/v1/sessions/{session}/tools", json={"python": False})).json()
        assert off["python"] is False and "built-in tools" not in [part["label"] for part in off["budget"]["parts"]]
        assert not workdir.exists() and chat.workdir is None and "python" not in chat.natives
        assert (await http.get(f"/v1/sessions/{session}/tools")).json() == off

        browsing = (await http.patch(f"/v1/sessions/{session}/tools", json={"browser": True})).json()
        assert browsing["browser"] is True and sorted(chat.natives) == [
            "browser.find",
            "browser.open",
            "browser.search",
        ]
        page_tool = chat.natives["browser.open"]
        both = (await http.patch(f"/v1/sessions/{session}/tools", json={"python": True})).json()
        assert both["browser"] is both["python"] is True
        assert chat.natives["browser.open"] is page_tool  # switching python on leaves the browser's pages alone
        await http.patch(f"/v1/sessions/{session}/tools", json={"browser": False})
        assert sorted(chat.natives) == ["python"] and chat.workdir is not None and chat.workdir.is_dir()


async def test_a_restored_session_keeps_its_tools(host: Host, tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/api.sqlite3"
    async with await open_store(url) as store, serving(host, (), store=store) as first:
        async with httpx2.AsyncClient(base_url=first.url, timeout=30) as http:
            session = (await http.post("/v1/sessions", json={"servers": ["beta"]})).json()["id"]
            changed = await http.patch(f"/v1/sessions/{session}/tools", json={"servers": ["alpha"], "python": True})
            assert changed.status_code == 200, changed.text
    # Another server on the same store (as after a restart) brings the session back with what it chose.
    async with await open_store(url) as store, serving(host, (ANSWER,), store=store) as second:
        async with httpx2.AsyncClient(base_url=second.url, timeout=30) as http:
            restored = (await http.get(f"/v1/sessions/{session}/tools")).json()
            assert (restored["servers"], restored["python"], restored["browser"]) == (["alpha"], True, False)
            await turn(http, session, "Hello again.")
            tools = offered(second.backend.prompts[0])
            assert "alpha__echo" in tools and "beta__" not in tools and PYTHON_TOOL in tools


async def test_a_change_on_one_server_while_another_runs_the_turn_is_409(host: Host, tmp_path: Path) -> None:
    """Two servers over one store file: the one not running the turn cannot change its tools, nor undo its write."""
    url = f"sqlite://{tmp_path}/api.sqlite3"
    async with AsyncExitStack() as stack:
        servers: list[Served] = []
        clients: list[httpx2.AsyncClient] = []
        for outputs in ((call("alpha__add", {"a": 40, "b": 2}), ANSWER, ANSWER), ()):
            store = await stack.enter_async_context(await open_store(url))
            servers.append(await stack.enter_async_context(serving(host, outputs, store=store)))
            clients.append(await stack.enter_async_context(httpx2.AsyncClient(base_url=servers[-1].url, timeout=30)))
        (first, _), (one, two) = servers, clients
        session = (await one.post("/v1/sessions", json={})).json()["id"]
        tools = f"/v1/sessions/{session}/tools"
        assert (await two.get(tools)).json()["servers"] == ["alpha", "beta"]  # both servers hold the session now
        events: list[dict[str, Any]] = []
        async with one.stream("POST", f"/v1/sessions/{session}/messages", json={"content": "40 + 2?"}) as response:
            async for line in response.aiter_lines():
                if not line.startswith("data: "):
                    continue
                events.append(json.loads(line[6:]))
                if events[-1]["type"] == "approval.required":
                    refused = await two.patch(tools, json={"servers": ["alpha"]})
                    assert refused.status_code == 409, refused.text
                    error = refused.json()["error"]
                    assert error["type"] == "conflict_error" and "running" in error["message"], error
                    # The second server's chat did not keep the change either: it reads the session as stored.
                    assert (await two.get(tools)).json()["servers"] == ["alpha", "beta"]
                    answer = {"decision": "allow"}
                    approval = f"/v1/sessions/{session}/approvals/{events[-1]['call_id']}"
                    assert (await one.post(approval, json=answer)).is_success
        # The turn ended as it ran, its record released by the server that ran it.
        assert events[-1]["type"] == "turn.completed" and events[-1]["stop_reason"] == "answered", events
        assert [event["text"] for event in events if event["type"] == "tool_call.result"] == ["42"]

        changed = await two.patch(tools, json={"servers": ["alpha"]})
        assert changed.status_code == 200 and changed.json()["servers"] == ["alpha"], changed.text
        history = (await two.get(f"/v1/sessions/{session}")).json()["history"]
        assert any(message.get("recipient") == "functions.alpha__add" for message in history)  # the turn's write
        # The server that ran the turn reads the change back, and offers alpha's tools alone from its next turn.
        assert (await one.get(tools)).json()["servers"] == ["alpha"]
        await turn(one, session, "Again.")
        prompt = offered(first.backend.prompts[-1])
        assert "alpha__echo" in prompt and "beta__" not in prompt and "40 + 2?" in decoded(first.backend.prompts[-1])


def render_json(tmp_path: Path, *flags: str) -> dict[str, Any]:
    """`mcp-host render --json` over a config with `alpha` alone: the choice the budget is asked about."""
    config = write_config(tmp_path / "alpha.json", {"alpha": fixture_entry()})
    settings = tmp_path / "settings.toml"
    cli = [sys.executable, "-m", "mcp_host.cli", "--config", str(config), "--settings", str(settings), "--no-plugins"]
    done = subprocess.run([*cli, "render", "--json", *flags], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    document: dict[str, Any] = json.loads(done.stdout)
    return document


async def test_the_budget_is_what_render_counts(host: Host, tmp_path: Path) -> None:
    context = 2048  # small: the tools cross the warning's share, and the selection starts
    async with serving(host, (), context_length=context) as served:
        async with httpx2.AsyncClient(base_url=served.url, timeout=30) as http:
            budgets = []
            for flags, body in (((), {"servers": ["alpha"]}), (("--python",), {"servers": ["alpha"], "python": True})):
                rendered = await anyio.to_thread.run_sync(
                    lambda f=flags: render_json(tmp_path, *f, "--context", str(context))
                )
                budget = (await http.post("/v1/tools/budget", json=body)).json()
                budgets.append(budget)
                for key in ("tool_tokens", "parts", "context_tokens", "warning", "selection"):
                    assert budget[key] == rendered[key], key
                assert budget["share"] == round(rendered["tool_tokens"] / context, 4)
                assert budget["warning"] is not None and "alpha" in budget["warning"]
                tools = budget["tools"]
                assert {tool["server"] for tool in tools} == {"alpha"} and all(tool["tokens"] > 0 for tool in tools)
                # Each tool says whether the selection offers it, as render lists the selection.
                assert rendered["selection"]["active"]
                selected = {entry["name"] for entry in rendered["selection"]["offered"]}
                assert {tool["name"] for tool in tools if tool["offered"]} == selected
            # A session that chose the same tools counts the same, and shows the choice the budget says it counted.
            session = (await http.post("/v1/sessions", json={"servers": ["alpha"]})).json()["id"]
            answer = (await http.get(f"/v1/sessions/{session}/tools")).json()
            choice = budgets[0].pop("choice")
            assert answer["budget"] == budgets[0]
            assert {key: answer[key] for key in choice} == choice
            every = (await http.post("/v1/tools/budget", json={})).json()
            assert every["selection"]["all_tokens"] > budgets[0]["selection"]["all_tokens"]
            assert {tool["server"] for tool in every["tools"]} == {"alpha", "beta"}


async def test_unknown_names_and_bad_bodies_are_400(host: Host) -> None:
    async with serving(host, ()) as served, httpx2.AsyncClient(base_url=served.url, timeout=30) as http:
        refused = await http.post("/v1/sessions", json={"servers": ["alpha", "nope"]})
        assert refused.status_code == 400
        error = refused.json()["error"]
        assert error["param"] == "servers" and "nope" in error["message"] and "['alpha', 'beta']" in error["message"]
        session = (await http.post("/v1/sessions")).json()["id"]
        for body, param in (
            ({"servers": ["nope"]}, "servers"),
            ({"plugins": ["nope"]}, "plugins"),
            ({"servers": ["x" * 201]}, "servers.0"),
            ({"servers": ["alpha"] * (MAX_NAMES + 1)}, "servers"),
            ({"plugins": ["calc"] * (MAX_NAMES + 1)}, "plugins"),
            ({"python": None}, "python"),
            ({"tools": []}, "tools"),
        ):
            answer = await http.patch(f"/v1/sessions/{session}/tools", json=body)
            assert answer.status_code == 400 and answer.json()["error"]["param"] == param, (body, answer.text)
        assert (await http.post("/v1/tools/budget", json={"servers": ["nope"]})).status_code == 400
        assert (await http.post("/v1/tools/budget", json={"model": "no-such-model"})).status_code == 404
        assert (await http.patch("/v1/sessions/sess_nope/tools", json={})).status_code == 404
        # Nothing changed: the session still uses every server.
        assert (await http.get(f"/v1/sessions/{session}/tools")).json()["servers"] == ["alpha", "beta"]


async def test_one_of_150_servers_can_be_switched_off(tmp_path: Path) -> None:
    """The page switches a server off by sending every other name: 149 of them here, all accepted."""
    names = [f"server{index:03}" for index in range(150)]
    entries = {name: {"command": "never-started", "disabled": True} for name in names}
    config = write_config(tmp_path / "mcp.json", {"alpha": fixture_entry(), **entries})
    async with Host(config, settings_path=tmp_path / "settings.toml", plugins=False) as many:
        await many.wait_settled()
        async with serving(many, ()) as served, httpx2.AsyncClient(base_url=served.url, timeout=30) as http:
            created = await http.post("/v1/sessions", json={"servers": ["alpha", *names]})
            assert created.status_code == 201, created.text
            session = created.json()["id"]
            kept = ["alpha", *names[1:]]
            changed = await http.patch(f"/v1/sessions/{session}/tools", json={"servers": kept})
            assert changed.status_code == 200, changed.text
            assert changed.json()["servers"] == kept
            budget = await http.post("/v1/tools/budget", json={"servers": kept})
            assert budget.status_code == 200 and budget.json()["choice"]["servers"] == kept
