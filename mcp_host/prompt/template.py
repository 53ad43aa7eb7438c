"""Prompts for models that do not speak Harmony: the model's own chat template, or LM Studio's default format.

    prompt = TemplatePrompt(backend.chat_template)
    text = prompt.render(messages, tools)            # str; the backend tokenizes it
    content, calls, faults = parse_tool_requests(generated_text)

A GGUF's `tokenizer.chat_template` is rendered (sandboxed Jinja) with the `tools` list when the
template uses tools. Otherwise the tools go in the system prompt in LM Studio's default format and
calls are read back from `[TOOL_REQUEST]{"name": ..., "arguments": {...}}[END_TOOL_REQUEST]`; models whose
template renders tools answer with `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`, read too.
A base model with no template at all gets a plain `User:` / `Assistant:` transcript.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import Any

from mcp_host.backends.base import Backend, GenerationParams, GenerationStats
from mcp_host.errors import TemplateError as TemplateError
from mcp_host.tools.schema import JsonSchema

REQUEST_OPEN = "[TOOL_REQUEST]"
REQUEST_CLOSE = "[END_TOOL_REQUEST]"
_REQUEST = re.compile(re.escape(REQUEST_OPEN) + r"(.*?)" + re.escape(REQUEST_CLOSE), re.DOTALL)
# Templates that render tools themselves (Qwen, Hermes and others) have the model answer in this form.
NATIVE_OPEN = "<tool_call>"
_NATIVE_CALL = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)

Message = dict[str, Any]  # OpenAI chat shape: {"role", "content", "tool_calls"?, "tool_call_id"?, "name"?}


@dataclass(frozen=True)
class TemplateTool:
    """A tool as a non-Harmony model sees it: a name, a description and a JSON schema."""

    name: str
    description: str
    parameters: JsonSchema

    def to_openai(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }


@dataclass(frozen=True)
class ToolRequest:
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class ToolRequestFault:
    """A `[TOOL_REQUEST]` block that could not be used, with text for the model."""

    text: str
    raw: str


def default_tool_instructions(tools: Sequence[TemplateTool]) -> str:
    """LM Studio's default tool-use system prompt, as its logs show it."""
    listing = json.dumps({"type": "toolArray", "tools": [tool.to_openai() for tool in tools]}, indent=2)
    return (
        "You are a tool-calling AI. You can request calls to available tools with this EXACT format: "
        f'{REQUEST_OPEN}{{"name": "tool_name", "arguments": {{"param1": "value1"}}}}{REQUEST_CLOSE}\n\n'
        f"AVAILABLE TOOLS: {listing}\n\n"
        "RULES:\n- Only use tools from AVAILABLE TOOLS\n- Include all required arguments\n"
        f"- Use one {REQUEST_OPEN} block per tool\n- Never use [TOOL_RESULT]\n"
        "- If you decide to call one or more tools, there should be no other text in your message\n\n"
        'Examples:\n"Check Paris weather"\n'
        f'{REQUEST_OPEN}{{"name": "get_weather", "arguments": {{"location": "Paris"}}}}{REQUEST_CLOSE}\n\n'
        "Respond conversationally if no matching tools exist."
    )


class TemplatePrompt:
    """Renders chat messages with a model's own template, or the fallbacks described above."""

    def __init__(self, chat_template: str | None, *, bos_token: str = "", eos_token: str = "") -> None:
        self.chat_template = chat_template
        self.bos_token = bos_token
        self.eos_token = eos_token
        self._compiled: Any = None
        if chat_template:
            from jinja2 import TemplateError as JinjaError
            from jinja2.sandbox import ImmutableSandboxedEnvironment

            environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
            environment.globals["raise_exception"] = _raise_template_exception
            try:
                self._compiled = environment.from_string(chat_template)
            except JinjaError as exc:
                raise TemplateError(f"the model's chat template does not compile: {exc}") from exc

    @property
    def native_tools(self) -> bool:
        """Whether the model's template renders a `tools` list itself."""
        return bool(self.chat_template) and "tools" in (self.chat_template or "")

    def render(self, messages: Sequence[Message], tools: Sequence[TemplateTool] = ()) -> str:
        """The prompt text up to where the assistant's reply begins. Raises `TemplateError`."""
        messages = [_with_text_tool_calls(m) if not self.native_tools else m for m in messages]
        if tools and not self.native_tools:
            messages = _with_system(messages, default_tool_instructions(tools))
        if self._compiled is None:
            return _plain_transcript(messages)
        from jinja2 import TemplateError as JinjaError

        try:
            return str(
                self._compiled.render(
                    messages=messages,
                    tools=[t.to_openai() for t in tools] if tools and self.native_tools else None,
                    add_generation_prompt=True,
                    bos_token=self.bos_token,
                    eos_token=self.eos_token,
                )
            )
        except JinjaError as exc:
            raise TemplateError(f"the model's chat template failed: {exc}") from exc


def parse_tool_requests(text: str, known: Sequence[str]) -> tuple[str, list[ToolRequest], list[ToolRequestFault]]:
    """Split generated text into plain content, well-formed calls, and faults to tell the model about."""
    calls: list[ToolRequest] = []
    faults: list[ToolRequestFault] = []
    matches = sorted([*_REQUEST.finditer(text), *_NATIVE_CALL.finditer(text)], key=lambda m: m.start())
    for match in matches:
        raw = match.group(0)
        try:
            request = json.loads(match.group(1))
        except json.JSONDecodeError as exc:
            faults.append(
                ToolRequestFault(f"A {REQUEST_OPEN} block was not valid JSON ({exc.msg}); nothing was executed.", raw)
            )
            continue
        name = request.get("name") if isinstance(request, dict) else None
        arguments = request.get("arguments", {}) if isinstance(request, dict) else None
        if not isinstance(name, str) or not isinstance(arguments, dict):
            faults.append(
                ToolRequestFault(
                    f'A {REQUEST_OPEN} needs {{"name": string, "arguments": object}}; nothing was executed.', raw
                )
            )
        elif name not in known:
            faults.append(
                ToolRequestFault(
                    f"There is no tool named {name!r}. Available tools: {', '.join(known) or 'none'}.", raw
                )
            )
        else:
            calls.append(ToolRequest(name, arguments))
    unclosed = text.rfind(REQUEST_OPEN) > text.rfind(REQUEST_CLOSE)
    if unclosed:
        faults.append(
            ToolRequestFault(
                f"A {REQUEST_OPEN} block was not closed with {REQUEST_CLOSE}; nothing was executed.",
                text[text.rfind(REQUEST_OPEN) :],
            )
        )
    content = _NATIVE_CALL.sub("", _REQUEST.sub("", text))
    if unclosed:
        content = content[: content.rfind(REQUEST_OPEN)]
    return content.strip(), calls, faults


def tool_call_grammar(tools: Sequence[TemplateTool]) -> str:
    """A GBNF grammar that admits exactly one `[TOOL_REQUEST]` whose JSON matches one tool's schema.

    Needs llama-cpp-python (its JSON-schema-to-GBNF converter); used when a tool call is required.
    """
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    variants = [
        {
            "type": "object",
            "properties": {"name": {"const": tool.name}, "arguments": _closed(tool.parameters)},
            "required": ["name", "arguments"],
            "additionalProperties": False,
        }
        for tool in tools
    ]
    schema = variants[0] if len(variants) == 1 else {"oneOf": variants}
    grammar = str(json_schema_to_gbnf(json.dumps(schema), prop_order=["name", "arguments"]))
    grammar = re.sub(r"^root\s*::=", "call ::=", grammar, count=1, flags=re.MULTILINE)
    return f'root ::= "{REQUEST_OPEN}" call "{REQUEST_CLOSE}"\n{grammar}'


def _closed(schema: JsonSchema) -> JsonSchema:
    """The schema with unknown properties refused, so the grammar cannot wander off."""
    if schema.get("type") == "object" and "additionalProperties" not in schema:
        return {**schema, "additionalProperties": False}
    return schema


def _raise_template_exception(message: str) -> None:
    raise TemplateError(f"the model's chat template refused these messages: {message}")


def _with_system(messages: Sequence[Message], instructions: str) -> list[Message]:
    if messages and messages[0].get("role") == "system":
        first = dict(messages[0])
        first["content"] = f"{instructions}\n\n{first.get('content') or ''}".strip()
        return [first, *messages[1:]]
    return [{"role": "system", "content": instructions}, *messages]


def _with_text_tool_calls(message: Message) -> Message:
    """Calls and results in LM Studio's text form, for templates that know nothing of tools."""
    if message.get("role") == "assistant" and message.get("tool_calls"):
        blocks = [
            f"{REQUEST_OPEN}{json.dumps({'name': c['function']['name'], 'arguments': _arguments(c)})}{REQUEST_CLOSE}"
            for c in message["tool_calls"]
        ]
        return {"role": "assistant", "content": "\n".join(filter(None, [message.get("content"), *blocks]))}
    if message.get("role") == "tool":
        return {"role": "user", "content": f"Result of tool {message.get('name') or 'call'}: {message['content']}"}
    return message


def _arguments(call: dict[str, Any]) -> Any:
    arguments = call["function"].get("arguments") or "{}"
    if not isinstance(arguments, str):
        return arguments
    try:
        return json.loads(arguments)
    except json.JSONDecodeError:
        return arguments  # an earlier call written badly (by a client or the model) is shown as it was


def _plain_transcript(messages: Sequence[Message]) -> str:
    names = {"system": "System", "user": "User", "assistant": "Assistant"}
    lines = [f"{names.get(m['role'], m['role'].title())}: {m.get('content') or ''}" for m in messages]
    return "\n\n".join([*lines, "Assistant:"])


class ControlTextGuard:
    """Keeps text from tools, pages and users from turning into the model's control tokens.

    The rendered template is tokenized with special tokens enabled (the template's own markup needs
    them), so a tool result containing `<end_of_turn><start_of_turn>user` would forge a turn. Such
    text is broken with a zero-width space before rendering; the model still reads it.
    """

    def __init__(self, control_texts: tuple[str, ...]) -> None:
        ordered = sorted(set(control_texts), key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def text(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(lambda match: match.group(0)[0] + "\u200b" + match.group(0)[1:], text)

    def messages(self, messages: Sequence[Message]) -> list[Message]:
        return [{**m, "content": self.text(m["content"])} if isinstance(m.get("content"), str) else m for m in messages]


class VisibleText:
    """The user-visible part of a growing answer, fed piece by piece in linear time.

    Everything before the first `[TOOL_REQUEST]` / `<tool_call>` is shown; a tail that may be the
    start of one is held back until the next piece settles it.
    """

    _MARKERS = (REQUEST_OPEN, NATIVE_OPEN)

    def __init__(self) -> None:
        self._held = ""
        self._stopped = False

    def feed(self, piece: str) -> str:
        """The newly visible text after `piece`."""
        if self._stopped:
            return ""
        held = self._held + piece
        found = [index for index in (held.find(marker) for marker in self._MARKERS) if index >= 0]
        if found:
            self._stopped, self._held = True, ""
            return held[: min(found)]
        keep = max(
            (cut for marker in self._MARKERS for cut in range(len(marker) - 1, 0, -1) if held.endswith(marker[:cut])),
            default=0,
        )
        self._held = held[len(held) - keep :] if keep else ""
        return held[: len(held) - keep]

    def finish(self) -> str:
        """What was held back, once the answer has ended without a tool request."""
        held, self._held = ("" if self._stopped else self._held), ""
        return held


class IncrementalDecoder:
    """Token ids to text one token at a time, holding back a token that ends inside a UTF-8 character."""

    _MAX_PENDING = 4  # a UTF-8 character spans at most four tokens

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._pending: list[int] = []

    def feed(self, token: int) -> str:
        self._pending.append(token)
        text = self._backend.detokenize(self._pending)
        if text.endswith("\ufffd") and len(self._pending) < self._MAX_PENDING:
            return ""
        self._pending.clear()
        return text

    def flush(self) -> str:
        text = self._backend.detokenize(self._pending) if self._pending else ""
        self._pending.clear()
        return text


@dataclass
class TemplateOutput:
    """What one generation produced: its tokens (without the end token), their text, and the stats."""

    tokens: list[int] = field(default_factory=list)
    text: str = ""
    stats: GenerationStats = field(default_factory=GenerationStats)


class ModelTemplate:
    """A non-Harmony model's prompt format bound to the model: template, BOS, end tokens, control-text guard.

    model = ModelTemplate(backend)
    output = TemplateOutput()
    async for text in model.stream(model.prompt(messages, tools), params, output): ...
    """

    def __init__(self, backend: Backend) -> None:
        capabilities = backend.capabilities
        self.backend = backend
        self.template = TemplatePrompt(capabilities.chat_template)
        self.guard = ControlTextGuard(capabilities.control_texts)
        self.bos = [capabilities.bos_token] if capabilities.bos_token is not None else []
        self.stop_tokens = capabilities.end_tokens

    def prompt(self, messages: Sequence[Message], tools: Sequence[TemplateTool] = ()) -> list[int]:
        """Token ids of the rendered prompt. Raises `TemplateError`, `BackendError`."""
        return self.bos + self.backend.tokenize(self.template.render(self.guard.messages(messages), tools))

    async def stream(self, prompt: list[int], params: GenerationParams, output: TemplateOutput) -> AsyncGenerator[str]:
        """Generate, yielding the text meant for the user as it grows (tool requests held back); fills `output`.

        Each token is decoded once (text grows by pieces), so a long answer costs linear time.
        """
        decoder = IncrementalDecoder(self.backend)
        visible = VisibleText()
        pieces: list[str] = []
        async with self.backend.generate(prompt, params) as generation:
            async for token in generation:
                if token in self.stop_tokens:
                    break
                output.tokens.append(token)
                piece = decoder.feed(token)
                if piece:
                    pieces.append(piece)
                    shown = visible.feed(piece)
                    if shown:
                        yield shown
        rest = decoder.flush()
        pieces.append(rest)
        shown = visible.feed(rest) + visible.finish()
        if shown:
            yield shown
        output.text = "".join(pieces)
        output.stats = generation.stats
