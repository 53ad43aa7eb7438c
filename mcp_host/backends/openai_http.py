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
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
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

DEFAULT_TIMEOUT = httpx2.Timeout(10.0, read=300.0)


class Tokenizer(Protocol):
    def encode(self, text: str, *, allowed_special: Any = ...) -> list[int]: ...

    def decode(self, tokens: Sequence[int]) -> str: ...


async def stream_sse(client: httpx2.AsyncClient, url: str, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    """POST `body` and yield each `data:` JSON object of the event stream until `[DONE]`. Raises `BackendError`."""
    try:
        async with client.stream("POST", url, json=body) as response:
            if response.status_code >= 400:
                text = (await response.aread()).decode("utf-8", "replace")
                raise BackendResponseError(f"{url} answered HTTP {response.status_code}: {text[:500]}")
            async for line in response.aiter_lines():
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
    except httpx2.TimeoutException as exc:
        raise BackendConnectionError(f"{url} did not answer in time ({type(exc).__name__})") from exc
    except httpx2.ConnectError as exc:
        raise BackendConnectionError(f"cannot reach {url}: {exc}") from exc
    except httpx2.HTTPError as exc:
        raise BackendConnectionError(f"the connection to {url} failed mid-stream: {type(exc).__name__}: {exc}") from exc
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
        # Raw mode exists for Harmony: the host renders the prompt with the tokenizer it was given.
        self.capabilities = Capabilities(prompt_format="harmony")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx2.AsyncClient(headers=headers, timeout=timeout)

    def __repr__(self) -> str:
        return f"OpenAICompletionsBackend({self.base_url!r}, model={self.model!r})"

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
        stops = [backend.detokenize([token]) for token in sorted(self.params.stop_tokens)]
        if stops:
            body["stop"] = stops
        return body

    async def _iterate(self) -> AsyncIterator[int]:
        backend = self.backend
        url = f"{backend.base_url}/v1/completions"
        as_ids = backend.send_token_ids
        stop_texts = {backend.detokenize([t]): t for t in self.params.stop_tokens}
        finish: str | None = None
        matched_stop: str | None = None
        try:
            chunks = stream_sse(backend._client, url, self._body(as_ids))
            async for chunk in chunks:
                choice = (chunk.get("choices") or [{}])[0]
                text = choice.get("text") or ""
                for token in backend.tokenize(text) if text else []:
                    self.stats.mark_token()
                    yield token
                finish = choice.get("finish_reason") or finish
                stop = choice.get("stop_reason") or chunk.get("stopping_word")
                matched_stop = stop if isinstance(stop, str) else matched_stop
        except BackendError as exc:
            if as_ids and "answered HTTP" in str(exc) and not self.stats.generated_tokens:
                backend.send_token_ids = False  # this server takes text only; remember for next time
                async for token in self._iterate():
                    yield token
                return
            self.stats.finish("error")
            raise
        if finish == "stop" and matched_stop in stop_texts:
            # Servers strip the stop string they matched; the token log needs it.
            self.stats.mark_token()
            yield stop_texts[matched_stop]
        self.stats.finish("length" if finish == "length" else "stop")


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
