"""Running a blocking engine in a worker thread without ever blocking the event loop.

In-process engines (llama.cpp, MLX) generate in a plain loop. `ThreadedGeneration` runs that loop
in `anyio.to_thread`, hands each token to the event loop through a memory object stream, holds
the model's lock for the whole generation (one context, not thread-safe; anyio's lock is FIFO,
so chats sharing a model take turns fairly), and stops the loop within a token when the consumer
goes away.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import AsyncIterator, Callable
from types import TracebackType

import anyio
import anyio.abc
import anyio.from_thread
import anyio.to_thread

from mcp_host.backends.base import BackendError, GenerationStats, StopReason
from mcp_host.errors import GenerationError


class CancelFlag:
    """Set by the event loop, read by the worker thread before each token."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def __bool__(self) -> bool:
        return self._event.is_set()


# The worker: generate, calling `emit(token)` for each token, checking `cancel` between tokens,
# filling in the prompt figures of `stats`; returns why it stopped.
Worker = Callable[[CancelFlag, Callable[[int], None], GenerationStats], StopReason]


class ThreadedGeneration:
    """A `Generation` backed by a worker thread."""

    def __init__(self, lock: anyio.Lock, worker: Worker, stats: GenerationStats) -> None:
        self.stats = stats
        self._lock = lock
        self._worker = worker
        self._cancel = CancelFlag()
        self._send, self._receive = anyio.create_memory_object_stream[int](math.inf)
        self._task_group: anyio.abc.TaskGroup | None = None
        self._failure: BaseException | None = None

    async def __aenter__(self) -> ThreadedGeneration:
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        self._task_group.start_soon(self._run)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._cancel.set()
        assert self._task_group is not None
        try:
            await self._task_group.__aexit__(exc_type, exc, tb)
        finally:
            self._receive.close()
            if self.stats.stop_reason is None:
                self.stats.finish("cancelled")

    def __aiter__(self) -> AsyncIterator[int]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[int]:
        if self._task_group is None:
            raise RuntimeError("use the generation as `async with backend.generate(...) as generation`")
        async for token in self._receive:
            yield token
        if self._failure is not None:
            raise self._failure

    async def _run(self) -> None:
        handoff = _handoff()

        def emit(token: int) -> None:
            self.stats.mark_token()
            handoff(self._send.send_nowait, token)

        def work() -> StopReason:
            return self._worker(self._cancel, emit, self.stats)

        async with self._send:
            try:
                async with self._lock:
                    self.stats.started_at = (
                        time.perf_counter()
                    )  # queueing behind another chat is not this one's latency
                    reason = await anyio.to_thread.run_sync(work)
            except BackendError as exc:
                self._failure = exc
                reason = "error"
            except Exception as exc:  # noqa: BLE001 - the engine's own exceptions enter our code here
                self._failure = GenerationError(f"generation failed: {type(exc).__name__}: {exc}")
                self._failure.__cause__ = exc
                reason = "error"
            self.stats.finish(reason)  # the worker itself says "cancelled" when it saw the flag


def _handoff() -> Callable[[Callable[[int], None], int], None]:
    """How the worker hands a token to the event loop without waiting for it.

    On asyncio, `call_soon_threadsafe` queues the hand-off and returns at once, so the worker goes
    straight on to the next token; `anyio.from_thread.run_sync` would wait for the loop each time,
    which on a small machine costs several percent of decode speed. Other event loops use anyio's way.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is not None:
        running = loop

        def queue(send: Callable[[int], None], token: int) -> None:
            running.call_soon_threadsafe(send, token)

        return queue

    def wait(send: Callable[[int], None], token: int) -> None:
        anyio.from_thread.run_sync(send, token)

    return wait
