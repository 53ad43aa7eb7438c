"""Running a blocking engine in a worker thread without ever blocking the event loop.

In-process engines (llama.cpp, MLX) generate in a plain loop. `ThreadedGeneration` runs that loop
in `anyio.to_thread`, holds the model's lock for the whole generation (one context, not
thread-safe; anyio's lock is FIFO, so chats sharing a model take turns fairly), and stops the loop
within a token when the consumer goes away.

Tokens cross to the event loop through a `TokenSink`: a queue the consumer drains, and a wake-up
sent only while the consumer waits for a token. The wake-up gives the event loop a turn, and that
turn needs the GIL. Sent as soon as a token is sampled, it lands in the few Python statements the
worker still runs before its next engine call (llama-cpp-python releases the GIL in every call into
llama.cpp), and the worker then waits for the whole turn: 0.1-0.3 ms a token, 1-2% of decode speed
on a small machine (`bench/engine.py`). So an engine that knows when it is about to block in native
code queues with `put` and wakes with `flush` at that moment; the turn then runs while the engine
computes. Others call `sink(token)`, which does both.

A fast model (hundreds of tokens a second: gpt-oss on a GPU, a small model on a CPU) would wake the loop for
every token, and each wake-up needs a core while the engine's threads hold them all: measured on the tiny
gpt-oss with 2 threads on 2 cores, the host decoded at half the bare speed. So `flush` wakes the consumer only
when the oldest queued token has waited `BATCH_S`, or when tokens come slower than that anyway (a slow model:
each at once; the first token always at once); in between, tokens gather and cross together. When the pace drops
from fast to slow, the tokens gathered then wait for one more decode.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from types import TracebackType

import anyio
import anyio.abc
import anyio.from_thread
import anyio.to_thread

from mcp_host.backends.base import BackendError, GenerationStats, StopReason
from mcp_host.errors import GenerationError

BATCH_S = 0.02  # tokens faster than this cross to the event loop together, at most this late


class CancelFlag:
    """Set by the event loop, read by the worker thread before each token."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def __bool__(self) -> bool:
        return self._event.is_set()


class TokenSink:
    """The worker's end of the hand-off to the event loop; `ThreadedGeneration` drains the other end."""

    def __init__(
        self,
        stats: GenerationStats,
        wake: Callable[[Callable[[], None]], object],
        *,
        batch_s: float = BATCH_S,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._stats = stats
        self._batch_s = batch_s
        self._clock = clock
        self._oldest: float | None = None  # when the oldest token not yet handed over was queued
        self._last_flush = 0.0  # when `flush` was last called: the engine's pace
        self._handed = False  # the first token crosses at once (time to first token is not batched)
        self._wake = wake  # runs a callable on the event loop, from the worker thread
        self._tokens: deque[int] = deque()
        self._lock = threading.Lock()
        self._waiter: anyio.Event | None = None
        self._finished = False

    def __call__(self, token: int) -> None:
        """Queue a token and wake the consumer (`put` then `flush`)."""
        self.put(token)
        self.flush()

    def put(self, token: int) -> None:
        """Queue a token and count it in the stats; the consumer sees it at the next `flush` that is due."""
        self._stats.mark_token()
        if self._oldest is None:
            self._oldest = self._clock()
        self._tokens.append(token)

    def flush(self) -> None:
        """Wake the consumer if it waits and a queued token is due (see the module); otherwise do nothing, cheaply."""
        now = self._clock()
        pace, self._last_flush = now - self._last_flush, now
        with self._lock:
            waiter = self._waiter
            if waiter is None or not self._tokens:
                return
            oldest = self._oldest if self._oldest is not None else now
            if self._handed and pace < self._batch_s and now - oldest < self._batch_s:
                return  # tokens come fast: gather them
            self._waiter, self._oldest, self._handed = None, None, True
        self._wake(waiter.set)

    # -- the event loop's end --

    async def next_token(self) -> int | None:
        """The next token, waiting for the worker if need be; None once it finished and all were taken."""
        while True:
            with self._lock:
                if self._tokens:
                    return self._tokens.popleft()
                if self._finished:
                    return None
                waiter = self._waiter = anyio.Event()
            await waiter.wait()

    def finish(self) -> None:
        """The worker returned: wake the consumer for whatever is still queued, then the end."""
        with self._lock:
            self._finished = True
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            waiter.set()


# The worker: generate, handing each token to the sink (`put` + `flush`, or `sink(token)`), checking
# `cancel` between tokens, filling in the prompt figures of `stats`; returns why it stopped.
Worker = Callable[[CancelFlag, TokenSink, GenerationStats], StopReason]


class ThreadedGeneration:
    """A `Generation` backed by a worker thread."""

    def __init__(self, lock: anyio.Lock, worker: Worker, stats: GenerationStats) -> None:
        self.stats = stats
        self._lock = lock
        self._worker = worker
        self._cancel = CancelFlag()
        self._sink: TokenSink | None = None
        self._task_group: anyio.abc.TaskGroup | None = None
        self._failure: BaseException | None = None

    async def __aenter__(self) -> ThreadedGeneration:
        self._sink = TokenSink(self.stats, _waker())
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
            if self.stats.stop_reason is None:
                self.stats.finish("cancelled")

    def __aiter__(self) -> AsyncIterator[int]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[int]:
        sink = self._sink
        if sink is None:
            raise RuntimeError("use the generation as `async with backend.generate(...) as generation`")
        while (token := await sink.next_token()) is not None:
            yield token
        if self._failure is not None:
            raise self._failure

    async def _run(self) -> None:
        sink = self._sink
        assert sink is not None

        def work() -> StopReason:
            return self._worker(self._cancel, sink, self.stats)

        try:
            async with self._lock:
                self.stats.started_at = time.perf_counter()  # queueing behind another chat is not this one's latency
                reason = await anyio.to_thread.run_sync(work)
        except BackendError as exc:
            self._failure = exc
            reason = "error"
        except Exception as exc:  # noqa: BLE001 - the engine's own exceptions enter our code here
            self._failure = GenerationError(f"generation failed: {type(exc).__name__}: {exc}")
            self._failure.__cause__ = exc
            reason = "error"
        finally:
            sink.finish()
        self.stats.finish(reason)  # the worker itself says "cancelled" when it saw the flag


def _waker() -> Callable[[Callable[[], None]], object]:
    """How the worker runs a callable on the event loop without waiting for it.

    On asyncio, `call_soon_threadsafe` queues it and returns at once, so the worker goes straight
    on; `anyio.from_thread.run_sync` would wait for the loop each time, which on a small machine
    costs several percent of decode speed. Other event loops use anyio's way.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return anyio.from_thread.run_sync
    return loop.call_soon_threadsafe
