"""Servers' features over HTTP, on a real uvicorn server and server-everything over stdio.

Elicitation answered by id (400 for a form that does not fit, then 200, then 409), progress as SSE
events, resources attached to a message (the model's prompt holds their text), and each server
endpoint: resources, a read, prompts, completion, logs, the log level and roots.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from mcp_host.api import create_app
from mcp_host.backends import RecordedGeneration, ReplayBackend
from mcp_host.host import Host
from mcp_host.prompt import harmony_encoding
from tests.conftest import everything_command, serve_app, write_config
from tests.test_api_sessions import events

pytestmark = pytest.mark.anyio

ARCHITECTURE = "demo://resource/static/document/architecture.md"
ANSWER = "<|channel|>final<|message|>Done.<|return|>"


def call(tool: str, arguments: dict[str, Any]) -> str:
    return (
        f"<|channel|>commentary to=functions.everything__{tool} <|constrain|>json<|message|>"
        f"{json.dumps(arguments)}<|call|>"
    )


def tokens(text: str) -> list[int]:
    return list(harmony_encoding().encode(text, allowed_special="all"))


@dataclass
class Served:
    url: str
    backend: ReplayBackend
    host: Host

    def script(self, *outputs: str) -> None:
        """What the model says next, one generation each."""
        self.backend._generations = [RecordedGeneration([], tokens(text), "stop") for text in outputs]
        self.backend._next = 0


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    config = write_config(
        tmp_path / "mcp.json",
        {
            "everything": {"command": everything_command(), "args": ["stdio"]},
            "broken": {"command": "no-such-server-binary"},
        },
    )
    settings = tmp_path / "settings.toml"
    settings.write_text('[permissions.servers]\neverything = "allow"\n')  # no approvals in the way of the questions
    backend = ReplayBackend([], name="openai/gpt-oss-20b")
    async with Host(config, settings_path=settings) as host:
        await host.wait_settled()
        async with serve_app(create_app(host, backend)) as url:
            yield Served(url, backend, host)


async def test_an_elicitation_is_answered_over_http(served: Served) -> None:
    served.script(call("trigger_elicitation_request", {}), ANSWER)
    async with httpx2.AsyncClient(base_url=served.url, timeout=30) as http:
        session = (await http.post("/v1/sessions")).json()["id"]
        asked: dict[str, Any] = {}
        results: list[dict[str, Any]] = []
        with anyio.fail_after(30):
            async with http.stream("POST", f"/v1/sessions/{session}/messages", json={"content": "ask me"}) as response:
                async for kind, data in events(response):
                    if kind == "elicitation.required":
                        asked = data
                        answers = f"/v1/sessions/{session}/elicitations/{data['elicitation_id']}"
                        bad = await http.post(answers, json={"action": "accept", "content": {"email": "nope"}})
                        assert bad.status_code == 400, bad.text
                        assert bad.json()["error"]["param"] == "content"
                        assert "email: must be an email address" in bad.json()["error"]["message"]
                        state = (await http.get(f"/v1/sessions/{session}")).json()
                        assert [q["elicitation_id"] for q in state["pending_elicitations"]] == [data["elicitation_id"]]
                        ok = await http.post(
                            answers, json={"action": "accept", "content": {"name": "Ada", "email": "ada@example.org"}}
                        )
                        assert ok.status_code == 200 and ok.json()["action"] == "accept"
                        late = await http.post(answers, json={"action": "decline"})
                        assert late.status_code == 409 and late.json()["error"]["type"] == "conflict_error"
                    elif kind == "tool_call.result":
                        results.append(data)
        assert asked["mode"] == "form" and asked["server"] == "everything" and asked["requested_schema"]
        (result,) = results
        assert "Ada" in result["text"] and "It was a dark and stormy night." in result["text"]  # a default applied
        state = (await http.get(f"/v1/sessions/{session}")).json()
        assert state["pending_elicitations"] == [] and state["busy"] is False
        never = await http.post(f"/v1/sessions/{session}/elicitations/elicit_999", json={"action": "cancel"})
        assert never.status_code == 404
        wrong = await http.post(f"/v1/sessions/{session}/elicitations/elicit_999", json={"action": "maybe"})
        assert wrong.status_code == 400 and wrong.json()["error"]["param"] == "action"


async def test_progress_comes_as_sse_events(served: Served) -> None:
    served.script(call("trigger_long_running_operation", {"duration": 1, "steps": 3}), ANSWER)
    async with httpx2.AsyncClient(base_url=served.url, timeout=30) as http:
        session = (await http.post("/v1/sessions")).json()["id"]
        response = await http.post(f"/v1/sessions/{session}/messages", json={"content": "work"})
    seen = [(kind, data) for kind, data in _parse(response.text)]
    progress = [data for kind, data in seen if kind == "tool_call.progress"]
    assert [p["progress"] for p in progress] == [1, 2, 3] and progress[-1]["total"] == 3
    assert progress[0]["server"] == "everything"
    created = next(data for kind, data in seen if kind == "tool_call.created")
    assert {p["call_id"] for p in progress} == {created["call_id"]}
    assert seen[-1][0] == "turn.completed"


def _parse(text: str) -> list[tuple[str, dict[str, Any]]]:
    parsed, kind = [], ""
    for line in text.splitlines():
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            parsed.append((kind, json.loads(line[6:])))
    return parsed


async def test_attachments_are_read_into_the_message(served: Served) -> None:
    served.script(ANSWER)
    async with httpx2.AsyncClient(base_url=served.url, timeout=30) as http:
        session = (await http.post("/v1/sessions")).json()["id"]
        messages = f"/v1/sessions/{session}/messages"

        async def attach(*refs: dict[str, str]) -> httpx2.Response:
            return await http.post(messages, json={"content": "Summarise this.", "attachments": list(refs)})

        unknown = await attach({"server": "nowhere", "uri": ARCHITECTURE})
        assert unknown.status_code == 404 and unknown.json()["error"]["param"] == "attachments.0"
        not_ready = await attach({"server": "everything", "uri": ARCHITECTURE}, {"server": "broken", "uri": "x://y"})
        assert not_ready.status_code == 503 and not_ready.json()["error"]["param"] == "attachments.1"
        missing = await attach({"server": "everything", "uri": "demo://resource/static/document/nope.md"})
        assert missing.status_code == 400 and "cannot attach" in missing.json()["error"]["message"]
        too_many = await attach(*[{"server": "everything", "uri": ARCHITECTURE}] * 17)
        assert too_many.status_code == 400 and too_many.json()["error"]["param"] == "attachments"
        assert not served.backend.prompts, "no turn ran for a refused message"
        assert (await http.get(f"/v1/sessions/{session}")).json()["busy"] is False

        answered = await attach({"server": "everything", "uri": ARCHITECTURE})
        assert answered.status_code == 200 and '"stop_reason":"answered"' in answered.text
    prompt = harmony_encoding().decode(served.backend.prompts[-1])
    assert f"Summarise this.\n\n--- attached: everything:{ARCHITECTURE} (text/markdown) ---" in prompt
    assert "# Everything Server – Architecture" in prompt


async def test_chat_completions_decline_elicitations(served: Served) -> None:
    served.script(call("trigger_elicitation_request", {}), ANSWER)
    async with httpx2.AsyncClient(base_url=served.url, timeout=30) as http:
        answer = await http.post(
            "/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "ask me"}], "mcp_host": {"tools": ["everything"]}},
        )
    assert answer.status_code == 200, answer.text
    (result,) = answer.json()["mcp_host"]["tool_calls"]
    assert result["tool"] == "everything.trigger-elicitation-request" and "decline" in result["result"].lower()


async def test_resources_and_prompts_endpoints(served: Served) -> None:
    async with httpx2.AsyncClient(base_url=served.url, timeout=30) as http:
        listing = (await http.get("/v1/servers/everything/resources")).json()
        assert any(r["uri"] == ARCHITECTURE and r["mime_type"] == "text/markdown" for r in listing["data"])
        assert "demo://resource/dynamic/text/{resourceId}" in {t["uri_template"] for t in listing["templates"]}

        read = await http.get("/v1/servers/everything/resource", params={"uri": ARCHITECTURE})
        assert read.status_code == 200 and read.json()["contents"][0]["text"].startswith("# Everything Server")
        blob = (
            await http.get("/v1/servers/everything/resource", params={"uri": "demo://resource/dynamic/blob/1"})
        ).json()
        (part,) = blob["contents"]
        assert part["binary"] is True and part["bytes"] > 0 and part["text"].startswith("[binary resource")
        assert (await http.get("/v1/servers/everything/resource")).status_code == 400
        failed = await http.get("/v1/servers/everything/resource", params={"uri": "demo://nothing/here"})
        assert failed.status_code == 502 and "everything: reading demo://nothing/here failed" in failed.text

        prompts = {p["name"]: p for p in (await http.get("/v1/servers/everything/prompts")).json()["data"]}
        arguments = {a["name"]: a for a in prompts["args-prompt"]["arguments"]}
        assert arguments["city"]["required"] is True and arguments["state"]["required"] is False
        got = await http.post("/v1/servers/everything/prompts/args-prompt", json={"arguments": {"city": "Paris"}})
        assert got.status_code == 200 and got.json()["messages"][0]["role"] == "user"
        assert "Paris" in got.json()["messages"][0]["text"]
        simple = await http.post("/v1/servers/everything/prompts/simple-prompt")  # no body: no arguments
        assert simple.status_code == 200 and simple.json()["messages"]
        assert (await http.post("/v1/servers/everything/prompts/no-such-prompt", json={})).status_code == 502

        completed = await http.post(
            "/v1/servers/everything/completion",
            json={"prompt": "completable-prompt", "argument": "department", "value": "E"},
        )
        assert completed.status_code == 200 and "Engineering" in completed.json()["values"]
        neither = await http.post("/v1/servers/everything/completion", json={"argument": "department"})
        assert neither.status_code == 400 and "either a 'prompt' or a 'resource_template'" in neither.text


async def test_logs_level_roots_and_errors(served: Served) -> None:
    async with httpx2.AsyncClient(base_url=served.url, timeout=30) as http:
        level = await http.put("/v1/servers/everything/log-level", json={"level": "debug"})
        assert level.status_code == 200 and level.json()["log_level"] == "debug"
        assert (await http.put("/v1/servers/everything/log-level", json={"level": "loud"})).status_code == 400
        logs = (await http.get("/v1/servers/everything/logs")).json()
        assert logs["log_level"] == "debug" and isinstance(logs["data"], list)

        roots = (await http.get("/v1/servers/everything/roots")).json()["roots"]
        assert roots == [Path(os.getcwd()).as_uri()]
        changed = await http.put("/v1/servers/everything/roots", json={"roots": ["/tmp", "file:///srv"]})
        assert changed.status_code == 200 and changed.json()["roots"] == ["file:///tmp", "file:///srv"]
        relative = await http.put("/v1/servers/everything/roots", json={"roots": ["here"]})
        assert relative.status_code == 400 and "neither an absolute path" in relative.text

        for method, path in [
            ("GET", "/v1/servers/nowhere/resources"),
            ("GET", "/v1/servers/nowhere/logs"),
            ("PUT", "/v1/servers/nowhere/roots"),
        ]:
            answer = await http.request(method, path, json={"roots": []})
            assert answer.status_code == 404 and answer.json()["error"]["code"] == "unknown_server", path
        for path in ("/v1/servers/broken/resources", "/v1/servers/broken/prompts"):
            answer = await http.get(path)
            assert answer.status_code == 503 and "server 'broken' is failed" in answer.text, path

        # State changes go through the guard like every other route.
        as_text = await http.put(
            "/v1/servers/everything/log-level", content=b'{"level": "info"}', headers={"content-type": "text/plain"}
        )
        assert as_text.status_code == 415
        from_page = await http.put(
            "/v1/servers/everything/roots", json={"roots": ["/"]}, headers={"origin": "https://evil.example"}
        )
        assert from_page.status_code == 403
        assert (await http.get("/v1/servers/everything/roots")).json()["roots"] == ["file:///tmp", "file:///srv"]
