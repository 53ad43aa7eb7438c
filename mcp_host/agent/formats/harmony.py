"""The Harmony turn format for gpt-oss: rendered prompts, a token log that only grows within a turn.

Within a turn the prompt is the previous round's prompt plus exactly what the model generated plus
the rendered result, so the backend reuses its KV cache every round. One call per round (gpt-oss
ends a generation at `<|call|>`); a malformed call is cut from the log and the model is told why.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from typing import Any, Final

from openai_harmony import Message, Role

from mcp_host.agent.calls import CallOutcome, Emit, ToolCall
from mcp_host.agent.events import MessageDelta, ReasoningDelta
from mcp_host.agent.formats.base import Fault, Round, TurnTools
from mcp_host.backends.base import (
    Backend,
    ChatBackend,
    GenerationParams,
    OutputReasoning,
    OutputText,
    UnsupportedFeatureError,
)
from mcp_host.prompt import harmony_parse as parsed
from mcp_host.prompt.harmony import (
    STOP_TOKENS,
    Effort,
    FunctionTool,
    HarmonyOptions,
    HarmonyRenderer,
    messages_from_openai,
    tool_result_message,
    user_message,
)
from mcp_host.prompt.token_log import TokenLog

LAST_ROUND_NOTICE = "You have used every tool round of this turn; answer the user now, without tools."


class HarmonyFormat:
    """Harmony history and token log of one chat."""

    name: Final = "harmony"

    def __init__(self, backend: Backend, options: HarmonyOptions, renderer: HarmonyRenderer | None = None) -> None:
        self.backend = backend
        self.options = options
        self.renderer = renderer or HarmonyRenderer()
        self.history: list[Message] = []
        self.log = TokenLog(self.renderer)
        self._turn_options = options
        self._tools: TurnTools | None = None
        self._known: set[str] = set()
        self._pending: parsed.ToolCallRequest | None = None

    def rebind(self, backend: Backend | ChatBackend) -> None:
        if not isinstance(backend, Backend) or backend.capabilities.prompt_format != "harmony":
            raise UnsupportedFeatureError(f"{backend.name} does not take Harmony prompts")
        self.backend = backend

    def load_messages(self, messages: Sequence[Mapping[str, Any]]) -> None:
        instructions, history = messages_from_openai(messages)
        if instructions:
            joined = "\n\n".join(filter(None, [self.options.instructions, instructions]))
            self.options = replace(self.options, instructions=joined)
        self.history.extend(history)

    def start_turn(self, text: str, tools: TurnTools, reasoning: Effort | None) -> None:
        self.history.append(user_message(text))
        self._begin(tools, reasoning)

    def resume_turn(self, tools: TurnTools, reasoning: Effort | None) -> list[ToolCall]:
        self._begin(tools, reasoning)
        return [self._resolve(self._pending)] if self._pending is not None else []

    def _begin(self, tools: TurnTools, reasoning: Effort | None) -> None:
        self._turn_options = self.options if reasoning is None else self.options.with_effort(reasoning)
        self._tools = tools
        functions = FunctionTool.from_specs(list(tools.registry), tools.registry.names)
        self._known = {tool.identifier for tool in functions}
        self.log.start_turn(self.renderer.render_prompt(self._turn_options, functions, self.history))

    def snapshot(self) -> dict[str, Any]:
        return {
            "format": self.name,
            "instructions": self.options.instructions,
            "history": [json.loads(message.to_json()) for message in self.history],
            "pending": None if self._pending is None else asdict(self._pending),
        }

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        if snapshot.get("format") != self.name:
            raise ValueError(f"a {snapshot.get('format')!r} snapshot cannot be restored as Harmony")
        self.options = replace(self.options, instructions=snapshot.get("instructions"))
        self.history = [Message.from_dict(entry) for entry in snapshot.get("history", [])]
        pending = snapshot.get("pending")
        self._pending = parsed.ToolCallRequest(**pending) if pending else None

    async def generate(self, params: GenerationParams, *, last_round: bool, emit: Emit) -> Round:
        if last_round:
            self._append(Message.from_role_and_content(Role.SYSTEM, LAST_ROUND_NOTICE))
            self._known = set()
        options = self._turn_options
        parser = parsed.HarmonyStreamParser(
            self._known, browser=options.browser, python=options.python, encoding=self.renderer.encoding
        )
        generated: list[int] = []
        async with self.backend.generate(self.log.tokens, replace(params, stop_tokens=STOP_TOKENS)) as generation:
            async for token in generation:
                generated.append(token)
                for event in parser.feed(token):
                    if isinstance(event, OutputReasoning):
                        await emit(ReasoningDelta(text=event.text))
                    elif isinstance(event, OutputText):
                        await emit(MessageDelta(text=event.text))
                if parser.done:
                    break
        if not parser.done:
            parser.finish()
        round_ = Round(stats=generation.stats)
        fault = parser.last_fault
        if fault is not None:  # the log keeps a well-formed prompt; the model is told what went wrong
            self.history.extend(self.log.append_fault(generated, parser))
            round_.faults.append(Fault(kind=f"model_output.{fault.kind}", text=fault.text))
            return round_
        self.log.append_generated(generated)
        self.history.extend(parser.messages)
        call = parser.last_call if parser.stop_reason == "call" else None
        if call is not None:
            self._pending = call
            round_.calls.append(self._resolve(call))
        return round_

    def _resolve(self, call: parsed.ToolCallRequest) -> ToolCall:
        assert self._tools is not None, "start_turn() comes first"
        registry, natives = self._tools.registry, self._tools.natives
        arguments: dict[str, Any] = dict(call.parsed or {})
        if call.recipient in natives:
            if call.parsed is None:  # python's arguments are the code itself
                arguments = {"code": call.arguments}
            return ToolCall(call.recipient, arguments, natives[call.recipient].spec)
        known = call.function is not None and call.function in registry.names.to_qualified
        spec = registry.get_by_identifier(call.function) if known and call.function else None
        return ToolCall(call.recipient, arguments, spec)

    def end_round(self, outcomes: Sequence[CallOutcome]) -> None:
        call, self._pending = self._pending, None
        for outcome in outcomes:
            assert call is not None, "a Harmony round has at most one call"
            self._append(tool_result_message(call.recipient, outcome.text, channel=call.channel))

    def answer(self) -> str:
        last = self.history[-1:]
        return "".join(m.content[0].text for m in last if m.channel == "final" and m.content)

    def transcript(self) -> list[dict[str, Any]]:
        return [message.to_dict() for message in self.history]

    def reset(self) -> None:
        self.history.clear()

    def _append(self, message: Message) -> None:
        self.log.append_tool_result(message)
        self.history.append(message)
