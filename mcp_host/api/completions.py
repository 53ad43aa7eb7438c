"""OpenAI's chat completions, served by a Harmony model: client messages and tools in, one assistant turn out.

    completion = ChatCompletion.from_request(body, renderer)     # raises ApiError(400) on bad input
    async for piece in completion.run(backend): ...              # text, reasoning, a tool call, the end

The client's tools are rendered in the `functions` namespace under their own names; a call the model
makes comes back as `tool_calls` with `finish_reason: "tool_calls"`, and the client's `tool`
messages continue the conversation.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

from openai_harmony import Message

from mcp_host.api.errors import ApiError
from mcp_host.backends.base import Backend, GenerationParams, GenerationStats
from mcp_host.prompt import harmony_parse as parsed
from mcp_host.prompt.harmony import (
    STOP_TOKENS,
    Effort,
    FunctionTool,
    HarmonyOptions,
    HarmonyRenderer,
    assistant_message,
    tool_call_message,
    tool_result_message,
    user_message,
)
from mcp_host.prompt.template import (
    ModelTemplate,
    TemplateOutput,
    TemplateTool,
    parse_tool_requests,
    tool_call_grammar,
)
from mcp_host.tools.schema import normalise_schema
from mcp_host.tools.spec import ToolSpec

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
EFFORTS = ("low", "medium", "high")


@dataclass(frozen=True)
class TextPiece:
    text: str


@dataclass(frozen=True)
class ReasoningPiece:
    text: str


@dataclass(frozen=True)
class CallPiece:
    id: str
    name: str
    arguments: str
    index: int = 0


@dataclass(frozen=True)
class EndPiece:
    finish_reason: Literal["stop", "length", "tool_calls"]
    stats: GenerationStats


Piece = TextPiece | ReasoningPiece | CallPiece | EndPiece


@dataclass
class ChatCompletion:
    """A validated request, rendered for the model."""

    model: str
    stream: bool
    prompt: list[int]
    tool_names: set[str]
    params: GenerationParams
    include_usage: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_request(cls, body: object, renderer: HarmonyRenderer, *, default_model: str) -> ChatCompletion:
        if not isinstance(body, dict):
            raise ApiError(400, "the request body must be a JSON object")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ApiError(400, "'messages' must be a non-empty array", param="messages")
        effort: Effort = body.get("reasoning_effort") or "medium"
        if effort not in EFFORTS:
            raise ApiError(400, f"'reasoning_effort' must be one of {', '.join(EFFORTS)}", param="reasoning_effort")
        tools = _client_tools(body.get("tools"))
        instructions, history = harmony_history(messages)
        options = HarmonyOptions(reasoning_effort=effort, instructions=instructions)
        prompt = renderer.render_prompt(options, tools, history)
        params = sampling_params(body, STOP_TOKENS)
        stream_options = body.get("stream_options")
        return cls(
            model=str(body.get("model") or default_model),
            stream=bool(body.get("stream", False)),
            prompt=prompt,
            tool_names={tool.identifier for tool in tools},
            params=params,
            include_usage=isinstance(stream_options, dict) and bool(stream_options.get("include_usage")),
        )

    async def run(self, backend: Backend, renderer: HarmonyRenderer) -> AsyncIterator[Piece]:
        """Generate one assistant turn, as pieces."""
        parser = parsed.HarmonyStreamParser(self.tool_names, encoding=renderer.encoding)
        async with backend.generate(self.prompt, self.params) as generation:
            async for token in generation:
                for event in parser.feed(token):
                    if isinstance(event, parsed.MessageDelta):
                        yield TextPiece(event.text)
                    elif isinstance(event, parsed.ReasoningDelta):
                        yield ReasoningPiece(event.text)
                if parser.done:
                    break
        if not parser.done:
            parser.finish()
        call = parser.last_call if parser.stop_reason == "call" else None
        if call is not None and call.function is not None:
            yield CallPiece(f"call_{uuid.uuid4().hex[:24]}", call.function, call.arguments)
            yield EndPiece("tool_calls", generation.stats)
            return
        if parser.last_fault is not None:
            # The model's output could not be used; say so in the answer rather than failing the request.
            yield TextPiece(f"\n[the model's output could not be parsed: {parser.last_fault.text}]")
        yield EndPiece("length" if generation.stats.stop_reason == "length" else "stop", generation.stats)


def sampling_params(body: dict[str, Any], stop: frozenset[int], grammar: str | None = None) -> GenerationParams:
    """The request's sampling fields, checked, with the stop tokens (and grammar) of the prompt format."""
    return GenerationParams(
        max_tokens=_positive_int(body, "max_tokens", 4096, alias="max_completion_tokens"),
        temperature=_number(body, "temperature", 1.0),
        top_p=_number(body, "top_p", 1.0),
        seed=body.get("seed") if isinstance(body.get("seed"), int) else None,
        stop_tokens=stop,
        grammar=grammar,
    )


def _client_tools(raw: object) -> list[FunctionTool]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ApiError(400, "'tools' must be an array", param="tools")
    tools = []
    for index, entry in enumerate(raw):
        function = entry.get("function") if isinstance(entry, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise ApiError(
                400,
                f"tools[{index}] must be {{'type': 'function', 'function': {{'name': ...}}}}",
                param=f"tools[{index}]",
            )
        name = function["name"]
        if not _IDENTIFIER.match(name):
            raise ApiError(400, f"tool name {name!r} must be letters, digits and underscores", param=f"tools[{index}]")
        parameters = function.get("parameters")
        schema: dict[str, Any] = parameters if isinstance(parameters, dict) else {}
        spec = ToolSpec(
            server="client",
            tool=name,
            qualified=name,
            origin="plugin",
            description=str(function.get("description") or ""),
            input_schema=normalise_schema(schema),
            original_schema=schema,
        )
        tools.append(FunctionTool(name, spec))
    return tools


def harmony_history(messages: list[object]) -> tuple[str | None, list[Message]]:
    """OpenAI messages as Harmony: system/developer text becomes the instructions."""
    instructions: list[str] = []
    history: list[Message] = []
    call_names: dict[str, str] = {}
    last_call = ""
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in (
            "system",
            "developer",
            "user",
            "assistant",
            "tool",
        ):
            raise ApiError(
                400,
                f"messages[{index}] needs a role of system, developer, user, assistant or tool",
                param=f"messages[{index}]",
            )
        role = message["role"]
        content = _text(message.get("content"), index)
        if role in ("system", "developer"):
            instructions.append(content)
        elif role == "user":
            history.append(user_message(content))
        elif role == "assistant":
            if content:
                history.append(assistant_message(content, "final"))
            calls = list(message.get("tool_calls") or [])
            if isinstance(message.get("function_call"), dict):  # the older single-call form LM Studio documents
                calls.append({"id": "", "function": message["function_call"]})
            for call in calls:
                function = call.get("function", {}) if isinstance(call, dict) else {}
                name = str(function.get("name", ""))
                arguments = function.get("arguments") or "{}"
                call_names[str(call.get("id", ""))] = last_call = name
                text = arguments if isinstance(arguments, str) else json.dumps(arguments)
                history.append(tool_call_message(f"functions.{name}", text))
        else:
            name = call_names.get(str(message.get("tool_call_id", ""))) or str(message.get("name") or "") or last_call
            if not name:
                raise ApiError(
                    400,
                    f"messages[{index}]: a tool message needs the tool_call_id of an earlier call",
                    param=f"messages[{index}].tool_call_id",
                )
            history.append(tool_result_message(f"functions.{name}", content))
    return ("\n\n".join(instructions) or None), history


def _text(content: object, index: int) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: only text is understood
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    raise ApiError(
        400, f"messages[{index}].content must be a string or an array of parts", param=f"messages[{index}].content"
    )


def _number(body: dict[str, Any], key: str, default: float) -> float:
    value = body.get(key, default)
    if value is None:
        return default
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ApiError(400, f"'{key}' must be a number", param=key)
    return float(value)


def _positive_int(body: dict[str, Any], key: str, default: int, *, alias: str) -> int:
    value = body.get(key, body.get(alias, default))
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool):
        raise ApiError(400, f"'{key}' must be an integer", param=key)
    return value if value > 0 else default  # LM Studio's clients send -1 for "no limit"


def tool_call_json(piece: CallPiece) -> dict[str, Any]:
    return {"id": piece.id, "type": "function", "function": {"name": piece.name, "arguments": piece.arguments}}


def json_dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@dataclass
class TemplateCompletion:
    """The same request for a model that does not speak Harmony: its own chat template, `[TOOL_REQUEST]` calls."""

    model: str
    stream: bool
    prompt: list[int]
    tool_names: list[str]
    params: GenerationParams
    include_usage: bool = False

    @classmethod
    def from_request(cls, body: object, backend: Backend, *, default_model: str) -> TemplateCompletion:
        messages, tools = _validated(body)  # the Harmony path's checks; only the rendering differs
        model = ModelTemplate(backend)
        assert isinstance(body, dict)
        required = _required_tools(body.get("tool_choice"), tools)
        params = sampling_params(body, model.stop_tokens, tool_call_grammar(required) if required else None)
        stream_options = body.get("stream_options")
        return cls(
            model=str(body.get("model") or default_model),
            stream=bool(body.get("stream", False)),
            prompt=model.prompt(messages, tools),
            tool_names=[tool.name for tool in tools],
            params=params,
            include_usage=isinstance(stream_options, dict) and bool(stream_options.get("include_usage")),
        )

    async def run(self, backend: Backend, renderer: HarmonyRenderer) -> AsyncIterator[Piece]:
        output = TemplateOutput()
        async for text in ModelTemplate(backend).stream(self.prompt, self.params, output):
            yield TextPiece(text)
        _, calls, faults = parse_tool_requests(output.text, self.tool_names)
        for index, call in enumerate(calls):
            yield CallPiece(f"call_{uuid.uuid4().hex[:24]}", call.name, json.dumps(call.arguments), index)
        if faults and not calls:
            yield TextPiece(f"\n[the model's tool request could not be used: {faults[0].text}]")
        reason: Literal["stop", "length", "tool_calls"] = (
            "tool_calls" if calls else "length" if output.stats.stop_reason == "length" else "stop"
        )
        yield EndPiece(reason, output.stats)


Completion = ChatCompletion | TemplateCompletion


def completion_for(body: object, renderer: HarmonyRenderer, backend: Backend) -> Completion:
    """Harmony for gpt-oss; the model's own chat template for every other model."""
    from mcp_host.agent.chat import detect_format

    if detect_format(backend) == "template":
        return TemplateCompletion.from_request(body, backend, default_model=backend.name)
    return ChatCompletion.from_request(body, renderer, default_model=backend.name)


def _required_tools(choice: object, tools: list[TemplateTool]) -> list[TemplateTool]:
    """`tool_choice: "required"` or a named function: the call is then grammar-constrained to valid JSON."""
    if choice == "required":
        return tools
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        chosen = [tool for tool in tools if tool.name == name]
        if not chosen:
            raise ApiError(400, f"tool_choice names {name!r}, which is not among the tools", param="tool_choice")
        return chosen
    return []


def _validated(body: object) -> tuple[list[dict[str, Any]], list[TemplateTool]]:
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "'messages' must be a non-empty array", param="messages")
    harmony_history(messages)  # the same checks of roles, content and tool messages
    tools = [
        TemplateTool(t.identifier, t.spec.description, t.spec.input_schema) for t in _client_tools(body.get("tools"))
    ]
    plain = [{**m, "content": _text(m.get("content"), i)} for i, m in enumerate(messages) if isinstance(m, dict)]
    return plain, tools
