"""Text completions and embeddings: OpenAI's `POST /v1/completions` and `POST /v1/embeddings`, and LM Studio's
`POST /api/v0/completions` (with `stats`, `model_info`, `runtime`) and `POST /api/v0/embeddings`.

    routes = TextRoutes(models, reader, renderer).routes()

A completion continues the prompt as it is, with no chat template (`mcp_host.api.text_completion`); streamed,
it is OpenAI's `text_completion` chunks, then `[DONE]`. Embeddings come from the model loaded in llama.cpp's
embedding mode, its own instance beside any loaded for generation (`ModelRegistry.embedder`). The model is
kept loaded until the answer is over, and a client that hangs up cancels the work either way.
"""

from __future__ import annotations

import array
import base64
import json
import struct
import time
import uuid
from collections.abc import Callable
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mcp_host._version import __version__
from mcp_host.api.answers import done, generation_usage, json_dumps
from mcp_host.api.lmstudio import describe_v0
from mcp_host.api.requests import BodyReader
from mcp_host.api.streaming import PING_S, EventSink, ServerSentEvent, event_stream, until_disconnected
from mcp_host.api.text_completion import TextCompletion, TextEnd, prepare_text_completion, tokenize_within
from mcp_host.api.text_requests import CompletionRequest, EmbeddingRequest
from mcp_host.backends.base import Backend, Embedder, Embeddings
from mcp_host.backends.registry import Lease, ModelRegistry
from mcp_host.errors import ApiError, BackendError, UnsupportedFeatureError
from mcp_host.prompt.harmony import HarmonyRenderer

# LM Studio's names for why a generation stopped (its `/api/v0` stats).
_V0_STOP_REASONS = {"eos": "eosFound", "stop_string": "stopStringFound", "length": "maxPredictedTokensReached"}

Extras = Callable[[TextEnd, Backend], dict[str, Any]]


class TextRoutes:
    """Completions of raw text and embeddings, in OpenAI's shapes and LM Studio's v0 ones."""

    def __init__(
        self, models: ModelRegistry, reader: BodyReader, renderer: HarmonyRenderer, *, ping_s: float = PING_S
    ) -> None:
        self.models = models
        self.reader = reader
        self.renderer = renderer
        self.ping_s = ping_s

    def routes(self) -> list[Route]:
        return [
            Route("/v1/completions", self.completions, methods=["POST"]),
            Route("/v1/embeddings", self.embeddings, methods=["POST"]),
            Route("/api/v0/completions", self.v0_completions, methods=["POST"]),
            Route("/api/v0/embeddings", self.embeddings, methods=["POST"]),
        ]

    async def completions(self, request: Request) -> Response:
        body = await self.reader.read(request, CompletionRequest)
        return await self._complete(request, body, None)

    async def v0_completions(self, request: Request) -> Response:
        body = await self.reader.read(request, CompletionRequest)
        return await self._complete(request, body, self._v0_extras)

    async def embeddings(self, request: Request) -> Response:
        body = await self.reader.read(request, EmbeddingRequest)
        try:
            async with self.models.embedder(body.model) as embedder:
                texts = body.texts
                await _check_texts_fit(embedder, texts)

                async def work() -> Response:
                    made = await embedder.embed(texts)
                    return await _embeddings_response(body, embedder.name, made)

                return await until_disconnected(request, work)
        except UnsupportedFeatureError as exc:
            raise ApiError(
                400,
                f"{exc}. Embeddings come from a GGUF model file that this server loads itself, in llama.cpp's "
                "embedding mode: name one that /v1/models lists",
                param="model",
                code="unsupported_by_model",
            ) from exc

    # -- completions -----------------------------------------------------------------------------

    async def _complete(self, request: Request, body: CompletionRequest, extras: Extras | None) -> Response:
        lease = await self.models.acquire(body.model)
        streaming = False
        try:
            completion = await prepare_text_completion(body, self.renderer, lease.backend)
            if body.streamed:
                streaming = True  # the stream releases the lease when it ends
                return self._stream(completion, body, lease)

            async def work() -> Response:
                pieces: list[str] = []

                async def add(text: str) -> None:
                    pieces.append(text)

                end = await completion.run(add)
                text = (body.text if body.echo else "") + "".join(pieces)
                result = _completion_json(completion.model, text, end)
                if extras is not None:
                    result.update(extras(end, completion.backend))
                return JSONResponse(result)

            return await until_disconnected(request, work)
        finally:
            if not streaming:
                await lease.release()

    def _stream(self, completion: TextCompletion, body: CompletionRequest, lease: Lease) -> Response:
        chunks = TextChunks(completion.model)

        async def produce(sink: EventSink) -> None:
            try:
                if body.echo:
                    await sink.send(chunks.text(body.text))

                async def emit(text: str) -> None:
                    await sink.send(chunks.text(text))

                try:
                    end = await completion.run(emit)
                except BackendError as exc:
                    await sink.send(chunks.error(f"the model failed: {exc}"))
                else:
                    await sink.send(chunks.text("", end.finish_reason))
                    if body.include_usage:
                        await sink.send(chunks.usage(generation_usage(end.stats)))
                await sink.send(done())
            finally:
                await lease.release()

        return event_stream(produce, ping_s=self.ping_s)

    def _v0_extras(self, end: TextEnd, backend: Backend) -> dict[str, Any]:
        return lmstudio_extras(end, backend, self._quantization(backend.name))

    def _quantization(self, model: str) -> str:
        for row in self.models.listing():
            if row.id == model:
                return str(describe_v0(row)["quantization"])
        return "unknown"


class TextChunks:
    """The events of one streamed text completion, all sharing its id, time and model."""

    def __init__(self, model: str) -> None:
        self.base = {"id": _completion_id(), "object": "text_completion", "created": int(time.time()), "model": model}

    def text(self, text: str, finish: str | None = None) -> ServerSentEvent:
        choice = {"text": text, "index": 0, "logprobs": None, "finish_reason": finish}
        return ServerSentEvent(data=json_dumps({**self.base, "choices": [choice]}))

    def usage(self, usage: dict[str, int]) -> ServerSentEvent:
        return ServerSentEvent(data=json_dumps({**self.base, "choices": [], "usage": usage}))

    def error(self, message: str) -> ServerSentEvent:
        """A failure after the stream began, as OpenAI-compatible servers report it."""
        return ServerSentEvent(data=json_dumps({"error": {"message": message, "type": "server_error"}}))


def _completion_id() -> str:
    return f"cmpl-{uuid.uuid4().hex}"


def _completion_json(model: str, text: str, end: TextEnd) -> dict[str, Any]:
    return {
        "id": _completion_id(),
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": end.finish_reason}],
        "usage": generation_usage(end.stats),
    }


def lmstudio_extras(end: TextEnd, backend: Backend, quantization: str) -> dict[str, Any]:
    """What LM Studio's `/api/v0` adds to a completion: `stats`, `model_info`, `runtime`."""
    stats = end.stats
    return {
        "stats": {
            "tokens_per_second": stats.tokens_per_second,
            "time_to_first_token": stats.time_to_first_token_s,
            "generation_time": stats.generation_time_s,
            "stop_reason": _V0_STOP_REASONS[end.reason],
        },
        "model_info": {
            "arch": str(backend.capabilities.metadata.get("general.architecture", "unknown")),
            "quant": quantization,
            "format": "gguf",
            "context_length": backend.context_length,
        },
        "runtime": {"name": "mcp-host", "version": __version__, "supported_formats": ["gguf"]},
    }


# -- embeddings ------------------------------------------------------------------------------------


async def _check_texts_fit(embedder: Embedder, texts: list[str]) -> None:
    """Each text must fit the model's context (its BOS token included); a 400 naming the first that does not."""
    if not isinstance(embedder, Backend):  # an embedder that is no generating backend counts nothing itself
        return

    def count(text: str) -> list[int]:
        return embedder.tokenize(text, special=False)  # as llama.cpp's embedding does, before its BOS

    def check() -> None:
        for index, text in enumerate(texts):
            tokenize_within(text, count, embedder.context_length, f"input.{index}")

    await anyio.to_thread.run_sync(check)


async def _embeddings_response(body: EmbeddingRequest, model: str, made: Embeddings) -> Response:
    """OpenAI's list of embeddings; rendered in a worker thread (2,048 vectors are megabytes of JSON)."""
    width = len(made.vectors[0]) if made.vectors else 0
    if body.dimensions is not None and body.dimensions != width:
        raise ApiError(
            400,
            f"{model} makes vectors of {width} dimensions; it cannot make {body.dimensions}",
            param="dimensions",
        )
    encode = _base64 if body.encoding_format == "base64" else _float32

    def render() -> bytes:
        data = [
            {"object": "embedding", "embedding": encode(vector), "index": index}
            for index, vector in enumerate(made.vectors)
        ]
        usage = {"prompt_tokens": made.prompt_tokens, "total_tokens": made.prompt_tokens}
        result = {"object": "list", "data": data, "model": model, "usage": usage}
        return json.dumps(result, separators=(",", ":")).encode()

    return Response(await anyio.to_thread.run_sync(render), media_type="application/json")


def _float32(vector: list[float]) -> list[float]:
    """The vector's float32 values, as OpenAI sends them (and as base64 carries them)."""
    return array.array("f", vector).tolist()


def _base64(vector: list[float]) -> str:
    """As OpenAI encodes a vector: its float32 values, little-endian, in base64."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
