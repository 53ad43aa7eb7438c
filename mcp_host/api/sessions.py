"""Sessions: the host's full loop over HTTP, its events as Server-Sent Events, approvals answered by id.

    POST   /v1/sessions                              {"reasoning_effort", "instructions", "browser", "python"}
    POST   /v1/sessions/{id}/messages                {"content": "..."}  -> text/event-stream of loop events
    POST   /v1/sessions/{id}/approvals/{call_id}     {"decision": "allow"|"always"|"deny", "reason", "arguments"}
    GET    /v1/sessions/{id}                         state and history
    DELETE /v1/sessions/{id}

A second message while a turn runs is 409; a client that disconnects cancels its turn (generation and
tool calls, with the MCP cancellation). Each session's chat is entered and left by one keeper task in
the `Sessions` task group (a chat owns a task group, which must close in the task that opened it);
deleting the session or stopping the app closes it.
"""

from __future__ import annotations

import time
import uuid
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from types import TracebackType

import anyio
from anyio.abc import TaskGroup, TaskStatus
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mcp_host.agent import ApprovalAnswer, ApprovalRequired, Chat, ChatOptions
from mcp_host.api.answers import json_dumps
from mcp_host.api.requests import ApprovalBody, BodyReader, SessionCreate, SessionMessage
from mcp_host.api.streaming import PING_S, EventSink, ServerSentEvent, event_stream
from mcp_host.backends.base import Backend, ChatBackend
from mcp_host.errors import ApiError, UnknownApprovalError
from mcp_host.host import Host
from mcp_host.prompt.harmony import HarmonyOptions


@dataclass
class Session:
    id: str
    chat: Chat
    closing: anyio.Event = field(default_factory=anyio.Event)
    closed: anyio.Event = field(default_factory=anyio.Event)
    created: int = field(default_factory=lambda: int(time.time()))
    pending: set[str] = field(default_factory=set)
    turn: anyio.CancelScope | None = None  # the running turn, if any

    @property
    def busy(self) -> bool:
        return self.turn is not None


class Sessions:
    """Every open session; their chats share the host's tools and the one backend.

    An async resource: `async with sessions:` (the app's lifespan) before the first session.
    """

    def __init__(
        self, host: Host, backend: Backend | ChatBackend, reader: BodyReader, *, ping_s: float = PING_S
    ) -> None:
        self.host = host
        self.backend = backend
        self.reader = reader
        self.ping_s = ping_s
        self.sessions: dict[str, Session] = {}
        self._resources = AsyncExitStack()
        self._keepers: TaskGroup | None = None

    async def __aenter__(self) -> Sessions:
        self._keepers = await self._resources.enter_async_context(anyio.create_task_group())
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every session's chat (its tools stop; the host stops its servers). Idempotent."""
        for session in list(self.sessions.values()):
            self._close(session)
        self.sessions.clear()
        self._keepers = None
        await self._resources.aclose()

    def routes(self) -> list[Route]:
        return [
            Route("/v1/sessions", self.create, methods=["POST"]),
            Route("/v1/sessions/{id}", self.read, methods=["GET"]),
            Route("/v1/sessions/{id}", self.delete, methods=["DELETE"]),
            Route("/v1/sessions/{id}/messages", self.message, methods=["POST"]),
            Route("/v1/sessions/{id}/approvals/{call_id}", self.approve, methods=["POST"]),
        ]

    def _get(self, request: Request) -> Session:
        session = self.sessions.get(request.path_params["id"])
        if session is None:
            raise ApiError(404, f"no session {request.path_params['id']!r}")
        return session

    async def create(self, request: Request) -> Response:
        body = await self.reader.read(request, SessionCreate, empty=SessionCreate())
        if self._keepers is None:
            raise ApiError(503, "sessions are not open: the app's lifespan has not started or has ended")
        harmony = HarmonyOptions(
            reasoning_effort=body.reasoning_effort or self.host.settings.prompt.reasoning_effort,
            instructions=body.instructions,
            browser=body.browser,
            python=body.python,
        )
        session: Session = await self._keepers.start(self._keep, ChatOptions(harmony=harmony))
        self.sessions[session.id] = session
        return JSONResponse({"id": session.id, "object": "session", "created": session.created}, status_code=201)

    async def _keep(self, options: ChatOptions, *, task_status: TaskStatus[Session]) -> None:
        """Holds one session's chat open, in this one task, until the session closes."""
        session: Session | None = None
        try:
            async with self.host.chat(self.backend, options) as chat:
                session = Session(f"sess_{uuid.uuid4().hex[:20]}", chat)
                task_status.started(session)
                await session.closing.wait()
        finally:
            if session is not None:
                session.closed.set()

    def _close(self, session: Session) -> None:
        if session.turn is not None:
            session.turn.cancel()
        session.closing.set()

    async def read(self, request: Request) -> Response:
        session = self._get(request)
        return JSONResponse(
            {
                "id": session.id,
                "object": "session",
                "created": session.created,
                "busy": session.busy,
                "pending_approvals": sorted(session.pending),
                "history": session.chat.transcript(),
            }
        )

    async def delete(self, request: Request) -> Response:
        session = self._get(request)
        del self.sessions[session.id]
        self._close(session)
        await session.closed.wait()
        return JSONResponse({"id": session.id, "object": "session", "deleted": True})

    async def message(self, request: Request) -> Response:
        session = self._get(request)
        body = await self.reader.read(request, SessionMessage)
        if session.busy:
            raise ApiError(409, f"session {session.id} is answering a message; wait for turn.completed")
        session.turn = anyio.CancelScope()  # taken now, so a second request cannot slip in before the stream starts

        async def produce(sink: EventSink) -> None:
            assert session.turn is not None
            with session.turn:
                async with session.chat.turn(body.content) as events:
                    async for event in events:
                        if isinstance(event, ApprovalRequired):
                            session.pending.add(event.call_id)
                        data = json_dumps(event.model_dump(mode="json"))
                        await sink.send(ServerSentEvent(data=data, event=event.type))

        def finished() -> None:
            session.turn = None
            session.pending.clear()

        return event_stream(produce, ping_s=self.ping_s, finished=finished)

    async def approve(self, request: Request) -> Response:
        session = self._get(request)
        call_id = request.path_params["call_id"]
        if call_id not in session.pending:
            raise ApiError(404, f"no approval is pending for {call_id!r} in session {session.id}")
        body = await self.reader.read(request, ApprovalBody)
        session.pending.discard(call_id)
        try:
            session.chat.answer(call_id, ApprovalAnswer(body.decision, reason=body.reason, arguments=body.arguments))
        except UnknownApprovalError as exc:  # the turn ended between the check and the answer
            raise ApiError(404, f"{exc} in session {session.id}") from exc
        return JSONResponse({"call_id": call_id, "decision": body.decision})
