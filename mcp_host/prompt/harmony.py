"""Rendering conversations into the exact token ids gpt-oss expects (the Harmony format).

    renderer = HarmonyRenderer()
    options = HarmonyOptions(reasoning_effort="high", browser=True)
    tokens = renderer.render_prompt(options, tools, [user_message("What time is it?")])

Built-in tools (`browser`, `python`) go in the system message; MCP and plugin tools go in the
developer message's `functions` namespace under identifier-safe names (`server__tool`).
Earlier turns' chain of thought is dropped here, not by `auto_drop_analysis`, which only drops
analysis before the first `final` message.
"""

from __future__ import annotations

import datetime
import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, get_args

from openai_harmony import (
    Author,
    Conversation,
    DeveloperContent,
    HarmonyEncoding,
    Message,
    ReasoningEffort,
    RenderConversationConfig,
    RenderOptions,
    Role,
    SystemContent,
    ToolDescription,
    ToolNamespaceConfig,
)

from mcp_host.prompt.vocab import harmony_encoding
from mcp_host.tools.names import NameMap
from mcp_host.tools.native.python import python_tool_description
from mcp_host.tools.spec import ToolSpec

Effort = Literal["low", "medium", "high"]
EFFORTS: tuple[Effort, ...] = get_args(Effort)
_EFFORTS = {"low": ReasoningEffort.LOW, "medium": ReasoningEffort.MEDIUM, "high": ReasoningEffort.HIGH}

DEFAULT_IDENTITY = "You are ChatGPT, a large language model trained by OpenAI."
DEFAULT_CUTOFF = "2024-06"
# `<|return|>` ends a turn, `<|call|>` hands over to a tool: either ends a generation.
RETURN_TOKEN = 200002
CALL_TOKEN = 200012
STOP_TOKENS = frozenset({RETURN_TOKEN, CALL_TOKEN})
_NO_AUTO_DROP = RenderConversationConfig(auto_drop_analysis=False)


@dataclass(frozen=True)
class HarmonyOptions:
    """What goes into the system and developer messages; `replace()` it per turn to change the effort."""

    reasoning_effort: Effort = "medium"
    model_identity: str = DEFAULT_IDENTITY
    knowledge_cutoff: str = DEFAULT_CUTOFF
    start_date: str = field(default_factory=lambda: datetime.date.today().isoformat())
    browser: bool = False
    python: bool = False
    # The python tool's own description (its real limits and isolation); None: the defaults on this machine.
    python_description: str | None = None
    instructions: str | None = None

    def with_effort(self, effort: Effort) -> HarmonyOptions:
        return replace(self, reasoning_effort=effort)


@dataclass(frozen=True)
class FunctionTool:
    """A tool as the model sees it: an identifier in the `functions` namespace, its description and schema."""

    identifier: str
    spec: ToolSpec

    @classmethod
    def from_specs(cls, specs: Sequence[ToolSpec], names: NameMap | None = None) -> list[FunctionTool]:
        names = names or NameMap.build((spec.server, spec.tool) for spec in specs)
        return [cls(names.to_identifier[spec.name], spec) for spec in specs]

    def description(self) -> ToolDescription:
        text = self.spec.description or self.spec.title or self.spec.name
        return ToolDescription.new(self.identifier, text, self.spec.input_schema)


# -- messages -------------------------------------------------------------------------------


def user_message(text: str) -> Message:
    return Message.from_role_and_content(Role.USER, text)


def assistant_message(text: str, channel: Literal["analysis", "commentary", "final"] = "final") -> Message:
    return Message.from_role_and_content(Role.ASSISTANT, text).with_channel(channel)


def tool_call_message(
    recipient: str, arguments: str, *, channel: str = "commentary", content_type: str | None = "<|constrain|>json"
) -> Message:
    """The assistant's call of `recipient` (`functions.x`, `browser.search`, `python`)."""
    message = Message.from_role_and_content(Role.ASSISTANT, arguments).with_channel(channel).with_recipient(recipient)
    return message.with_content_type(content_type) if content_type else message


def tool_result_message(recipient: str, text: str, *, channel: str = "commentary") -> Message:
    """A tool's answer: authored by the tool it came from, addressed to the assistant, on the call's channel."""
    author = Author.new(Role.TOOL, recipient)
    return Message.from_author_and_content(author, text).with_recipient("assistant").with_channel(channel)


def drop_finished_reasoning(history: Sequence[Message]) -> list[Message]:
    """Remove chain of thought from turns that ended in `final`; keep it inside the turn still running.

    gpt-oss is trained to see its earlier reasoning only within the current tool loop.
    """
    last_final = max(
        (i for i, m in enumerate(history) if m.author.role == Role.ASSISTANT and m.channel == "final"), default=-1
    )
    return [
        message
        for index, message in enumerate(history)
        if not (
            index < last_final
            and message.author.role == Role.ASSISTANT
            and message.channel == "analysis"
            and message.recipient is None
        )
    ]


def message_text(content: object) -> str:
    """An OpenAI message's content as text: a string, or the text of its content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, Mapping))
    return ""


def messages_from_openai(messages: Sequence[Mapping[str, Any]]) -> tuple[str | None, list[Message]]:
    """OpenAI chat messages (already validated) as Harmony: system/developer text becomes the instructions.

    Assistant `tool_calls` (and the older `function_call`) become calls in the `functions` namespace;
    a `tool` message answers the call named by its `tool_call_id` (else its `name`, else the last call).
    """
    instructions: list[str] = []
    history: list[Message] = []
    call_names: dict[str, str] = {}
    last_call = ""
    for message in messages:
        role = message.get("role")
        content = message_text(message.get("content"))
        if role in ("system", "developer"):
            instructions.append(content)
        elif role == "user":
            history.append(user_message(content))
        elif role == "assistant":
            if content:
                history.append(assistant_message(content, "final"))
            calls = list(message.get("tool_calls") or [])
            if isinstance(message.get("function_call"), Mapping):  # the older single-call form LM Studio documents
                calls.append({"id": "", "function": message["function_call"]})
            for call in calls:
                function = call.get("function") or {}
                name = str(function.get("name", ""))
                arguments = function.get("arguments") or "{}"
                call_names[str(call.get("id") or "")] = last_call = name
                text = arguments if isinstance(arguments, str) else json.dumps(arguments)
                history.append(tool_call_message(f"functions.{name}", text))
        elif role == "tool":
            name = call_names.get(str(message.get("tool_call_id") or "")) or str(message.get("name") or "") or last_call
            history.append(tool_result_message(f"functions.{name or 'tool'}", content))
    return ("\n\n".join(instructions) or None), history


# -- rendering ------------------------------------------------------------------------------


def python_tool_config(description: str | None = None) -> ToolNamespaceConfig:
    """The python tool as the system message describes it: its real limits and isolation.

    Not openai_harmony's stock text (`with_python_tool()`), which promises a 120 s timeout and an unknown network.
    """
    return ToolNamespaceConfig(name="python", description=description or python_tool_description(), tools=[])


@dataclass(frozen=True)
class PromptPart:
    label: str
    tokens: int


class HarmonyRenderer:
    """Renders system, developer and history messages; stateless apart from the encoding."""

    def __init__(self, encoding: HarmonyEncoding | None = None) -> None:
        self.encoding = encoding or harmony_encoding()

    def system_message(self, options: HarmonyOptions, *, builtins: bool = True) -> Message:
        content = (
            SystemContent.new()
            .with_model_identity(options.model_identity)
            .with_reasoning_effort(_EFFORTS[options.reasoning_effort])
            .with_knowledge_cutoff(options.knowledge_cutoff)
            .with_conversation_start_date(options.start_date)
        )
        if builtins and options.browser:
            content = content.with_browser_tool()
        if builtins and options.python:
            content = content.with_tools(python_tool_config(options.python_description))
        return Message.from_role_and_content(Role.SYSTEM, content)

    def developer_message(self, options: HarmonyOptions, tools: Sequence[FunctionTool]) -> Message | None:
        if not tools and not options.instructions:
            return None
        content = DeveloperContent.new()
        if options.instructions:
            content = content.with_instructions(options.instructions)
        if tools:
            content = content.with_function_tools([tool.description() for tool in tools])
        return Message.from_role_and_content(Role.DEVELOPER, content)

    def conversation(
        self, options: HarmonyOptions, tools: Sequence[FunctionTool], history: Sequence[Message]
    ) -> Conversation:
        messages = [self.system_message(options)]
        developer = self.developer_message(options, tools)
        if developer is not None:
            messages.append(developer)
        messages.extend(drop_finished_reasoning(history))
        return Conversation.from_messages(messages)

    def render_prompt(
        self, options: HarmonyOptions, tools: Sequence[FunctionTool], history: Sequence[Message]
    ) -> list[int]:
        """The whole prompt, ending with `<|start|>assistant`, ready for generation."""
        conversation = self.conversation(options, tools, history)
        return list(self.encoding.render_conversation_for_completion(conversation, Role.ASSISTANT, _NO_AUTO_DROP))

    def render_message(self, message: Message) -> list[int]:
        return list(self.encoding.render(message))

    def assistant_start(self) -> list[int]:
        """`<|start|>assistant`: what follows a tool result so that the model answers next."""
        return list(self._assistant_start)

    @functools.cached_property
    def _assistant_start(self) -> tuple[int, ...]:
        return tuple(self.encoding.encode("<|start|>assistant", allowed_special={"<|start|>"}))

    def breakdown(
        self, options: HarmonyOptions, tools: Sequence[FunctionTool], history: Sequence[Message]
    ) -> list[PromptPart]:
        """Token counts of the prompt's parts: system, built-in tools, each server's tools, history.

        Each server's count is what adding only its tools to the developer message costs, the
        `functions` namespace header included, so with several servers the parts add up to a few
        tokens more than the whole.
        """
        # The system message says where function calls go only when there are functions: count it that way.
        system_options = RenderOptions(conversation_has_function_tools=bool(tools))

        def count(message: Message) -> list[int]:
            return list(self.encoding.render(message, system_options))

        system_bare = len(count(self.system_message(options, builtins=False)))
        parts = [PromptPart("system", system_bare)]
        if options.browser or options.python:
            parts.append(PromptPart("built-in tools", len(count(self.system_message(options))) - system_bare))
        base = self.developer_message(options, [])
        base_tokens = len(count(base)) if base is not None else 0
        if options.instructions:
            parts.append(PromptPart("instructions", base_tokens))
        by_server: dict[str, list[FunctionTool]] = {}
        for tool in tools:
            by_server.setdefault(tool.spec.server, []).append(tool)
        for server, server_tools in sorted(by_server.items()):
            developer = self.developer_message(options, server_tools)
            assert developer is not None
            parts.append(PromptPart(f"tools: {server}", len(count(developer)) - base_tokens))
        history_tokens = sum(len(count(message)) for message in drop_finished_reasoning(history))
        parts.append(PromptPart("history", history_tokens + len(self.assistant_start())))
        return parts
