"""The chat API with a model that does not speak Harmony: the real gemma GGUF, its own prompt format."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import jsonschema
import openai
import pytest
import uvicorn

from mcp_host.api import create_app
from mcp_host.backends.llama_cpp import LlamaCppBackend
from mcp_host.host import Host
from tests.conftest import free_port, write_config

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
