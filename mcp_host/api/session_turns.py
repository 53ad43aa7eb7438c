"""A session's turns: `POST /v1/sessions/{id}/messages` and `.../resume`, their events as Server-Sent Events.

    POST /v1/sessions/{id}/messages   {"content": "...", "attachments": [{"server", "uri"}]}
                                      -> text/event-stream of loop events
    POST /v1/sessions/{id}/resume     -> text/event-stream of the interrupted turn, going on

A turn claims the session's stored record for as long as it runs (409 if another server runs one), writes
it when a call starts waiting for approval (before the client hears of it) and when the turn ends. See
`mcp_host.api.sessions` for the whole API.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mcp_host.agent import (
    ApprovalAnswer,
    ApprovalRequired,
    Attachment,
    Chat,
    ElicitationRequired,
    ErrorEvent,
    Event,
    ToolCallResult,
    TurnCompleted,
    TurnEvents,
    TurnStats,
)
from mcp_host.api.answers import json_dumps
from mcp_host.api.errors import server_api_error
from mcp_host.api.requests import AttachmentRef, BodyReader, SessionMessage
from mcp_host.api.session import FindSession, Session
from mcp_host.api.session_ledger import SessionLedger
from mcp_host.api.session_summary import default_title, title_of
from mcp_host.api.streaming import SHUTDOWN_CODE, SHUTDOWN_MESSAGE, EventSink, ServerSentEvent, event_stream
from mcp_host.backends.registry import ModelRegistry
from mcp_host.errors import ApiError, ServerError, StoreConflictError
from mcp_host.host import Host


def _sse(event: Event) -> ServerSentEvent:
    return ServerSentEvent(data=json_dumps(event.model_dump(mode="json")), event=event.type)


# How a session stream ends when the server shuts down: as a failed turn ends.
SHUTDOWN_FAREWELL = (
    _sse(ErrorEvent(message=SHUTDOWN_MESSAGE, kind=SHUTDOWN_CODE)),
    _sse(TurnCompleted(stop_reason="cancelled", stats=TurnStats())),
)


class SessionTurns:
    """Runs sessions' turns, each on a model taken from `models` for the turn, its record kept in `ledger`."""

    def __init__(
        self,
        find: FindSession,
        host: Host,
        models: ModelRegistry,
        ledger: SessionLedger,
        reader: BodyReader,
        *,
        ping_s: float,
    ) -> None:
        self.find = find
        self.host = host
        self.models = models
        self.ledger = ledger
        self.reader = reader
        self.ping_s = ping_s

    def routes(self) -> list[Route]:
        return [
            Route("/v1/sessions/{id}/messages", self.message, methods=["POST"]),
            Route("/v1/sessions/{id}/resume", self.resume, methods=["POST"]),
        ]

    async def message(self, request: Request) -> Response:
        session = await self.find(request)
        body = await self.reader.read(request, SessionMessage)
        async with session.writing:
            self._take_turn(session)
        try:
            attachments = await self._read_attachments(body.attachments)
        except BaseException:
            session.turn = None
            raise
        if session.state.title is None:  # the first message names the chat (an older record: its first one)
            session.state.title = title_of(session.state) or default_title(body.content)

        def start(chat: Chat) -> AbstractAsyncContextManager[TurnEvents]:
            return chat.turn(body.content, attachments=attachments)

        return await self._run_turn(session, body.content, start)

    async def resume(self, request: Request) -> Response:
        """Go on with a turn a restart interrupted: the calls it waited on (answered or asked again), else the
        user's message answered afresh. 409 when nothing was interrupted."""
        session = await self.find(request)
        state = session.state
        if not state.interrupted or not (state.waiting or state.running_text):
            raise ApiError(409, f"session {session.id} has no interrupted turn to resume")
        async with session.writing:
            self._take_turn(session)
        answers = dict(state.answers)
        call_ids = [str(call["call_id"]) for call in state.waiting]
        text = state.running_text

        def start(chat: Chat) -> AbstractAsyncContextManager[TurnEvents]:
            if call_ids:
                return chat.resume(call_ids=call_ids)
            assert text is not None
            return chat.turn(text)

        return await self._run_turn(session, text, start, answers=answers)

    @staticmethod
    def _take_turn(session: Session) -> None:
        if session.busy:
            raise ApiError(409, f"session {session.id} is answering a message; wait for turn.completed")
        session.turn = anyio.CancelScope()  # taken now, so a second request cannot slip in before the stream starts

    async def _run_turn(
        self,
        session: Session,
        text: str | None,
        start: Callable[[Chat], AbstractAsyncContextManager[TurnEvents]],
        *,
        answers: dict[str, dict[str, Any]] | None = None,
    ) -> Response:
        """Stream a turn's events; the session's record is claimed meanwhile and written when it ends."""
        state = session.state
        try:
            lease = await self.models.acquire(session.model)  # loaded again if it was unloaded meanwhile
            try:
                await self.ledger.begin_turn(state, text)
            except StoreConflictError as exc:
                await lease.release()
                raise ApiError(409, f"session {session.id} is answering a message on another server: {exc}") from exc
        except BaseException:
            session.turn = None
            raise
        given = dict(answers or {})

        async def produce(sink: EventSink) -> None:
            assert session.turn is not None
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self.ledger.keep_claimed, state)
                    with session.turn:
                        session.chat.use_backend(lease.backend)
                        async with start(session.chat) as events:
                            async for event in events:
                                self._track(session, event)
                                await self._note(session, event, given)  # durable before the client hears of it
                                await sink.send(_sse(event))
                    tg.cancel_scope.cancel()
            finally:
                state.snapshot = session.chat.snapshot()
                await self.ledger.end_turn(state)
                await lease.release()
            if session.turn.cancelled_caught:  # the session was deleted mid-turn: the stream still ends as a turn does
                await sink.send(_sse(TurnCompleted(stop_reason="cancelled", stats=TurnStats())))

        def finished() -> None:
            session.turn = None
            session.pending.clear()
            session.questions.clear()
            session.touch()

        return event_stream(produce, ping_s=self.ping_s, finished=finished, farewell=SHUTDOWN_FAREWELL)

    async def _note(self, session: Session, event: Event, given: dict[str, dict[str, Any]]) -> None:
        """Keep what a restart needs when a call starts waiting; apply an answer given before the restart."""
        if not isinstance(event, ApprovalRequired):
            return
        answer = given.pop(event.call_id, None)
        if answer is not None:
            session.pending.discard(event.call_id)
            session.chat.answer(event.call_id, ApprovalAnswer(**answer))
            return
        state = session.state
        state.waiting.append({"call_id": event.call_id, "tool": event.tool, "arguments": event.arguments})
        state.snapshot = session.chat.snapshot()
        await self.ledger.waiting(state)

    @staticmethod
    def _track(session: Session, event: Event) -> None:
        """Note what the turn asks, before the client sees it, so that its answer finds it pending."""
        if isinstance(event, ApprovalRequired):
            session.pending.add(event.call_id)
            session.announced.add(event.call_id)
        elif isinstance(event, ElicitationRequired):
            session.questions[event.elicitation_id] = event
            session.asked.add(event.elicitation_id)
        elif isinstance(event, ToolCallResult):  # the call ended: its open questions were cancelled
            for key in [key for key, asked in session.questions.items() if asked.call_id == event.call_id]:
                del session.questions[key]

    async def _read_attachments(self, refs: list[AttachmentRef]) -> list[Attachment]:
        """Every attached resource, read at once; raises `ApiError` (404, 503, 400) for the first that fails."""
        read: list[Attachment | ServerError | None] = [None] * len(refs)

        async def read_one(index: int, ref: AttachmentRef) -> None:
            try:
                read[index] = await self.host.attachment(ref.server, ref.uri)
            except ServerError as exc:
                read[index] = exc

        async with anyio.create_task_group() as tg:
            for index, ref in enumerate(refs):
                tg.start_soon(read_one, index, ref)
        attachments: list[Attachment] = []
        for index, (ref, item) in enumerate(zip(refs, read, strict=True)):
            if isinstance(item, ServerError):
                error = server_api_error(item, failed_status=400, param=f"attachments.{index}")
                raise ApiError(error.status, f"cannot attach {ref.uri!r}: {error}", param=error.param, code=error.code)
            assert item is not None
            attachments.append(item)
        return attachments
