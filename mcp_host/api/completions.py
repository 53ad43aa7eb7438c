"""OpenAI's chat completions served by a local model: client messages and tools in, one assistant turn out.

    completion = completion_for(request, renderer, backend)   # raises ApiError(400) on what cannot be rendered
    await completion.run(renderer, emit)                      # emit(piece): text, reasoning, a tool call, the end

gpt-oss gets Harmony (`HarmonyCompletion`); every other model its own chat template (`TemplateCompletion`).
The client's tools are rendered under their own names; a call the model makes comes back as `tool_calls`
with `finish_reason: "tool_calls"`, and the client's `tool` messages continue the conversation.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, Literal

import anyio
import anyio.to_thread

from mcp_host.api.requests import ChatCompletionRequest, ChatMessage, NamedToolChoice, ToolDefinition
from mcp_host.backends.base import (
    Backend,
    ChatBackend,
    GenerationParams,
    ModelOutput,
    OutputEnd,
    OutputReasoning,
    OutputText,
    OutputToolCall,
)
from mcp_host.errors import ApiError
from mcp_host.prompt import harmony_parse as parsed
from mcp_host.prompt.harmony import (
    STOP_TOKENS,
    FunctionTool,
    HarmonyOptions,
    HarmonyRenderer,
    messages_from_openai,
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

DEFAULT_MAX_TOKENS = 4096


Emit = Callable[[ModelOutput], Awaitable[None]]


@dataclass
class HarmonyCompletion:
    """A request rendered as Harmony for gpt-oss."""

    backend: Backend
    model: str
    prompt: list[int]
    tool_names: set[str]
    params: GenerationParams

    @classmethod
    def from_request(
        cls, request: ChatCompletionRequest, renderer: HarmonyRenderer, backend: Backend
    ) -> HarmonyCompletion:
        tools = client_tools(request.tools)
        required_tools(request.tool_choice, [tool.identifier for tool in tools])
        check_tool_messages(request.messages)
        instructions, history = messages_from_openai([message.openai_dict() for message in request.messages])
        options = HarmonyOptions(reasoning_effort=request.reasoning_effort or "medium", instructions=instructions)
        return cls(
            backend=backend,
            model=backend.name,
            prompt=renderer.render_prompt(options, tools, history),
            tool_names={tool.identifier for tool in tools},
            params=sampling_params(request, STOP_TOKENS),
        )

    async def run(self, renderer: HarmonyRenderer, emit: Emit) -> None:
        """Generate one assistant turn, handing each piece to `emit`. Raises `BackendError`."""
        parser = parsed.HarmonyStreamParser(self.tool_names, encoding=renderer.encoding)
        async with self.backend.generate(self.prompt, self.params) as generation:
            async for token in generation:
                for event in parser.feed(token):
                    if isinstance(event, OutputText | OutputReasoning):
                        await emit(event)  # the parser speaks the same output events as the API
                if parser.done:
                    break
        if not parser.done:
            parser.finish()
        call = parser.last_call if parser.stop_reason == "call" else None
        if call is not None and call.function is not None:
            await emit(OutputToolCall(new_call_id(), call.function, call.arguments))
            await emit(OutputEnd("tool_calls", generation.stats))
            return
        if parser.last_fault is not None:
            # The model's output could not be used; say so in the answer rather than failing the request.
            await emit(OutputText(f"\n[the model's output could not be parsed: {parser.last_fault.text}]"))
        await emit(OutputEnd("length" if generation.stats.stop_reason == "length" else "stop", generation.stats))


@dataclass
class TemplateCompletion:
    """The same request for a model that does not speak Harmony: its own chat template, `[TOOL_REQUEST]` calls."""

    backend: Backend
    model: str
    prompt: list[int]
    tool_names: list[str]
    params: GenerationParams
    template: ModelTemplate

    @classmethod
    def from_request(
        cls, request: ChatCompletionRequest, renderer: HarmonyRenderer, backend: Backend
    ) -> TemplateCompletion:
        check_tool_messages(request.messages)
        tools = [
            TemplateTool(t.identifier, t.spec.description, t.spec.input_schema) for t in client_tools(request.tools)
        ]
        chosen = set(required_tools(request.tool_choice, [tool.name for tool in tools]))
        required = [tool for tool in tools if tool.name in chosen]
        template = ModelTemplate(backend)
        return cls(
            backend=backend,
            model=backend.name,
            prompt=template.prompt([message.openai_dict() for message in request.messages], tools),
            tool_names=[tool.name for tool in tools],
            params=sampling_params(request, template.stop_tokens, tool_call_grammar(required) if required else None),
            template=template,
        )

    async def run(self, renderer: HarmonyRenderer, emit: Emit) -> None:
        """Generate one assistant turn, handing each piece to `emit`. Raises `BackendError`."""
        output = TemplateOutput()
        async with aclosing(self.template.stream(self.prompt, self.params, output)) as texts:
            async for text in texts:
                await emit(OutputText(text))
        _, calls, faults = parse_tool_requests(output.text, self.tool_names)
        for index, call in enumerate(calls):
            await emit(OutputToolCall(new_call_id(), call.name, json.dumps(call.arguments), index))
        if faults and not calls:
            await emit(OutputText(f"\n[the model's tool request could not be used: {faults[0].text}]"))
        reason: Literal["stop", "length", "tool_calls"] = (
            "tool_calls" if calls else "length" if output.stats.stop_reason == "length" else "stop"
        )
        await emit(OutputEnd(reason, output.stats))


@dataclass
class ServerChatCompletion:
    """The same request for a model behind a server in chat mode: passed through, the answer streamed back."""

    backend: ChatBackend
    model: str
    messages: list[dict[str, object]]
    tools: list[dict[str, object]] | None
    tool_choice: str | dict[str, object] | None
    reasoning_effort: str | None
    params: GenerationParams

    @classmethod
    def from_request(cls, request: ChatCompletionRequest, backend: ChatBackend) -> ServerChatCompletion:
        check_tool_messages(request.messages)
        choice = request.tool_choice
        return cls(
            backend=backend,
            model=backend.name,
            messages=[message.openai_dict() for message in request.messages],
            tools=[tool.model_dump(exclude_none=True) for tool in request.tools] if request.tools else None,
            tool_choice=choice.model_dump() if isinstance(choice, NamedToolChoice) else choice,
            reasoning_effort=request.reasoning_effort,
            params=sampling_params(request, frozenset()),
        )

    async def run(self, renderer: HarmonyRenderer, emit: Emit) -> None:
        """The server's answer, event by event (it already speaks the API's output events). Raises `BackendError`."""
        answer = self.backend.chat(
            self.messages,
            self.params,
            tools=self.tools,
            tool_choice=self.tool_choice,
            reasoning_effort=self.reasoning_effort,
        )
        async with aclosing(answer) as events:
            async for event in events:
                await emit(event)


Completion = HarmonyCompletion | TemplateCompletion | ServerChatCompletion


async def prepare_completion(
    request: ChatCompletionRequest, renderer: HarmonyRenderer, backend: Backend | ChatBackend
) -> Completion:
    """`completion_for` in a worker thread, so that a huge request never holds up the event loop.

    A prompt over the model's context is a 400 `context_length_exceeded`: found while counting the
    messages' text, before the whole prompt is rendered, when the text alone is too long; else by
    the rendered prompt's length. Raises `ApiError`.
    """

    def prepare() -> Completion:
        if isinstance(backend, Backend):
            check_text_fits(request, _token_counter(renderer, backend), backend.context_length)
        completion = completion_for(request, renderer, backend)
        if isinstance(completion, HarmonyCompletion | TemplateCompletion):
            check_prompt_fits(len(completion.prompt), completion.backend.context_length)
        return completion

    return await anyio.to_thread.run_sync(prepare)


async def check_request_fits(
    request: ChatCompletionRequest, renderer: HarmonyRenderer, backend: Backend | ChatBackend
) -> None:
    """The text check of `prepare_completion` alone, in a worker thread (for the host-tools turn). Raises `ApiError`."""
    if isinstance(backend, Backend):
        count = _token_counter(renderer, backend)
        await anyio.to_thread.run_sync(lambda: check_text_fits(request, count, backend.context_length))


# Text is counted in pieces of this many characters; a cut may add a token or two, never remove one.
_PIECE_CHARS = 32_768
_CUT_SLACK_TOKENS = 4
# The fewest tokens any prompt format spends on a message besides its text: Harmony's
# `<|start|>user<|message|>…<|end|>` spends 4, ChatML's 5, LM Studio's plain `User: …` fallback 2.
_MESSAGE_TOKENS = 2


def check_text_fits(request: ChatCompletionRequest, count: Callable[[str], int], context_length: int) -> None:
    """Raise the 400 as soon as the request is known to need more tokens than the context holds.

    A lower bound, counted piece by piece so that the event loop gets its turns: each message's text
    and framing, each tool's definition. So 250,000 empty messages are refused here, before rendering
    (which holds the GIL while it runs).
    """
    tokens = pieces = 0

    def add(text: str) -> None:
        nonlocal tokens, pieces
        for start in range(0, len(text), _PIECE_CHARS):
            tokens += count(text[start : start + _PIECE_CHARS])
            pieces += 1
            if tokens - _CUT_SLACK_TOKENS * pieces >= context_length:
                raise _too_long(f"the request needs more than {context_length} tokens", context_length)

    for tool in request.tools or ():  # the name and description appear as they are; the schema is reshaped
        add(tool.function.name)
        add(tool.function.description or "")
    for message in request.messages:
        tokens += _MESSAGE_TOKENS
        if tokens - _CUT_SLACK_TOKENS * pieces >= context_length:
            raise _too_long(f"the request needs more than {context_length} tokens", context_length)
        for text in _texts(message.openai_dict()):
            add(text)


def check_prompt_fits(prompt_tokens: int, context_length: int) -> None:
    if prompt_tokens >= context_length:
        raise _too_long(f"the prompt has {prompt_tokens} tokens", context_length)


def _too_long(what: str, context_length: int) -> ApiError:
    return ApiError(
        400,
        f"{what}; the model's context holds {context_length} (with room for the answer): shorten the conversation",
        param="messages",
        code="context_length_exceeded",
    )


def _texts(message: dict[str, Any]) -> list[str]:
    content = message.get("content")
    texts = [content] if isinstance(content, str) else []
    if isinstance(content, list):
        texts += [part["text"] for part in content if isinstance(part, dict) and isinstance(part.get("text"), str)]
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        texts += [value for value in (function.get("name"), function.get("arguments")) if isinstance(value, str)]
    return texts


def _token_counter(renderer: HarmonyRenderer, backend: Backend) -> Callable[[str], int]:
    if backend.capabilities.prompt_format == "harmony":
        return lambda text: len(renderer.encoding.encode(text, disallowed_special=()))
    return lambda text: len(backend.tokenize(text, special=False))


def completion_for(
    request: ChatCompletionRequest, renderer: HarmonyRenderer, backend: Backend | ChatBackend
) -> Completion:
    """Harmony for gpt-oss; the model's own chat template for other models; a chat-mode server's own chat.

    Raises `ApiError`.
    """
    if not isinstance(backend, Backend):
        return ServerChatCompletion.from_request(request, backend)
    if backend.capabilities.prompt_format == "harmony":
        return HarmonyCompletion.from_request(request, renderer, backend)
    return TemplateCompletion.from_request(request, renderer, backend)


def sampling_params(
    request: ChatCompletionRequest, stop: frozenset[int], grammar: str | None = None
) -> GenerationParams:
    """The request's sampling fields, with the stop tokens (and grammar) of the prompt format."""
    return GenerationParams(
        max_tokens=request.token_limit(DEFAULT_MAX_TOKENS),
        temperature=1.0 if request.temperature is None else request.temperature,
        top_p=1.0 if request.top_p is None else request.top_p,
        seed=request.seed,
        stop_tokens=stop,
        grammar=grammar,
    )


def client_tools(tools: list[ToolDefinition] | None) -> list[FunctionTool]:
    """The client's function tools, rendered under their own names."""
    functions = []
    for tool in tools or []:
        schema = tool.function.parameters or {}
        spec = ToolSpec(
            server="client",
            tool=tool.function.name,
            qualified=tool.function.name,
            origin="plugin",
            description=tool.function.description or "",
            input_schema=normalise_schema(schema),
            original_schema=schema,
        )
        functions.append(FunctionTool(tool.function.name, spec))
    return functions


def required_tools(choice: object, names: list[str]) -> list[str]:
    """`tool_choice: "required"` or a named function: the call is then grammar-constrained where the engine can."""
    if choice == "required":
        return names
    if isinstance(choice, NamedToolChoice):
        if choice.function.name not in names:
            raise ApiError(
                400, f"tool_choice names {choice.function.name!r}, which is not among the tools", param="tool_choice"
            )
        return [choice.function.name]
    return []


def check_tool_messages(messages: list[ChatMessage]) -> None:
    """Every `tool` message must answer a call: one made earlier, or one it names. Raises `ApiError`."""
    called = False
    for index, message in enumerate(messages):
        called = called or (message.role == "assistant" and any(call.function.name for call in message.calls))
        if message.role == "tool" and not called and not message.name:
            raise ApiError(
                400,
                f"messages.{index}: a tool message needs the tool_call_id of an earlier call",
                param=f"messages.{index}.tool_call_id",
            )


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"
