"""The OpenAI-compatible endpoints on a real uvicorn server on 127.0.0.1, driven by the official `openai` client.

gpt-oss cannot run here, so the model is a replay of scripted Harmony token sequences.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import anyio
import httpx2
import openai
import pytest
import uvicorn

from mcp_host.api import create_app
from mcp_host.backends import RecordedGeneration, ReplayBackend
from mcp_host.backends.base import Backend
from mcp_host.errors import McpHostError
from mcp_host.host import Host
from mcp_host.prompt import harmony_encoding
from mcp_host.serve_command import check_bind
from tests.conftest import free_port, write_config

pytestmark = pytest.mark.anyio

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
CALL = (
    "<|channel|>analysis<|message|>Need the weather.<|end|><|start|>assistant<|channel|>commentary "
    'to=functions.get_weather <|constrain|>json<|message|>{"city": "Paris, France"}<|call|>'
)
ANSWER = (
    "<|channel|>analysis<|message|>It said sunny.<|end|><|start|>assistant<|channel|>final<|message|>"
    "It is sunny in Paris.<|return|>"
)


def scripted(*outputs: str, tokens_per_second: float = 0.0, name: str = "openai/gpt-oss-20b") -> ReplayBackend:
    encoding = harmony_encoding()
    return ReplayBackend(
        [RecordedGeneration([], list(encoding.encode(o, allowed_special="all")), "stop") for o in outputs],
        name=name,
        tokens_per_second=tokens_per_second,
    )


class Served:
    def __init__(self, url: str, backend: Backend) -> None:
        self.url = url
        self.backend = backend
        self.clients: list[openai.AsyncOpenAI] = []

    def client(self, api_key: str = "not-needed") -> openai.AsyncOpenAI:
        client = openai.AsyncOpenAI(base_url=f"{self.url}/v1", api_key=api_key, max_retries=0)
        self.clients.append(client)
        return client


async def serving(
    tmp_path: Path, outputs: Sequence[str], backend: Backend | None = None, **app_options: object
) -> AsyncIterator[Served]:
    """The API over a real uvicorn server on 127.0.0.1: the scripted `outputs`, or `backend`."""
    config = write_config(tmp_path / "mcp.json", {})
    backend = backend or scripted(*outputs)
    port = free_port()
    async with Host(config, settings_path=tmp_path / "settings.toml") as host:
        app = create_app(host, backend, **app_options)  # type: ignore[arg-type]
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve)
            while not server.started:
                await anyio.sleep(0.02)
            served = Served(f"http://127.0.0.1:{port}", backend)
            try:
                yield served
            finally:
                for client in served.clients:
                    await client.close()
                server.should_exit = True


@pytest.fixture
async def api(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Served]:
    outputs = getattr(request, "param", [CALL, ANSWER])
    async for served in serving(tmp_path, outputs):
        yield served


async def test_models(api: Served) -> None:
    models = await api.client().models.list()
    assert [model.id for model in models.data] == ["openai/gpt-oss-20b"]


async def test_tool_call_then_the_tool_result_continues_the_conversation(api: Served) -> None:
    client = api.client()
    messages: list[dict[str, object]] = [{"role": "user", "content": "What's the weather in Paris?"}]
    first = await client.chat.completions.create(
        model="openai/gpt-oss-20b",
        messages=messages,  # type: ignore[arg-type]
        tools=[WEATHER_TOOL],
        reasoning_effort="high",
    )  # type: ignore[list-item]
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls or []
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris, France"}
    assert (choice.message.model_extra or {}).get("reasoning") == "Need the weather."
    rendered = harmony_encoding().decode(api.backend.prompts[0])
    assert "Reasoning: high" in rendered and "type get_weather = (_: {" in rendered

    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": '{"sky": "sunny"}'},
    ]
    second = await client.chat.completions.create(
        model="openai/gpt-oss-20b",
        messages=messages,  # type: ignore[arg-type]
        tools=[WEATHER_TOOL],
    )  # type: ignore[list-item]
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content == "It is sunny in Paris."
    assert second.usage is not None and second.usage.completion_tokens > 0
    resumed = harmony_encoding().decode(api.backend.prompts[1])
    assert (
        '<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>{"sky": "sunny"}<|end|>' in resumed
    )


async def test_streaming_tool_call_deltas_arrive_as_openai_sends_them(api: Served) -> None:
    stream = await api.client().chat.completions.create(
        model="openai/gpt-oss-20b",
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER_TOOL],
        stream=True,
    )  # type: ignore[list-item]
    deltas = [chunk.choices[0] async for chunk in stream if chunk.choices]
    calls = [d.delta.tool_calls[0] for d in deltas if d.delta.tool_calls]
    assert calls[0].id and calls[0].function is not None and calls[0].function.name == "get_weather"
    assert calls[0].function.arguments == ""
    assert len(calls) > 2 and all(c.id is None for c in calls[1:])
    assert json.loads("".join(c.function.arguments or "" for c in calls if c.function)) == {"city": "Paris, France"}
    assert deltas[-1].finish_reason == "tool_calls"
    reasoning = "".join((d.delta.model_extra or {}).get("reasoning") or "" for d in deltas)
    assert reasoning == "Need the weather."


@pytest.mark.parametrize("api", [[ANSWER]], indirect=True)
async def test_streaming_text(api: Served) -> None:
    stream = await api.client().chat.completions.create(
        model="openai/gpt-oss-20b", messages=[{"role": "user", "content": "Weather?"}], stream=True
    )
    text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])
    assert text == "It is sunny in Paris."


async def test_errors_are_openai_shaped(api: Served) -> None:
    async with httpx2.AsyncClient(base_url=api.url) as http:
        bad_json = await http.post(
            "/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert bad_json.status_code == 400 and bad_json.json()["error"]["type"] == "invalid_request_error"
        no_messages = await http.post("/v1/chat/completions", json={"model": "openai/gpt-oss-20b", "messages": []})
        assert no_messages.status_code == 400 and no_messages.json()["error"]["param"] == "messages"
        bad_role = await http.post("/v1/chat/completions", json={"messages": [{"role": "wizard", "content": "x"}]})
        assert bad_role.status_code == 400 and "role" in bad_role.json()["error"]["message"]
        bad_effort = await http.post(
            "/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}], "reasoning_effort": "max"}
        )
        assert bad_effort.json()["error"]["param"] == "reasoning_effort"
        huge = await http.post(
            "/v1/chat/completions", content=b"x" * (9 * 1024 * 1024), headers={"content-type": "application/json"}
        )
        assert huge.status_code == 413
        missing = await http.get("/v1/nothing-here")
        assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found_error"
    with pytest.raises(openai.BadRequestError):
        await api.client().chat.completions.create(
            model="openai/gpt-oss-20b",
            messages=[{"role": "user", "content": "x"}],
            tools=[{"type": "function", "function": {"name": "bad name"}}],
        )  # type: ignore[list-item]


async def test_an_api_key_is_required_when_set(tmp_path: Path) -> None:
    async for served in serving(tmp_path, [ANSWER], api_key="s3cret"):
        with pytest.raises(openai.AuthenticationError):
            await served.client("wrong").models.list()
        assert (await served.client("s3cret").models.list()).data


def test_binding_beyond_loopback_must_be_asked_for_and_protected() -> None:
    check_bind("127.0.0.1", False, None)
    check_bind("::1", False, None)
    with pytest.raises(McpHostError, match="--allow-remote"):
        check_bind("0.0.0.0", False, "key")
    with pytest.raises(McpHostError, match="needs an API key"):
        check_bind("0.0.0.0", True, None)
    check_bind("0.0.0.0", True, "key")


@pytest.mark.parametrize("api", [[ANSWER]], indirect=True)
async def test_lm_studio_rest_api_with_stats_and_model_info(api: Served) -> None:
    async with httpx2.AsyncClient(base_url=api.url) as http:
        models = (await http.get("/api/v0/models")).json()["data"]
        assert models[0]["id"] == "openai/gpt-oss-20b" and models[0]["state"] == "loaded"
        assert models[0]["max_context_length"] == 131072 and models[0]["type"] == "llm"
        assert (await http.get("/api/v0/models/openai/gpt-oss-20b")).json()["id"] == "openai/gpt-oss-20b"
        assert (await http.get("/api/v0/models/nope")).status_code == 404
        # LM Studio's documented request, as its clients send it (max_tokens -1 means no limit).
        answer = await http.post(
            "/api/v0/chat/completions",
            json={
                "model": "openai/gpt-oss-20b",
                "messages": [
                    {"role": "system", "content": "Always answer in rhymes."},
                    {"role": "user", "content": "Introduce yourself."},
                ],
                "temperature": 0.7,
                "max_tokens": -1,
                "stream": False,
            },
        )
    body = answer.json()
    assert answer.status_code == 200 and body["choices"][0]["message"]["content"] == "It is sunny in Paris."
    stats = body["stats"]
    assert stats["stop_reason"] == "eosFound" and stats["tokens_per_second"] >= 0
    assert stats["time_to_first_token"] is not None and stats["generation_time"] > 0
    assert body["model_info"]["context_length"] == 131072 and body["model_info"]["format"] == "gguf"
    assert "Always answer in rhymes." in harmony_encoding().decode(api.backend.prompts[0])


async def test_a_model_failure_is_a_502_or_an_error_chunk(tmp_path: Path) -> None:
    async for served in serving(tmp_path, []):  # a replay with nothing left to say fails every generation
        async with httpx2.AsyncClient(base_url=served.url) as http:
            whole = await http.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]})
        assert whole.status_code == 502 and whole.json()["error"]["type"] == "server_error"
        stream = await served.client().chat.completions.create(
            model="openai/gpt-oss-20b", messages=[{"role": "user", "content": "x"}], stream=True
        )
        with pytest.raises(openai.APIError, match="the model failed"):
            _ = [chunk async for chunk in stream]


async def test_the_api_key_guards_streams_and_sessions_alike(tmp_path: Path) -> None:
    async for served in serving(tmp_path, [ANSWER], api_key="s3cret"):
        async with httpx2.AsyncClient(base_url=served.url) as http:
            refused = await http.post("/v1/sessions", headers={"Authorization": "Bearer nope"})
            assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
        stream = await served.client("s3cret").chat.completions.create(
            model="openai/gpt-oss-20b", messages=[{"role": "user", "content": "x"}], stream=True
        )
        text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])
        assert text == "It is sunny in Paris."
