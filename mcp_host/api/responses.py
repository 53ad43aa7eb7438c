"""OpenAI's Responses API: `POST /v1/responses`, `GET /v1/responses/{id}`, `DELETE /v1/responses/{id}`.

    responses = ResponsesRoutes(host, models, reader, renderer)
    async with responses:                       # the app's lifespan: live MCP turns are kept in its task group
        routes = responses.routes()

A request's conversation is the previous response's (`previous_response_id`: every item through its
output) followed by its own `input`; it is answered in one of two ways:

- Without MCP tools (text, and the client's function tools): nothing runs on the server, so nothing needs
  to stay alive. The conversation is rebuilt from its items and rendered whole, as a chat completion's
  messages are (`mcp_host.api.responses_turn`). A function call ends the response; the client's
  `function_call_output`, with or without `previous_response_id`, continues it, after a restart too.
- With MCP tools, the host's own loop runs them (`mcp_host.api.responses_live`), and a turn must be able to
  stop half-way: for an approval (`require_approval`), or for a client's function called beside them. Such a
  turn stays alive in memory, waiting in its chat exactly as a session's turn waits on `chat.answer()`: the
  approval, or the function call itself, which waits for its output. The next request naming the response
  hands over the answers and reads the rest of the turn. A turn that waits on approvals alone is also
  written into its response's record (`mcp_host.api.responses_paused`: the chat's snapshot, the calls it
  waits to run, its rules and settings; never a request's headers), so when its server restarted the
  answering request rebuilds it: that request must send its MCP tools again (400 otherwise), a new turn
  connects them, the chat is restored, the waiting calls run again and the approvals they ask for again
  get the client's answers, with the same output as in memory. A turn waiting on a client's function
  call is not written: lost with its server, answering it is a 409 `turn_expired`; so is answering a
  turn that waited longer than the idle expiry, or one already continued (its record can rebuild it once).

The design choice, then: rebuild from stored items where the loop does not need to pause (restart-proof),
keep the live turn where it must, and keep what rebuilds it where that can be done safely (approvals: no
call of the round has run yet). Either way the state of every response is written as a JSON record
(`mcp_host.api.responses_store`) behind an async `get/put/delete`, in memory until the durable store takes
its place; `store: false` keeps nothing, and then the response cannot be continued or retrieved (404).
Several servers sharing a store should route a waiting response's answer to one server: two that both
rebuild it at once would both run its calls.

Streams carry OpenAI's event names with increasing `sequence_number`s in the order the official client's
`responses.stream()` accumulates them (`mcp_host.api.responses_output`). A client that goes away cancels its
turn, streamed or not (a live turn is closed with it); a server that shuts down ends every stream with an
`error` event.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Protocol, overload

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mcp_host.api.requests import BodyReader
from mcp_host.api.responses_live import IDLE_EXPIRY_S, LiveTurn, LiveTurns
from mcp_host.api.responses_mcp import continue_mcp_run, mcp_servers, open_mcp_run, reopen_mcp_run, request_tools
from mcp_host.api.responses_output import ResponseDraft
from mcp_host.api.responses_paused import PausedTurn
from mcp_host.api.responses_requests import ResponsesRequest
from mcp_host.api.responses_store import MemoryResponseStore, ResponseStore, StoredResponse
from mcp_host.api.responses_turn import Conversation, FunctionsTurn, TurnOutcome, response_fields
from mcp_host.api.streaming import (
    PING_S,
    SHUTDOWN_CODE,
    SHUTDOWN_MESSAGE,
    EventSink,
    ServerSentEvent,
    event_stream,
    until_disconnected,
)
from mcp_host.backends.registry import Lease, ModelRegistry
from mcp_host.errors import ApiError
from mcp_host.host import Host
from mcp_host.prompt.harmony import HarmonyRenderer


class _Run(Protocol):
    async def run(self, draft: ResponseDraft) -> TurnOutcome: ...


class _Plan:
    """One validated request, its model leased, ready to run."""

    def __init__(
        self, body: ResponsesRequest, conversation: Conversation, lease: Lease, run: _Run, live: LiveTurn | None
    ) -> None:
        self.body = body
        self.conversation = conversation
        self.lease = lease
        self.run = run
        self.live = live  # the MCP turn this request reads, if any
        self.keep = False  # whether that turn waits for the next request when this one ends


class ResponsesRoutes:
    """The Responses API's routes; an async resource (the live MCP turns close with it)."""

    def __init__(
        self,
        host: Host,
        models: ModelRegistry,
        reader: BodyReader,
        renderer: HarmonyRenderer,
        *,
        store: ResponseStore | None = None,
        ping_s: float = PING_S,
        idle_expiry_s: float = IDLE_EXPIRY_S,
        unattended: bool = False,
    ) -> None:
        self.host = host
        self.models = models
        self.reader = reader
        self.renderer = renderer
        self.store: ResponseStore = store or MemoryResponseStore()
        self.ping_s = ping_s
        self.turns = LiveTurns(host, idle_expiry_s=idle_expiry_s, unattended=unattended)
        self._reopening: set[str] = set()  # responses whose turn a request is rebuilding from the store

    async def __aenter__(self) -> ResponsesRoutes:
        await self.turns.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.turns.aclose()

    def routes(self) -> list[Route]:
        return [
            Route("/v1/responses", self.create, methods=["POST"]),
            Route("/v1/responses/{id}", self.retrieve, methods=["GET"]),
            Route("/v1/responses/{id}", self.delete, methods=["DELETE"]),
        ]

    # -- retrieve, delete -------------------------------------------------------------------------

    async def _stored(self, response_id: str, param: str | None = None) -> StoredResponse:
        record = await self.store.get(response_id) if len(response_id) <= MAX_ID_CHARS else None
        if record is None:
            raise ApiError(
                404,
                f"no stored response {_shown_id(response_id)} (it was made with store: false, deleted, or never "
                "existed)",
                param=param,
                code="not_found",
            )
        return StoredResponse.from_json(record)

    async def retrieve(self, request: Request) -> Response:
        if request.query_params.get("stream") in ("true", "1"):
            raise ApiError(400, "a stored response cannot be streamed again here", param="stream")
        stored = await self._stored(request.path_params["id"])
        return JSONResponse(stored.response)

    async def delete(self, request: Request) -> Response:
        response_id = request.path_params["id"]
        if len(response_id) > MAX_ID_CHARS or not await self.store.delete(response_id):
            raise ApiError(404, f"no stored response {_shown_id(response_id)}", code="not_found")
        live = self.turns.waiting.pop(response_id, None)
        if live is not None:
            live.close()
        return JSONResponse({"id": response_id, "object": "response.deleted", "deleted": True})

    # -- create -----------------------------------------------------------------------------------

    async def create(self, request: Request) -> Response:
        plan = await self._plan(await self.reader.read(request, ResponsesRequest))
        draft = ResponseDraft(response_fields(plan.body, plan.lease.backend.name))
        if plan.body.stream:
            return self._stream(plan, draft)
        try:

            async def work() -> Response:
                await self._run(plan, draft)
                return JSONResponse(draft.json())

            return await until_disconnected(request, work)
        finally:
            await self._finished(plan)

    async def _plan(self, body: ResponsesRequest) -> _Plan:
        """Everything checked, and the model leased, before anything runs. Raises `ApiError`, `ModelNotFoundError`."""
        previous = None
        if body.previous_response_id is not None:
            previous = await self._stored(body.previous_response_id, "previous_response_id")
        conversation = Conversation.of(body, previous)
        live = self.turns.waiting.get(previous.id) if previous is not None else None
        if live is not None:
            assert previous is not None
            return await self._continue(body, conversation, live, previous)
        if previous is not None and previous.waiting_approvals:
            return await self._reopen(body, conversation, previous, _paused_turn(previous))
        tools = request_tools(self.host, body, conversation) if body.mcp_tools and body.tool_choice != "none" else None
        lease = await self.models.acquire(body.model)
        try:
            if tools is not None:
                run = await open_mcp_run(self.turns, tools, body, conversation, lease.backend, self.renderer)
                return _Plan(body, conversation, lease, run, run.live)
            turn = FunctionsTurn(body, conversation, lease.backend, self.renderer)
            await turn.prepare()
            return _Plan(body, conversation, lease, turn, None)
        except BaseException:
            await lease.release()
            raise

    async def _continue(
        self, body: ResponsesRequest, conversation: Conversation, live: LiveTurn, previous: StoredResponse
    ) -> _Plan:
        if live.busy:
            raise ApiError(409, "another request is already continuing this response", param="previous_response_id")
        self._check_model(body, live.model)
        run = continue_mcp_run(live, body, conversation)
        live.busy = True  # before the first wait: a second request for this response is refused from now on
        try:
            lease = await self.models.acquire(live.model)
        except BaseException:
            live.busy = False
            raise
        try:
            await self._take(previous)
        except BaseException as exc:
            await lease.release()
            if isinstance(exc, ApiError):  # another server sharing the store rebuilt this turn and runs it
                self._forget(live)
                live.close()
            else:
                live.busy = False
            raise
        if lease.backend is not live.chat.backend:  # unloaded meanwhile: the waiting turn cannot change model
            await lease.release()
            self._forget(live)
            live.close()
            raise ApiError(
                409,
                "the model was unloaded while this turn waited, so it cannot go on; "
                "send the conversation again with a new user message",
                param="previous_response_id",
                code="turn_expired",
            )
        return _Plan(body, conversation, lease, run, live)

    async def _reopen(
        self, body: ResponsesRequest, conversation: Conversation, previous: StoredResponse, paused: PausedTurn
    ) -> _Plan:
        """The turn of `previous`, lost with its server, rebuilt from its record with the request's servers.

        Raises `ApiError` (400: the request lacks the turn's servers; 409: it cannot go on), `ModelNotFoundError`.
        """
        if previous.id in self._reopening:
            raise ApiError(409, "another request is already continuing this response", param="previous_response_id")
        if paused.expired():
            raise ApiError(
                409,
                f"the turn of {previous.id} that waited for these approvals is gone (it waited longer than "
                f"{self.turns.idle_expiry_s:g} s); send the conversation again with a new user message",
                param="previous_response_id",
                code="turn_expired",
            )
        ruled = paused.tools_for(body, previous.id)
        self._check_model(body, paused.model)
        tools = mcp_servers(self.host, ruled)
        self._reopening.add(previous.id)
        try:
            lease = await self.models.acquire(paused.model)
            try:
                run = await reopen_mcp_run(self.turns, tools, ruled, conversation, paused, lease.backend, self.renderer)
            except BaseException:
                await lease.release()
                raise
            plan = _Plan(body, conversation, lease, run, run.live)
            self.turns.waiting[previous.id] = run.live  # busy: a second request for it is refused, as in memory
            try:
                await self._take(previous)
            except BaseException:
                await self._finished(plan)
                raise
            return plan
        finally:
            self._reopening.discard(previous.id)

    def _check_model(self, body: ResponsesRequest, model: str) -> None:
        if body.model and self.models.resolve(body.model)[0] != model:
            raise ApiError(
                400, f"the response waiting here is of the model {model!r}; continue it with that one", param="model"
            )

    async def _take(self, previous: StoredResponse) -> None:
        """A request continues the turn `previous` waited on: its record no longer rebuilds it (nothing runs twice).

        Before anything of the turn runs. Raises `ApiError` (409) when another request took it first, on this
        server or on another sharing the store (`ResponseStore.take` is atomic across them).
        """
        if not await self.store.take(previous.id):
            raise ApiError(409, "another request has already continued this response", param="previous_response_id")
        if previous.paused is not None:
            previous.paused = None
            await self.store.put(previous.id, previous.to_json())

    async def _run(self, plan: _Plan, draft: ResponseDraft) -> None:
        """Run the turn into `draft`, then keep what the request asks to (and a turn that waits, alive)."""
        outcome = await plan.run.run(draft)
        await outcome.finish(draft)
        live = plan.live
        paused = None
        if live is not None and plan.body.store and outcome.waiting_approvals and not outcome.waiting_calls:
            paused = PausedTurn.of(live, expires_at=time.time() + self.turns.idle_expiry_s)
        stored = StoredResponse(
            response=draft.json(),
            conversation=[*plan.conversation.items, *draft.output],
            input=plan.conversation.input,
            waiting_calls=outcome.waiting_calls,
            waiting_approvals=outcome.waiting_approvals,
            paused=paused.to_json() if paused is not None else None,
        )
        if plan.body.store:
            await self.store.put(draft.id, stored.to_json())
        if live is not None:
            self._forget(live)
            if live.waiting and plan.body.store:
                self.turns.waiting[draft.id] = live  # continued by the next request naming this response
                plan.keep = True

    async def _finished(self, plan: _Plan) -> None:
        """However the request ended: the model's lease goes back; a live turn no one will continue closes."""
        try:
            await plan.lease.release()
        finally:
            self._let_go(plan)

    def _let_go(self, plan: _Plan) -> None:
        live = plan.live
        if live is not None and live.busy:
            live.busy = False
            live.touch()
            if not plan.keep:
                self._forget(live)
                live.close()

    def _forget(self, live: LiveTurn) -> None:
        for response_id, waiting in list(self.turns.waiting.items()):
            if waiting is live:
                del self.turns.waiting[response_id]

    def _stream(self, plan: _Plan, draft: ResponseDraft) -> Response:
        async def produce(sink: EventSink) -> None:
            async def send(kind: str, data: str) -> None:
                await sink.send(ServerSentEvent(data=data, event=kind))

            draft.send = send
            try:
                await draft.start()
                await self._run(plan, draft)
            finally:
                await self._finished(plan)

        # `finished` also runs for a stream that never began (the server was stopping): the turn is let go.
        return event_stream(produce, ping_s=self.ping_s, finished=lambda: self._let_go(plan), farewell=_Farewell(draft))


def _paused_turn(previous: StoredResponse) -> PausedTurn:
    """The turn `previous` waits on, as its record keeps it. Raises `ApiError` (409) where it keeps none."""
    try:
        if previous.paused is not None:
            return PausedTurn.from_json(previous.paused)
    except (KeyError, TypeError, ValueError):  # a record of another version
        pass
    raise ApiError(
        409,
        f"the turn of {previous.id} that waited for these approvals is gone (it was continued already, or its "
        "record cannot rebuild it); send the conversation again with a new user message",
        param="previous_response_id",
        code="turn_expired",
    )


class _Farewell(Sequence[ServerSentEvent]):
    """How a stream ends when the server shuts down: OpenAI's `error` event, with the stream's next number."""

    def __init__(self, draft: ResponseDraft) -> None:
        self.draft = draft

    def __len__(self) -> int:
        return 1

    @overload
    def __getitem__(self, index: int) -> ServerSentEvent: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[ServerSentEvent]: ...

    def __getitem__(self, index: int | slice) -> ServerSentEvent | Sequence[ServerSentEvent]:
        events = [ServerSentEvent(data=self.draft.error_json(SHUTDOWN_MESSAGE, SHUTDOWN_CODE), event="error")]
        return events[index]

    def __iter__(self) -> Iterator[ServerSentEvent]:
        return iter([self[0]])


MAX_ID_CHARS = 200  # as `previous_response_id`: a longer one names no response


def _shown_id(response_id: str) -> str:
    """An id as an error repeats it: a client's 100 KB are not echoed back."""
    if len(response_id) <= MAX_ID_CHARS:
        return repr(response_id)
    return f"{response_id[:40]!r}… ({len(response_id)} characters)"
