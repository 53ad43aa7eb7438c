"""A model as the model-listing endpoints describe it: from its GGUF header where it is a file, else its backend.

    describe_model("google/gemma-3-270m", path, backend)   # ModelListing(kind="llm", state="loaded", ...)

Never raises for an unreadable or vanished file: a listing shows what it can (`unknown`, size 0) rather than fail.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mcp_host.backends.base import Backend
from mcp_host.backends.gguf_info import GGUFInfo, read_gguf_info
from mcp_host.backends.loading import LoadedModel
from mcp_host.errors import ModelLoadError

ModelKind = Literal["llm", "embedding"]


@dataclass(frozen=True)
class ModelListing:
    """A model as the model-listing endpoints describe it."""

    id: str
    path: Path | None
    kind: ModelKind
    state: Literal["loaded", "not-loaded"]
    architecture: str
    quantization: str | None
    max_context_length: int | None
    loaded_context_length: int | None
    size_bytes: int
    display_name: str


def describe_model(name: str, path: Path | None, backend: LoadedModel | None) -> ModelListing:
    """The listing of model `name` (its file `path`, if any), loaded as `backend` or not loaded (None)."""
    info = _info(path)
    kind: ModelKind = info.kind if info is not None else "llm"
    return ModelListing(
        id=name,
        path=path,
        kind=kind,
        state="loaded" if backend is not None else "not-loaded",
        architecture=info.architecture if info is not None else _architecture(backend),
        quantization=info.quantization if info is not None else None,
        max_context_length=(info.context_length if info is not None else None)
        or (backend.context_length if backend is not None else None),
        loaded_context_length=backend.context_length if backend is not None else None,
        size_bytes=_size(path),
        display_name=(info.name if info is not None else None) or name,
    )


def _info(path: Path | None) -> GGUFInfo | None:
    if path is None:
        return None
    try:
        return read_gguf_info(path)
    except ModelLoadError:
        return None


def _architecture(backend: LoadedModel | None) -> str:
    if isinstance(backend, Backend):
        return str(backend.capabilities.metadata.get("general.architecture", "unknown"))
    return "unknown"


def _size(path: Path | None) -> int:
    if path is None:
        return 0
    try:
        return path.stat().st_size
    except OSError:
        return 0
