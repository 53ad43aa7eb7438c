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
    DELETE /v1/sessions/{id}                      -> {"id", "object": "session", "deleted": true}; once: 404 after
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
titled by its first message's first line until it is renamed; a rename (or a change of its tools,
`chat_tools_routes`) while a turn runs (here or on another server) is 409, and so is one that lost a race with
another server's write (`SessionLedger.edit`): it never undoes a turn's write.

Attachments are resources read from their servers before the turn starts (an unknown server is 404,
one not ready 503, a resource that cannot be read 400); the model reads them after the user's words.
A second message while a turn runs is 409, and so is an answer to an approval or an elicitation that
is no longer pending (answered already, its call or turn ended: cancelled, or its client went away);
an accepted elicitation whose content does not fit the server's form is 400 and stays open; a client that
disconnects cancels its turn (generation and tool calls, with the MCP cancellation). Each session's
chat is entered and left by one keeper task in the `Sessions` task group (a chat owns a task group,
which must close in the task that opened it); deleting the session (which cancels a running turn
first), leaving it idle for `idle_expiry_s`, or stopping the app closes it, and closing a chat
removes its working directory. Of several requests deleting one session at once, one deletes it and the others
are 404, as is a rename that finds it deleted; requests bringing one stored session back at once share one chat.

This module opens, reads, renames and closes sessions; their turns run in `session_turns`, the answers to
what a turn asks go through `session_answers`, and every route finds its session with `Sessions.session_of`.
"""

from __future__ import annotations

import uuid
from contextlib import AsyncExitStack
from dataclasses import replace

import anyio
from anyio.abc import AsyncResource, TaskGroup, TaskStatus
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mcp_host.agent import ChatOptions
from mcp_host.api.requests import BodyReader, SessionCreate, SessionRename
from mcp_host.api.session import Session
from mcp_host.api.session_answers import SessionAnswers
from mcp_host.api.session_index import SessionIndex
from mcp_host.api.session_ledger import SessionLedger, SessionState
from mcp_host.api.session_summary import Listing, title_of
from mcp_host.api.session_turns import SessionTurns
from mcp_host.api.streaming import PING_S
from mcp_host.api.tool_choice import chosen_plugins, chosen_servers
from mcp_host.backends.base import Backend, ChatBackend
from mcp_host.backends.registry import ModelRegistry
from mcp_host.errors import ApiError, StoreConflictError
from mcp_host.host import Host
from mcp_host.prompt.harmony import HarmonyOptions

IDLE_EXPIRY_S = 3600.0  # a session nobody used for an hour is closed


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
        self.idle_expiry_s = idle_expiry_s
        self.sessions: dict[str, Session] = {}
        self._deleting: set[str] = set()  # ids whose DELETE runs: never brought back from the store meanwhile
        self._resources = AsyncExitStack()
        self._keepers: TaskGroup | None = None
        self._expiry = anyio.CancelScope()
        self.index = SessionIndex(self.ledger, self.sessions)
        self.turns = SessionTurns(self.session_of, host, models, self.ledger, reader, ping_s=ping_s)
        self.answers = SessionAnswers(self.session_of, self.ledger, reader)

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
            *self.turns.routes(),
            *self.answers.routes(),
            *self.index.routes(),
        ]

    async def session_of(self, request: Request) -> Session:
        """The session the request names (`{id}` in its path), brought back from the store if this server does
        not hold it (restarted, or another instance made it); one whose stored record moved on elsewhere (or was
        deleted there) is reloaded. Marks it used. Raises `ApiError` 404 (no such session), 503 (not open).

            session = await sessions.session_of(request)
        """
        session_id = request.path_params["id"]
        session = self.sessions.get(session_id)
        if session is not None and not session.busy:
            stored = await self.ledger.version(session_id)
            deleted = stored is None and self.ledger.store is not None  # through another instance
            if deleted or (stored is not None and stored != session.state.version):
                self.drop(session)
                session = None
        if session is None:
            state = None if session_id in self._deleting else await self.ledger.load(session_id)
            if state is None or session_id in self._deleting:
                raise ApiError(404, f"no session {session_id!r}")
            opened = await self._open(state)
            # Another request may have opened it meanwhile, or begun deleting it: one chat per session.
            session = self.sessions.get(session_id)
            if session is None and session_id not in self._deleting:
                session = self.sessions[session_id] = opened
            else:
                self._close(opened)
                if session is None:
                    raise ApiError(404, f"no session {session_id!r}")
        session.touch()
        return session

    async def _open(self, state: SessionState) -> Session:
        """A chat for a stored session, its conversation restored; the caller keeps it in `sessions`."""
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
                        self.drop(session)

    def drop(self, session: Session) -> None:
        """Close the session on this server, its stored record kept: the next request brings it back from the
        store. For a session this server's copy of which no longer matches its record."""
        if self.sessions.get(session.id) is session:
            del self.sessions[session.id]
        self._close(session)

    def _close(self, session: Session) -> None:
        if session.turn is not None:
            session.turn.cancel()
        session.closing.set()

    async def read(self, request: Request) -> Response:
        session = await self.session_of(request)
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
        """Give the session a title; 409 while a turn runs, or if another server wrote it meanwhile; 404 once a
        DELETE took it."""
        session = await self.session_of(request)
        body = await self.reader.read(request, SessionRename)
        async with session.writing:
            if session.deleted:
                raise ApiError(404, f"no session {session.id!r}")
            if session.busy:
                raise ApiError(409, f"session {session.id} is answering a message; rename it when the turn ends")
            try:
                await self.ledger.edit(session.state, title=body.title)
            except StoreConflictError as exc:
                if session.deleted:  # meanwhile
                    raise ApiError(404, f"no session {session.id!r}") from exc
                raise ApiError(409, f"session {session.id} cannot be renamed now: {exc}; read it again") from exc
        return JSONResponse(Listing.of(session.state, busy=session.busy).item())

    async def delete(self, request: Request) -> Response:
        """Close the session (cancelling a running turn) and delete its record. Of requests deleting one session
        at once, one answers 200 and the others 404, as any request for it after."""
        session = await self.session_of(request)
        if session.deleted:  # by another request, since this one found it
            raise ApiError(404, f"no session {session.id!r}")
        session.deleted = True
        self._deleting.add(session.id)
        try:
            self.drop(session)
            await session.closed.wait()
            await self.ledger.delete(session.id)
        finally:
            self._deleting.discard(session.id)
        return JSONResponse({"id": session.id, "object": "session", "deleted": True})
