"""MLX in-process on Apple Silicon, through mlx-lm, with its prompt cache reused across rounds.

    backend = MlxBackend.load("mlx-community/gpt-oss-20b-MXFP4-Q8")   # a local folder or HF cache id

Imported only where it can run: elsewhere `load()` raises `BackendUnavailableError` with the reason.
"""

from __future__ import annotations

import platform
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import AsyncResource

from mcp_host.backends.base import (
    BackendUnavailableError,
    Capabilities,
    GenerationParams,
    GenerationStats,
    StopReason,
    speaks_harmony,
)
from mcp_host.backends.replay import common_prefix_length
from mcp_host.backends.threaded import CancelFlag, ThreadedGeneration
from mcp_host.errors import ModelLoadError, UnsupportedFeatureError


def mlx_available() -> tuple[bool, str]:
    """Whether MLX can run here, and why not."""
    if sys.platform != "darwin" or platform.machine() != "arm64":
        return False, f"MLX runs on Apple Silicon only (this is {sys.platform}/{platform.machine()})"
    try:
        import mlx_lm  # noqa: F401
    except ImportError:
        return False, "mlx-lm is not installed: pip install 'mcp_host[mlx]'"
    return True, ""


class MlxBackend(AsyncResource):
    """A model loaded with mlx-lm. Use `load()`."""

    def __init__(self, model: Any, tokenizer: Any, *, name: str, context_length: int) -> None:
        self._model = model
        self._tokenizer = tokenizer
        self.name = name
        self.context_length = context_length
        self._lock = anyio.Lock()
        self._cache: list[Any] | None = None
        self._cached_tokens: list[int] = []
        template = getattr(tokenizer, "chat_template", None)  # a Hugging Face tokenizer attribute, optional
        template = template if isinstance(template, str) else None
        bos = tokenizer.bos_token_id
        self.capabilities = Capabilities(
            prompt_format="harmony" if speaks_harmony(name, template) else "template",
            chat_template=template,
            bos_token=int(bos) if isinstance(bos, int) else None,
            end_tokens=frozenset(int(token) for token in tokenizer.eos_token_ids),
        )

    @classmethod
    def load(cls, model: str | Path, *, context_length: int = 32768) -> MlxBackend:
        """Load from a local folder (or an id already in the Hugging Face cache; nothing is downloaded)."""
        ok, reason = mlx_available()
        if not ok:
            raise BackendUnavailableError(reason)
        import os

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from mlx_lm import load

        try:
            loaded_model, tokenizer = load(str(model))
        except Exception as exc:  # noqa: BLE001 - mlx-lm raises many kinds; they all mean "cannot load"
            raise ModelLoadError(f"mlx-lm could not load {model}: {exc}") from exc
        return cls(loaded_model, tokenizer, name=str(model), context_length=context_length)

    def tokenize(self, text: str, *, special: bool = True) -> list[int]:
        return list(self._tokenizer.encode(text, add_special_tokens=False))

    def detokenize(self, tokens: Sequence[int]) -> str:
        return str(self._tokenizer.decode(list(tokens)))

    def generate(self, prompt: Sequence[int], params: GenerationParams) -> ThreadedGeneration:
        if params.grammar is not None:
            raise UnsupportedFeatureError("grammar-constrained generation needs llama.cpp; MLX has no grammar sampler")
        tokens = list(prompt)
        return ThreadedGeneration(self._lock, self._worker(tokens, params), GenerationStats(prompt_tokens=len(tokens)))

    def _worker(
        self, prompt: list[int], params: GenerationParams
    ) -> Callable[[CancelFlag, Callable[[int], None], GenerationStats], StopReason]:
        def run(cancel: CancelFlag, emit: Callable[[int], None], stats: GenerationStats) -> StopReason:
            import mlx.core as mx
            from mlx_lm import stream_generate
            from mlx_lm.models.cache import can_trim_prompt_cache, make_prompt_cache, trim_prompt_cache
            from mlx_lm.sample_utils import make_sampler

            if params.seed is not None:
                mx.random.seed(params.seed)
            reused = min(common_prefix_length(self._cached_tokens, prompt), len(prompt) - 1)
            if self._cache is not None and reused > 0 and can_trim_prompt_cache(self._cache):
                trim_prompt_cache(self._cache, len(self._cached_tokens) - reused)
            else:
                self._cache, reused = make_prompt_cache(self._model), 0
            stats.reused_prompt_tokens = reused
            stats.evaluated_prompt_tokens = len(prompt) - reused
            self._cached_tokens = list(prompt)
            sampler = make_sampler(temp=params.temperature, top_p=params.top_p)
            produced = 0
            for response in stream_generate(
                self._model,
                self._tokenizer,
                prompt=prompt[reused:],
                max_tokens=params.max_tokens,
                sampler=sampler,
                prompt_cache=self._cache,
            ):
                if cancel:
                    return "cancelled"
                token = int(response.token)
                self._cached_tokens.append(token)
                emit(token)
                produced += 1
                if token in params.stop_tokens:
                    return "stop"
            return "length" if produced >= params.max_tokens else "stop"

        return run

    async def aclose(self) -> None:
        async with self._lock:
            self._cache = None
            self._model = None
