"""LM Studio 0.3's REST API: `/api/v0/models`, `/api/v0/models/{model}`, `/api/v0/chat/completions` with `stats`."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mcp_host._version import __version__
from mcp_host.api.answers import Answer
from mcp_host.api.completions import Completion
from mcp_host.api.openai_routes import Completer
from mcp_host.api.requests import BodyReader, ChatCompletionRequest
from mcp_host.backends.base import ModelNotFoundError
from mcp_host.backends.listing import ModelListing
from mcp_host.backends.registry import ModelRegistry
from mcp_host.errors import ApiError

_STOP_REASONS = {"stop": "eosFound", "length": "maxPredictedTokensReached", "tool_calls": "toolCalls"}


class LMStudioV0Routes:
    """Every model as LM Studio describes it, and completions with LM Studio's `stats`."""

    def __init__(self, models: ModelRegistry, reader: BodyReader, completer: Completer) -> None:
        self.models = models
        self.reader = reader
        self.completer = completer

    def routes(self) -> list[Route]:
        return [
            Route("/api/v0/models", self.list_models, methods=["GET"]),
            Route("/api/v0/models/{model:path}", self.model, methods=["GET"]),
            Route("/api/v0/chat/completions", self.chat_completions, methods=["POST"]),
        ]

    async def list_models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [describe_v0(model) for model in self.models.listing()]})

    async def model(self, request: Request) -> Response:
        wanted = request.path_params["model"]
        try:
            model, _ = self.models.resolve(wanted)
        except ModelNotFoundError as exc:
            raise ApiError(404, str(exc), param="model", code="model_not_found") from exc
        for row in self.models.listing():
            if row.id == model:
                return JSONResponse(describe_v0(row))
        raise ApiError(404, f"no model {wanted!r}", param="model", code="model_not_found")

    async def chat_completions(self, request: Request) -> Response:
        body = await self.reader.read(request, ChatCompletionRequest)
        return await self.completer.respond(request, body, _with_stats)


def describe_v0(model: ModelListing) -> dict[str, Any]:
    """A model in `/api/v0/models`."""
    return {
        "id": model.id,
        "object": "model",
        "type": "embeddings" if model.kind == "embedding" else "llm",
        "publisher": model.id.split("/")[0] if "/" in model.id else "local",
        "arch": model.architecture,
        "compatibility_type": "gguf",
        "quantization": model.quantization or _quantization(model.id),
        "state": model.state,
        "max_context_length": model.max_context_length,
    }


def _with_stats(answer: Answer, completion: Completion) -> dict[str, Any]:
    result = answer.json(completion.model)
    assert answer.end is not None
    stats = answer.end.stats
    backend = completion.backend
    metadata = backend.capabilities.metadata
    result["stats"] = {
        "tokens_per_second": stats.tokens_per_second,
        "time_to_first_token": stats.time_to_first_token_s,
        "generation_time": stats.generation_time_s,
        "stop_reason": _STOP_REASONS.get(answer.end.finish_reason or "stop", "eosFound"),
    }
    result["model_info"] = {
        "arch": str(metadata.get("general.architecture", "unknown")),
        "quant": _quantization(backend.name),
        "format": "gguf",
        "context_length": backend.context_length,
    }
    result["runtime"] = {"name": "mcp-host", "version": __version__, "supported_formats": ["gguf"]}
    return result


def _quantization(name: str) -> str:
    found = re.search(r"(Q\d_[A-Z0-9_]+|Q\d_\d|MXFP4|F16|BF16|F32)", name, re.IGNORECASE)
    return found.group(1).upper() if found else "unknown"
