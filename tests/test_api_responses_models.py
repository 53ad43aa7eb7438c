"""The Responses API on a real model (gemma-3-270m on llama.cpp), and a client that goes away mid-answer.

The abandoned answer is a replay paced at 200 tokens/s wrapped in the `RecordingBackend`, which writes each
generation down when it ends: an answer of 2,000 tokens nobody waits for must stop after a few hundred.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import openai
import pytest

from mcp_host.api import create_app
from mcp_host.api.streaming import GracefulShutdown
from mcp_host.backends import RecordedGeneration, RecordingBackend, ReplayBackend
from mcp_host.backends.llama_cpp import LlamaCppBackend
from mcp_host.host import Host
from mcp_host.prompt import harmony_encoding
from tests.conftest import serve_app, write_config
from tests.test_api_openai import Served, serving

pytestmark = pytest.mark.anyio

LONG = "<|channel|>final<|message|>" + "word " * 2000 + "<|return|>"
SHORT = "<|channel|>final<|message|>It is 42.<|return|>"
RATE = 200
EARLY = 300  # tokens: far fewer than the long answer's 2,000


async def test_gemma_answers_within_max_output_tokens(tmp_path: Path, gemma: LlamaCppBackend) -> None:
    async for served in serving(tmp_path, [], backend=gemma):
        client = served.client()
        whole = await client.responses.create(
            model=gemma.name, input="The capital of France is", max_output_tokens=8, temperature=0
        )
        assert whole.status == "incomplete" and whole.incomplete_details is not None
        assert whole.incomplete_details.reason == "max_output_tokens"
        assert whole.usage is not None and whole.usage.output_tokens == 8 and whole.usage.input_tokens > 5
        assert whole.output_text.strip() and [item.type for item in whole.output] == ["message"]

        stream = await client.responses.create(
            model=gemma.name, input="The capital of France is", max_output_tokens=8, temperature=0, stream=True
        )
        events = [event async for event in stream]
        assert [event.sequence_number for event in events] == list(range(len(events)))
        last = events[-1]
        assert last.type == "response.incomplete" and last.response.usage is not None
        assert last.response.usage.output_tokens == 8
        deltas = "".join(event.delta for event in events if event.type == "response.output_text.delta")
        assert deltas == last.response.output_text == whole.output_text  # temperature 0: the same words


def recorded(path: Path) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return [line for line in lines if line["type"] == "generation"]


@pytest.fixture
async def paced(tmp_path: Path, http_server: str) -> AsyncIterator[tuple[Served, Path, str]]:
    encoding = harmony_encoding()
    replay = ReplayBackend(
        [RecordedGeneration([], list(encoding.encode(t, allowed_special="all")), "stop") for t in (LONG, SHORT)],
        name="openai/gpt-oss-20b",
        tokens_per_second=RATE,
    )
    (tmp_path / "settings.toml").write_text("[api]\nallow_ephemeral_mcp = true\n")
    recording = tmp_path / "generations.jsonl"
    async for served in serving(tmp_path, [], backend=RecordingBackend(replay, recording)):
        yield served, recording, http_server


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
@pytest.mark.parametrize("mcp", [False, True], ids=["no tools", "mcp tools"])
async def test_a_client_that_goes_away_stops_the_generation(
    paced: tuple[Served, Path, str], stream: bool, mcp: bool
) -> None:
    served, recording, url = paced
    body: dict[str, Any] = {"model": "openai/gpt-oss-20b", "input": "talk", "max_output_tokens": 4000, "stream": stream}
    if mcp:
        body["tools"] = [{"type": "mcp", "server_label": "fixture", "server_url": url, "require_approval": "never"}]
    async with httpx2.AsyncClient(base_url=served.url, timeout=httpx2.Timeout(30, read=1.0)) as http:
        if stream:
            async with http.stream("POST", "/v1/responses", json=body) as response:
                async for line in response.aiter_lines():
                    if '"delta":"word' in line:
                        break  # hang up mid-answer
        else:
            with pytest.raises(httpx2.ReadTimeout):
                await http.post("/v1/responses", json=body)  # gives up waiting: the connection closes
    body["stream"] = False
    answer = await served.client().responses.create(**body)
    assert answer.output_text == "It is 42."
    with anyio.fail_after(5):
        while len(recorded(recording)) < 2:
            await anyio.sleep(0.02)
    abandoned = recorded(recording)[0]
    assert abandoned["stop_reason"] == "cancelled" and len(abandoned["tokens"]) < EARLY
    with pytest.raises(openai.NotFoundError):  # nothing was stored of the abandoned answer
        await served.client().responses.retrieve("resp_nothing")


async def test_a_stream_the_server_shuts_down_ends_with_an_error_event(tmp_path: Path) -> None:
    encoding = harmony_encoding()
    backend = ReplayBackend(
        [RecordedGeneration([], list(encoding.encode(LONG, allowed_special="all")), "stop")],
        name="openai/gpt-oss-20b",
        tokens_per_second=RATE,
    )
    config = write_config(tmp_path / "mcp.json", {})
    events: list[dict[str, Any]] = []
    async with Host(config, settings_path=tmp_path / "settings.toml") as host:
        app = GracefulShutdown(create_app(host, backend))
        async with serve_app(app) as url, httpx2.AsyncClient(base_url=url, timeout=30) as http:
            body = {"model": "openai/gpt-oss-20b", "input": "talk", "max_output_tokens": 4000, "stream": True}
            async with http.stream("POST", "/v1/responses", json=body) as response:
                async for line in response.aiter_lines():
                    if line.startswith("data: "):
                        events.append(json.loads(line.removeprefix("data: ")))
                        if events[-1]["type"] == "response.output_text.delta" and not app.begun:
                            app.begin()
    last = events[-1]
    assert last["type"] == "error" and last["code"] == "shutting_down"
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    assert len(events) < EARLY  # cut mid-answer
