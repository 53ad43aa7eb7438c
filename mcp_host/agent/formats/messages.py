"""A conversation in OpenAI chat shape and the tools as plain functions: what non-Harmony formats share.

functions = Functions.build(tools)          # `time__now`, `python`, `browser_search` ...
history = ChatMessages(instructions)
history.add_user("What time is it?")
history.add_round(content, outcomes, faults)
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mcp_host.agent.calls import CallOutcome, ToolCall
from mcp_host.agent.formats.base import Fault, TurnTools
from mcp_host.prompt.harmony import message_text
from mcp_host.prompt.template import TemplateTool
from mcp_host.tools.spec import ToolSpec

_ROLES = ("system", "developer", "user", "assistant", "tool")


@dataclass(frozen=True)
class Functions:
    """The turn's tools under the names a non-Harmony model calls them by."""

    tools: list[TemplateTool]
    specs: dict[str, ToolSpec]

    @classmethod
    def build(cls, tools: TurnTools) -> Functions:
        names = tools.registry.names
        specs = {names.to_identifier[spec.name]: spec for spec in tools.registry}
        # Native tools are ordinary functions for models that were not trained on them.
        specs.update({name.replace(".", "_"): native.spec for name, native in tools.natives.items()})
        listed = [TemplateTool(name, spec.description or spec.name, spec.input_schema) for name, spec in specs.items()]
        return cls(listed, specs)

    @property
    def names(self) -> list[str]:
        return [tool.name for tool in self.tools]

    def function_for(self, tool: str | None) -> str | None:
        """The function name of a tool given by qualified name (`server.tool`) or function name."""
        if tool is None:
            return None
        by_qualified = {spec.name: function for function, spec in self.specs.items()}
        return by_qualified.get(tool, tool)

    def call(self, name: str, arguments: dict[str, Any]) -> ToolCall:
        return ToolCall(name, arguments, self.specs.get(name))


class ChatMessages:
    """The history of a chat in OpenAI chat shape; the instructions are its first, system, message."""

    def __init__(self, instructions: str | None = None) -> None:
        self.instructions = instructions
        self.messages: list[dict[str, Any]] = []
        self.reset()

    def reset(self) -> None:
        self.messages = [{"role": "system", "content": self.instructions}] if self.instructions else []

    def load(self, messages: Sequence[Mapping[str, Any]]) -> None:
        """Earlier messages (already validated); content parts become text, developer becomes system."""
        for message in messages:
            role = message.get("role")
            if role not in _ROLES:
                continue
            entry = {**message, "content": message_text(message.get("content"))}
            if role == "developer":
                entry["role"] = "system"
            if entry["role"] == "system" and self.messages and self.messages[0]["role"] == "system":
                first = self.messages[0]
                first["content"] = f"{first['content']}\n\n{entry['content']}".strip()
                continue
            if entry["role"] == "system":
                self.messages.insert(0, entry)
                continue
            self.messages.append(entry)

    def add_user(self, text: str) -> None:
        self.messages.append({"role": "user", "content": text})

    def add_round(self, content: str, outcomes: Sequence[CallOutcome], faults: Sequence[Fault]) -> None:
        """The assistant's message with its calls, their results, then what could not be used."""
        # Content stays a string even beside calls: OpenAI allows null there, but servers such as llama_cpp.server
        # refuse it.
        assistant: dict[str, Any] = {"role": "assistant", "content": content}
        if outcomes:
            assistant["tool_calls"] = [
                {
                    "id": outcome.call_id,
                    "type": "function",
                    "function": {"name": outcome.call.name, "arguments": json.dumps(outcome.arguments)},
                }
                for outcome in outcomes
            ]
        self.messages.append(assistant)
        for outcome in outcomes:
            self.messages.append(
                {"role": "tool", "tool_call_id": outcome.call_id, "name": outcome.call.name, "content": outcome.text}
            )
        for fault in faults:
            self.messages.append({"role": "user", "content": f"(from the host) {fault.text}"})

    def answer(self) -> str:
        last = self.messages[-1] if self.messages else {}
        if last.get("role") == "assistant" and not last.get("tool_calls"):
            return str(last.get("content") or "")
        return ""


class MessagesHistory:
    """The history half of a `TurnFormat` whose conversation is OpenAI chat messages (template, server chat).

    A round's `generate` leaves `_content` and `_faults`; `end_round` records them with the calls' results.
    """

    name: str

    def __init__(self, instructions: str | None) -> None:
        self.history = ChatMessages(instructions)
        self._content = ""
        self._faults: list[Fault] = []
        self._calls: list[tuple[str, dict[str, Any]]] = []  # the round's calls, until their results are in

    def load_messages(self, messages: Sequence[Mapping[str, Any]]) -> None:
        self.history.load(messages)

    def end_round(self, outcomes: Sequence[CallOutcome]) -> None:
        self.history.add_round(self._content, outcomes, self._faults)
        self._content, self._faults, self._calls = "", [], []

    def _note_calls(self, calls: Sequence[ToolCall]) -> None:
        self._calls = [(call.name, dict(call.arguments)) for call in calls]

    def snapshot(self) -> dict[str, Any]:
        pending = {"content": self._content, "calls": [list(call) for call in self._calls]} if self._calls else None
        return {"format": self.name, "messages": list(self.history.messages), "pending": pending}

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        if snapshot.get("format") != self.name:
            raise ValueError(f"a {snapshot.get('format')!r} snapshot cannot be restored as {self.name!r}")
        self.history.messages = [dict(message) for message in snapshot.get("messages", [])]
        pending = snapshot.get("pending") or {}
        self._content = str(pending.get("content", ""))
        self._calls = [(str(name), dict(arguments)) for name, arguments in pending.get("calls", [])]

    def _pending_calls(self, functions: Functions) -> list[ToolCall]:
        return [functions.call(name, arguments) for name, arguments in self._calls]

    def answer(self) -> str:
        return self.history.answer()

    def transcript(self) -> list[dict[str, Any]]:
        return list(self.history.messages)

    def reset(self) -> None:
        self.history.reset()
