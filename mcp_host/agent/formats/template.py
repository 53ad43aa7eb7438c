"""The chat-template turn format: models that do not speak Harmony, prompted with their own template.

Tools are offered as functions (the template's own `tools`, else LM Studio's default format) and
calls are read back from `[TOOL_REQUEST]` / `<tool_call>` blocks; several may come in one round.
With `required_tool`, the turn's first round is grammar-constrained to a valid call of that tool.
"""

from __future__ import annotations

from contextlib import aclosing
from dataclasses import replace
from typing import Final

from mcp_host.agent.calls import Emit, ToolCall
from mcp_host.agent.events import MessageDelta
from mcp_host.agent.formats.base import Fault, Round, TurnTools
from mcp_host.agent.formats.messages import Functions, MessagesHistory
from mcp_host.backends.base import Backend, ChatBackend, GenerationParams, UnsupportedFeatureError
from mcp_host.prompt.harmony import Effort
from mcp_host.prompt.template import ModelTemplate, TemplateOutput, parse_tool_requests, tool_call_grammar


class TemplateFormat(MessagesHistory):
    """A chat's history rendered through the model's chat template."""

    name: Final = "template"

    def __init__(self, backend: Backend, *, instructions: str | None = None, required_tool: str | None = None) -> None:
        self.backend = backend
        self.model = ModelTemplate(backend)
        super().__init__(instructions)
        self.required_tool = required_tool  # a qualified name (`server.tool`) or a function name
        self._functions = Functions([], {})
        self._round = 0

    def rebind(self, backend: Backend | ChatBackend) -> None:
        if not isinstance(backend, Backend):
            raise UnsupportedFeatureError(f"{backend.name} applies its own chat template")
        self.backend = backend
        self.model = ModelTemplate(backend)

    def start_turn(self, text: str, tools: TurnTools, reasoning: Effort | None) -> None:
        self._functions = Functions.build(tools)
        self._round = 0
        self.history.add_user(text)

    def resume_turn(self, tools: TurnTools, reasoning: Effort | None) -> list[ToolCall]:
        self._functions = Functions.build(tools)
        self._round = 1  # the restored round was the first
        return self._pending_calls(self._functions)

    async def generate(self, params: GenerationParams, *, last_round: bool, emit: Emit) -> Round:
        offered = [] if last_round else self._functions.tools
        prompt = self.model.prompt(self.history.messages, offered)
        grammar = None
        required = self._functions.function_for(self.required_tool)
        if required is not None and self._round == 0 and offered:
            grammar = tool_call_grammar([tool for tool in offered if tool.name == required])
        self._round += 1
        output = TemplateOutput()
        stream = self.model.stream(prompt, replace(params, stop_tokens=self.model.stop_tokens, grammar=grammar), output)
        async with aclosing(stream) as deltas:
            async for delta in deltas:
                await emit(MessageDelta(text=delta))
        content, requests, faults = parse_tool_requests(output.text, [tool.name for tool in offered])
        self._content = content
        self._faults = [Fault("model_output.tool_request", fault.text) for fault in faults]
        calls = [self._functions.call(request.name, request.arguments) for request in requests]
        self._note_calls(calls)
        return Round(calls=calls, faults=list(self._faults), stats=output.stats)
