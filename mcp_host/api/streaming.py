"""Work that must end with its client or the server: Server-Sent Events, and non-streamed answers.

    return event_stream(produce, ping_s=15)          # `await produce(sink)` runs in the response's task group
    return await until_disconnected(request, work)   # `await work()`, cancelled if the client goes away

Both keep a turn in one task from start to end: `produce` runs beside the task that writes the events
and the one that waits for the client's `http.disconnect`; a hang-up cancels it, and with it the
generation. No generator that holds a task group or a cancel scope is ever handed to Starlette.

Streams never end by themselves, so a server that stops must tell them: `GracefulShutdown` wraps the
app, and once `begin()` is called every open stream's `produce` is cancelled and the stream sends its
farewell and ends (the OpenAI routes: an error event, then `[DONE]`), and every answer still being
computed is answered 503. The server's graceful wait then ends at once instead of at its timeout:

    app = GracefulShutdown(create_app(host, backend))
    app.begin(); server.should_exit = True           # uvicorn
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_host.errors import ApiError

__all__ = [
    "EventSink",
    "GracefulShutdown",
    "OPENAI_FAREWELL",
    "SHUTDOWN_CODE",
    "SHUTDOWN_MESSAGE",
    "ServerSentEvent",
    "event_stream",
    "until_disconnected",
]

EventSink = MemoryObjectSendStream[ServerSentEvent]
PING_S = 15.0  # a comment line this often keeps proxies from cutting a stream that waits (on an approval)
_BUFFER = 32
_SCOPE_KEY = "mcp_host.shutdown"  # the ASGI scope's extension key for the `GracefulShutdown` event

SHUTDOWN_MESSAGE = "the server is shutting down"
SHUTDOWN_CODE = "shutting_down"
OPENAI_FAREWELL = (
    ServerSentEvent(
        data=json.dumps(
            {"error": {"message": SHUTDOWN_MESSAGE, "type": "server_error", "code": SHUTDOWN_CODE}},
            separators=(",", ":"),
        )
    ),
    ServerSentEvent(data="[DONE]"),
)
"""How an OpenAI-compatible stream ends when the server stops: an error event, as OpenAI sends one, then `[DONE]`."""


class GracefulShutdown:
    """An ASGI app around `app` whose open streams and pending answers end when `begin()` is called.

    Idempotent; requests that arrive after `begin()` end at once the same way. Apps not wrapped in one
    (as in tests that drive `create_app` directly) never end their streams on their own.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._begun = anyio.Event()

    @property
    def begun(self) -> bool:
        return self._begun.is_set()

    def begin(self) -> None:
        self._begun.set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app({**scope, _SCOPE_KEY: self._begun}, receive, send)


def _shutdown_of(scope: Scope) -> anyio.Event | None:
    """The event of the `GracefulShutdown` around the app, if there is one."""
    event = scope.get(_SCOPE_KEY)
    return event if isinstance(event, anyio.Event) else None


class _EventStream(EventSourceResponse):
    def __init__(
        self,
        produce: Callable[[EventSink], Awaitable[None]],
        ping_s: float,
        finished: Callable[[], None] | None,
        farewell: Sequence[ServerSentEvent],
    ) -> None:
        self._sink, source = anyio.create_memory_object_stream[ServerSentEvent](_BUFFER)
        super().__init__(_relay(source), ping=ping_s, data_sender_callable=self._send_events)
        self._produce = produce
        self._finished = finished
        self._farewell = farewell
        self._shutdown: anyio.Event | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._shutdown = _shutdown_of(scope)
        try:
            await super().__call__(scope, receive, send)
        finally:
            if self._finished is not None:
                self._finished()

    async def _send_events(self) -> None:
        async with self._sink:  # closing it ends the response, after the events it holds
            if self._shutdown is None:
                await self._produce(self._sink)
            elif self._shutdown.is_set() or await _cut_short(self._shutdown, lambda: self._produce(self._sink)):
                for event in self._farewell:
                    await self._sink.send(event)


def event_stream(
    produce: Callable[[EventSink], Awaitable[None]],
    *,
    ping_s: float = PING_S,
    finished: Callable[[], None] | None = None,
    farewell: Sequence[ServerSentEvent] = OPENAI_FAREWELL,
) -> EventSourceResponse:
    """An SSE response whose events `produce` sends; `finished()` runs once the response is over, however.

    When the server shuts down, `produce` is cancelled and `farewell` ends the stream instead.
    """
    return _EventStream(produce, ping_s, finished, farewell)


async def _relay(source: MemoryObjectReceiveStream[ServerSentEvent]) -> AsyncIterator[ServerSentEvent]:
    async with source:  # holds no cancel scope: safe to leave suspended
        async for event in source:
            yield event


async def _cut_short(shutdown: anyio.Event, work: Callable[[], Awaitable[None]]) -> bool:
    """Run `work` until it ends or `shutdown` is set, which cancels it; whether it was cancelled so."""
    try:
        async with anyio.create_task_group() as tg:

            async def cancel_on_shutdown() -> None:
                await shutdown.wait()
                tg.cancel_scope.cancel()

            tg.start_soon(cancel_on_shutdown)
            await work()
            tg.cancel_scope.cancel()
            return False
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1:  # an error of `work`: raised as it was
            raise group.exceptions[0] from None
        raise
    return True


async def until_disconnected(request: Request, work: Callable[[], Awaitable[Response]]) -> Response:
    """`work()`'s response, or nothing anyone reads (499) once the client has gone and `work` was cancelled.

    Raises `ApiError` (503) when the server shuts down first. The request body must have been read
    already: what arrives next on `receive` is the disconnect.
    """
    response: Response | None = None
    shutdown = _shutdown_of(request.scope)
    try:
        async with anyio.create_task_group() as tg:

            async def watch() -> None:
                while (await request.receive())["type"] != "http.disconnect":
                    pass
                tg.cancel_scope.cancel()

            async def cancel_on_shutdown(event: anyio.Event) -> None:
                await event.wait()
                tg.cancel_scope.cancel()

            tg.start_soon(watch)
            if shutdown is not None:
                tg.start_soon(cancel_on_shutdown, shutdown)
            response = await work()
            tg.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1:  # an error of `work`: for the app's exception handlers, as raised
            raise group.exceptions[0] from None
        raise
    if response is None and shutdown is not None and shutdown.is_set():
        raise ApiError(503, SHUTDOWN_MESSAGE, code=SHUTDOWN_CODE)
    return response if response is not None else Response(status_code=499)
