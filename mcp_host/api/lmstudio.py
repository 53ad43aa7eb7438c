"""LM Studio 0.3's REST API: `/api/v0/models`, `/api/v0/models/{model}`, `/api/v0/chat/completions` with `stats`."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mcp_host._version import __version__
from mcp_host.api.answers import Answer
from mcp_host.api.completions import prepare_completion
from mcp_host.api.openai_routes import Completer
from mcp_host.api.requests import BodyReader, ChatCompletionRequest
from mcp_host.backends.base import Backend, ChatBackend
from mcp_host.errors import ApiError

_STOP_REASONS = {"stop": "eosFound", "length": "maxPredictedTokensReached", "tool_calls": "toolCalls"}


class LMStudioV0Routes:
    """The loaded model as LM Studio describes it, and completions with LM Studio's `stats`."""

    def __init__(self, backend: Backend | ChatBackend, reader: BodyReader, completer: Completer) -> None:
        self.backend = backend
        self.reader = reader
        self.completer = completer

    def routes(self) -> list[Route]:
        return [
            Route("/api/v0/models", self.models, methods=["GET"]),
            Route("/api/v0/models/{model:path}", self.model, methods=["GET"]),
            Route("/api/v0/chat/completions", self.chat_completions, methods=["POST"]),
        ]

    def describe(self) -> dict[str, Any]:
        name = self.backend.name
        return {
            "id": name,
            "object": "model",
            "type": "llm",
            "publisher": name.split("/")[0] if "/" in name else "local",
            "arch": str(self.backend.capabilities.metadata.get("general.architecture", "gpt-oss")),
            "compatibility_type": "gguf",
            "quantization": _quantization(name),
            "state": "loaded",
            "max_context_length": self.backend.context_length,
        }

    async def models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [self.describe()]})

    async def model(self, request: Request) -> Response:
        if request.path_params["model"] != self.backend.name:
            raise ApiError(404, f"no model {request.path_params['model']!r} (loaded: {self.backend.name})")
        return JSONResponse(self.describe())

    async def chat_completions(self, request: Request) -> Response:
        body = await self.reader.read(request, ChatCompletionRequest)
        completion = await prepare_completion(body, self.completer.renderer, self.backend)
        if body.streamed:
            return self.completer.stream(completion, include_usage=body.include_usage)
        return await self.completer.answer(
            request, completion, lambda answer: self._with_stats(answer, completion.model)
        )

    def _with_stats(self, answer: Answer, model: str) -> dict[str, Any]:
        result = answer.json(model)
        assert answer.end is not None
        stats = answer.end.stats
        info = self.describe()
        result["stats"] = {
            "tokens_per_second": stats.tokens_per_second,
            "time_to_first_token": stats.time_to_first_token_s,
            "generation_time": stats.generation_time_s,
            "stop_reason": _STOP_REASONS.get(answer.end.finish_reason or "stop", "eosFound"),
        }
        result["model_info"] = {
            "arch": info["arch"],
            "quant": info["quantization"],
            "format": "gguf",
            "context_length": self.backend.context_length,
        }
        result["runtime"] = {"name": "mcp-host", "version": __version__, "supported_formats": ["gguf"]}
        return result


def _quantization(name: str) -> str:
    found = re.search(r"(Q\d_[A-Z0-9_]+|Q\d_\d|MXFP4|F16|BF16|F32)", name, re.IGNORECASE)
    return found.group(1).upper() if found else "unknown"
