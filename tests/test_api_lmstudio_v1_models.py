"""`/api/v1/chat` and `/api/v1/models*` with real models on llama.cpp, loaded just in time from an LM Studio folder.

The folder (`lmstudio_models`) holds google/gemma-3-270m (a base model) and HuggingFaceTB/SmolLM2-135M-Instruct;
answers are bounded by `max_output_tokens`, never by the clock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from mcp_host.backends.loading import LoadedModel, LoadOptions, load_with_llama_cpp
from mcp_host.backends.models import discover_models
from mcp_host.backends.registry import ModelRegistry
from tests.test_api_lmstudio_v1 import V1, read_events, v1_server

pytestmark = pytest.mark.anyio
GEMMA = "google/gemma-3-270m"
SMOL = "HuggingFaceTB/SmolLM2-135M-Instruct"


def chat(model: str, text: str = "Say hello.", tokens: int = 8, **extra: Any) -> dict[str, Any]:
    return {"model": model, "input": text, "max_output_tokens": tokens, "temperature": 0, **extra}


async def instances(api: V1) -> dict[str, list[dict[str, Any]]]:
    listing = (await api.http.get("/api/v1/models")).json()["models"]
    return {model["key"]: model["loaded_instances"] for model in listing}


async def test_models_are_listed_loaded_or_not_and_a_request_loads_its_model_just_in_time(
    tmp_path: Path, lmstudio_models: Path
) -> None:
    async with v1_server(tmp_path, ModelRegistry(discover=discover_models)) as api:
        listing = (await api.http.get("/api/v1/models")).json()["models"]
        gemma = next(model for model in listing if model["key"] == GEMMA)
        assert gemma == {
            "type": "llm",
            "publisher": "google",
            "key": GEMMA,
            "display_name": "Gemma 3 270m",
            "architecture": "gemma3",
            "quantization": {"name": "Q4_K_M", "bits_per_weight": 4},
            "size_bytes": gemma["size_bytes"],
            "params_string": "270M",
            "loaded_instances": [],
            "max_context_length": 32768,
            "format": "gguf",
            "capabilities": {"vision": False, "trained_for_tool_use": False},
            "description": None,
        }
        assert gemma["size_bytes"] > 200_000_000 and await instances(api) == {GEMMA: [], SMOL: []}

        events = await read_events(api.http, "/api/v1/chat", chat(SMOL, stream=True, context_length=1024))
        names = [name for name, _ in events]
        loading = names[: names.index("model_load.end") + 1]
        assert loading[:2] == ["chat.start", "model_load.start"] and "model_load.progress" in loading
        assert set(loading[2:-1]) == {"model_load.progress"}
        data = dict(events)
        assert data["model_load.start"] == {"type": "model_load.start", "model_instance_id": SMOL}
        assert [event["progress"] for name, event in events if name == "model_load.progress"][-1] == 1.0
        assert data["model_load.end"]["load_time_seconds"] > 0
        assert names.index("model_load.end") < names.index("prompt_processing.start") < names.index("message.start")
        result = data["chat.end"]["result"]
        text = "".join(event["content"] for name, event in events if name == "message.delta")
        assert result["output"] == [{"type": "message", "content": text}] and text.strip()
        assert 0 < result["stats"]["total_output_tokens"] <= 8
        assert result["stats"]["model_load_time_seconds"] == data["model_load.end"]["load_time_seconds"]
        assert (await instances(api))[SMOL] == [{"id": SMOL, "config": {"context_length": 1024}}]

        again = (await api.chat(chat(SMOL))).json()  # loaded already: no load, no load time
        assert "model_load_time_seconds" not in again["stats"] and 0 < again["stats"]["total_output_tokens"] <= 8


async def test_gemma_and_smollm2_answer_streamed_and_not_within_max_output_tokens(
    tmp_path: Path, lmstudio_models: Path
) -> None:
    async with v1_server(tmp_path, ModelRegistry(discover=discover_models, resident=2)) as api:
        for model in (GEMMA, SMOL):
            whole = (await api.chat(chat(model, "Write a short haiku about sunrise.", 6))).json()
            (message,) = whole["output"]
            assert message["type"] == "message" and message["content"].strip()
            assert 0 < whole["stats"]["total_output_tokens"] <= 6 and whole["stats"]["input_tokens"] > 5
            assert whole["stats"]["reasoning_output_tokens"] == 0
            events = await read_events(api.http, "/api/v1/chat", chat(model, "Count to ten.", 5, stream=True))
            result = dict(events)["chat.end"]["result"]
            assert 0 < result["stats"]["total_output_tokens"] <= 5
            text = "".join(event["content"] for name, event in events if name == "message.delta")
            assert result["output"] == [{"type": "message", "content": text}]


async def test_an_idle_model_is_unloaded_after_its_ttl_while_one_in_use_stays(
    tmp_path: Path, lmstudio_models: Path
) -> None:
    async with v1_server(tmp_path, ModelRegistry(discover=discover_models, resident=2, idle_ttl_s=3.0)) as api:
        assert (await api.chat(chat(SMOL, tokens=1))).status_code == 200
        assert (await api.chat(chat(GEMMA, tokens=1))).status_code == 200
        loaded = await instances(api)
        assert loaded[SMOL] and loaded[GEMMA]  # two fit: the second model came in beside the first
        with anyio.fail_after(15):
            while (await instances(api))[SMOL]:
                assert (await api.chat(chat(GEMMA, tokens=1))).status_code == 200  # gemma is never idle for long
        assert (await instances(api))[GEMMA] == [{"id": GEMMA, "config": {"context_length": 32768}}]


async def test_with_room_for_one_model_the_first_is_unloaded_for_the_second(
    tmp_path: Path, lmstudio_models: Path
) -> None:
    async with v1_server(tmp_path, ModelRegistry(discover=discover_models, resident=1)) as api:
        assert (await api.chat(chat(SMOL, tokens=2))).status_code == 200
        assert (await instances(api))[SMOL]
        assert (await api.chat(chat(GEMMA, tokens=2))).status_code == 200
        loaded = await instances(api)
        assert loaded[GEMMA] and not loaded[SMOL]


async def test_two_requests_for_a_model_being_loaded_share_one_load(tmp_path: Path, lmstudio_models: Path) -> None:
    loads: list[str] = []
    lock = threading.Lock()

    def counting(path: Path, name: str, options: LoadOptions, progress: Callable[[float], None]) -> LoadedModel:
        with lock:
            loads.append(name)
        return load_with_llama_cpp(path, name, options, progress)

    streams: list[list[tuple[str, dict[str, Any]]]] = []
    async with v1_server(tmp_path, ModelRegistry(discover=discover_models, loader=counting)) as api:

        async def ask() -> None:
            streams.append(await read_events(api.http, "/api/v1/chat", chat(SMOL, tokens=3, stream=True)))

        async with anyio.create_task_group() as tg:
            tg.start_soon(ask)
            tg.start_soon(ask)
    assert loads == [SMOL]
    for events in streams:
        names = [name for name, _ in events]
        assert names.count("model_load.start") == 1 and names.count("model_load.end") == 1
        assert names.index("model_load.end") < names.index("message.start")
        assert dict(events)["chat.end"]["result"]["output"][0]["content"]


async def test_models_are_loaded_and_unloaded_on_request(tmp_path: Path, lmstudio_models: Path) -> None:
    async with v1_server(tmp_path, ModelRegistry(discover=discover_models, idle_ttl_s=0.2)) as api:
        body = {"model": SMOL, "context_length": 2048, "flash_attention": True, "echo_load_config": True}
        loaded = (await api.http.post("/api/v1/models/load", json=body)).json()
        assert loaded == {
            "type": "llm",
            "instance_id": SMOL,
            "load_time_seconds": loaded["load_time_seconds"],
            "status": "loaded",
            "load_config": {"context_length": 2048},
        }
        await anyio.sleep(0.6)  # loaded on request: no idle TTL
        assert (await instances(api))[SMOL] == [{"id": SMOL, "config": {"context_length": 2048}}]
        unloaded = await api.http.post("/api/v1/models/unload", json={"instance_id": SMOL})
        assert unloaded.json() == {"instance_id": SMOL} and not (await instances(api))[SMOL]
        again = await api.http.post("/api/v1/models/unload", json={"instance_id": SMOL})
        assert again.status_code == 404 and again.json()["error"]["param"] == "instance_id"
        missing = await api.http.post("/api/v1/models/load", json={"model": "nobody/nothing"})
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"
        bad = await api.http.post("/api/v1/models/load", json={"model": SMOL, "context_length": "big"})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "context_length"


async def test_a_stored_conversation_continues_on_a_real_model(tmp_path: Path, lmstudio_models: Path) -> None:
    async with v1_server(tmp_path, ModelRegistry(discover=discover_models)) as api:
        first = (await api.chat(chat(SMOL, "My favorite color is blue.", 6))).json()
        fresh = (await api.chat(chat(SMOL, "What color did I just mention?", 6, store=False))).json()
        body = chat(SMOL, "What color did I just mention?", 6, previous_response_id=first["response_id"])
        continued = (await api.chat(body)).json()
    assert "response_id" not in fresh and continued["response_id"] != first["response_id"]
    # The continued prompt holds the first exchange: the user's words and the answer, on top of the fresh prompt.
    grown = continued["stats"]["input_tokens"] - fresh["stats"]["input_tokens"]
    assert grown >= first["stats"]["total_output_tokens"] + len("My favorite color is blue.".split())


async def test_a_long_prompt_streams_its_processing_progress(tmp_path: Path, lmstudio_models: Path) -> None:
    """llama.cpp reads a prompt longer than its batch (512) in batches: each is a `prompt_processing.progress`."""
    async with v1_server(tmp_path, ModelRegistry(discover=discover_models)) as api:
        long = "Summarise this: " + "the quick brown fox jumps over the lazy dog. " * 150  # about 1,500 tokens
        events = await read_events(api.http, "/api/v1/chat", chat(SMOL, long, 1, stream=True))
    names = [name for name, _ in events]
    start, end = names.index("prompt_processing.start"), names.index("prompt_processing.end")
    progress = [event["progress"] for name, event in events[start:end] if name == "prompt_processing.progress"]
    assert progress[0] == 0.0 and progress[-1] == 1.0 and len(progress) >= 4  # 0, two batches at least, 1
    assert progress == sorted(progress) and len(set(progress)) == len(progress)
