"""One `/api/v1/chat` turn as LM Studio 0.4 reports it: stream events, output items, stats.

    output = V1Output("openai/gpt-oss-20b", tools, encoding)
    output.start()                     # chat.start
    output.load(event)                 # model_load.start / .progress / .end, from the model registry
    output.begin()                     # prompt_processing.start and .progress 0 (end and 1 come with the first token;
                                       # between, a progress event per batch of a long prompt the engine reads)
    output.of(event)                   # a loop event: reasoning.*, message.*, tool_call.*, error
    output.result(response_id=...)     # the non-streamed body, and the `result` of chat.end

Every stream event is a dict carrying its `type`, as LM Studio's docs show it. The output items are built
from the same events, so a streamed turn's `chat.end` holds the body a non-streamed turn answers.

Tool calls: a call that ran is `tool_call.start`, `tool_call.arguments`, `tool_call.success` and a `tool_call`
item whose `output` is the text the model read, as one MCP text block (`[{"type":"text","text":...}]`).
A call that failed is `tool_call.failure` and an `invalid_tool_call` item with the same `reason` (what the
model read) and `metadata`, whose `type` is LM Studio's `invalid_name` (no such tool) or `invalid_arguments`
(arguments that are not a JSON object), or `tool_error`, this host's own: the call was refused (by the
permission policy, or because nobody could approve it) or the tool or its server failed.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from openai_harmony import HarmonyEncoding

from mcp_host.agent import (
    ErrorEvent,
    Event,
    MessageDelta,
    PromptProgress,
    ReasoningDelta,
    ToolCallCreated,
    ToolCallResult,
    TurnCompleted,
    TurnStats,
)
from mcp_host.api.host_tools import turn_usage
from mcp_host.api.integrations import Provider, RequestTools
from mcp_host.backends.loading import LoadEvent, LoadProgress, LoadStarted
from mcp_host.errors import ApiError

V1Event = dict[str, Any]
Block = Literal["reasoning", "message"]
_NAME_FAULTS = ("model_output.unknown_tool", "model_output.bad_name")
_ARGUMENT_FAULTS = ("model_output.invalid_json",)


def error_event(error: ApiError) -> V1Event:
    """LM Studio's `error` event for an error that ended a turn (a load, a connection, a prompt too long)."""
    if error.code in ("mcp_connection_error", "plugin_connection_error", "model_not_found"):
        kind = error.code
    elif error.status == 501:
        kind = "not_implemented"
    elif error.status < 500:
        kind = "invalid_request"
    else:
        kind = "internal_error"
    body: dict[str, Any] = {"type": kind, "message": str(error)}
    body.update({key: value for key, value in (("code", error.code), ("param", error.param)) if value is not None})
    return {"type": "error", "error": body}


@dataclass
class _Text:
    kind: Block
    parts: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Call:
    name: str  # the tool's own name, as LM Studio shows it
    arguments: dict[str, Any]
    provider: Provider | None


class V1Output:
    """The LM Studio shape of one turn, built event by event."""

    def __init__(self, model_instance_id: str, tools: RequestTools, encoding: HarmonyEncoding) -> None:
        self.model_instance_id = model_instance_id
        self.tools = tools
        self.encoding = encoding
        self.messages: list[dict[str, Any]] = []  # the turn in OpenAI chat shape, the user's message first
        self.failure: str | None = None  # why the model failed mid-turn
        self.completed: TurnCompleted | None = None
        self.load_time_s: float | None = None
        self._items: list[_Text | dict[str, Any]] = []
        self._block: Block | None = None
        self._calls: dict[str, _Call] = {}
        self._reasoning: list[str] = []
        self._said: list[str] = []  # the answer's text since the last call
        self._loading_since: float | None = None
        self._processing = False

    def start(self) -> V1Event:
        return {"type": "chat.start", "model_instance_id": self.model_instance_id}

    def user(self, text: str) -> None:
        self.messages.append({"role": "user", "content": text})

    # -- the model's load ------------------------------------------------------------------------

    def load(self, event: LoadEvent) -> list[V1Event]:
        instance = {"model_instance_id": self.model_instance_id}
        if isinstance(event, LoadStarted):
            if self._loading_since is not None:
                return []
            self._loading_since = time.monotonic()
            return [{"type": "model_load.start", **instance}]
        if isinstance(event, LoadProgress):
            return [{"type": "model_load.progress", **instance, "progress": event.progress}]
        self.load_time_s = event.load_time_s
        return [{"type": "model_load.end", **instance, "load_time_seconds": round(event.load_time_s, 3)}]

    def loaded(self) -> list[V1Event]:
        """Once the model is there: a load this request waited for (another request's) ends here as well."""
        if self._loading_since is None or self.load_time_s is not None:
            return []
        self.load_time_s = time.monotonic() - self._loading_since
        instance = {"model_instance_id": self.model_instance_id}
        return [{"type": "model_load.end", **instance, "load_time_seconds": round(self.load_time_s, 3)}]

    # -- the turn -------------------------------------------------------------------------------

    def begin(self) -> list[V1Event]:
        """The first generation begins; what the prompt's evaluation did is known again at its first token."""
        self._processing = True
        return [{"type": "prompt_processing.start"}, {"type": "prompt_processing.progress", "progress": 0.0}]

    def of(self, event: Event) -> list[V1Event]:
        out: list[V1Event] = []
        if isinstance(event, PromptProgress):  # the engine reads a long prompt in batches
            if self._processing and 0 < event.done < event.total:
                out.append({"type": "prompt_processing.progress", "progress": event.done / event.total})
            return out
        if self._processing:
            self._processing = False
            out += [{"type": "prompt_processing.progress", "progress": 1.0}, {"type": "prompt_processing.end"}]
        if isinstance(event, ReasoningDelta):
            out += self._delta("reasoning", event.text)
        elif isinstance(event, MessageDelta):
            out += self._delta("message", event.text)
        elif isinstance(event, ToolCallCreated):
            out += self._close() + self._created(event)
        elif isinstance(event, ToolCallResult):
            out += self._result(event)
        elif isinstance(event, ErrorEvent):
            out += self._error(event)
        elif isinstance(event, TurnCompleted):
            out += self._close()
            self.completed = event
            self.messages.append({"role": "assistant", "content": event.answer or "".join(self._said)})
        return out

    def _delta(self, kind: Block, text: str) -> list[V1Event]:
        out: list[V1Event] = []
        if self._block != kind:
            out += self._close()
            self._block = kind
            self._items.append(_Text(kind))
            out.append({"type": f"{kind}.start"})
        item = self._items[-1]
        assert isinstance(item, _Text)
        item.parts.append(text)
        (self._reasoning if kind == "reasoning" else self._said).append(text)
        out.append({"type": f"{kind}.delta", "content": text})
        return out

    def _close(self) -> list[V1Event]:
        block, self._block = self._block, None
        return [{"type": f"{block}.end"}] if block is not None else []

    def _created(self, event: ToolCallCreated) -> list[V1Event]:
        provider = self.tools.provider(event.tool)
        arguments = event.arguments if isinstance(event.arguments, dict) else {"input": event.arguments}
        call = _Call(provider.tool if provider else _bare(event.tool), arguments, provider)
        self._calls[event.call_id] = call
        identifier = self.tools.registry.names.to_identifier.get(event.tool, _bare(event.tool))
        function = {"name": identifier, "arguments": json.dumps(arguments, ensure_ascii=False)}
        self.messages.append(
            {
                "role": "assistant",
                "content": "".join(self._said),
                "tool_calls": [{"id": event.call_id, "type": "function", "function": function}],
            }
        )
        self._said = []
        if provider is None:  # no such tool: its failure comes with the result
            return []
        info = provider.lmstudio_info()
        return [
            {"type": "tool_call.start", "tool": call.name, "provider_info": info},
            {"type": "tool_call.arguments", "tool": call.name, "arguments": arguments, "provider_info": info},
        ]

    def _result(self, event: ToolCallResult) -> list[V1Event]:
        call = self._calls.pop(event.call_id, None) or _Call(_bare(event.tool), {}, None)
        self.messages.append({"role": "tool", "tool_call_id": event.call_id, "content": event.text})
        if call.provider is None:
            return self._failure(event.text, {"type": "invalid_name", "tool_name": call.name})
        info = call.provider.lmstudio_info()
        if event.is_error:
            metadata = {
                "type": "tool_error",
                "tool_name": call.name,
                "arguments": call.arguments,
                "provider_info": info,
            }
            return self._failure(event.text, metadata)
        output = json.dumps([{"type": "text", "text": event.text}], ensure_ascii=False)
        item = {"type": "tool_call", "tool": call.name, "arguments": call.arguments, "output": output}
        self._items.append({**item, "provider_info": info})
        return [{**item, "type": "tool_call.success", "provider_info": info}]

    def _error(self, event: ErrorEvent) -> list[V1Event]:
        if event.kind == "backend":
            self.failure = event.message
            return [error_event(ApiError(502, f"the model failed: {event.message}"))]
        if event.kind not in _NAME_FAULTS + _ARGUMENT_FAULTS:
            return []  # a format slip the model is told about; no call was made
        name = _named_tool(event.message)
        out = self._close()
        if event.kind in _NAME_FAULTS:
            return out + self._failure(event.message, {"type": "invalid_name", "tool_name": name})
        qualified = self.tools.registry.names.to_qualified.get(name, "")
        provider = self.tools.provider(qualified)
        metadata: dict[str, Any] = {"type": "invalid_arguments", "tool_name": provider.tool if provider else name}
        if provider is not None:
            metadata["provider_info"] = provider.lmstudio_info()
        return out + self._failure(event.message, metadata)

    def _failure(self, reason: str, metadata: dict[str, Any]) -> list[V1Event]:
        self._items.append({"type": "invalid_tool_call", "reason": reason, "metadata": metadata})
        return [{"type": "tool_call.failure", "reason": reason, "metadata": metadata}]

    # -- the whole ------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        stats = self.completed.stats if self.completed is not None else TurnStats()
        reasoning = len(self.encoding.encode("".join(self._reasoning), disallowed_special=()))
        result: dict[str, Any] = {
            "input_tokens": turn_usage(stats)["prompt_tokens"],
            "total_output_tokens": stats.generated_tokens,
            "reasoning_output_tokens": min(reasoning, stats.generated_tokens),
            "tokens_per_second": stats.tokens_per_second,
            "time_to_first_token_seconds": round(stats.time_to_first_token_s or 0.0, 3),
        }
        if self.load_time_s is not None:
            result["model_load_time_seconds"] = round(self.load_time_s, 3)
        return result

    def result(self, *, response_id: str | None = None, thread_id: str | None = None) -> dict[str, Any]:
        """The non-streamed body (and chat.end's `result`): what was generated so far, with the stats."""
        output = [
            {"type": item.kind, "content": "".join(item.parts)} if isinstance(item, _Text) else item
            for item in self._items
        ]
        body: dict[str, Any] = {"model_instance_id": self.model_instance_id, "output": output, "stats": self.stats()}
        if response_id is not None:
            body["response_id"] = response_id
        if thread_id is not None:
            body["thread_id"] = thread_id
        return body


def _bare(name: str) -> str:
    return name.removeprefix("functions.")


def _named_tool(text: str) -> str:
    """The tool a fault's text names: the host's own wording, `'functions.x'` or `for functions.x`."""
    found = re.search(r"'([^']+)'", text) or re.search(r"\bfor (\S+)", text)
    return _bare(found.group(1)) if found else ""
