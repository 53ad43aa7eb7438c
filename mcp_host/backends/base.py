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
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal, Protocol, runtime_checkable

from mcp_host.errors import BackendConnectionError as BackendConnectionError
from mcp_host.errors import BackendError as BackendError
from mcp_host.errors import BackendResponseError as BackendResponseError
from mcp_host.errors import BackendUnavailableError as BackendUnavailableError
from mcp_host.errors import GenerationError as GenerationError
from mcp_host.errors import ModelLoadError as ModelLoadError
from mcp_host.errors import ModelNotFoundError as ModelNotFoundError
from mcp_host.errors import UnsupportedFeatureError as UnsupportedFeatureError

StopReason = Literal["stop", "length", "cancelled", "error"]


PromptFormat = Literal["harmony", "template", "chat"]
# (prompt tokens evaluated so far, prompt tokens to evaluate); awaited on the event loop between the engine's batches.
PromptProgressCallback = Callable[[int, int], Awaitable[None]]


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do, declared by the backend (never probed with `getattr`).

    `prompt_format` says who builds the prompt: `harmony` (the host renders Harmony for gpt-oss),
    `template` (the host renders the model's own chat template, or a fallback), `chat` (a server that
    applies its own template and parses tool calls: see `ChatBackend`).
    """

    prompt_format: PromptFormat
    tokenizer: bool = True
    chat_template: str | None = None
    bos_token: int | None = None
    end_tokens: frozenset[int] = frozenset()
    control_texts: tuple[str, ...] = ()
    grammar: bool = False
    embeddings: bool = False
    metadata: Mapping[str, str] = field(default_factory=dict)


def speaks_harmony(name: str | None, chat_template: str | None, architecture: str | None = None) -> bool:
    """gpt-oss speaks Harmony: known by its architecture (a model file's metadata), a chat template that writes
    Harmony channels, or, where nothing else tells (a model on a server), its `name`."""
    if chat_template is not None and "<|channel|>" in chat_template:
        return True
    if architecture == "gpt-oss":
        return True
    return name is not None and "gpt-oss" in name.lower()


@dataclass(frozen=True)
class GenerationParams:
    """Sampling and stopping. `grammar` is a GBNF grammar that constrains the output (llama.cpp only).

    `top_k = 0`, `min_p = 0` and `repeat_penalty = 1` leave sampling as it is (the defaults).
    `on_prompt_progress` hears how far an engine that evaluates the prompt itself got with one longer than
    its batch: `(0, total)` first, then after each batch, `(total, total)` last; it should return at once.
    Engines that cannot tell (a server, MLX) never call it.
    """

    max_tokens: int = 2048
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    top_k: int = 0
    min_p: float = 0.0
    repeat_penalty: float = 1.0
    stop_tokens: frozenset[int] = frozenset()
    grammar: str | None = None
    on_prompt_progress: PromptProgressCallback | None = field(default=None, compare=False, repr=False)


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

    @property
    def capabilities(self) -> Capabilities:
        """The prompt format, tokenizer, chat template, end tokens and features of this model."""
        ...

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


@dataclass(frozen=True)
class Embeddings:
    """One vector per input text, and the tokens they took."""

    vectors: list[list[float]]
    prompt_tokens: int


@runtime_checkable
class Embedder(Protocol):
    """A model loaded to embed text (`Capabilities.embeddings`)."""

    name: str

    async def embed(self, texts: Sequence[str]) -> Embeddings:
        """Raises `UnsupportedFeatureError` when the model was not loaded for embeddings, `GenerationError`."""
        ...


# -- what a model says, as every layer above the engine reads it ----------------------------------
# The Harmony parser, a server in chat mode and the API's completions all speak these.


@dataclass(frozen=True)
class OutputText:
    """Answer text for the user."""

    text: str


@dataclass(frozen=True)
class OutputReasoning:
    """Chain of thought."""

    text: str


@dataclass(frozen=True)
class OutputToolCall:
    """A whole tool call (streamed fragments already joined); `index` orders several in one answer."""

    id: str
    name: str
    arguments: str
    index: int = 0


@dataclass(frozen=True)
class OutputEnd:
    """The end of one generation: OpenAI's finish reason (`stop`, `length`, `tool_calls`) and the stats."""

    finish_reason: str | None
    stats: GenerationStats


ModelOutput = OutputText | OutputReasoning | OutputToolCall | OutputEnd


@runtime_checkable
class ChatBackend(Protocol):
    """A model behind a server that takes chat messages and tools (`capabilities.prompt_format == "chat"`).

    Raises `BackendError` (from `chat` or while iterating).
    """

    name: str
    context_length: int

    @property
    def capabilities(self) -> Capabilities: ...

    def chat(
        self,
        messages: list[dict[str, object]],
        params: GenerationParams,
        *,
        tools: list[dict[str, object]] | None = None,
        tool_choice: str | dict[str, object] | None = None,
        reasoning_effort: str | None = None,
    ) -> AsyncGenerator[ModelOutput]:
        """Stream one assistant turn: text, reasoning, whole tool calls, then `OutputEnd`."""
        ...

    async def aclose(self) -> None: ...
