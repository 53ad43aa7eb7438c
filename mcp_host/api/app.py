"""The HTTP chat API: a Starlette app built from its dependencies.

    app = create_app(host, backend, api_key=None)
    uvicorn.run(app, host="127.0.0.1", port=8080)

Endpoints: `GET /v1/models`, `POST /v1/chat/completions` (OpenAI-compatible, streaming and not, with
client tools), LM Studio's `/api/v0/models` and `/api/v0/chat/completions` (with `stats`), the sessions
of `mcp_host.api.sessions`, `GET /v1/tools`, `GET /v1/servers`, `POST /v1/servers/{name}/restart`.
Errors are OpenAI-shaped.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from mcp_host._version import __version__
from mcp_host.agent.events import Event, MessageDelta, ReasoningDelta
from mcp_host.api.completions import (
    CallPiece,
    Completion,
    EndPiece,
    ReasoningPiece,
    TextPiece,
    completion_for,
    json_dumps,
    tool_call_json,
)
from mcp_host.api.errors import ApiError
from mcp_host.api.host_tools import requested_host_tools, run_with_host_tools, summarise
from mcp_host.api.sessions import Sessions
from mcp_host.backends.base import Backend, BackendError
from mcp_host.errors import UnknownServerError
from mcp_host.host import Host
from mcp_host.prompt.harmony import HarmonyRenderer

MAX_BODY_BYTES = 8 * 1024 * 1024
ARGUMENT_FRAGMENT = 16  # streamed call arguments arrive in pieces, as OpenAI and LM Studio send them


def create_app(
    host: Host,
    backend: Backend,
    *,
    api_key: str | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    renderer: HarmonyRenderer | None = None,
    cors_origins: list[str] | None = None,
) -> Starlette:
    """The API over a running `host` and a loaded `backend` (shared by every request, queued fairly).

    CORS is off unless `cors_origins` names the origins a browser page may call from.
    """
    renderer = renderer or HarmonyRenderer()

    async def models(request: Request) -> Response:
        return JSONResponse(
            {"object": "list", "data": [{"id": backend.name, "object": "model", "created": 0, "owned_by": "mcp-host"}]}
        )

    async def chat_completions(request: Request) -> Response:
        body = await _json_body(request, max_body_bytes)
        names = requested_host_tools(body) if isinstance(body, dict) else None
        if names is not None:
            assert isinstance(body, dict)
            return await _with_host_tools(host, backend, body, names)
        completion = completion_for(body, renderer, backend)
        if completion.stream:
            return StreamingResponse(
                _stream(completion, backend, renderer),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache"},
            )
        return JSONResponse(await _complete(completion, backend, renderer))

    def lmstudio_model() -> dict[str, Any]:
        metadata = getattr(backend, "metadata", {}) or {}
        return {
            "id": backend.name,
            "object": "model",
            "type": "llm",
            "publisher": backend.name.split("/")[0] if "/" in backend.name else "local",
            "arch": str(metadata.get("general.architecture", "gpt-oss")),
            "compatibility_type": "gguf",
            "quantization": _quantization(backend.name),
            "state": "loaded",
            "max_context_length": backend.context_length,
        }

    async def v0_models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [lmstudio_model()]})

    async def v0_model(request: Request) -> Response:
        if request.path_params["model"] != backend.name:
            raise ApiError(404, f"no model {request.path_params['model']!r} (loaded: {backend.name})")
        return JSONResponse(lmstudio_model())

    async def v0_chat_completions(request: Request) -> Response:
        body = await _json_body(request, max_body_bytes)
        completion = completion_for(body, renderer, backend)
        if completion.stream:
            return StreamingResponse(_stream(completion, backend, renderer), media_type="text/event-stream")
        result, end = await _complete_with_end(completion, backend, renderer)
        info = lmstudio_model()
        stats = end.stats
        result["stats"] = {
            "tokens_per_second": stats.tokens_per_second,
            "time_to_first_token": stats.time_to_first_token_s,
            "generation_time": stats.generation_time_s,
            "stop_reason": _LMSTUDIO_STOP.get(end.finish_reason, "eosFound"),
        }
        result["model_info"] = {
            "arch": info["arch"],
            "quant": info["quantization"],
            "format": "gguf",
            "context_length": backend.context_length,
        }
        result["runtime"] = {"name": "mcp-host", "version": __version__, "supported_formats": ["gguf"]}
        return JSONResponse(result)

    async def tools(request: Request) -> Response:
        names = host.registry.names
        return JSONResponse(
            {
                "object": "list",
                "data": [
                    {
                        "name": spec.name,
                        "identifier": names.to_identifier[spec.name],
                        "server": spec.server,
                        "description": spec.description,
                        "input_schema": spec.input_schema,
                        "annotations": spec.annotations,
                    }
                    for spec in host.registry
                ],
            }
        )

    async def servers(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [status.to_json() for status in host.statuses()]})

    async def restart_server(request: Request) -> Response:
        name = request.path_params["name"]
        try:
            connection = await host.manager.restart(name)
        except UnknownServerError as exc:
            raise ApiError(404, str(exc)) from exc
        await connection.wait_settled()
        return JSONResponse(connection.status().to_json())

    async def read_json(request: Request) -> object:
        return await _json_body(request, max_body_bytes)

    sessions = Sessions(host, backend, read_json)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await sessions.aclose()  # graceful shutdown: every session's tools stop (the host stops its servers)

    routes = [
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/api/v0/models", v0_models, methods=["GET"]),
        Route("/api/v0/models/{model:path}", v0_model, methods=["GET"]),
        Route("/api/v0/chat/completions", v0_chat_completions, methods=["POST"]),
        Route("/v1/tools", tools, methods=["GET"]),
        Route("/v1/servers", servers, methods=["GET"]),
        Route("/v1/servers/{name}/restart", restart_server, methods=["POST"]),
        *sessions.routes(),
    ]
    middleware = [Middleware(_ErrorsAndAuth, api_key=api_key)]
    if cors_origins:
        middleware.insert(
            0,
            Middleware(
                CORSMiddleware,
                allow_origins=cors_origins,
                allow_methods=["GET", "POST", "DELETE"],
                allow_headers=["authorization", "content-type"],
            ),
        )
    app = Starlette(
        routes=routes, middleware=middleware, lifespan=lifespan, exception_handlers={404: _not_found, 405: _not_allowed}
    )
    app.state.sessions = sessions
    return app


class _ErrorsAndAuth(BaseHTTPMiddleware):
    def __init__(self, app: Any, api_key: str | None) -> None:
        super().__init__(app)
        self.api_key = api_key

    async def dispatch(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if self.api_key is not None:
            given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(given.encode(), self.api_key.encode()):
                return ApiError(
                    401, "a valid API key is required (Authorization: Bearer ...)", code="invalid_api_key"
                ).response()
        try:
            return await call_next(request)
        except ApiError as exc:
            return exc.response()
        except BackendError as exc:
            return ApiError(502, f"the model failed: {exc}").response()


async def _not_found(request: Request, exc: Exception) -> Response:
    return ApiError(404, f"no such endpoint: {request.method} {request.url.path}").response()


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return ApiError(405, f"{request.method} is not allowed on {request.url.path}").response()


async def _json_body(request: Request, limit: int) -> object:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"the request body is larger than {limit} bytes")
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            raise ApiError(413, f"the request body is larger than {limit} bytes")
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"the request body is not valid JSON: {exc}") from exc


async def _complete(completion: Completion, backend: Backend, renderer: HarmonyRenderer) -> dict[str, Any]:
    result, _ = await _complete_with_end(completion, backend, renderer)
    return result


async def _complete_with_end(
    completion: Completion, backend: Backend, renderer: HarmonyRenderer
) -> tuple[dict[str, Any], EndPiece]:
    text, reasoning, calls = [], [], []
    end: EndPiece | None = None
    async for piece in completion.run(backend, renderer):
        if isinstance(piece, TextPiece):
            text.append(piece.text)
        elif isinstance(piece, ReasoningPiece):
            reasoning.append(piece.text)
        elif isinstance(piece, CallPiece):
            calls.append(tool_call_json(piece))
        else:
            end = piece
    assert end is not None
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text) or None}
    if reasoning:
        message["reasoning"] = "".join(reasoning)
    if calls:
        message["tool_calls"] = calls
    result = {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": completion.model,
        "choices": [{"index": 0, "message": message, "finish_reason": end.finish_reason, "logprobs": None}],
        "usage": _usage(end),
    }
    return result, end


class _Chunks:
    """The `data:` lines of one streamed completion, all sharing its id, time and model."""

    def __init__(self, model: str) -> None:
        self.base = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }

    def delta(self, delta: dict[str, Any], finish: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return f"data: {json_dumps({**self.base, 'choices': [choice]})}\n\n"

    def usage(self, usage: dict[str, int]) -> str:
        return f"data: {json_dumps({**self.base, 'choices': [], 'usage': usage})}\n\n"


async def _stream(completion: Completion, backend: Backend, renderer: HarmonyRenderer) -> AsyncIterator[str]:

    chunks = _Chunks(completion.model)
    chunk = chunks.delta

    yield chunk({"role": "assistant", "content": ""})
    try:
        async for piece in completion.run(backend, renderer):
            if isinstance(piece, TextPiece):
                yield chunk({"content": piece.text})
            elif isinstance(piece, ReasoningPiece):
                yield chunk({"reasoning": piece.text})
            elif isinstance(piece, CallPiece):
                yield chunk(
                    {
                        "tool_calls": [
                            {
                                "index": piece.index,
                                "id": piece.id,
                                "type": "function",
                                "function": {"name": piece.name, "arguments": ""},
                            }
                        ]
                    }
                )
                for start in range(0, len(piece.arguments), ARGUMENT_FRAGMENT):
                    fragment = piece.arguments[start : start + ARGUMENT_FRAGMENT]
                    yield chunk({"tool_calls": [{"index": piece.index, "function": {"arguments": fragment}}]})
            else:
                yield chunk({}, piece.finish_reason)
                if completion.include_usage:
                    yield chunks.usage(_usage(piece))
    except BackendError as exc:
        yield f"data: {json_dumps({'error': {'message': f'the model failed: {exc}', 'type': 'server_error'}})}\n\n"
    yield "data: [DONE]\n\n"


_LMSTUDIO_STOP = {"stop": "eosFound", "length": "maxPredictedTokensReached", "tool_calls": "toolCalls"}


def _quantization(name: str) -> str:
    found = re.search(r"(Q\d_[A-Z0-9_]+|Q\d_\d|MXFP4|F16|BF16|F32)", name, re.IGNORECASE)
    return found.group(1).upper() if found else "unknown"


async def _with_host_tools(host: Host, backend: Backend, body: dict[str, Any], names: list[str]) -> Response:
    model = str(body.get("model") or backend.name)
    identifier, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    turn = run_with_host_tools(host, backend, body, names)
    first = await anext(turn)  # request errors (unknown servers, bad messages) surface here, as a 400
    if body.get("stream"):

        async def stream() -> AsyncIterator[str]:
            chunk = _Chunks(model).delta

            yield chunk({"role": "assistant", "content": ""})
            async for event in _prepend(first, turn):
                if isinstance(event, MessageDelta):
                    yield chunk({"content": event.text})
                elif isinstance(event, ReasoningDelta):
                    yield chunk({"reasoning": event.text})
            yield chunk({}, "stop")
            yield "data: [DONE]\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream")
    events = [event async for event in _prepend(first, turn)]
    text, reasoning, calls, done = summarise(events)
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if reasoning:
        message["reasoning"] = reasoning
    stats = done.stats if done is not None else None
    usage = {
        "prompt_tokens": stats.prompt_tokens_evaluated + stats.prompt_tokens_reused if stats else 0,
        "completion_tokens": stats.generated_tokens if stats else 0,
    }
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    return JSONResponse(
        {
            "id": identifier,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}],
            "usage": usage,
            "mcp_host": {"tool_calls": calls},
        }
    )


async def _prepend(first: Event, rest: AsyncIterator[Event]) -> AsyncIterator[Event]:
    yield first
    async for event in rest:
        yield event


def _usage(end: EndPiece) -> dict[str, int]:
    stats = end.stats
    return {
        "prompt_tokens": stats.prompt_tokens,
        "completion_tokens": stats.generated_tokens,
        "total_tokens": stats.prompt_tokens + stats.generated_tokens,
    }
