"""A model being loaded is listed with its progress: the registry's `loading()`, `GET /v1/models/loading`, and a
`loading` object on the model in `GET /api/v1/models`, from the request that starts the load until it ends.

Every load is llama.cpp's own (`load_with_llama_cpp`) on the real GGUFs of the `lmstudio_models` folder. A load of
gemma-3-270m takes under a second, most of it before llama.cpp reports any progress, so a test holds the real load
on a gate: inside llama.cpp's progress callback (the load is paused midway, its first progress reported), or just
before llama.cpp starts, and lets it go once it has looked.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from mcp_host.backends.loading import LoadedModel, LoadEvent, LoadOptions, LoadProgress
from mcp_host.backends.loading import load_with_llama_cpp as llama_load
from mcp_host.backends.models import FoundModel, discover_models
from mcp_host.backends.registry import ModelRegistry
from tests.test_api_lmstudio_v1 import V1, v1_server

pytestmark = pytest.mark.anyio
GEMMA = "google/gemma-3-270m"
SMOL = "HuggingFaceTB/SmolLM2-135M-Instruct"
BROKEN = "broken/gemma-cut"
DOCUMENTED = {  # LM Studio's documented fields of an LLM in GET /api/v1/models
    "type",
    "publisher",
    "key",
    "display_name",
    "architecture",
    "quantization",
    "size_bytes",
    "params_string",
    "loaded_instances",
    "max_context_length",
    "format",
    "capabilities",
    "description",
}
GATE_S = 60.0  # the longest a load is held should the test fail before it opens the gate


class GatedLoader:
    """llama.cpp's loader, held once on `gate`: at its first progress past 0 (midway), or `before` it starts."""

    def __init__(self, *, before: bool = False, before_reports: tuple[float, ...] = ()) -> None:
        self.before = before
        self.before_reports = before_reports  # reported to the registry before llama.cpp starts
        self.paused = threading.Event()
        self.gate = threading.Event()
        self.paused_at: float | None = None

    def __call__(self, path: Path, name: str, options: LoadOptions, progress: Callable[[float], None]) -> LoadedModel:
        for value in self.before_reports:
            progress(value)
        if self.before:
            self._hold(0.0)

        def report(value: float) -> None:
            progress(value)
            if value > 0:
                self._hold(value)

        return llama_load(path, name, options, report)

    def _hold(self, value: float) -> None:
        if not self.paused.is_set():
            self.paused_at = value
            self.paused.set()
            self.gate.wait(GATE_S)

    async def wait_paused(self) -> None:
        with anyio.fail_after(GATE_S):
            while not self.paused.is_set():  # noqa: ASYNC110 - a threading.Event set by the loading thread
                await anyio.sleep(0.005)


class Readings:
    """What a client polling both listings saw of one model, in order."""

    def __init__(self, api: V1, model: str) -> None:
        self.api = api
        self.model = model
        self.progress: list[float] = []  # from both endpoints, in the order they were read
        self.elapsed: list[float] = []

    async def read(self) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        """(the model's entry in /v1/models/loading or None, its entry in /api/v1/models)."""
        loads = (await self.api.http.get("/v1/models/loading")).json()["data"]
        mine = [load for load in loads if load["model"] == self.model]
        assert len(mine) <= 1 and len(loads) == len(mine)  # nothing else loads in these tests
        if mine:
            assert set(mine[0]) == {"model", "instance_id", "progress", "elapsed_s"}
            self.progress.append(mine[0]["progress"])
            self.elapsed.append(mine[0]["elapsed_s"])
        listing = (await self.api.http.get("/api/v1/models")).json()["models"]
        entry = next(model for model in listing if model["key"] == self.model)
        if "loading" in entry:
            assert set(entry["loading"]) == {"progress", "elapsed_s"} and entry["loaded_instances"] == []
            self.progress.append(entry["loading"]["progress"])
            self.elapsed.append(entry["loading"]["elapsed_s"])
        return (mine[0] if mine else None), entry

    def check(self) -> None:
        assert all(0.0 <= value <= 1.0 for value in self.progress)
        assert self.progress == sorted(self.progress), self.progress  # never goes back
        assert self.elapsed == sorted(self.elapsed)


def cut_gemma(models: Path) -> Path:
    """A GGUF whose header reads well but whose tensors are cut off: llama.cpp fails to load it."""
    source = next(path for path in (models / GEMMA).iterdir() if path.suffix == ".gguf")
    folder = models / BROKEN
    folder.mkdir(parents=True)
    with source.open("rb") as whole, (folder / "gemma-cut.gguf").open("wb") as cut:
        cut.write(whole.read(40_000_000))  # the metadata and tensor table, not the tensors' data
    return folder / "gemma-cut.gguf"


async def test_opening_a_session_lists_its_model_loading_until_it_is_loaded(
    tmp_path: Path, lmstudio_models: Path
) -> None:
    loader = GatedLoader()
    scans: list[float] = []

    def discover() -> list[FoundModel]:
        scans.append(time.monotonic())
        return discover_models()

    opened: list[int] = []
    async with v1_server(tmp_path, ModelRegistry(discover=discover, loader=loader)) as api:
        seen = Readings(api, GEMMA)
        load, entry = await seen.read()
        assert load is None and "loading" not in entry and entry["loaded_instances"] == []

        async def open_session() -> None:
            opened.append((await api.http.post("/v1/sessions", json={"model": GEMMA})).status_code)

        async with anyio.create_task_group() as tg:
            tg.start_soon(open_session)
            try:
                await loader.wait_paused()
                load, entry = await seen.read()
                await anyio.sleep(0.05)
                again, _ = await seen.read()
            finally:
                loader.gate.set()
            while not opened:
                await seen.read()
        assert opened == [201]
        # Held midway: what llama.cpp's progress callback last said is what both listings show.
        assert loader.paused_at is not None and 0 < loader.paused_at < 1
        assert load == {
            "model": GEMMA,
            "instance_id": GEMMA,
            "progress": round(loader.paused_at, 4),
            "elapsed_s": load["elapsed_s"],
        }
        assert set(entry) == DOCUMENTED | {"loading"} and entry["loading"]["progress"] == load["progress"]
        assert again is not None and again["elapsed_s"] >= load["elapsed_s"] + 0.04  # a sleep of 0.05 later
        seen.check()

        load, entry = await seen.read()
        assert load is None and set(entry) == DOCUMENTED
        assert [instance["id"] for instance in entry["loaded_instances"]] == [GEMMA]
        scanned = len(scans)
        assert (await api.http.get("/v1/models/loading")).json() == {"data": []}
        assert len(scans) == scanned  # the loads alone: no look at the disk


async def test_a_load_requested_through_the_api_is_listed_and_answers_as_before(
    tmp_path: Path, lmstudio_models: Path
) -> None:
    loader = GatedLoader()
    answers: list[dict[str, Any]] = []
    async with v1_server(tmp_path, ModelRegistry(discover=discover_models, loader=loader)) as api:
        seen = Readings(api, SMOL)

        async def load() -> None:
            body = {"model": SMOL, "context_length": 2048, "echo_load_config": True}
            answers.append((await api.http.post("/api/v1/models/load", json=body)).json())

        async with anyio.create_task_group() as tg:
            tg.start_soon(load)
            try:
                await loader.wait_paused()
                held, entry = await seen.read()
                await anyio.sleep(0.2)
            finally:
                loader.gate.set()
            while not answers:
                await seen.read()
        assert held is not None and held["instance_id"] == SMOL and 0 < held["progress"] < 1
        assert entry["loading"]["progress"] == held["progress"]
        seen.check()
        (answer,) = answers
        assert answer == {
            "type": "llm",
            "instance_id": SMOL,
            "load_time_seconds": answer["load_time_seconds"],
            "status": "loaded",
            "load_config": {"context_length": 2048},
        }
        assert answer["load_time_seconds"] >= 0.19  # the 0.2 s it was held counts
        load_entry, entry = await seen.read()
        assert load_entry is None and "loading" not in entry
        assert entry["loaded_instances"] == [{"id": SMOL, "config": {"context_length": 2048}}]


async def test_a_failed_load_leaves_no_loading_entry(tmp_path: Path, lmstudio_models: Path) -> None:
    cut_gemma(lmstudio_models)
    loader = GatedLoader(before=True)
    answers: list[tuple[int, dict[str, Any]]] = []
    async with v1_server(tmp_path, ModelRegistry(discover=discover_models, loader=loader)) as api:
        seen = Readings(api, BROKEN)

        async def load() -> None:
            response = await api.http.post("/api/v1/models/load", json={"model": BROKEN})
            answers.append((response.status_code, response.json()))

        async with anyio.create_task_group() as tg:
            tg.start_soon(load)
            try:
                await loader.wait_paused()
                held, entry = await seen.read()
            finally:
                loader.gate.set()
        assert held is not None and held["progress"] == 0.0 and entry["loading"]["progress"] == 0.0
        ((status, body),) = answers
        assert status == 502 and "could not load" in body["error"]["message"]
        assert "gemma-cut.gguf" in body["error"]["message"]
        load, entry = await seen.read()
        assert load is None and "loading" not in entry and entry["loaded_instances"] == []
        # Nothing of the failed load stays behind: asked again, llama.cpp is tried again and fails again.
        status = (await api.http.post("/api/v1/models/load", json={"model": BROKEN})).status_code
        assert status == 502 and (await api.http.get("/v1/models/loading")).json() == {"data": []}
        seen.check()


async def test_the_registry_keeps_progress_within_0_and_1_and_never_going_back(lmstudio_models: Path) -> None:
    """A loader that reports a phase over again (0.6, then 0.3, NaN, -1) before llama.cpp's own 0 … 1."""
    loader = GatedLoader(before=True, before_reports=(0.6, 0.3, math.nan, -1.0))
    events: list[LoadEvent] = []

    async def hear(event: LoadEvent) -> None:
        events.append(event)

    async with ModelRegistry(discover=discover_models, loader=loader) as models:

        async def use() -> None:
            async with models.use(GEMMA, progress=hear, context_length=1024):
                pass

        async with anyio.create_task_group() as tg:
            tg.start_soon(use)
            try:
                await loader.wait_paused()
                (load,) = models.loading()
                assert (load.model, load.instance_id, load.progress) == (GEMMA, GEMMA, 0.6)
            finally:
                loader.gate.set()
        assert models.loading() == [] and [instance for instance, _ in models.loaded()] == [GEMMA]
    progress = [event.progress for event in events if isinstance(event, LoadProgress)]
    assert 0.6 in progress and progress[-1] == 1.0 and progress == sorted(progress)  # 0.3, NaN, -1 never heard
