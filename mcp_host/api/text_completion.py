"""Raw text completion: a prompt tokenized as it is (no chat template), continued by the model.

    completion = await prepare_text_completion(body, renderer, backend)   # ApiError 400 on what cannot run
    end = await completion.run(emit)                                       # emit(text) as it grows; end.reason

The prompt is tokenized with the model's own vocabulary, special tokens included (Harmony's for gpt-oss,
through the renderer's encoding when the backend has no tokenizer of its own), after the model's BOS token
when it wants one. Generation stops at the model's end tokens, after `max_tokens`, or at the first stop
string, which the text leaves out (held back while it could still be one, so that none is ever streamed).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import anyio.to_thread

from mcp_host.api.completions import DEFAULT_MAX_TOKENS
from mcp_host.api.text_requests import CompletionRequest
from mcp_host.backends.base import Backend, ChatBackend, GenerationParams, GenerationStats
from mcp_host.errors import ApiError, UnsupportedFeatureError
from mcp_host.prompt.harmony import STOP_TOKENS, HarmonyRenderer

EndReason = Literal["eos", "stop_string", "length"]

# A prompt is counted in pieces of this many characters first, so that a huge one is refused early.
_PIECE_CHARS = 32_768
_CUT_SLACK_TOKENS = 4  # cutting text may add a token or two at each cut, never remove one


@dataclass(frozen=True)
class Vocabulary:
    """How a model's text becomes token ids and back."""

    encode: Callable[[str], list[int]]
    decode: Callable[[Sequence[int]], str]


def vocabulary_of(backend: Backend, renderer: HarmonyRenderer) -> Vocabulary:
    """The backend's own tokenizer, or Harmony's for a gpt-oss backend without one. Raises `UnsupportedFeatureError`."""
    if backend.capabilities.tokenizer:
        return Vocabulary(lambda text: backend.tokenize(text, special=True), backend.detokenize)
    if backend.capabilities.prompt_format == "harmony":
        encoding = renderer.encoding
        return Vocabulary(lambda text: list(encoding.encode(text, allowed_special="all")), encoding.decode)
    raise UnsupportedFeatureError(f"{backend.name} has no tokenizer here, so it cannot complete raw text")


@dataclass(frozen=True)
class TextEnd:
    """Why a completion ended, and what it cost."""

    reason: EndReason
    stats: GenerationStats

    @property
    def finish_reason(self) -> Literal["stop", "length"]:
        return "length" if self.reason == "length" else "stop"


@dataclass
class TextCompletion:
    """One prompt's completion, ready to run."""

    backend: Backend
    vocabulary: Vocabulary
    prompt: list[int]
    params: GenerationParams
    stops: tuple[str, ...]

    @property
    def model(self) -> str:
        return self.backend.name

    async def run(self, emit: Callable[[str], Awaitable[None]]) -> TextEnd:
        """Generate, handing each new piece of text to `emit`. Raises `BackendError`."""
        decoder = _IncrementalDecoder(self.vocabulary.decode)
        stops = StopStrings(self.stops)
        async with self.backend.generate(self.prompt, self.params) as generation:
            async for token in generation:
                if token in self.params.stop_tokens:
                    break
                if text := stops.feed(decoder.feed(token)):
                    await emit(text)
                if stops.found:
                    break
        if not stops.found:  # what the decoder and the stop strings held back
            rest = stops.feed(decoder.flush())
            if text := rest if stops.found else rest + stops.flush():
                await emit(text)
        reason: EndReason = "eos"
        if stops.found:
            reason = "stop_string"
        elif generation.stats.stop_reason == "length":
            reason = "length"
        return TextEnd(reason, generation.stats)


async def prepare_text_completion(
    request: CompletionRequest, renderer: HarmonyRenderer, backend: Backend | ChatBackend
) -> TextCompletion:
    """The request's prompt tokenized (in a worker thread) and checked against the model's context.

    Raises `ApiError` (400: a chat-mode model, no tokenizer, an empty or too long prompt).
    """
    if not isinstance(backend, Backend) or backend.capabilities.prompt_format == "chat":
        raise ApiError(
            400,
            f"{backend.name} is a model behind a server in chat mode: it cannot complete raw text "
            "(use /v1/chat/completions)",
            param="model",
            code="unsupported_by_model",
        )
    try:
        vocabulary = vocabulary_of(backend, renderer)
    except UnsupportedFeatureError as exc:
        raise ApiError(400, str(exc), param="model", code="unsupported_by_model") from exc
    capabilities = backend.capabilities
    bos = [capabilities.bos_token] if capabilities.bos_token is not None else []
    tokens = await anyio.to_thread.run_sync(
        lambda: tokenize_within(request.text, vocabulary.encode, backend.context_length, "prompt", reserved=len(bos))
    )
    prompt = tokens if bos and tokens[:1] == bos else bos + tokens
    if not prompt:
        raise ApiError(400, "the prompt is empty", param="prompt")
    stop_tokens = capabilities.end_tokens | (STOP_TOKENS if capabilities.prompt_format == "harmony" else frozenset())
    params = GenerationParams(
        max_tokens=request.token_limit(DEFAULT_MAX_TOKENS),
        temperature=1.0 if request.temperature is None else request.temperature,
        top_p=1.0 if request.top_p is None else request.top_p,
        top_k=request.top_k or 0,
        min_p=request.min_p or 0.0,
        repeat_penalty=1.0 if request.repeat_penalty is None else request.repeat_penalty,
        seed=request.seed,
        stop_tokens=stop_tokens,
    )
    return TextCompletion(backend, vocabulary, prompt, params, request.stops)


def tokenize_within(
    text: str, encode: Callable[[str], list[int]], context_length: int, param: str, *, reserved: int = 0
) -> list[int]:
    """`encode(text)`, refused (400 naming `param`) once it is known not to fit the context beside `reserved` tokens.

    A long text is counted piece by piece first, so that megabytes are refused after the first few pieces
    rather than after tokenizing the whole of them.
    """
    if len(text) > _PIECE_CHARS:
        counted = pieces = 0
        for start in range(0, len(text), _PIECE_CHARS):
            counted += len(encode(text[start : start + _PIECE_CHARS]))
            pieces += 1
            if reserved + counted - _CUT_SLACK_TOKENS * pieces >= context_length:
                raise _too_long(param, f"needs more than {context_length} tokens", context_length)
    tokens = encode(text)
    if reserved + len(tokens) >= context_length:
        raise _too_long(param, f"has {reserved + len(tokens)} tokens", context_length)
    return tokens


def _too_long(param: str, what: str, context_length: int) -> ApiError:
    return ApiError(
        400,
        f"{param} {what}; the model's context holds {context_length} (with room for the answer): shorten it",
        param=param,
        code="context_length_exceeded",
    )


class StopStrings:
    """Text as it grows, cut before the first stop string; text that may begin one is held back until it cannot."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = tuple(stops)
        self.found = False
        self._held = ""

    def feed(self, piece: str) -> str:
        """What of `piece` (and of the text held back) can be shown; sets `found` at a stop string."""
        if self.found or not self.stops:
            return "" if self.found else piece
        text = self._held + piece
        hits = [at for at in (text.find(stop) for stop in self.stops) if at >= 0]
        if hits:
            self.found = True
            self._held = ""
            return text[: min(hits)]
        keep = max((_overlap(text, stop) for stop in self.stops), default=0)
        self._held = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep]

    def flush(self) -> str:
        """The text held back, once no more comes."""
        held, self._held = self._held, ""
        return held


def _overlap(text: str, stop: str) -> int:
    """The length of the longest end of `text` that begins `stop` (and is shorter than it)."""
    for length in range(min(len(text), len(stop) - 1), 0, -1):
        if stop.startswith(text[-length:]):
            return length
    return 0


class _IncrementalDecoder:
    """Token ids to text one at a time, holding back tokens that end inside a UTF-8 character."""

    _MAX_PENDING = 4  # a UTF-8 character spans at most four tokens

    def __init__(self, decode: Callable[[Sequence[int]], str]) -> None:
        self._decode = decode
        self._pending: list[int] = []

    def feed(self, token: int) -> str:
        self._pending.append(token)
        text = self._decode(self._pending)
        if text.endswith("\ufffd") and len(self._pending) < self._MAX_PENDING:
            return ""
        self._pending.clear()
        return text

    def flush(self) -> str:
        text = self._decode(self._pending) if self._pending else ""
        self._pending.clear()
        return text
