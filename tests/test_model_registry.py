"""The model registry with real models on disk: listing, just-in-time loads with progress, eviction, waiting.

Two real GGUFs (gemma-3-270m and SmolLM2-135M-Instruct) sit in an LM Studio model folder; the loader is
llama.cpp's, counted where a test needs to know how often it ran.
"""

from __future__ import annotations

import struct
from pathlib import Path

import anyio
import pytest

from mcp_host.backends.base import Backend, GenerationParams, ModelNotFoundError, UnsupportedFeatureError
from mcp_host.backends.gguf_info import read_gguf_info
from mcp_host.backends.loading import (
    LoadedModel,
    LoadEvent,
    LoadFinished,
    LoadOptions,
    LoadProgress,
    LoadStarted,
    load_with_llama_cpp,
)
from mcp_host.backends.models import discover_models
from mcp_host.backends.registry import ModelRegistry
from mcp_host.errors import ModelLoadError
from tests.test_api_openai import scripted

pytestmark = pytest.mark.anyio
GEMMA = "google/gemma-3-270m"
SMOL = "HuggingFaceTB/SmolLM2-135M-Instruct"


class CountingLoader:
    def __init__(self) -> None:
        self.loads: list[tuple[str, LoadOptions]] = []

    def __call__(self, path: Path, name: str, options: LoadOptions, progress: object) -> LoadedModel:
        self.loads.append((name, options))
        return load_with_llama_cpp(path, name, options, progress)  # type: ignore[arg-type]


async def one_token(backend: LoadedModel) -> int:
    assert isinstance(backend, Backend)
    prompt = backend.tokenize("Hello")
    async with backend.generate(prompt, GenerationParams(max_tokens=1, temperature=0.0)) as generation:
        return [token async for token in generation][0]


def test_gguf_headers_are_read_without_llama_cpp(lmstudio_models: Path) -> None:
    found = {model.id: model for model in discover_models()}
    assert set(found) == {GEMMA, SMOL}
    gemma = read_gguf_info(found[GEMMA].path)
    assert (gemma.architecture, gemma.quantization, gemma.context_length, gemma.kind) == (
        "gemma3",
        "Q4_K_M",
        32768,
        "llm",
    )
    smol = read_gguf_info(found[SMOL].path)
    assert (smol.architecture, smol.quantization, smol.kind) == ("llama", "Q4_1", "llm")


def test_a_file_that_is_not_gguf_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + struct.pack("<I", 3) + struct.pack("<Q", 0))  # cut short after the tensor count
    with pytest.raises(ModelLoadError, match="bad.gguf: not a readable GGUF file"):
        read_gguf_info(bad)
    bad.write_bytes(b"not a model at all")
    with pytest.raises(ModelLoadError, match="no GGUF magic"):
        read_gguf_info(bad)


async def test_listing_names_every_model_on_disk_and_its_state(lmstudio_models: Path) -> None:
    async with ModelRegistry(discover=discover_models) as models:
        rows = {row.id: row for row in models.listing()}
        assert {row.state for row in rows.values()} == {"not-loaded"}
        assert rows[GEMMA].size_bytes > 100_000_000 and rows[GEMMA].architecture == "gemma3"
        async with models.use("SmolLM2-135M-Instruct") as backend:  # the repo part alone names it too
            assert backend.name == SMOL
            rows = {row.id: row for row in models.listing()}
            assert rows[SMOL].state == "loaded" and rows[SMOL].loaded_context_length == backend.context_length
            assert rows[GEMMA].state == "not-loaded"
        with pytest.raises(ModelNotFoundError, match=r"no model 'qwen-7b' \(models here: .*gemma-3-270m"):
            models.resolve("qwen-7b")


async def test_a_just_in_time_load_reports_progress_and_concurrent_requests_share_it(lmstudio_models: Path) -> None:
    loader = CountingLoader()
    events: list[list[LoadEvent]] = [[], []]
    async with ModelRegistry(discover=discover_models, loader=loader) as models:

        async def request(index: int) -> int:
            async def on_load(event: LoadEvent) -> None:
                events[index].append(event)

            async with models.use(GEMMA, progress=on_load) as backend:
                return await one_token(backend)

        tokens: list[int] = []
        async with anyio.create_task_group() as tg:
            for index in range(2):
                tg.start_soon(lambda i=index: _append(tokens, request(i)))
    assert len(loader.loads) == 1 and len(tokens) == 2 and tokens[0] == tokens[1]
    loading = next(batch for batch in events if any(isinstance(e, LoadFinished) for e in batch))
    assert isinstance(loading[0], LoadStarted) and isinstance(loading[-1], LoadFinished)
    progress = [event.progress for event in loading if isinstance(event, LoadProgress)]
    assert progress == sorted(progress) and progress[-1] == 1.0 and len(progress) >= 2
    assert loading[-1].load_time_s > 0
    waiting = next(batch for batch in events if batch is not loading)
    assert waiting in ([], [LoadStarted(GEMMA)])  # it waited for the other request's load


async def _append(into: list[int], work: object) -> None:
    into.append(await work)  # type: ignore[misc]


async def test_one_resident_model_makes_room_and_a_busy_model_is_waited_for(lmstudio_models: Path) -> None:
    loader = CountingLoader()
    async with ModelRegistry(discover=discover_models, loader=loader, resident=1) as models:
        order: list[str] = []
        first_in_use = anyio.Event()
        release_first = anyio.Event()

        async def hold_gemma() -> None:
            async with models.use(GEMMA) as backend:
                order.append("gemma loaded")
                first_in_use.set()
                await release_first.wait()
                await one_token(backend)
                order.append("gemma done")

        async def then_smol() -> None:
            await first_in_use.wait()
            async with models.use(SMOL) as backend:  # waits: the only slot is busy
                order.append("smol loaded")
                await one_token(backend)

        async with anyio.create_task_group() as tg:
            tg.start_soon(hold_gemma)
            tg.start_soon(then_smol)
            await first_in_use.wait()
            await anyio.sleep(0.3)
            assert order == ["gemma loaded"]  # still waiting, not failed
            release_first.set()
        assert order == ["gemma loaded", "gemma done", "smol loaded"]
        assert [row.id for row in models.listing() if row.state == "loaded"] == [SMOL]


async def test_an_idle_model_is_unloaded_after_its_ttl(lmstudio_models: Path) -> None:
    async with ModelRegistry(discover=discover_models, resident=2, idle_ttl_s=0.5) as models:
        async with models.use(GEMMA), models.use(SMOL):  # in use: never evicted, however long loading SMOL takes
            assert {row.id for row in models.listing() if row.state == "loaded"} == {GEMMA, SMOL}
        with anyio.fail_after(10):  # both idle now: gone after their TTL
            while any(row.state == "loaded" for row in models.listing()):
                await anyio.sleep(0.05)
        # A loaded-on-request model with its own TTL of none stays.
        instance = await models.load(GEMMA, ttl_s=None)
        await anyio.sleep(1.0)
        assert [row.id for row in models.listing() if row.state == "loaded"] == [GEMMA]
        assert await models.unload(instance) and not await models.unload(instance)


async def test_embeddings_get_their_own_instance_and_a_replay_cannot_embed(lmstudio_models: Path) -> None:
    async with ModelRegistry(discover=discover_models, resident=2) as models:
        async with models.embedder(GEMMA) as embedder:
            result = await embedder.embed(["a cat", "a cat", "stock markets"])
        same, also_same, other = result.vectors
        assert same == also_same and same != other and abs(sum(x * x for x in same) - 1.0) < 1e-3
        assert result.prompt_tokens > 3
    replay = scripted(name="openai/gpt-oss-20b")
    async with ModelRegistry(discover=list, preloaded=replay) as models:
        with pytest.raises(UnsupportedFeatureError, match="cannot embed"):
            async with models.embedder(None):
                pass


async def test_a_preloaded_backend_not_owned_is_never_closed(lmstudio_models: Path) -> None:
    replay = scripted(name="openai/gpt-oss-20b")
    async with ModelRegistry(discover=discover_models, preloaded=replay, resident=1) as models:
        assert models.resolve(None) == ("openai/gpt-oss-20b", None)
        async with models.use(GEMMA):  # the replay is not a file: it neither counts nor is unloaded
            assert {row.id for row in models.listing() if row.state == "loaded"} == {"openai/gpt-oss-20b", GEMMA}
        with pytest.raises(UnsupportedFeatureError, match="cannot be loaded again"):  # nor unloaded on request
            await models.unload("openai/gpt-oss-20b")
        assert models.resolve(None) == ("openai/gpt-oss-20b", None)
    assert replay.remaining == 0  # still usable: nothing closed it
