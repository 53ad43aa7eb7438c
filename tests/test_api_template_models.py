"""The chat API with a model that does not speak Harmony: the real gemma GGUF, its own prompt format."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import jsonschema
import openai
import pytest
import uvicorn

from mcp_host.api import create_app
from mcp_host.backends import RecordingBackend
from mcp_host.backends.llama_cpp import LlamaCppBackend
from mcp_host.host import Host
from tests.conftest import fixture_entry, free_port, write_config

pytestmark = pytest.mark.anyio
TOOL = {
    "type": "function",
    "function": {
        "name": "get_delivery_date",
        "description": "Delivery date of an order",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
    },
}


@pytest.fixture
async def client(gemma: LlamaCppBackend, tmp_path: Path) -> AsyncIterator[openai.AsyncOpenAI]:
    config = write_config(tmp_path / "mcp.json", {})
    port = free_port()
    async with Host(config, settings_path=tmp_path / "settings.toml") as host:
        server = uvicorn.Server(
            uvicorn.Config(create_app(host, gemma), host="127.0.0.1", port=port, log_level="warning")
        )
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve)
            while not server.started:
                await anyio.sleep(0.02)
            api = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0)
            try:
                yield api
            finally:
                await api.close()
                server.should_exit = True


async def test_a_required_tool_call_comes_back_valid(client: openai.AsyncOpenAI) -> None:
    response = await client.chat.completions.create(
        model="gemma",
        messages=[{"role": "user", "content": "When will order 1017 arrive?"}],
        tools=[TOOL],  # type: ignore[list-item]
        tool_choice="required",
        max_tokens=60,
        temperature=0.2,
        seed=3,
    )
    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls or []
    assert call.function.name == "get_delivery_date"
    jsonschema.validate(json.loads(call.function.arguments), TOOL["function"]["parameters"])  # type: ignore[index]


async def test_plain_text_streams(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model="gemma",
        messages=[{"role": "user", "content": "Say something."}],
        max_tokens=12,
        stream=True,
        temperature=0.2,
        seed=3,
    )
    pieces = [chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices]
    assert len([p for p in pieces if p]) > 1 and "".join(pieces).strip()


CONVERSATION = [
    {"role": "system", "content": "You are Ada, the terse assistant of the Tuesday Club."},
    {"role": "user", "content": "My name is Kiri and I keep bees."},
    {"role": "assistant", "content": "Noted, Kiri the beekeeper."},
    {"role": "user", "content": "What is my name?"},
]


@pytest.fixture
async def recorded(gemma: LlamaCppBackend, tmp_path: Path) -> AsyncIterator[tuple[openai.AsyncOpenAI, Path]]:
    """gemma behind the project's `RecordingBackend` (every prompt and generation written down), with `fx`."""
    config = write_config(tmp_path / "mcp.json", {"fx": fixture_entry()})
    recording = tmp_path / "gemma.jsonl"
    port = free_port()
    async with Host(config, settings_path=tmp_path / "settings.toml") as host:
        await host.wait_settled()
        app = create_app(host, RecordingBackend(gemma, recording))  # type: ignore[arg-type]
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve)
            while not server.started:
                await anyio.sleep(0.02)
            api = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0)
            try:
                yield api, recording
            finally:
                await api.close()
                server.should_exit = True


def generations(recording: Path) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in recording.read_text().splitlines()]
    return [line for line in lines if line["type"] == "generation"]


async def test_host_tools_keep_the_whole_conversation_and_the_token_limit(
    recorded: tuple[openai.AsyncOpenAI, Path], gemma: LlamaCppBackend
) -> None:
    client, recording = recorded
    answer = await client.chat.completions.create(
        model="gemma",
        messages=CONVERSATION,  # type: ignore[arg-type]
        max_tokens=16,
        temperature=0.2,
        seed=5,
        extra_body={"mcp_host": {"tools": ["fx"]}},
    )
    assert answer.choices[0].finish_reason == "stop"
    rounds = generations(recording)
    prompt = gemma.detokenize(rounds[0]["prompt"])
    for message in CONVERSATION:
        assert message["content"] in prompt  # the system prompt and every earlier message reach the model
    assert all(len(generation["tokens"]) <= 16 for generation in rounds)  # max_tokens, every round


async def test_a_streamed_host_tools_completion_on_a_real_model(recorded: tuple[openai.AsyncOpenAI, Path]) -> None:
    client, recording = recorded
    stream = await client.chat.completions.create(
        model="gemma",
        messages=CONVERSATION,  # type: ignore[arg-type]
        max_tokens=24,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"mcp_host": {"tools": []}},
    )
    chunks = [chunk async for chunk in stream]  # an error chunk would raise here
    finishes = [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    # The engine ends at an end token or the limit, or is stopped when the answer starts the next speaker's line;
    # the client hears "length" exactly when the limit cut the answer.
    engine = generations(recording)[-1]["stop_reason"]
    assert engine in ("stop", "length", "cancelled")
    assert finishes[-1] == ("length" if engine == "length" else "stop")


async def test_host_tools_honour_temperature_and_seed(recorded: tuple[openai.AsyncOpenAI, Path]) -> None:
    client, _ = recorded

    async def ask(temperature: float, seed: int) -> str:
        answer = await client.chat.completions.create(
            model="gemma",
            messages=[{"role": "user", "content": "Invent a name for a cat."}],
            max_tokens=12,
            temperature=temperature,
            seed=seed,
            extra_body={"mcp_host": {"tools": []}},
        )
        return answer.choices[0].message.content or ""

    await ask(1.5, 11)  # the prompt is in the model's cache from here on, as it is for the calls compared
    hot = [await ask(1.5, 11) for _ in range(2)]
    cold = [await ask(0.0, seed) for seed in (1, 2)]
    assert hot[0] == hot[1]  # the same seed, the same sample
    assert cold[0] == cold[1]  # no temperature, no randomness whatever the seed
