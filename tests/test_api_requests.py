"""Request bodies are typed: every malformed body is an OpenAI-shaped 400 naming its parameter, never a 500.

Each case is sent raw (bytes, as an attacker or a buggy client would) to a real uvicorn server on 127.0.0.1.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest

from tests.test_api_openai import ANSWER, Served, serving

pytestmark = pytest.mark.anyio

USER = {"role": "user", "content": "hi"}
DEEP = 100_000


def body(**fields: object) -> bytes:
    return json.dumps({"messages": [USER], **fields}).encode()


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Served]:
    async for served in serving(tmp_path, [ANSWER] * 3):
        yield served


async def post(api: Served, path: str, content: bytes) -> httpx2.Response:
    async with httpx2.AsyncClient(base_url=api.url, timeout=30) as http:
        return await http.post(path, content=content, headers={"content-type": "application/json"})


def assert_400(response: httpx2.Response, param: str | None) -> None:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"]
    assert error["param"] == param, error


COMPLETION_CASES = [
    pytest.param(b"[]", None, id="an array"),
    pytest.param(b'"x"', None, id="a string"),
    pytest.param(b"null", None, id="null"),
    pytest.param(b"", None, id="empty"),
    pytest.param(b"{not json", None, id="not JSON"),
    pytest.param(b"\xff\xfe{}", None, id="not UTF-8"),
    pytest.param(b"[" * DEEP + b"]" * DEEP, None, id="arrays 100,000 deep"),
    pytest.param(b'{"a":' * DEEP + b"1" + b"}" * DEEP, None, id="objects 100,000 deep"),
    pytest.param(
        b'{"messages": [{"role": "user", "content": "x"}], "a":' + b"[" * DEEP + b"]" * DEEP + b"}",
        None,
        id="deep inside a valid body",
    ),
    pytest.param(body(stream="no"), "stream", id="stream: 'no'"),
    pytest.param(body(stream=1), "stream", id="stream: 1"),
    pytest.param(body()[:-1] + b', "temperature": NaN}', "temperature", id="temperature: NaN"),
    pytest.param(body()[:-1] + b', "temperature": Infinity}', "temperature", id="temperature: Infinity"),
    pytest.param(body()[:-1] + b', "top_p": -Infinity}', "top_p", id="top_p: -Infinity"),
    pytest.param(body(temperature="hot"), "temperature", id="temperature: a string"),
    pytest.param(body(temperature=-1), "temperature", id="temperature below 0"),
    pytest.param(body(max_tokens="many"), "max_tokens", id="max_tokens: a string"),
    pytest.param(body(max_tokens=1.5), "max_tokens", id="max_tokens: a float"),
    pytest.param(body(max_tokens=-2), "max_tokens", id="max_tokens: -2"),
    pytest.param(body(seed="7"), "seed", id="seed: a string"),
    pytest.param(body(reasoning_effort="max"), "reasoning_effort", id="reasoning_effort: max"),
    pytest.param(json.dumps({"model": "m"}).encode(), "messages", id="no messages"),
    pytest.param(json.dumps({"messages": []}).encode(), "messages", id="empty messages"),
    pytest.param(json.dumps({"messages": "hi"}).encode(), "messages", id="messages: a string"),
    pytest.param(json.dumps({"messages": ["hi"]}).encode(), "messages.0", id="a message that is a string"),
    pytest.param(
        json.dumps({"messages": [{"role": "wizard", "content": "x"}]}).encode(), "messages.0.role", id="role: wizard"
    ),
    pytest.param(json.dumps({"messages": [{"content": "x"}]}).encode(), "messages.0.role", id="no role"),
    pytest.param(
        json.dumps({"messages": [{"role": "user", "content": 5}]}).encode(),
        "messages.0.content",
        id="content: a number",
    ),
    pytest.param(
        json.dumps({"messages": [{"role": "tool", "content": "x"}]}).encode(),
        "messages.0.tool_call_id",
        id="a tool message answering no call",
    ),
    pytest.param(body(tools=[{"type": "retrieval"}]), "tools.0.type", id="a tool that is not a function"),
    pytest.param(body(tools=["get_weather"]), "tools.0", id="a tool that is a string"),
    pytest.param(
        body(tools=[{"type": "function", "function": {"name": "bad name"}}]),
        "tools.0.function.name",
        id="a tool name with a space",
    ),
    pytest.param(body(tools=[{"type": "function"}]), "tools.0.function", id="a function without its definition"),
    pytest.param(body(tools={"type": "function"}), "tools", id="tools: an object"),
    pytest.param(body(tool_choice="sometimes"), "tool_choice", id="tool_choice: sometimes"),
    pytest.param(
        body(tool_choice={"type": "function", "function": {"name": "nope"}}),
        "tool_choice",
        id="tool_choice names a missing tool",
    ),
    pytest.param(
        body(stream_options={"include_usage": "yes"}), "stream_options.include_usage", id="include_usage: 'yes'"
    ),
    pytest.param(body(mcp_host=["fx"]), "mcp_host", id="mcp_host: an array"),
    pytest.param(body(mcp_host={"tools": "fx"}), "mcp_host.tools", id="mcp_host.tools: a string"),
    pytest.param(body(mcp_host={"tool": ["fx"]}), "mcp_host.tools", id="mcp_host: a misspelt field"),
    pytest.param(body(mcp_host={"tools": ["nope"]}), "mcp_host.tools", id="mcp_host: an unknown server"),
]


@pytest.mark.parametrize(("content", "param"), COMPLETION_CASES)
async def test_a_malformed_completion_request_is_a_400(api: Served, content: bytes, param: str | None) -> None:
    assert_400(await post(api, "/v1/chat/completions", content), param)


@pytest.mark.parametrize(("content", "param"), COMPLETION_CASES[:12])
async def test_lm_studio_s_endpoint_reads_the_same_model(api: Served, content: bytes, param: str | None) -> None:
    assert_400(await post(api, "/api/v0/chat/completions", content), param)


async def test_what_clients_really_send_is_accepted(api: Served) -> None:
    sent = body(
        model="openai/gpt-oss-20b",
        stream=False,
        max_tokens=-1,  # LM Studio's "no limit"
        temperature=0,  # an integer where a float is expected
        top_p=1,
        n=1,
        stop=["\n\n"],
        user="someone",
        logprobs=False,
        frequency_penalty=0.0,
        presence_penalty=0.0,
        metadata={"trace": "x"},
        parallel_tool_calls=True,
        tool_choice="auto",
        stream_options=None,
        reasoning_effort=None,
    )
    answer = await post(api, "/v1/chat/completions", sent)
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"] == "It is sunny in Paris."


SESSION_CASES = [
    pytest.param("/v1/sessions", b"[]", None, id="create: an array"),
    pytest.param("/v1/sessions", b"{" * 300 + b"}" * 300, None, id="create: deep"),
    pytest.param("/v1/sessions", b'{"browser": "yes"}', "browser", id="create: browser 'yes'"),
    pytest.param("/v1/sessions", b'{"instructions": 5}', "instructions", id="create: instructions 5"),
    pytest.param("/v1/sessions", b'{"reasoning_effort": "max"}', "reasoning_effort", id="create: effort max"),
    pytest.param("/v1/sessions", b'{"reasoning-effort": "low"}', "reasoning-effort", id="create: a misspelt field"),
]


@pytest.mark.parametrize(("path", "content", "param"), SESSION_CASES)
async def test_a_malformed_session_request_is_a_400(api: Served, path: str, content: bytes, param: str | None) -> None:
    assert_400(await post(api, path, content), param)


async def test_messages_and_approvals_are_typed_too(api: Served) -> None:
    async with httpx2.AsyncClient(base_url=api.url, timeout=30) as http:
        created = await http.post("/v1/sessions")  # no body at all: every default
        assert created.status_code == 201
        messages = f"/v1/sessions/{created.json()['id']}/messages"
        assert_400(await http.post(messages, content=b"null", headers={"content-type": "application/json"}), None)
        assert_400(await http.post(messages, json={"content": 5}), "content")
        assert_400(await http.post(messages, json={"content": ""}), "content")
        assert_400(await http.post(messages, json={"text": "hi"}), "content")
