"""How a chat's turns run: one at a time, each in a task of its own, handing its events over a memory stream.

    turns = TurnSlot(chat_turn)
    async with turns.in_block(TurnInput("What time is it?")) as events:
        async for event in events: ...

The consumer may stop early, be cancelled, or read from another task: the turn's cancel scope stops
what is left of it, and the events still end with `turn.completed` (stop reason `cancelled`). A host
bug that ends the turn reaches the reader of the events as itself, once they are exhausted.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from mcp_host.agent.attachments import Attachment
from mcp_host.agent.calls import Emit
from mcp_host.agent.events import Event, TurnCompleted, TurnStats
from mcp_host.errors import ChatBusyError, ChatClosedError
from mcp_host.prompt.harmony import Effort


class TurnEvents:
    """The events of one running turn, in order; an async iterator safe to read from any task.

    Raises, once the events are exhausted, the host bug that ended the turn, if one did.
    """

    def __init__(self, receive: MemoryObjectReceiveStream[Event], running: RunningTurn) -> None:
        self._receive = receive
        self._running = running

    def __aiter__(self) -> TurnEvents:
        return self

    async def __anext__(self) -> Event:
        try:
            return await self._receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            if self._running.failure is not None:
                raise self._running.failure from None
            raise StopAsyncIteration from None

    def cancel(self) -> None:
        """Stop the turn (from any task); the events end."""
        self._running.scope.cancel()
        self._receive.close()


class RunningTurn:
    """A turn from its claim to its end: what stops it, when it has stopped, and how it went."""

    def __init__(self) -> None:
        self.scope = anyio.CancelScope()
        self.done = anyio.Event()
        self.failure: Exception | None = None
        self.stats = TurnStats()
        self.completed = False


@dataclass(frozen=True)
class TurnInput:
    """What a turn starts from: the user's words, the resources attached, and functions offered this turn only."""

    text: str | None  # None: a restored turn goes on with the calls it was waiting on (`Chat.resume`)
    reasoning: Effort | None = None
    attachments: tuple[Attachment, ...] = ()
    functions: tuple[Callable[..., Any], ...] = ()
    call_ids: tuple[str, ...] = ()  # the ids the resumed calls were announced with


# What a turn does, given where its events go and the stats it fills in.
TurnBody = Callable[[TurnInput, Emit, TurnStats], Awaitable[None]]


class TurnSlot:
    """A chat's turns, one at a time: each claims the slot, runs the chat's `body` in a task and hands its events
    over a memory stream; the slot is free again once the turn has ended."""

    def __init__(self, body: TurnBody, host_tasks: anyio.abc.TaskGroup | None = None) -> None:
        self._body = body
        self._host_tasks = host_tasks  # where `stream()` runs turns when the chat itself was not entered
        self.tasks: anyio.abc.TaskGroup | None = None  # the chat's own, while it is entered (`async with chat`)
        self.running: RunningTurn | None = None  # also set while the chat's tools change: no turn starts then
        self.closed = False

    def close(self) -> None:
        """Take no more turns, and stop the one running."""
        self.closed = True
        if self.running is not None:
            self.running.scope.cancel()

    async def claim(self) -> RunningTurn:
        """Raises `ChatClosedError`, and `ChatBusyError` while another turn runs."""
        if self.closed:
            raise ChatClosedError("this chat is closed")
        previous = self.running
        if previous is not None and previous.scope.cancel_called:
            with anyio.move_on_after(30):  # a reader that went away: its turn is stopping
                await previous.done.wait()
        if self.running is not None:
            raise ChatBusyError("this chat is already answering; wait for turn.completed")
        self.running = RunningTurn()
        return self.running

    def task_group(self) -> anyio.abc.TaskGroup:
        tasks = self.tasks or self._host_tasks
        if tasks is None:
            raise ChatClosedError(
                "this chat has no task group to run turns in: use `async with chat:` or `async with chat.turn(text)`"
            )
        return tasks

    async def start(self, tasks: anyio.abc.TaskGroup, running: RunningTurn, turn_input: TurnInput) -> TurnEvents:
        """Run the claimed turn in a task of `tasks`; its events."""
        send, receive = anyio.create_memory_object_stream[Event](math.inf)
        try:
            await tasks.start(self._run, turn_input, send, running)
        except BaseException:
            self.running = None
            send.close()
            receive.close()
            raise
        return TurnEvents(receive, running)

    async def _run(
        self,
        turn_input: TurnInput,
        send: MemoryObjectSendStream[Event],
        running: RunningTurn,
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        try:
            task_status.started()
            with running.scope:
                try:
                    await self._body(turn_input, send.send, running.stats)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    pass  # nobody reads the events any more: the turn ends
                except Exception as exc:  # noqa: BLE001 - a host bug: re-raised to the reader of the events
                    running.failure = _single(exc)
        finally:
            if not running.completed and running.failure is None:  # cancelled: the events still end properly
                try:
                    send.send_nowait(TurnCompleted(stop_reason="cancelled", stats=running.stats))
                except (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.WouldBlock):
                    pass
            send.close()
            self.running = None
            running.done.set()

    @asynccontextmanager
    async def in_block(self, turn_input: TurnInput) -> AsyncIterator[TurnEvents]:
        """The turn in a task group of the caller's block (`Chat.turn`); leaving the block cancels what is left."""
        running = await self.claim()
        failure: Exception | None = None
        async with anyio.create_task_group() as tg:
            events = await self.start(tg, running, turn_input)
            try:
                yield events
            except Exception as exc:  # noqa: BLE001 - re-raised below as it is, not wrapped in the group's
                failure = exc
            finally:
                events.cancel()
        if failure is not None:
            raise failure

    def stream(self, turn_input: TurnInput) -> TurnStream:
        """The turn in the chat's task group (or its host's), started when its events are first read (`Chat.send`)."""
        return TurnStream(self, turn_input)


def _single(exc: Exception) -> Exception:
    """The one exception a task group wrapped, so that a host bug reaches the reader as itself."""
    while isinstance(exc, ExceptionGroup) and len(exc.exceptions) == 1 and isinstance(exc.exceptions[0], Exception):
        exc = exc.exceptions[0]
    return exc


class TurnStream:
    """`Chat.send()`: the turn starts at the first `anext()`; dropping or cancelling the reader cancels it."""

    def __init__(self, slot: TurnSlot, turn_input: TurnInput) -> None:
        self._slot = slot
        self._input = turn_input
        self._events: TurnEvents | None = None
        self._running: RunningTurn | None = None

    def __aiter__(self) -> TurnStream:
        return self

    async def __anext__(self) -> Event:
        if self._events is None:
            slot = self._slot
            tasks = slot.task_group()
            self._running = await slot.claim()
            self._events = await slot.start(tasks, self._running, self._input)
        try:
            return await self._events.__anext__()
        except StopAsyncIteration:
            raise
        except BaseException:  # the reader was cancelled: so is the turn, before the reader goes on
            await self.aclose()
            raise

    async def aclose(self) -> None:
        """Cancel the turn and wait until it has stopped (its tool calls too). Idempotent."""
        if self._events is None or self._running is None:
            return
        self._events.cancel()
        with anyio.CancelScope(shield=True), anyio.move_on_after(30):
            await self._running.done.wait()

    def __del__(self) -> None:
        if self._events is not None:
            self._events.cancel()  # `break` out of the loop: the turn stops now, not at garbage collection
