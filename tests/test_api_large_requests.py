"""Bounded work per request: a 7.9 MB completion is refused with a 400 and never holds up other requests.

Each case runs on a real uvicorn server on 127.0.0.1: the Harmony path with the real o200k vocabulary
(the replay backend, since no gpt-oss can run here), and the chat-template path on the real gemma GGUF.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx2
import pytest

from mcp_host.api import create_app
from mcp_host.backends import RecordedGeneration, ReplayBackend
from mcp_host.backends.base import Backend
from mcp_host.backends.llama_cpp import LlamaCppBackend
from mcp_host.host import Host
from mcp_host.prompt import harmony_encoding
from tests.conftest import serve_app, write_config

pytestmark = pytest.mark.anyio

HUGE = "lorem ipsum dolor sit amet " * 300_000  # 8.1 million characters: with the JSON around it, 7.9 MiB


@asynccontextmanager
async def served(backend: Backend, tmp_path: Path) -> AsyncIterator[str]:
    config = write_config(tmp_path / "mcp.json", {})
    async with (
        Host(config, settings_path=tmp_path / "settings.toml") as host,
        serve_app(create_app(host, backend)) as url,
    ):
        yield url


async def big_request_beside_model_listing(url: str, body: dict[str, object]) -> tuple[httpx2.Response, list[float]]:
    """The big request, and the latency of each `GET /v1/models` sent while it was being answered."""
    latencies: list[float] = []
    big: list[httpx2.Response] = []
    content = json.dumps(body).encode()  # here, not while measuring: this client shares the event loop
    async with httpx2.AsyncClient(base_url=url, timeout=120) as http:

        async def send_big() -> None:
            headers = {"content-type": "application/json"}
            big.append(await http.post("/v1/chat/completions", content=content, headers=headers))

        async with anyio.create_task_group() as tg:
            tg.start_soon(send_big)
            while not big:
                started = time.perf_counter()
                listing = await http.get("/v1/models")
                latencies.append(time.perf_counter() - started)
                assert listing.status_code == 200
                await anyio.sleep(0.005)
    return big[0], latencies


def assert_context_length_exceeded(response: httpx2.Response) -> None:
    assert response.status_code == 400, response.text[:500]
    error = response.json()["error"]
    assert error["code"] == "context_length_exceeded" and error["param"] == "messages"
    assert error["type"] == "invalid_request_error"


async def test_a_huge_harmony_request_is_a_400_and_the_server_keeps_answering(tmp_path: Path) -> None:
    backend = ReplayBackend(
        [
            RecordedGeneration(
                [], harmony_encoding().encode("<|channel|>final<|message|>ok<|return|>", allowed_special="all"), "stop"
            )
        ],
        name="openai/gpt-oss-20b",
    )
    body = {"model": "openai/gpt-oss-20b", "messages": [{"role": "user", "content": HUGE}]}
    async with served(backend, tmp_path) as url:
        response, latencies = await big_request_beside_model_listing(url, body)
        assert_context_length_exceeded(response)
        # The listing was answered again and again while the body was read, parsed and counted, and never
        # waited for that work (which takes about a second here); the bound is loose against machine load.
        print(f"listing latencies during the big request: n={len(latencies)} max={max(latencies) * 1000:.1f} ms")
        assert len(latencies) >= 3 and max(latencies) < 1.0, latencies
        assert backend.prompts == []  # nothing reached the model
        # 250,000 empty messages: no text to count, but each costs tokens; refused before rendering, which
        # holds the GIL (20 s of a frozen event loop before the check counted them).
        many: dict[str, object] = {"model": "openai/gpt-oss-20b", "messages": [{"role": "user"}] * 250_000}
        response, latencies = await big_request_beside_model_listing(url, many)
        assert_context_length_exceeded(response)
        print(f"listing latencies during 250,000 messages: n={len(latencies)} max={max(latencies) * 1000:.1f} ms")
        # Validating 250,000 messages holds the GIL for under a second (pydantic-core); it was 20 s of rendering.
        assert max(latencies) < 5.0, latencies
        huge_tool = {"type": "function", "function": {"name": "f", "description": HUGE}}
        response, _ = await big_request_beside_model_listing(
            url, {**many, "messages": [{"role": "user"}], "tools": [huge_tool]}
        )
        assert_context_length_exceeded(response)
        with_tools = {**body, "mcp_host": {"tools": []}}
        async with httpx2.AsyncClient(base_url=url, timeout=120) as http:
            assert_context_length_exceeded(await http.post("/v1/chat/completions", json=with_tools))
            many_with_tools = {**many, "mcp_host": {"tools": []}}
            assert_context_length_exceeded(await http.post("/v1/chat/completions", json=many_with_tools))
            lmstudio = await http.post("/api/v0/chat/completions", json=body)
            assert_context_length_exceeded(lmstudio)


async def test_a_prompt_over_gemmas_context_is_a_400_not_a_502(gemma: LlamaCppBackend, tmp_path: Path) -> None:
    # 5,000 words need more than gemma's 4,096-token context (the fixture's), though the body is small.
    over: Callable[[int], dict[str, object]] = lambda words: {  # noqa: E731
        "model": "gemma",
        "messages": [{"role": "user", "content": "word " * words}],
        "max_tokens": 4,
    }
    async with served(gemma, tmp_path) as url:
        response, _ = await big_request_beside_model_listing(url, over(5_000))
        assert_context_length_exceeded(response)
        async with httpx2.AsyncClient(base_url=url, timeout=120) as http:
            # Just under the context in text, over it once the template and the answer's room are added.
            near = await http.post("/v1/chat/completions", json=over(4_090))
            assert_context_length_exceeded(near)
            fits = await http.post("/v1/chat/completions", json=over(20))
            assert fits.status_code == 200 and fits.json()["usage"]["completion_tokens"] <= 4


async def test_long_ids_and_names_are_refused_without_being_echoed_back(tmp_path: Path) -> None:
    """A 30 KB response id or a 100 KB model name: a clear 4xx whose message stays short."""
    replay = ReplayBackend([RecordedGeneration([], [200005], "stop")], name="scripted gpt-oss")
    long = "x" * 100_000
    async with served(replay, tmp_path) as url, httpx2.AsyncClient(base_url=url, timeout=60) as http:
        for method in ("GET", "DELETE"):
            answer = await http.request(method, f"/v1/responses/resp_{long[:30_000]}")  # a URL under 64 KB
            assert answer.status_code == 404 and len(answer.text) < 1_000, (method, len(answer.text))
        for path in ("/v1/completions", "/api/v0/completions"):
            answer = await http.post(path, json={"model": long, "prompt": "x", "max_tokens": 1})
            assert answer.status_code == 400 and len(answer.text) < 2_000, (path, len(answer.text))
        answer = await http.post("/v1/embeddings", json={"model": long, "input": "x"})
        assert answer.status_code == 400 and len(answer.text) < 2_000


async def test_the_model_the_server_started_with_cannot_be_unloaded(tmp_path: Path) -> None:
    """It is no file here, so nothing could load it again: unloading it would leave the server without a model."""
    final = harmony_encoding().encode("<|channel|>final<|message|>Still here.<|return|>", allowed_special="all")
    replay = ReplayBackend([RecordedGeneration([], list(final), "stop")], name="scripted gpt-oss")
    async with served(replay, tmp_path) as url, httpx2.AsyncClient(base_url=url, timeout=60) as http:
        refused = await http.post("/api/v1/models/unload", json={"instance_id": "scripted gpt-oss"})
        assert refused.status_code == 400 and "cannot be loaded again" in refused.text
        assert [model["id"] for model in (await http.get("/v1/models")).json()["data"]] == ["scripted gpt-oss"]
        answer = await http.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
        assert answer.json()["choices"][0]["message"]["content"] == "Still here."


def test_request_models_never_show_credentials() -> None:
    from mcp_host.api.integrations import EphemeralServer
    from mcp_host.api.lmstudio_v1_requests import EphemeralIntegration
    from mcp_host.api.responses_requests import McpTool

    url = "https://user:pw@mcp.example/mcp?token=abc"
    shown = [
        repr(EphemeralServer("hf", url, {"Authorization": "Bearer SECRET"})),
        repr(McpTool(type="mcp", server_label="hf", server_url=url, headers={"X": "SECRET"}, authorization="SECRET")),
        repr(EphemeralIntegration(type="ephemeral_mcp", server_label="hf", server_url=url, headers={"X": "SECRET"})),
    ]
    assert not any("SECRET" in text or ":pw@" in text or "token=abc" in text for text in shown), shown
