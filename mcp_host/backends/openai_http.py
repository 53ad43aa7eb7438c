"""OpenAI-compatible servers (LM Studio, Ollama, vLLM, llama-server): the way to run models bigger than one machine.

Two modes:
- raw (`OpenAICompletionsBackend`, a `Backend`): the host renders Harmony itself and streams from
  `/v1/completions`, sending token ids where the server accepts them and text with special tokens
  otherwise; the text that comes back is tokenized again with the host's tokenizer.
- chat (`OpenAIChatBackend`): for servers that apply their own template. Messages and tools go to
  `/v1/chat/completions` with `stream: true`; streamed `tool_calls` deltas are accumulated into whole
  calls, and `reasoning` / `reasoning_content` become reasoning events.

Connection errors, timeouts, non-2xx answers and a server dying mid-stream all become `BackendError`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol

import httpx2
from anyio.abc import AsyncResource

from mcp_host.backends.base import (
    BackendError,
    Capabilities,
    GenerationParams,
    GenerationStats,
    ModelOutput,
    OutputEnd,
    OutputReasoning,
    OutputText,
    OutputToolCall,
)
from mcp_host.errors import BackendConnectionError, BackendResponseError

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = httpx2.Timeout(10.0, read=300.0)
MAX_MARKER = 32  # the longest special token text (`<|reserved_200017|>`, `<|constrain|>`) and some


class Tokenizer(Protocol):
    def encode(self, text: str, *, allowed_special: Any = ...) -> list[int]: ...

    def decode(self, tokens: Sequence[int]) -> str: ...


async def _post_lines(client: httpx2.AsyncClient, url: str, body: dict[str, Any]) -> AsyncGenerator[str, None]:
    """POST `body` and yield the answer's lines; an HTTP error status or a failed connection is a `BackendError`."""
    try:
        async with client.stream("POST", url, json=body) as response:
            if response.status_code >= 400:
                text = (await response.aread()).decode("utf-8", "replace")
                raise BackendResponseError(f"{url} answered HTTP {response.status_code}: {text[:500]}")
            async for line in response.aiter_lines():
                yield line
    except httpx2.TimeoutException as exc:
        raise BackendConnectionError(f"{url} did not answer in time ({type(exc).__name__})") from exc
    except httpx2.ConnectError as exc:
        raise BackendConnectionError(f"cannot reach {url}: {exc}") from exc
    except httpx2.HTTPError as exc:
        raise BackendConnectionError(f"the connection to {url} failed mid-stream: {type(exc).__name__}: {exc}") from exc


async def stream_sse(client: httpx2.AsyncClient, url: str, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    """POST `body` and yield each `data:` JSON object of the event stream until `[DONE]`. Raises `BackendError`."""
    async with aclosing(_post_lines(client, url, body)) as lines:
        async for line in lines:
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                return
            try:
                chunk = json.loads(data)
            except json.JSONDecodeError as exc:
                raise BackendResponseError(f"{url} sent a chunk that is not JSON: {data[:200]}") from exc
            if isinstance(chunk, dict) and "error" in chunk:
                raise BackendResponseError(f"{url} reported an error: {chunk['error']}")
            yield chunk
    raise BackendResponseError(f"{url} ended the stream without [DONE]")


def _sampling(params: GenerationParams) -> dict[str, Any]:
    body: dict[str, Any] = {"max_tokens": params.max_tokens, "temperature": params.temperature, "top_p": params.top_p}
    if params.seed is not None:
        body["seed"] = params.seed
    if params.top_k:
        body["top_k"] = params.top_k
    if params.min_p:
        body["min_p"] = params.min_p
    if params.repeat_penalty != 1.0:
        body["repeat_penalty"] = params.repeat_penalty
    return body


class OpenAICompletionsBackend(AsyncResource):
    """Raw mode: the host's prompt tokens to `/v1/completions`, the streamed text back as tokens."""

    def __init__(
        self,
        base_url: str,
        model: str,
        tokenizer: Tokenizer,
        *,
        api_key: str | None = None,
        context_length: int = 131072,
        send_token_ids: bool = True,
        timeout: httpx2.Timeout = DEFAULT_TIMEOUT,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.name = f"openai-completions:{model}"
        self.context_length = context_length
        self.tokenizer = tokenizer
        self.send_token_ids = send_token_ids
        self.prompt_drift: int | None = None  # the server's count of the last prompt minus the host's, where it says
        self._drift_said = False
        # Raw mode exists for Harmony: the host renders the prompt with the tokenizer it was given.
        self.capabilities = Capabilities(prompt_format="harmony")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx2.AsyncClient(headers=headers, timeout=timeout)

    def __repr__(self) -> str:
        return f"OpenAICompletionsBackend({self.base_url!r}, model={self.model!r})"

    def saw_prompt(self, rendered: int, counted: int, as_ids: bool) -> None:
        """The server counted `counted` prompt tokens where the host rendered `rendered`: a text prompt the server
        tokenized its own way drifts (`prompt_drift`, logged once); token ids never should."""
        self.prompt_drift = counted - rendered
        if self.prompt_drift and not self._drift_said:
            self._drift_said = True
            how = "token ids" if as_ids else "text (the server tokenizes it again)"
            logger.warning(
                "%s read the prompt as %d tokens where the host rendered %d; it was sent as %s",
                self.base_url,
                counted,
                rendered,
                how,
            )

    def generate(self, prompt: Sequence[int], params: GenerationParams) -> _CompletionsGeneration:
        return _CompletionsGeneration(self, list(prompt), params)

    def tokenize(self, text: str, *, special: bool = True) -> list[int]:
        return list(self.tokenizer.encode(text, allowed_special="all" if special else set()))

    def detokenize(self, tokens: Sequence[int]) -> str:
        return str(self.tokenizer.decode(list(tokens)))

    async def aclose(self) -> None:
        await self._client.aclose()


class _CompletionsGeneration:
    def __init__(self, backend: OpenAICompletionsBackend, prompt: list[int], params: GenerationParams) -> None:
        self.backend = backend
        self.prompt = prompt
        self.params = params
        self.stats = GenerationStats(prompt_tokens=len(prompt), evaluated_prompt_tokens=len(prompt))

    async def __aenter__(self) -> _CompletionsGeneration:
        self.stats.started_at = time.perf_counter()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.stats.stop_reason is None:
            self.stats.finish("error" if exc is not None and not isinstance(exc, GeneratorExit) else "cancelled")

    def __aiter__(self) -> AsyncIterator[int]:
        return self._iterate()

    def _body(self, as_ids: bool) -> dict[str, Any]:
        backend = self.backend
        prompt: Any = self.prompt if as_ids else backend.detokenize(self.prompt)
        body = {"model": backend.model, "prompt": prompt, "stream": True, **_sampling(self.params)}
        body["stream_options"] = {"include_usage": True}  # the prompt's length as the server counted it
        stops = [backend.detokenize([token]) for token in sorted(self.params.stop_tokens)]
        if stops:
            body["stop"] = stops
        return body

    async def _stream(self, as_ids: bool) -> AsyncIterator[tuple[str, str | None, str | None]]:
        """The server's stream as (text, finish reason, the stop string it matched, where it says so)."""
        url = f"{self.backend.base_url}/v1/completions"
        async for chunk in stream_sse(self.backend._client, url, self._body(as_ids)):
            usage = chunk.get("usage")
            if isinstance(usage, dict) and isinstance(usage.get("prompt_tokens"), int):
                self.backend.saw_prompt(len(self.prompt), usage["prompt_tokens"], as_ids)
            choice = (chunk.get("choices") or [{}])[0]
            stop = choice.get("stop_reason") or chunk.get("stopping_word")  # vLLM; llama.cpp's server
            yield choice.get("text") or "", choice.get("finish_reason"), stop if isinstance(stop, str) else None

    async def _iterate(self) -> AsyncIterator[int]:
        backend = self.backend
        as_ids = backend.send_token_ids
        stop_texts = {backend.detokenize([t]): t for t in self.params.stop_tokens}
        finish: str | None = None
        matched_stop: str | None = None
        generated: list[int] = []
        held = ""  # the end of a piece that may be the start of a special token split across pieces: `<|chan`
        try:
            async for piece, finished, stop in self._stream(as_ids):
                text, held = _hold_open_marker(held + piece)
                for token in backend.tokenize(text) if text else []:
                    self.stats.mark_token()
                    generated.append(token)
                    yield token
                finish = finished or finish
                matched_stop = stop or matched_stop
            for token in backend.tokenize(held) if held else []:
                self.stats.mark_token()
                generated.append(token)
                yield token
        except BackendError as exc:
            if as_ids and "answered HTTP" in str(exc) and not self.stats.generated_tokens:
                backend.send_token_ids = False  # this server takes text only; remember for next time
                logger.info("%s refused a prompt of token ids: text prompts from now on (%s)", backend.base_url, exc)
                async for token in self._iterate():
                    yield token
                return
            self.stats.finish("error")
            raise
        if finish == "stop" and not (generated and generated[-1] in self.params.stop_tokens):
            # Servers strip the stop string they matched, and the token log needs it: the one the server named,
            # else the one the Harmony message in progress ends with (a call when it has a recipient).
            named = stop_texts.get(matched_stop or "")
            ending = named if named is not None else harmony_stop(generated, self.params.stop_tokens, backend.tokenizer)
            if ending is not None:
                self.stats.mark_token()
                yield ending
        self.stats.finish("length" if finish == "length" else "stop")


def _hold_open_marker(text: str) -> tuple[str, str]:
    """`text` split into what can be tokenized now and a tail that opens a `<|...|>` marker not yet closed."""
    start = text.rfind("<|")
    if start == -1 or "|>" in text[start:] or len(text) - start > MAX_MARKER:
        return (text[:-1], "<") if text.endswith("<") else (text, "")
    return text[:start], text[start:]


def harmony_stop(generated: Sequence[int], stop_tokens: frozenset[int], tokenizer: Tokenizer) -> int | None:
    """The stop token that ended `generated` where the server does not say which: `<|call|>` when the Harmony
    message in progress has a recipient (`to=...` in its header), else `<|return|>`; None when either is not a stop."""
    call, final = (
        tokenizer.encode("<|call|>", allowed_special="all"),
        tokenizer.encode("<|return|>", allowed_special="all"),
    )
    if len(call) != 1 or len(final) != 1 or not {call[0], final[0]} <= stop_tokens:
        return None
    text = tokenizer.decode(list(generated))
    header = text.rsplit("<|start|>", 1)[-1].split("<|message|>", 1)[0]
    return call[0] if " to=" in f" {header}" else final[0]


class OllamaRawBackend(OpenAICompletionsBackend):
    """Raw Harmony over Ollama's own `POST /api/generate` with `"raw": true` (its `/v1/completions` applies the
    model's template). Ollama takes text only; it streams NDJSON and strips the stop string without naming it."""

    def __init__(self, base_url: str, model: str, tokenizer: Tokenizer, **options: Any) -> None:
        super().__init__(base_url, model, tokenizer, send_token_ids=False, **options)
        self.name = f"ollama-raw:{model}"

    def __repr__(self) -> str:
        return f"OllamaRawBackend({self.base_url!r}, model={self.model!r})"

    def generate(self, prompt: Sequence[int], params: GenerationParams) -> _CompletionsGeneration:
        return _OllamaGeneration(self, list(prompt), params)


class _OllamaGeneration(_CompletionsGeneration):
    async def _stream(self, as_ids: bool) -> AsyncIterator[tuple[str, str | None, str | None]]:
        backend, params = self.backend, self.params
        options: dict[str, Any] = {"num_predict": params.max_tokens, "temperature": params.temperature}
        options["top_p"] = params.top_p
        if params.seed is not None:
            options["seed"] = params.seed
        if params.top_k:
            options["top_k"] = params.top_k
        if params.stop_tokens:
            options["stop"] = [backend.detokenize([token]) for token in sorted(params.stop_tokens)]
        body = {"model": backend.model, "prompt": backend.detokenize(self.prompt), "raw": True, "stream": True}
        async for chunk in stream_ndjson(
            backend._client, f"{backend.base_url}/api/generate", {**body, "options": options}
        ):
            evaluated = chunk.get("prompt_eval_count")  # Ollama counts what it evaluated, its cache's reuse left out
            if chunk.get("done") and isinstance(evaluated, int) and 0 <= evaluated <= len(self.prompt):
                self.stats.evaluated_prompt_tokens = evaluated
                self.stats.reused_prompt_tokens = len(self.prompt) - evaluated
            yield str(chunk.get("response") or ""), chunk.get("done_reason") if chunk.get("done") else None, None


async def stream_ndjson(client: httpx2.AsyncClient, url: str, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    """POST `body` and yield each JSON line (Ollama's streaming) until one says `done`. Raises `BackendError`."""
    async with aclosing(_post_lines(client, url, body)) as lines:
        async for line in lines:
            if not line.strip():
                continue
            try:
                chunk = json.loads(line)
            except json.JSONDecodeError as exc:
                raise BackendResponseError(f"{url} sent a line that is not JSON: {line[:200]}") from exc
            if not isinstance(chunk, dict):
                raise BackendResponseError(f"{url} sent a line that is not an object: {line[:200]}")
            if "error" in chunk:
                raise BackendResponseError(f"{url} reported an error: {chunk['error']}")
            yield chunk
            if chunk.get("done"):
                return
    raise BackendResponseError(f"{url} ended the stream before a line said done")


# -- chat mode ----------------------------------------------------------------------------------


@dataclass
class _PartialCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class OpenAIChatBackend(AsyncResource):
    """Chat mode: the server applies its own template; the host sends messages and tools."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        context_length: int = 131072,
        timeout: httpx2.Timeout = DEFAULT_TIMEOUT,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.name = f"openai-chat:{model}"
        self.context_length = context_length
        self.capabilities = Capabilities(prompt_format="chat", tokenizer=False)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx2.AsyncClient(headers=headers, timeout=timeout)

    def __repr__(self) -> str:
        return f"OpenAIChatBackend({self.base_url!r}, model={self.model!r})"

    async def chat(
        self,
        messages: list[dict[str, object]],
        params: GenerationParams,
        *,
        tools: list[dict[str, object]] | None = None,
        tool_choice: str | dict[str, object] | None = None,
        reasoning_effort: str | None = None,
    ) -> AsyncGenerator[ModelOutput]:
        """Stream one assistant turn. Raises `BackendError`."""
        body: dict[str, Any] = {"model": self.model, "messages": messages, "stream": True, **_sampling(params)}
        if tools:
            body["tools"] = tools
            if tool_choice is not None:
                body["tool_choice"] = tool_choice
        if reasoning_effort is not None:
            body["reasoning_effort"] = reasoning_effort
        stats = GenerationStats()
        calls: dict[int, _PartialCall] = {}
        finish: str | None = None
        async for chunk in stream_sse(self._client, f"{self.base_url}/v1/chat/completions", body):
            usage = chunk.get("usage")
            if isinstance(usage, dict):
                stats.prompt_tokens = int(usage.get("prompt_tokens") or 0)
                stats.evaluated_prompt_tokens = stats.prompt_tokens
            for choice in chunk.get("choices") or []:
                delta = choice.get("delta") or {}
                reasoning = delta.get("reasoning") or delta.get("reasoning_content")
                if reasoning:
                    stats.mark_token()
                    yield OutputReasoning(reasoning)
                if delta.get("content"):
                    stats.mark_token()
                    yield OutputText(delta["content"])
                for fragment in delta.get("tool_calls") or []:
                    stats.mark_token()
                    partial = calls.setdefault(int(fragment.get("index", len(calls))), _PartialCall())
                    partial.id = fragment.get("id") or partial.id
                    function = fragment.get("function") or {}
                    partial.name = function.get("name") or partial.name
                    if function.get("arguments"):
                        partial.arguments.append(function["arguments"])
                finish = choice.get("finish_reason") or finish
        for position, index in enumerate(sorted(calls)):
            partial = calls[index]
            arguments = "".join(partial.arguments) or "{}"
            yield OutputToolCall(partial.id or f"call_{index}", partial.name, arguments, position)
        stats.finish("length" if finish == "length" else "stop")
        yield OutputEnd(finish, stats)

    async def aclose(self) -> None:
        await self._client.aclose()
