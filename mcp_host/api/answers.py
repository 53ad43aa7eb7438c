"""OpenAI-shaped answers: a whole `chat.completion`, or its stream of `chat.completion.chunk` events.

chunks = Chunks(model)
await sink.send(chunks.delta({"content": "Hi"}))   # ... then chunks.delta({}, "stop"), then DONE
answer = Answer(); await answer.add(piece) ...; answer.json(model)
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from mcp_host.api.streaming import ServerSentEvent
from mcp_host.backends.base import (
    GenerationStats,
    ModelOutput,
    OutputEnd,
    OutputReasoning,
    OutputText,
    OutputToolCall,
)

ARGUMENT_FRAGMENT = 16  # streamed call arguments arrive in pieces, as OpenAI and LM Studio send them


def json_dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def done() -> ServerSentEvent:
    """The last event of an OpenAI stream."""
    return ServerSentEvent(data="[DONE]")


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def generation_usage(stats: GenerationStats) -> dict[str, int]:
    return usage(stats.prompt_tokens, stats.generated_tokens)


class Chunks:
    """The events of one streamed completion, all sharing its id, time and model."""

    def __init__(self, model: str) -> None:
        self.base = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }

    def delta(self, delta: dict[str, Any], finish: str | None = None) -> ServerSentEvent:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return ServerSentEvent(data=json_dumps({**self.base, "choices": [choice]}))

    def usage(self, usage: dict[str, int]) -> ServerSentEvent:
        return ServerSentEvent(data=json_dumps({**self.base, "choices": [], "usage": usage}))

    def error(self, message: str) -> ServerSentEvent:
        """A failure after the stream began, as OpenAI-compatible servers report it."""
        return ServerSentEvent(data=json_dumps({"error": {"message": message, "type": "server_error"}}))

    def of(self, piece: ModelOutput, *, include_usage: bool) -> list[ServerSentEvent]:
        """The chunks that carry one piece of a completion."""
        if isinstance(piece, OutputText):
            return [self.delta({"content": piece.text})]
        if isinstance(piece, OutputReasoning):
            return [self.delta({"reasoning": piece.text})]
        if isinstance(piece, OutputToolCall):
            function = {"name": piece.name, "arguments": ""}
            created = {"index": piece.index, "id": piece.id, "type": "function", "function": function}
            fragments = [
                {"index": piece.index, "function": {"arguments": piece.arguments[start : start + ARGUMENT_FRAGMENT]}}
                for start in range(0, len(piece.arguments), ARGUMENT_FRAGMENT)
            ]
            return [self.delta({"tool_calls": [call]}) for call in (created, *fragments)]
        finish = [self.delta({}, piece.finish_reason)]
        return [*finish, self.usage(generation_usage(piece.stats))] if include_usage else finish


class Answer:
    """The pieces of one completion, gathered for a non-streamed answer."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.calls: list[dict[str, Any]] = []
        self.end: OutputEnd | None = None

    async def add(self, piece: ModelOutput) -> None:
        if isinstance(piece, OutputText):
            self.text.append(piece.text)
        elif isinstance(piece, OutputReasoning):
            self.reasoning.append(piece.text)
        elif isinstance(piece, OutputToolCall):
            function = {"name": piece.name, "arguments": piece.arguments}
            self.calls.append({"id": piece.id, "type": "function", "function": function})
        else:
            self.end = piece

    def json(self, model: str) -> dict[str, Any]:
        assert self.end is not None, "a completion always ends with its OutputEnd"
        return completion_json(
            model,
            text="".join(self.text),
            reasoning="".join(self.reasoning),
            tool_calls=self.calls,
            finish_reason=self.end.finish_reason or "stop",
            usage=generation_usage(self.end.stats),
        )


def completion_json(
    model: str,
    *,
    text: str,
    reasoning: str,
    finish_reason: str,
    usage: dict[str, int],
    tool_calls: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A whole `chat.completion` with one choice."""
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if reasoning:
        message["reasoning"] = reasoning
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": None}],
        "usage": usage,
    }
