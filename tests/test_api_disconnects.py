"""A client that goes away stops its generation, on every endpoint, streamed or not.

The model is a replay paced at 200 tokens/s, wrapped in the project's `RecordingBackend`, which writes
each generation down when it ends: how many tokens it produced and why it stopped. An abandoned long
answer (2,000 tokens, ten seconds if nobody stops it) must be recorded as cancelled, after a few tokens.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from mcp_host.backends import RecordedGeneration, RecordingBackend, ReplayBackend
from mcp_host.prompt import harmony_encoding
from tests.test_api_openai import Served, serving

pytestmark = pytest.mark.anyio

LONG = "<|channel|>final<|message|>" + "word " * 2000 + "<|return|>"
SHORT = "<|channel|>final<|message|>It is 42.<|return|>"
RATE = 200
EARLY = 300  # tokens: far fewer than the long answer's 2,000; 1.5 s of generation at RATE


def recorded(path: Path) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return [line for line in lines if line["type"] == "generation"]


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[Served, Path]]:
    encoding = harmony_encoding()
    replay = ReplayBackend(
        [RecordedGeneration([], list(encoding.encode(t, allowed_special="all")), "stop") for t in (LONG, SHORT)],
        name="openai/gpt-oss-20b",
        tokens_per_second=RATE,
    )
    recording = tmp_path / "generations.jsonl"
    async for served in serving(tmp_path, [], backend=RecordingBackend(replay, recording)):
        yield served, recording


ENDPOINTS = [
    pytest.param("/v1/chat/completions", {}, id="openai"),
    pytest.param("/api/v0/chat/completions", {}, id="lm studio"),
    pytest.param("/v1/chat/completions", {"mcp_host": {"tools": []}}, id="host tools"),
]


async def abandoned_then_next(served: Served, recording: Path, path: str, extra: dict[str, Any], stream: bool) -> None:
    body = {"messages": [{"role": "user", "content": "talk"}], "max_tokens": 4000, "stream": stream, **extra}
    async with httpx2.AsyncClient(base_url=served.url, timeout=httpx2.Timeout(30, read=0.5)) as http:
        if stream:
            async with http.stream("POST", path, json=body) as response:
                async for line in response.aiter_lines():
                    if '"content":"word' in line:
                        break  # hang up mid-answer
        else:
            with pytest.raises(httpx2.ReadTimeout):
                await http.post(path, json=body)  # gives up waiting: the connection closes
    async with httpx2.AsyncClient(base_url=served.url, timeout=30) as http:
        body["stream"] = False
        answer = await http.post(path, json=body)
    assert answer.status_code == 200 and answer.json()["choices"][0]["message"]["content"] == "It is 42."
    with anyio.fail_after(5):
        while len(recorded(recording)) < 2:
            await anyio.sleep(0.02)
    abandoned = recorded(recording)[0]
    assert abandoned["stop_reason"] == "cancelled" and len(abandoned["tokens"]) < EARLY


@pytest.mark.parametrize(("path", "extra"), ENDPOINTS)
async def test_a_whole_answer_nobody_waits_for_is_cancelled(
    api: tuple[Served, Path], path: str, extra: dict[str, Any]
) -> None:
    await abandoned_then_next(*api, path, extra, stream=False)


@pytest.mark.parametrize(("path", "extra"), ENDPOINTS)
async def test_a_stream_nobody_reads_is_cancelled(api: tuple[Served, Path], path: str, extra: dict[str, Any]) -> None:
    await abandoned_then_next(*api, path, extra, stream=True)
