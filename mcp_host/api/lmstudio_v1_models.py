"""LM Studio 0.4's model endpoints: list, load, unload; downloads are refused (this host works offline).

    GET  /api/v1/models                       {"models": [...]}: every model found, loaded or not
    GET  /v1/models/loading                   {"data": [{"model", "instance_id", "progress", "elapsed_s"}]}
    POST /api/v1/models/load                  {"model", "context_length", "echo_load_config", ...}
    POST /api/v1/models/unload                {"instance_id"}
    POST /api/v1/models/download              501: nothing is ever downloaded; the message says how to add models
    GET  /api/v1/models/download/status[/id]  no jobs: empty lists, or 404 `job_not_found`

A model loaded here stays until it is unloaded (no idle TTL), as in LM Studio; loading one already loaded
answers its instance. Of llama.cpp's load settings only `context_length` is applied, so `load_config` echoes
only what is true of the instance: its context length.

LM Studio's listing has no field for a load in progress (it streams `model_load.progress` events to the request
that loads); here a model being loaded also carries `"loading": {"progress": 0.0 … 1.0, "elapsed_s"}`, absent
otherwise, so that a model picker can show the load that someone else's request started. `/v1/models/loading`
(this host's own) lists only the loads, without reading the disk: cheap enough to poll several times a second.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mcp_host.api.lmstudio_v1_requests import V1DownloadRequest, V1LoadRequest, V1UnloadRequest
from mcp_host.api.requests import BodyReader
from mcp_host.backends.base import Backend
from mcp_host.backends.gguf_info import read_gguf_info
from mcp_host.backends.listing import ModelListing
from mcp_host.backends.loading import LoadedModel, Loading
from mcp_host.backends.registry import ModelRegistry
from mcp_host.errors import ApiError, ModelLoadError

NO_DOWNLOADS = (
    "this host never downloads models: it works offline. Put a GGUF file in LM Studio's model folder "
    "(~/.lmstudio/models/<publisher>/<model>/, or $LMSTUDIO_MODELS_DIR), the Hugging Face cache, or a folder "
    "listed in the host settings' [models] paths (`lms get <model>` or `hf download <repo>` fetch one); "
    "GET /api/v1/models lists what is found"
)


class LMStudioV1ModelRoutes:
    """The model endpoints over the server's `ModelRegistry`."""

    def __init__(self, models: ModelRegistry, reader: BodyReader) -> None:
        self.models = models
        self.reader = reader

    def routes(self) -> list[Route]:
        return [
            Route("/api/v1/models", self.list_models, methods=["GET"]),
            Route("/v1/models/loading", self.list_loads, methods=["GET"]),
            Route("/api/v1/models/load", self.load, methods=["POST"]),
            Route("/api/v1/models/unload", self.unload, methods=["POST"]),
            Route("/api/v1/models/download", self.download, methods=["POST"]),
            Route("/api/v1/models/download/status", self.download_jobs, methods=["GET"]),
            Route("/api/v1/models/download/status/{job_id}", self.download_job, methods=["GET"]),
        ]

    async def list_models(self, request: Request) -> Response:
        loaded, loading = self.models.loaded(), self.models.loading()
        return JSONResponse({"models": [describe_v1(row, loaded, loading) for row in self.models.listing()]})

    async def list_loads(self, request: Request) -> Response:
        return JSONResponse({"data": [describe_load(load) for load in self.models.loading()]})

    async def load(self, request: Request) -> Response:
        body = await self.reader.read(request, V1LoadRequest)
        started = time.monotonic()
        instance = await self.models.load(body.model, context_length=body.context_length, ttl_s=None)
        answer: dict[str, Any] = {
            "type": "embedding" if instance.endswith(":embedding") else "llm",
            "instance_id": instance,
            "load_time_seconds": round(time.monotonic() - started, 3),
            "status": "loaded",
        }
        if body.echo_load_config:
            backend = dict(self.models.loaded()).get(instance)
            answer["load_config"] = {"context_length": backend.context_length if backend is not None else None}
        return JSONResponse(answer)

    async def unload(self, request: Request) -> Response:
        body = await self.reader.read(request, V1UnloadRequest)
        if not await self.models.unload(body.instance_id):
            loaded = ", ".join(instance for instance, _ in self.models.loaded()) or "none"
            raise ApiError(
                404,
                f"no loaded instance {body.instance_id!r} (loaded: {loaded})",
                param="instance_id",
                code="model_not_found",
            )
        return JSONResponse({"instance_id": body.instance_id})

    async def download(self, request: Request) -> Response:
        await self.reader.read(request, V1DownloadRequest)
        raise ApiError(501, NO_DOWNLOADS, param="model", code="not_implemented")

    async def download_jobs(self, request: Request) -> Response:
        return JSONResponse({"downloading": [], "completed": [], "failed": [], "paused": []})

    async def download_job(self, request: Request) -> Response:
        job = request.path_params["job_id"]
        raise ApiError(404, f"no download job {job!r}: {NO_DOWNLOADS}", param="job_id", code="job_not_found")


def describe_v1(
    row: ModelListing, loaded: list[tuple[str, LoadedModel]], loading: Sequence[Loading] = ()
) -> dict[str, Any]:
    """A model in `GET /api/v1/models`, with its loaded instances and, while it loads, its progress."""
    instances = [
        {"id": instance, "config": {"context_length": backend.context_length}}
        for instance, backend in loaded
        if backend.name == row.id or instance == row.id
    ]
    model: dict[str, Any] = {
        "type": row.kind,
        "publisher": row.id.split("/")[0] if "/" in row.id else "local",
        "key": row.id,
        "display_name": row.display_name,
    }
    if row.kind == "llm":
        model["architecture"] = row.architecture if row.architecture != "unknown" else None
    model.update(
        quantization={"name": row.quantization, "bits_per_weight": _bits(row.quantization)}
        if row.quantization
        else None,
        size_bytes=row.size_bytes,
        params_string=_metadata(row, "general.size_label"),
        loaded_instances=instances,
        max_context_length=row.max_context_length,
        format="gguf" if row.path is not None and row.path.suffix == ".gguf" else None,
    )
    if row.kind == "llm":
        model["capabilities"] = {"vision": False, "trained_for_tool_use": _tool_use(row, loaded)}
        model["description"] = None
    load = next((load for load in loading if load.model == row.id), None)
    if load is not None:
        model["loading"] = _progress(load)
    return model


def describe_load(load: Loading) -> dict[str, Any]:
    """A load in progress as `/v1/models/loading` lists it."""
    return {"model": load.model, "instance_id": load.instance_id, **_progress(load)}


def _progress(load: Loading) -> dict[str, float]:
    return {"progress": round(load.progress, 4), "elapsed_s": round(load.elapsed_s, 3)}


def _bits(quantization: str) -> int | None:
    if quantization in ("F16", "BF16"):
        return 16
    if quantization == "F32":
        return 32
    found = re.match(r"^(?:I?Q|TQ|MXFP)(\d)", quantization)
    return int(found.group(1)) if found else None


def _metadata(row: ModelListing, key: str) -> str | None:
    if row.path is None:
        return None
    try:
        value = read_gguf_info(row.path).metadata.get(key)
    except ModelLoadError:
        return None
    return None if value is None else str(value)


def _tool_use(row: ModelListing, loaded: list[tuple[str, LoadedModel]]) -> bool:
    """gpt-oss (Harmony) and models whose chat template renders tools were trained to call them."""
    template = _metadata(row, "tokenizer.chat_template")
    if template is None:
        backend = next((backend for _, backend in loaded if backend.name == row.id), None)
        if isinstance(backend, Backend):
            return backend.capabilities.prompt_format == "harmony" or "tools" in (
                backend.capabilities.chat_template or ""
            )
        return "gpt-oss" in row.id.lower()
    return "gpt-oss" in row.id.lower() or "<|channel|>" in template or "tools" in template
