"""Sessions: the host's full loop over HTTP, its events as Server-Sent Events, approvals answered by id.

    POST   /v1/sessions                              {"model", "reasoning_effort", "instructions", "browser", "python",
                                                      "plugins": ["calc", ...] (default: every loaded one)}
    POST   /v1/sessions/{id}/messages                {"content": "...", "attachments": [{"server", "uri"}]}
                                                     -> text/event-stream of loop events
    POST   /v1/sessions/{id}/approvals/{call_id}     {"decision": "allow"|"always"|"deny", "reason", "arguments"}
    POST   /v1/sessions/{id}/elicitations/{id}       {"action": "accept"|"decline"|"cancel", "content": {...}}
    POST   /v1/sessions/{id}/resume                  -> text/event-stream of the interrupted turn, going on
    GET    /v1/sessions/{id}                         state (idle, busy, interrupted), title, pending approvals
                                                     and elicitations, history
    PATCH  /v1/sessions/{id}                         {"title": "..."} -> the session as the list shows it
    DELETE /v1/sessions/{id}
    GET    /v1/sessions?q=&limit=&before=            the stored sessions, newest first (`session_index`)

With a state store (`create_app(store=...)`), sessions survive a restart, even `kill -9`: each is written
when it is created, when a call starts waiting for approval (before the client hears of it) and when a
turn ends. A turn that was running when its server died is `interrupted` once its lease passes
(`[api] turn_lease_s`): the calls it waited on are still pending; answering them is kept for the resumed
turn, and `POST .../resume` runs them (asking again for any not answered) and lets the model go on; an
interrupted turn with no waiting call answers the user's message afresh. A new message instead leaves the
interrupted turn behind. Several servers may share a PostgreSQL store: a server that does not hold a
session loads it from the store, and reloads one that moved on elsewhere; while one server runs a turn of
a session, a message to another server is 409 (route a session's requests to one server). A session is
titled by its first message's first line until it is renamed; a rename while a turn runs (here or on another
server) is 409, and so is one that lost a race with another server's write: it never undoes a turn's write.

Attachments are resources read from their servers before the turn starts (an unknown server is 404,
one not ready 503, a resource that cannot be read 400); the model reads them after the user's words.
A second message while a turn runs is 409, and so is an answer to an approval or an elicitation that
is no longer pending (answered already, its call or turn ended: cancelled, or its client went away);
an accepted elicitation whose content does not fit the server's form is 400 and stays open; a client that
disconnects cancels its turn (generation and tool calls, with the MCP cancellation). Each session's
chat is entered and left by one keeper task in the `Sessions` task group (a chat owns a task group,
which must close in the task that opened it); deleting the session (which cancels a running turn
first), leaving it idle for `idle_expiry_s`, or stopping the app closes it, and closing a chat
removes its working directory.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass, field, replace
from typing import Any

import anyio
from anyio.abc import AsyncResource, TaskGroup, TaskStatus
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mcp_host.agent import (
    ApprovalAnswer,
    ApprovalRequired,
    Attachment,
    Chat,
    ChatOptions,
    ElicitationAnswer,
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
from mcp_host.api.requests import (
    ApprovalBody,
    AttachmentRef,
    BodyReader,
    ElicitationBody,
    SessionCreate,
    SessionMessage,
    SessionRename,
)
from mcp_host.api.session_index import SessionIndex, default_title, summarise, title_of
from mcp_host.api.session_ledger import SessionLedger, SessionState
from mcp_host.api.streaming import (
    PING_S,
    SHUTDOWN_CODE,
    SHUTDOWN_MESSAGE,
    EventSink,
    ServerSentEvent,
    event_stream,
)
from mcp_host.api.tool_choice import chosen_plugins, chosen_servers
from mcp_host.backends.base import Backend, ChatBackend
from mcp_host.backends.registry import ModelRegistry
from mcp_host.errors import ApiError, ElicitationInputError, ServerError, StoreConflictError, UnknownApprovalError
from mcp_host.host import Host
from mcp_host.prompt.harmony import HarmonyOptions

IDLE_EXPIRY_S = 3600.0  # a session nobody used for an hour is closed


def _not_pending(was_asked: bool, gone: str, never: str) -> ApiError:
    """An answer to nothing open: 409 when it was asked once (answered, or its turn ended), else 404."""
    return ApiError(409, gone) if was_asked else ApiError(404, never)


def _sse(event: Event) -> ServerSentEvent:
    return ServerSentEvent(data=json_dumps(event.model_dump(mode="json")), event=event.type)


# How a session stream ends when the server shuts down: as a failed turn ends.
SHUTDOWN_FAREWELL = (
    _sse(ErrorEvent(message=SHUTDOWN_MESSAGE, kind=SHUTDOWN_CODE)),
    _sse(TurnCompleted(stop_reason="cancelled", stats=TurnStats())),
)


@dataclass
class Session:
    id: str
    chat: Chat
    state: SessionState
    closing: anyio.Event = field(default_factory=anyio.Event)
    closed: anyio.Event = field(default_factory=anyio.Event)
    pending: set[str] = field(default_factory=set)
    announced: set[str] = field(default_factory=set)  # every approval ever asked for, to tell 409 from 404
    questions: dict[str, ElicitationRequired] = field(default_factory=dict)  # elicitations waiting for an answer
    asked: set[str] = field(default_factory=set)  # every elicitation ever asked for, to tell 409 from 404
    turn: anyio.CancelScope | None = None  # the running turn, if any
    # Held while the record is written at rest (a rename, an answer kept for a resume) and while a turn is
    # taken: a turn never starts between a rename's check and its write, so neither write undoes the other.
    writing: anyio.Lock = field(default_factory=anyio.Lock)
    last_used: float = field(default_factory=time.monotonic)

    def touch(self) -> None:
        self.last_used = time.monotonic()

    def idle_for(self) -> float:
        """Seconds since the last request; a session answering a message is never idle."""
        return 0.0 if self.busy else time.monotonic() - self.last_used

    @property
    def busy(self) -> bool:
        return self.turn is not None

    @property
    def created(self) -> int:
        return self.state.created

    @property
    def model(self) -> str:
        return self.state.model


class Sessions(AsyncResource):
    """Every open session; their chats share the host's tools and the server's models (each turn takes its own).

    An async resource: `async with sessions:` (the app's lifespan) before the first session.
    """

    def __init__(
        self,
        host: Host,
        models: ModelRegistry,
        reader: BodyReader,
        *,
        ping_s: float = PING_S,
        idle_expiry_s: float = IDLE_EXPIRY_S,
        ledger: SessionLedger | None = None,
    ) -> None:
        self.host = host
        self.ledger = ledger or SessionLedger(None)
        self.models = models
        self.reader = reader
        self.ping_s = ping_s
        self.idle_expiry_s = idle_expiry_s
        self.sessions: dict[str, Session] = {}
        self._resources = AsyncExitStack()
        self._keepers: TaskGroup | None = None
        self._expiry = anyio.CancelScope()
        self.index = SessionIndex(self.ledger, self.sessions)

    async def __aenter__(self) -> Sessions:
        self._keepers = await self._resources.enter_async_context(anyio.create_task_group())
        self._keepers.start_soon(self._expire_idle)
        return self

    async def aclose(self) -> None:
        """Close every session's chat (its tools stop; the host stops its servers). Idempotent."""
        self._expiry.cancel()
        for session in list(self.sessions.values()):
            self._close(session)
        self.sessions.clear()
        self._keepers = None
        await self._resources.aclose()

    def routes(self) -> list[Route]:
        return [
            Route("/v1/sessions", self.create, methods=["POST"]),
            Route("/v1/sessions/{id}", self.read, methods=["GET"]),
            Route("/v1/sessions/{id}", self.rename, methods=["PATCH"]),
            Route("/v1/sessions/{id}", self.delete, methods=["DELETE"]),
            Route("/v1/sessions/{id}/messages", self.message, methods=["POST"]),
            Route("/v1/sessions/{id}/resume", self.resume, methods=["POST"]),
            Route("/v1/sessions/{id}/approvals/{call_id}", self.approve, methods=["POST"]),
            Route("/v1/sessions/{id}/elicitations/{elicitation_id}", self.answer_elicitation, methods=["POST"]),
            *self.index.routes(),
        ]

    async def _get(self, request: Request) -> Session:
        """The session, brought back from the store if this server does not hold it (restarted, or another
        instance made it); one whose stored record moved on elsewhere is reloaded. Raises `ApiError` 404."""
        session_id = request.path_params["id"]
        session = self.sessions.get(session_id)
        if session is not None and not session.busy:
            stored = await self.ledger.version(session_id)
            if stored is None and self.ledger.store is not None:  # deleted through another instance
                self.sessions.pop(session_id, None)
                self._close(session)
                session = None
            elif stored is not None and stored != session.state.version:
                self.sessions.pop(session_id, None)
                self._close(session)
                session = None
        if session is None:
            state = await self.ledger.load(session_id)
            if state is None:
                raise ApiError(404, f"no session {session_id!r}")
            session = await self._open(state)
        session.touch()
        return session

    async def _open(self, state: SessionState) -> Session:
        """A chat for a stored session, its conversation restored."""
        if self._keepers is None:
            raise ApiError(503, "sessions are not open: the app's lifespan has not started or has ended")
        options = self._options(SessionCreate.model_validate(state.options), stored=True)
        async with self.models.use(state.model) as backend:
            session: Session = await self._keepers.start(self._keep, backend, options, state)
        if state.snapshot is not None:
            session.chat.restore(state.snapshot)
        if state.interrupted:
            session.pending.update(str(call["call_id"]) for call in state.waiting)
            session.announced.update(session.pending)
        self.sessions[state.id] = session
        return session

    def _options(self, body: SessionCreate, *, stored: bool = False) -> ChatOptions:
        """The chat's options; an unknown server or plugin is a 400, or, in a `stored` session's, left out."""
        harmony = HarmonyOptions(
            reasoning_effort=body.reasoning_effort or self.host.settings.prompt.reasoning_effort,
            instructions=body.instructions,
            browser=body.browser,
            python=body.python,
        )
        plugins = chosen_plugins(self.host, body.plugins, drop_unknown=stored)
        servers = chosen_servers(self.host, body.servers, drop_unknown=stored)
        options = ChatOptions(harmony=harmony, plugins=plugins, servers=servers)
        if body.max_tokens is not None:
            options = replace(options, max_tokens_per_round=body.max_tokens)
        return options

    async def create(self, request: Request) -> Response:
        body = await self.reader.read(request, SessionCreate, empty=SessionCreate())
        if self._keepers is None:
            raise ApiError(503, "sessions are not open: the app's lifespan has not started or has ended")
        options = self._options(body)
        model, _ = self.models.resolve(body.model)  # 404 before anything loads
        state = SessionState(f"sess_{uuid.uuid4().hex[:20]}", model, body.model_dump(exclude={"model"}))
        async with self.models.use(model) as backend:
            state.model = backend.name
            session: Session = await self._keepers.start(self._keep, backend, options, state)
        self.sessions[session.id] = session
        await self.ledger.save(state)
        return JSONResponse({"id": session.id, "object": "session", "created": session.created}, status_code=201)

    async def _keep(
        self,
        backend: Backend | ChatBackend,
        options: ChatOptions,
        state: SessionState,
        *,
        task_status: TaskStatus[Session],
    ) -> None:
        """Holds one session's chat open, in this one task, until the session closes."""
        session: Session | None = None
        try:
            async with self.host.chat(backend, options) as chat:
                session = Session(state.id, chat, state)
                task_status.started(session)
                await session.closing.wait()
        finally:
            if session is not None:
                session.closed.set()

    async def _expire_idle(self) -> None:
        """Close sessions nobody used for `idle_expiry_s` (their chats, tools and working directories go too)."""
        with self._expiry:
            while True:
                await anyio.sleep(min(max(self.idle_expiry_s / 4, 0.05), 60.0))
                for session in list(self.sessions.values()):
                    if session.idle_for() >= self.idle_expiry_s:
                        self.sessions.pop(session.id, None)
                        self._close(session)

    def _close(self, session: Session) -> None:
        if session.turn is not None:
            session.turn.cancel()
        session.closing.set()

    async def read(self, request: Request) -> Response:
        session = await self._get(request)
        return JSONResponse(
            {
                "id": session.id,
                "object": "session",
                "created": session.created,
                "updated": session.state.updated,
                "title": title_of(session.state),
                "model": session.model,
                "busy": session.busy,
                "state": "busy" if session.busy else "interrupted" if session.state.interrupted else "idle",
                "interrupted_message": session.state.running_text if session.state.interrupted else None,
                "waiting_calls": session.state.waiting if session.state.interrupted else [],
                "plugins": None if session.chat.enabled_plugins is None else sorted(session.chat.enabled_plugins),
                "pending_approvals": sorted(session.pending),
                "pending_elicitations": [event.model_dump(mode="json") for event in session.questions.values()],
                "history": session.chat.transcript(),
            }
        )

    async def rename(self, request: Request) -> Response:
        """Give the session a title; 409 while a turn runs, or if another server wrote it meanwhile."""
        session = await self._get(request)
        body = await self.reader.read(request, SessionRename)
        async with session.writing:
            if session.busy:
                raise ApiError(409, f"session {session.id} is answering a message; rename it when the turn ends")
            try:
                await self.ledger.rename(session.state, body.title)
            except StoreConflictError as exc:
                raise ApiError(409, f"session {session.id} cannot be renamed now: {exc}; read it again") from exc
        return JSONResponse(summarise(session.state, busy=session.busy))

    async def delete(self, request: Request) -> Response:
        session = await self._get(request)
        del self.sessions[session.id]
        self._close(session)
        await session.closed.wait()
        await self.ledger.delete(session.id)
        return JSONResponse({"id": session.id, "object": "session", "deleted": True})

    async def message(self, request: Request) -> Response:
        session = await self._get(request)
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
        session = await self._get(request)
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

    def _take_turn(self, session: Session) -> None:
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

    async def answer_elicitation(self, request: Request) -> Response:
        session = await self._get(request)
        elicitation_id = request.path_params["elicitation_id"]
        body = await self.reader.read(request, ElicitationBody)
        if elicitation_id not in session.questions:
            raise _not_pending(
                elicitation_id in session.asked,
                f"the elicitation {elicitation_id!r} in session {session.id} is no longer pending "
                "(it was answered, or its call or turn ended)",
                f"no elicitation {elicitation_id!r} was asked in session {session.id}",
            )
        try:
            session.chat.answer_elicitation(elicitation_id, ElicitationAnswer(body.action, body.content))
        except ElicitationInputError as exc:  # the question stays open: the client may answer again
            raise ApiError(400, f"the answer does not fit the server's form: {exc}", param="content") from exc
        except UnknownApprovalError as exc:  # the call ended between the check and the answer
            session.questions.pop(elicitation_id, None)
            raise ApiError(409, f"{exc} in session {session.id}") from exc
        session.questions.pop(elicitation_id, None)
        return JSONResponse({"elicitation_id": elicitation_id, "action": body.action})

    async def approve(self, request: Request) -> Response:
        session = await self._get(request)
        call_id = request.path_params["call_id"]
        body = await self.reader.read(request, ApprovalBody)
        if call_id not in session.pending:
            raise _not_pending(
                call_id in session.announced,
                f"the approval for {call_id!r} in session {session.id} is no longer pending "
                "(it was answered, or its turn ended): nothing was run",
                f"no approval was asked for {call_id!r} in session {session.id}",
            )
        session.pending.discard(call_id)
        if not session.busy and session.state.interrupted:  # kept for the resumed turn (POST .../resume)
            session.state.answers[call_id] = {
                "decision": body.decision,
                "reason": body.reason,
                "arguments": body.arguments,
            }
            async with session.writing:  # not between a rename's check and its write
                await self.ledger.save_interrupted(session.state)
            return JSONResponse(
                {"call_id": call_id, "decision": body.decision, "resume": f"/v1/sessions/{session.id}/resume"}
            )
        try:
            session.chat.answer(call_id, ApprovalAnswer(body.decision, reason=body.reason, arguments=body.arguments))
        except UnknownApprovalError as exc:  # the turn ended between the check and the answer
            raise ApiError(409, f"{exc} in session {session.id}: nothing was run") from exc
        return JSONResponse({"call_id": call_id, "decision": body.decision})
