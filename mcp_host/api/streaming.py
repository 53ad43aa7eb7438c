"""Work that must end with its client: Server-Sent Events, and non-streamed answers that stop on a hang-up.

    return event_stream(produce, ping_s=15)          # `await produce(sink)` runs in the response's task group
    return await until_disconnected(request, work)   # `await work()`, cancelled if the client goes away

Both keep a turn in one task from start to end: `produce` runs beside the task that writes the events
and the one that waits for the client's `http.disconnect`; a hang-up cancels it, and with it the
generation. No generator that holds a task group or a cancel scope is ever handed to Starlette.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

__all__ = ["EventSink", "ServerSentEvent", "event_stream", "until_disconnected"]

EventSink = MemoryObjectSendStream[ServerSentEvent]
PING_S = 15.0  # a comment line this often keeps proxies from cutting a stream that waits (on an approval)
_BUFFER = 32


class _EventStream(EventSourceResponse):
    def __init__(
        self,
        source: MemoryObjectReceiveStream[ServerSentEvent],
        sender: Callable[[], Coroutine[Any, Any, None]],
        ping_s: float,
        finished: Callable[[], None] | None,
    ) -> None:
        super().__init__(_relay(source), ping=ping_s, data_sender_callable=sender)
        self._finished = finished

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            if self._finished is not None:
                self._finished()


def event_stream(
    produce: Callable[[EventSink], Awaitable[None]],
    *,
    ping_s: float = PING_S,
    finished: Callable[[], None] | None = None,
) -> EventSourceResponse:
    """An SSE response whose events `produce` sends; `finished()` runs once the response is over, however."""
    sink, source = anyio.create_memory_object_stream[ServerSentEvent](_BUFFER)

    async def sender() -> None:
        async with sink:
            await produce(sink)

    return _EventStream(source, sender, ping_s, finished)


async def _relay(source: MemoryObjectReceiveStream[ServerSentEvent]) -> AsyncIterator[ServerSentEvent]:
    async with source:  # holds no cancel scope: safe to leave suspended
        async for event in source:
            yield event


async def until_disconnected(request: Request, work: Callable[[], Awaitable[Response]]) -> Response:
    """`work()`'s response, or nothing anyone reads (499) once the client has gone and `work` was cancelled.

    The request body must have been read already: what arrives next on `receive` is the disconnect.
    """
    response: Response | None = None
    try:
        async with anyio.create_task_group() as tg:

            async def watch() -> None:
                while (await request.receive())["type"] != "http.disconnect":
                    pass
                tg.cancel_scope.cancel()

            tg.start_soon(watch)
            response = await work()
            tg.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1:  # an error of `work`: for the app's exception handlers, as raised
            raise group.exceptions[0] from None
        raise
    return response if response is not None else Response(status_code=499)
