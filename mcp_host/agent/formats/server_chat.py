"""The server-chat turn format: a model behind LM Studio, Ollama or vLLM that applies its own template.

Messages and tools go to the server's `/v1/chat/completions`; the server parses the model's tool
calls, and the host runs them through the same call pipeline as every other format.
"""

from __future__ import annotations

import json
from contextlib import aclosing
from typing import Final

from mcp_host.agent.calls import Emit, ToolCall
from mcp_host.agent.events import MessageDelta, ReasoningDelta
from mcp_host.agent.formats.base import Fault, Round, TurnTools
from mcp_host.agent.formats.messages import Functions, MessagesHistory
from mcp_host.backends.base import (
    Backend,
    ChatBackend,
    GenerationParams,
    OutputEnd,
    OutputReasoning,
    OutputText,
    OutputToolCall,
    UnsupportedFeatureError,
)
from mcp_host.prompt.harmony import Effort


class ServerChatFormat(MessagesHistory):
    """A chat's history sent as messages; the server renders it."""

    name: Final = "chat"

    def __init__(
        self,
        backend: ChatBackend,
        *,
        instructions: str | None = None,
        reasoning_effort: Effort | None = None,
        required_tool: str | None = None,
    ) -> None:
        self.backend = backend
        super().__init__(instructions)
        self.reasoning_effort = reasoning_effort
        self.required_tool = required_tool  # the first round's `tool_choice`: a qualified or function name
        self._round = 0
        self._effort = reasoning_effort
        self._functions = Functions([], {})

    def rebind(self, backend: Backend | ChatBackend) -> None:
        if not isinstance(backend, ChatBackend):
            raise UnsupportedFeatureError(f"{backend.name} takes token prompts, not chat messages")
        self.backend = backend

    def start_turn(self, text: str, tools: TurnTools, reasoning: Effort | None) -> None:
        self._functions = Functions.build(tools)
        self._effort = reasoning or self.reasoning_effort
        self._round = 0
        self.history.add_user(text)

    def resume_turn(self, tools: TurnTools, reasoning: Effort | None) -> list[ToolCall]:
        self._functions = Functions.build(tools)
        self._effort = reasoning or self.reasoning_effort
        self._round = 1  # the restored round was the first
        return self._pending_calls(self._functions)

    async def generate(self, params: GenerationParams, *, last_round: bool, emit: Emit) -> Round:
        offered = [] if last_round else [tool.to_openai() for tool in self._functions.tools]
        round_ = Round()
        content: list[str] = []
        self._faults = []
        required = self._functions.function_for(self.required_tool) if self._round == 0 and offered else None
        choice: dict[str, object] | None = {"type": "function", "function": {"name": required}} if required else None
        self._round += 1
        stream = self.backend.chat(
            list(self.history.messages),
            params,
            tools=offered or None,
            tool_choice=choice,
            reasoning_effort=self._effort,
        )
        async with aclosing(stream) as events:
            async for event in events:
                if isinstance(event, OutputText):
                    content.append(event.text)
                    await emit(MessageDelta(text=event.text))
                elif isinstance(event, OutputReasoning):
                    await emit(ReasoningDelta(text=event.text))
                elif isinstance(event, OutputToolCall):
                    self._add_call(event, round_)
                elif isinstance(event, OutputEnd):
                    round_.stats = event.stats
        self._content = "".join(content)
        round_.faults = list(self._faults)
        self._note_calls(round_.calls)
        return round_

    def _add_call(self, event: OutputToolCall, round_: Round) -> None:
        try:
            arguments = json.loads(event.arguments or "{}")
        except json.JSONDecodeError as exc:
            arguments = exc
        if not isinstance(arguments, dict):
            self._faults.append(
                Fault(
                    "model_output.arguments",
                    f"The arguments of your call of {event.name} were not a JSON object; nothing was executed.",
                )
            )
            return
        if event.name not in self._functions.specs:
            known = ", ".join(self._functions.names) or "none"
            self._faults.append(
                Fault("model_output.unknown_tool", f"There is no tool named {event.name!r}. Available tools: {known}.")
            )
            return
        round_.calls.append(self._functions.call(event.name, arguments))
