"""OpenAI's endpoints: `GET /v1/models`, `POST /v1/chat/completions` (client tools, or the host's own).

Every request is validated whole before anything is generated; a streamed answer is produced in the
response's own task group and a whole answer beside a watch for the client's hang-up, so a client
that goes away stops its generation either way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mcp_host.agent import ErrorEvent, Event, MessageDelta, ReasoningDelta, TurnCompleted
from mcp_host.api.answers import Answer, Chunks, done
from mcp_host.api.completions import Completion, check_request_fits, prepare_completion
from mcp_host.api.host_tools import HostToolsTurn, TurnSummary, turn_usage
from mcp_host.api.requests import BodyReader, ChatCompletionRequest
from mcp_host.api.streaming import PING_S, EventSink, event_stream, until_disconnected
from mcp_host.backends.base import Backend, ChatBackend, ModelOutput
from mcp_host.errors import BackendError
from mcp_host.host import Host
from mcp_host.prompt.harmony import HarmonyRenderer


class Completer:
    """Runs completions for the routes: streamed as chunks, or whole (cancelled if the client leaves)."""

    def __init__(self, backend: Backend | ChatBackend, renderer: HarmonyRenderer, *, ping_s: float = PING_S) -> None:
        self.backend = backend
        self.renderer = renderer
        self.ping_s = ping_s

    def stream(self, completion: Completion, *, include_usage: bool) -> Response:
        async def produce(sink: EventSink) -> None:
            chunks = Chunks(completion.model)
            await sink.send(chunks.delta({"role": "assistant", "content": ""}))

            async def emit(piece: ModelOutput) -> None:
                for event in chunks.of(piece, include_usage=include_usage):
                    await sink.send(event)

            try:
                await completion.run(self.renderer, emit)
            except BackendError as exc:
                await sink.send(chunks.error(f"the model failed: {exc}"))
            await sink.send(done())

        return event_stream(produce, ping_s=self.ping_s)

    async def answer(
        self, request: Request, completion: Completion, shape: Callable[[Answer], dict[str, Any]]
    ) -> Response:
        """The whole answer as `shape` makes it; raises `BackendError`."""

        async def work() -> Response:
            answer = Answer()
            await completion.run(self.renderer, answer.add)
            return JSONResponse(shape(answer))

        return await until_disconnected(request, work)


class OpenAIRoutes:
    """`GET /v1/models` and `POST /v1/chat/completions`."""

    def __init__(self, host: Host, backend: Backend | ChatBackend, reader: BodyReader, completer: Completer) -> None:
        self.host = host
        self.backend = backend
        self.reader = reader
        self.completer = completer

    def routes(self) -> list[Route]:
        return [
            Route("/v1/models", self.models, methods=["GET"]),
            Route("/v1/chat/completions", self.chat_completions, methods=["POST"]),
        ]

    async def models(self, request: Request) -> Response:
        model = {"id": self.backend.name, "object": "model", "created": 0, "owned_by": "mcp-host"}
        return JSONResponse({"object": "list", "data": [model]})

    async def chat_completions(self, request: Request) -> Response:
        body = await self.reader.read(request, ChatCompletionRequest)
        if body.mcp_host is not None:
            return await self._with_host_tools(request, body)
        completion = await prepare_completion(body, self.completer.renderer, self.backend)
        if body.streamed:
            return self.completer.stream(completion, include_usage=body.include_usage)
        return await self.completer.answer(request, completion, lambda answer: answer.json(completion.model))

    async def _with_host_tools(self, request: Request, body: ChatCompletionRequest) -> Response:
        await check_request_fits(body, self.completer.renderer, self.backend)
        turn = HostToolsTurn.from_request(self.host, self.backend, body)
        if body.streamed:
            return self._stream_host_tools(turn, include_usage=body.include_usage)

        async def work() -> Response:
            summary = TurnSummary()
            await turn.run(summary.add)
            return JSONResponse(summary.json(turn.model))

        return await until_disconnected(request, work)

    def _stream_host_tools(self, turn: HostToolsTurn, *, include_usage: bool) -> Response:
        async def produce(sink: EventSink) -> None:
            chunks = Chunks(turn.model)
            await sink.send(chunks.delta({"role": "assistant", "content": ""}))

            async def emit(event: Event) -> None:
                if isinstance(event, MessageDelta):
                    await sink.send(chunks.delta({"content": event.text}))
                elif isinstance(event, ReasoningDelta):
                    await sink.send(chunks.delta({"reasoning": event.text}))
                elif isinstance(event, ErrorEvent) and event.kind == "backend":
                    await sink.send(chunks.error(f"the model failed: {event.message}"))
                elif isinstance(event, TurnCompleted):
                    await sink.send(chunks.delta({}, "stop"))
                    if include_usage:
                        await sink.send(chunks.usage(turn_usage(event.stats)))

            await turn.run(emit)
            await sink.send(done())

        return event_stream(produce, ping_s=self.completer.ping_s)
