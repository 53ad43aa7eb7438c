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
from mcp_host.backends.base import ModelOutput
from mcp_host.backends.registry import Lease, ModelRegistry
from mcp_host.errors import BackendError
from mcp_host.host import Host
from mcp_host.prompt.harmony import HarmonyRenderer


class Completer:
    """Runs completions for the routes: streamed as chunks, or whole (cancelled if the client leaves)."""

    def __init__(self, models: ModelRegistry, renderer: HarmonyRenderer, *, ping_s: float = PING_S) -> None:
        self.models = models
        self.renderer = renderer
        self.ping_s = ping_s

    async def respond(
        self,
        request: Request,
        body: ChatCompletionRequest,
        shape: Callable[[Answer, Completion], dict[str, Any]] | None = None,
    ) -> Response:
        """The completion the body asks for, with its model loaded (and kept) until the answer is over."""
        lease = await self.models.acquire(body.model)
        try:
            completion = await prepare_completion(body, self.renderer, lease.backend)
            if body.streamed:
                return self.stream(completion, include_usage=body.include_usage, lease=lease)
            made = completion
            return await self.answer(
                request, made, lambda answer: shape(answer, made) if shape else answer.json(made.model)
            )
        except BaseException:  # a streamed answer that never started releases the model too
            await lease.release()
            raise
        finally:
            if not body.streamed:
                await lease.release()

    def stream(self, completion: Completion, *, include_usage: bool, lease: Lease) -> Response:
        """Streamed chunks; the lease is released when the stream ends."""

        async def produce(sink: EventSink) -> None:
            try:
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
            finally:
                await lease.release()

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

    def __init__(
        self, host: Host, models: ModelRegistry, reader: BodyReader, completer: Completer, *, unattended: bool = False
    ) -> None:
        self.host = host
        self.unattended = unattended  # calls the policy would ask about run instead of being denied
        self.models = models
        self.reader = reader
        self.completer = completer

    def routes(self) -> list[Route]:
        return [
            Route("/v1/models", self.list_models, methods=["GET"]),
            Route("/v1/chat/completions", self.chat_completions, methods=["POST"]),
        ]

    async def list_models(self, request: Request) -> Response:
        data = [
            {"id": model.id, "object": "model", "created": 0, "owned_by": _publisher(model.id)}
            for model in self.models.listing()
        ]
        return JSONResponse({"object": "list", "data": data})

    async def chat_completions(self, request: Request) -> Response:
        body = await self.reader.read(request, ChatCompletionRequest)
        if body.mcp_host is not None:
            return await self._with_host_tools(request, body)
        return await self.completer.respond(request, body)

    async def _with_host_tools(self, request: Request, body: ChatCompletionRequest) -> Response:
        lease = await self.models.acquire(body.model)
        try:
            await check_request_fits(body, self.completer.renderer, lease.backend)
            turn = HostToolsTurn.from_request(self.host, lease.backend, body, unattended=self.unattended)
            if body.streamed:
                return self._stream_host_tools(turn, include_usage=body.include_usage, lease=lease)

            async def work() -> Response:
                summary = TurnSummary()
                await turn.run(summary.add)
                return JSONResponse(summary.json(turn.model))

            return await until_disconnected(request, work)
        except BaseException:  # a streamed answer that never started releases the model too
            await lease.release()
            raise
        finally:
            if not body.streamed:
                await lease.release()

    def _stream_host_tools(self, turn: HostToolsTurn, *, include_usage: bool, lease: Lease) -> Response:
        async def produce(sink: EventSink) -> None:
            try:
                await self._send_host_tools(sink, turn, include_usage=include_usage)
            finally:
                await lease.release()

        return event_stream(produce, ping_s=self.completer.ping_s)

    async def _send_host_tools(self, sink: EventSink, turn: HostToolsTurn, *, include_usage: bool) -> None:
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
                await sink.send(chunks.delta({}, "length" if event.stop_reason == "length" else "stop"))
                if include_usage:
                    await sink.send(chunks.usage(turn_usage(event.stats)))

        await turn.run(emit)
        await sink.send(done())


def _publisher(model: str) -> str:
    return model.split("/")[0] if "/" in model else "mcp-host"
