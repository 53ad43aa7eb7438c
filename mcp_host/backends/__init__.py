"""Inference engines behind one small interface (`Backend`): llama.cpp, MLX, OpenAI-compatible servers, replay."""

from mcp_host.backends.base import (
    Backend,
    BackendError,
    BackendUnavailableError,
    Generation,
    GenerationParams,
    GenerationStats,
    ModelNotFoundError,
)
from mcp_host.backends.models import FoundModel, demo_model, discover_models, find_gpt_oss, find_model
from mcp_host.backends.replay import RecordedGeneration, RecordingBackend, ReplayBackend

__all__ = [
    "Backend",
    "BackendError",
    "BackendUnavailableError",
    "FoundModel",
    "Generation",
    "GenerationParams",
    "GenerationStats",
    "ModelNotFoundError",
    "RecordedGeneration",
    "RecordingBackend",
    "ReplayBackend",
    "demo_model",
    "discover_models",
    "find_gpt_oss",
    "find_model",
]
