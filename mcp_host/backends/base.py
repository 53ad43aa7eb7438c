"""The `Backend` interface: prompt token ids in, generated token ids out, with stats.

    async with backend.generate(prompt, GenerationParams(stop_tokens=STOP_TOKENS)) as generation:
        async for token in generation:
            ...                        # leaving the block early cancels generation promptly
    print(generation.stats)

Every engine (llama.cpp in-process, MLX, an OpenAI-compatible server in raw mode, a replayed
recording) implements this; the stats are modelled on LM Studio's `/api/v0` stats.

Raises (from `generate` or while iterating): `BackendError` and its subclasses.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal, Protocol, runtime_checkable

from mcp_host.errors import McpHostError

StopReason = Literal["stop", "length", "cancelled", "error"]


class BackendError(McpHostError):
    """The engine failed: a model that will not load, a server that is down or answers garbage."""


class ModelNotFoundError(BackendError):
    """No model matches the name; the message lists what was found and how to get gpt-oss."""


class BackendUnavailableError(BackendError):
    """The engine cannot run here (MLX off Apple Silicon, a missing optional package)."""


@dataclass(frozen=True)
class GenerationParams:
    """Sampling and stopping. `grammar` is a GBNF grammar that constrains the output (llama.cpp only)."""

    max_tokens: int = 2048
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop_tokens: frozenset[int] = frozenset()
    grammar: str | None = None


@dataclass
class GenerationStats:
    """What one generation cost. Times are seconds; `prompt_tokens = reused + evaluated`."""

    prompt_tokens: int = 0
    reused_prompt_tokens: int = 0
    evaluated_prompt_tokens: int = 0
    generated_tokens: int = 0
    time_to_first_token_s: float | None = None
    generation_time_s: float = 0.0
    stop_reason: StopReason | None = None
    started_at: float = field(default_factory=time.perf_counter, repr=False)

    @property
    def tokens_per_second(self) -> float:
        """Generated tokens per second after the first token (decode speed, as LM Studio reports it)."""
        if self.time_to_first_token_s is None or self.generated_tokens < 2:
            return 0.0
        decode = self.generation_time_s - self.time_to_first_token_s
        return (self.generated_tokens - 1) / decode if decode > 0 else 0.0

    def mark_token(self) -> None:
        now = time.perf_counter() - self.started_at
        if self.time_to_first_token_s is None:
            self.time_to_first_token_s = now
        self.generated_tokens += 1
        self.generation_time_s = now

    def finish(self, reason: StopReason) -> None:
        self.stop_reason = reason
        self.generation_time_s = time.perf_counter() - self.started_at

    def to_json(self) -> dict[str, object]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "reused_prompt_tokens": self.reused_prompt_tokens,
            "evaluated_prompt_tokens": self.evaluated_prompt_tokens,
            "generated_tokens": self.generated_tokens,
            "time_to_first_token": self.time_to_first_token_s,
            "tokens_per_second": self.tokens_per_second,
            "generation_time": self.generation_time_s,
            "stop_reason": self.stop_reason,
        }


@runtime_checkable
class Generation(Protocol):
    """One running generation: an async iterator of token ids and an async context manager.

    Leaving the `async with` block (or cancelling the task) stops the engine promptly; `stats`
    is final once iteration ended.
    """

    @property
    def stats(self) -> GenerationStats: ...

    def __aiter__(self) -> AsyncIterator[int]: ...

    async def __aenter__(self) -> Generation: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


@runtime_checkable
class Backend(Protocol):
    """A loaded model that generates from token ids. Share one between chats: generations are queued fairly."""

    name: str
    context_length: int

    def generate(self, prompt: Sequence[int], params: GenerationParams) -> Generation:
        """Start generating after `prompt`; stops at a stop token (included in the output) or `max_tokens`."""
        ...

    def tokenize(self, text: str, *, special: bool = True) -> list[int]:
        """The model's own tokenization (used by prompt formats that are text, such as chat templates)."""
        ...

    def detokenize(self, tokens: Sequence[int]) -> str: ...

    async def aclose(self) -> None:
        """Release the model. Idempotent."""
        ...
