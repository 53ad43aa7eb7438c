"""Loading one model file: how (`LoadOptions`, a `Loader`), and what a caller hears while it loads.

    await run_load(load_with_llama_cpp, slot, on_load)   # on_load gets LoadStarted, LoadProgress…, LoadFinished

The loader runs in a worker thread; its progress is kept on the target (never going back, for whoever polls)
and forwarded to `on_load` at most every 0.1 s. `ModelRegistry` decides which model to load and when; this
module only loads. Raises what the loader raises (`ModelLoadError` from the default one), never wrapped in an
`ExceptionGroup`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import anyio

from mcp_host.backends.base import Backend, ChatBackend

LoadedModel = Backend | ChatBackend


@dataclass(frozen=True)
class LoadOptions:
    """How to load a model file: its context, and whether for embeddings."""

    context_length: int | None = None
    embedding: bool = False


Loader = Callable[[Path, str, LoadOptions, Callable[[float], None]], LoadedModel]


@dataclass(frozen=True)
class LoadStarted:
    model: str


@dataclass(frozen=True)
class LoadProgress:
    model: str
    progress: float  # 0.0 … 1.0


@dataclass(frozen=True)
class LoadFinished:
    model: str
    load_time_s: float


LoadEvent = LoadStarted | LoadProgress | LoadFinished
OnLoad = Callable[[LoadEvent], Awaitable[None]]


@dataclass(frozen=True)
class Loading:
    """A model being loaded now: how far (0.0 … 1.0, never going back) and for how long."""

    model: str
    instance_id: str  # the instance it becomes (`<model>:embedding` for an embedding load)
    progress: float
    elapsed_s: float


class LoadTarget(Protocol):
    """Where a load keeps its state: `progress` while it runs, `backend` once loaded."""

    model: str
    path: Path | None
    options: LoadOptions
    backend: LoadedModel | None
    progress: float
    started: float


async def run_load(loader: Loader, slot: LoadTarget, progress: OnLoad | None) -> None:
    """Load `slot.path` with `loader` in a worker thread, setting `slot.backend`. Raises what the loader raises."""
    assert slot.path is not None
    path, model = slot.path, slot.model
    if progress is not None:
        await progress(LoadStarted(model))
    done = anyio.Event()

    def report(value: float) -> None:
        # A loader may start a phase over (or report NaN); whoever polls shows a bar that must not go back.
        slot.progress = min(max(slot.progress, value), 1.0)

    def load() -> None:
        # Set here, not from the awaited result: a cancelled caller still waits for the thread, and the
        # model it loaded must end up in the registry rather than lost.
        slot.backend = loader(path, model, slot.options, report)

    async def forward_progress() -> None:
        sent = -1.0
        while not done.is_set():
            if progress is not None and slot.progress > sent:
                sent = slot.progress
                await progress(LoadProgress(model, sent))
            with anyio.move_on_after(0.1):
                await done.wait()

    failure: Exception | None = None
    async with anyio.create_task_group() as tg:
        tg.start_soon(forward_progress)
        try:
            await anyio.to_thread.run_sync(load)
        except Exception as exc:
            # Raised past the task group it would come out as an ExceptionGroup, which no caller's
            # `except ModelLoadError` (nor the API's error mapping) recognises: a 500 instead of a clear error.
            failure = exc
        finally:
            done.set()
    if failure is not None:
        raise failure
    if progress is not None:
        await progress(LoadProgress(model, 1.0))
        await progress(LoadFinished(model, time.monotonic() - slot.started))


def load_with_llama_cpp(path: Path, name: str, options: LoadOptions, progress: Callable[[float], None]) -> LoadedModel:
    """The default loader: llama.cpp in this process. Blocking."""
    from mcp_host.backends.llama_cpp import LlamaCppBackend

    backend = LlamaCppBackend.load(
        path, context_length=options.context_length, embedding=options.embedding, progress=progress
    )
    backend.name = name
    return backend
