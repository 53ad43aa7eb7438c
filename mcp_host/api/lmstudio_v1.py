"""LM Studio 0.4's native REST API: `POST /api/v1/chat` with MCP integrations, and the model endpoints.

    POST /api/v1/chat  {"model", "input", "system_prompt", "integrations": ["mcp/<server>", {"type": "plugin", ...},
                        {"type": "ephemeral_mcp", ...}], "stream", "temperature", "top_p", "top_k", "min_p",
                        "repeat_penalty", "max_output_tokens", "reasoning", "context_length", "store",
                        "previous_response_id" | "thread_id"}

The turn runs in the host's full loop with only the tools the integrations name (`mcp_host.api.integrations`):
mcp.json servers (`mcp/<name>`) when `[api] allow_mcp_json_servers` (default true), the request's own Streamable
HTTP servers (`ephemeral_mcp`, connected for the request and closed after it) when `[api] allow_ephemeral_mcp`
(default false); a kind not allowed is a 403, as LM Studio answers. The model is loaded just in time
(`model_load.*` events; `context_length` applies when this request loads it). `max_output_tokens` bounds each
generation of the turn.

Approvals: LM Studio itself has no approval over its API; it gates the whole by two settings ("Allow per-request
MCPs", "Allow calling servers from mcp.json") and the tools by `allowed_tools`. Here the host's permission policy
still holds, and nobody can answer an approval on this endpoint: a call the policy would ask about is denied
with a reason the model reads, unless the settings say `[api] unattended_calls = "allow"`, and what a server
asks during a call (a form) is declined. Calls the policy allows run, calls it denies are denied.

Conversations: with `store` (the default) the answer has a `response_id` (`resp_<hex>`); `previous_response_id`
continues from it, so each answer is a point to branch from. The older docs' `thread_id` is the same thing under
its older name: `thread_<hex>` continues from `resp_<hex>`, and an answer to a request that used `thread_id`
carries its own `thread_id` too. `store: false` keeps nothing. An unknown id is a 404. The conversations live
behind a `ThreadStore`: the durable store when the app has one (they survive a restart), else `ChatThreads` (in
memory, the `ChatThreads.limit` most recent).

Streaming sends LM Studio's named events (`chat.start` … `chat.end`, see `mcp_host.api.lmstudio_v1_events`); a
failure once the stream has begun is an `error` event, and `chat.end` still carries what was generated. A
client that goes away cancels the turn, streamed or not.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, overload

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mcp_host.agent import (
    ChatOptions,
    Event,
)
from mcp_host.api.answers import json_dumps
from mcp_host.api.completions import DEFAULT_MAX_TOKENS, check_request_fits
from mcp_host.api.host_tools import run_unattended
from mcp_host.api.integrations import RequestTools
from mcp_host.api.lmstudio_v1_events import V1Event, V1Output, error_event
from mcp_host.api.lmstudio_v1_models import LMStudioV1ModelRoutes
from mcp_host.api.lmstudio_v1_requests import ImageItem, V1ChatRequest
from mcp_host.api.requests import BodyReader, ChatCompletionRequest
from mcp_host.api.streaming import (
    PING_S,
    SHUTDOWN_CODE,
    SHUTDOWN_MESSAGE,
    EventSink,
    ServerSentEvent,
    event_stream,
    until_disconnected,
)
from mcp_host.backends.base import Backend, ChatBackend
from mcp_host.backends.loading import LoadEvent
from mcp_host.backends.registry import ModelRegistry
from mcp_host.errors import ApiError, BackendError
from mcp_host.host import Host
from mcp_host.prompt.harmony import Effort, HarmonyOptions, HarmonyRenderer

# LM Studio's `on` and `off` switch thinking for models that may think or not. gpt-oss always reasons (Harmony has no
# "none"), so `off` asks for the least (low) and `on` for the model's usual amount (medium, gpt-oss's default).
# Models that do not speak Harmony have no effort setting: for them the field changes nothing.
EFFORTS: dict[str, Effort] = {"off": "low", "low": "low", "medium": "medium", "high": "high", "on": "medium"}


class ThreadStore(Protocol):
    """Where threads are kept: `ChatThreads` in memory, or the durable store's `KindRecords(store, "thread")`."""

    async def get(self, id: str) -> dict[str, Any] | None: ...

    async def put(self, id: str, record: dict[str, Any]) -> None: ...


class ChatThreads:
    """Stored conversations by response id (`resp_…`): JSON-able records `{"model", "messages"}` (OpenAI chat shape).

    In memory, the `limit` most recently stored kept; the durable store replaces it behind the same two methods.
    """

    def __init__(self, limit: int = 1000) -> None:
        self.limit = limit
        self._records: OrderedDict[str, dict[str, Any]] = OrderedDict()

    async def get(self, id: str) -> dict[str, Any] | None:
        return self._records.get(id)

    async def put(self, id: str, record: dict[str, Any]) -> None:
        self._records[id] = record
        self._records.move_to_end(id)
        while len(self._records) > self.limit:
            self._records.popitem(last=False)


@dataclass
class _Plan:
    """One validated request, ready to run: nothing has been loaded or connected yet."""

    body: V1ChatRequest
    model: str
    text: str
    earlier: list[dict[str, Any]]
    tools: RequestTools
    options: ChatOptions
    effort: Effort | None


class LMStudioV1Routes:
    """`POST /api/v1/chat` and the model endpoints (`mcp_host.api.lmstudio_v1_models`)."""

    def __init__(
        self,
        host: Host,
        models: ModelRegistry,
        reader: BodyReader,
        renderer: HarmonyRenderer,
        *,
        unattended: bool = False,
        ping_s: float = PING_S,
        threads: ThreadStore | None = None,
    ) -> None:
        self.host = host
        self.models = models
        self.reader = reader
        self.renderer = renderer
        self.unattended = unattended  # calls the policy would ask about run instead of being denied
        self.ping_s = ping_s
        self.threads: ThreadStore = threads or ChatThreads()

    def routes(self) -> list[Route]:
        return [
            Route("/api/v1/chat", self.chat, methods=["POST"]),
            *LMStudioV1ModelRoutes(self.models, self.reader).routes(),
        ]

    async def chat(self, request: Request) -> Response:
        plan = await self._plan(await self.reader.read(request, V1ChatRequest))
        output = V1Output(plan.model, plan.tools, self.renderer.encoding)
        if plan.body.stream:
            return self._stream(plan, output)

        async def work() -> Response:
            await self._run(plan, output, _discard)
            if output.failure is not None:
                raise ApiError(502, f"the model failed: {output.failure}")
            return JSONResponse(await self._finish(plan, output))

        return await until_disconnected(request, work)

    async def _plan(self, body: V1ChatRequest) -> _Plan:
        """Everything checked before anything runs. Raises `ApiError` (400, 403, 404), `ModelNotFoundError`."""
        settings = self.host.settings
        model, _ = self.models.resolve(body.model)
        tools = RequestTools(
            self.host,
            body.servers(),
            allow_configured=settings.api.allow_mcp_json_servers,
            allow_ephemeral=settings.api.allow_ephemeral_mcp,
        )
        earlier: list[dict[str, Any]] = []
        if body.continues is not None:
            record = await self.threads.get(_response_id(body.continues))
            if record is None:
                param = "previous_response_id" if body.previous_response_id else "thread_id"
                raise ApiError(
                    404,
                    f"no stored conversation {body.continues!r} (it was answered with store: false, or is gone)",
                    param=param,
                    code="not_found",
                )
            earlier = list(record["messages"])
        if body.system_prompt is not None:  # a new system prompt replaces the conversation's
            earlier = [{"role": "system", "content": body.system_prompt}] + [
                message for message in earlier if message.get("role") != "system"
            ]
        effort = EFFORTS[body.reasoning] if body.reasoning is not None else None
        options = ChatOptions(
            harmony=HarmonyOptions(reasoning_effort=effort or settings.prompt.reasoning_effort),
            max_tokens_per_round=body.max_output_tokens or DEFAULT_MAX_TOKENS,
            temperature=1.0 if body.temperature is None else body.temperature,
            top_p=1.0 if body.top_p is None else body.top_p,
            top_k=body.top_k or 0,
            min_p=body.min_p or 0.0,
            repeat_penalty=1.0 if body.repeat_penalty is None else body.repeat_penalty,
            plugins=(),  # the integrations are the turn's only tools
        )
        return _Plan(body, model, _input_text(body), earlier, tools, options, effort)

    async def _run(self, plan: _Plan, output: V1Output, send: Callable[[list[V1Event]], Awaitable[None]]) -> None:
        """Load the model, connect the integrations and run the turn; every event goes to `send`.

        Raises `ApiError` and `BackendError` for what stops the turn before it starts.
        """

        async def on_load(event: LoadEvent) -> None:
            await send(output.load(event))

        lease = await self.models.acquire(plan.model, progress=on_load, context_length=plan.body.context_length)
        try:
            await send(output.loaded())
            async with plan.tools:
                await self._check_fits(plan, lease.backend)
                chat = plan.tools.chat(lease.backend, plan.options)
                output.user(plan.text)
                await send(output.begin())

                async def emit(event: Event) -> None:
                    await send(output.of(event))

                await run_unattended(
                    chat, plan.earlier, plan.text, reasoning=plan.effort, unattended=self.unattended, emit=emit
                )
        finally:
            await lease.release()

    async def _check_fits(self, plan: _Plan, backend: Backend | ChatBackend) -> None:
        names = plan.tools.registry.names.to_identifier
        tools = [
            {"type": "function", "function": {"name": names[spec.name], "description": spec.description}}
            for spec in plan.tools.registry
        ]
        messages = [*plan.earlier, {"role": "user", "content": plan.text}]
        request = ChatCompletionRequest.model_validate({"messages": messages, "tools": tools or None})
        try:
            await check_request_fits(request, self.renderer, backend)
        except ApiError as exc:
            raise ApiError(exc.status, str(exc), param="input", code=exc.code) from None

    async def _finish(self, plan: _Plan, output: V1Output) -> dict[str, Any]:
        """The whole answer; a completed turn is stored first when the request asks to."""
        completed = output.completed is not None and output.completed.stop_reason in (
            "answered",
            "max_rounds",
            "length",
        )
        if not (plan.body.store and completed and output.failure is None):
            return output.result()
        point = secrets.token_hex(24)
        record = {"model": plan.model, "messages": [*plan.earlier, *output.messages]}
        await self.threads.put(f"resp_{point}", record)
        thread_id = f"thread_{point}" if plan.body.thread_id is not None else None
        return output.result(response_id=f"resp_{point}", thread_id=thread_id)

    def _stream(self, plan: _Plan, output: V1Output) -> Response:
        async def produce(sink: EventSink) -> None:
            async def send(events: list[V1Event]) -> None:
                for event in events:
                    await sink.send(_sse(event))

            await send([output.start()])
            try:
                await self._run(plan, output, send)
            except ApiError as exc:
                await send([error_event(exc)])
            except BackendError as exc:  # the model could not be loaded
                await send([error_event(ApiError(502, f"the model could not be loaded: {exc}"))])
            await send([{"type": "chat.end", "result": await self._finish(plan, output)}])

        return event_stream(produce, ping_s=self.ping_s, farewell=_Farewell(output))


def _input_text(body: V1ChatRequest) -> str:
    """The user's message; raises `ApiError` (400) for an image, which no model here can read."""
    if isinstance(body.input, str):
        return body.input
    for index, item in enumerate(body.input):
        if isinstance(item, ImageItem):
            raise ApiError(
                400,
                f"images are not supported by this model ({body.model}): no engine of this host reads images",
                param=f"input.{index}",
                code="unsupported_by_model",
            )
    return "\n\n".join(item.content for item in body.input if not isinstance(item, ImageItem))


def _response_id(continues: str) -> str:
    """The stored answer a `previous_response_id` or an older `thread_id` names."""
    return "resp_" + continues.removeprefix("thread_") if continues.startswith("thread_") else continues


async def _discard(events: list[V1Event]) -> None:
    return None


def _sse(event: V1Event) -> ServerSentEvent:
    return ServerSentEvent(data=json_dumps(event), event=event["type"])


class _Farewell(Sequence[ServerSentEvent]):
    """How a stream ends when the server shuts down: an `error` event, then `chat.end` with what was generated."""

    def __init__(self, output: V1Output) -> None:
        self._output = output

    def _events(self) -> list[ServerSentEvent]:
        error = ApiError(503, SHUTDOWN_MESSAGE, code=SHUTDOWN_CODE)
        return [_sse(error_event(error)), _sse({"type": "chat.end", "result": self._output.result()})]

    @overload
    def __getitem__(self, index: int) -> ServerSentEvent: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[ServerSentEvent]: ...
    def __getitem__(self, index: int | slice) -> ServerSentEvent | Sequence[ServerSentEvent]:
        return self._events()[index]

    def __len__(self) -> int:
        return 2

    def __iter__(self) -> Iterator[ServerSentEvent]:
        return iter(self._events())
