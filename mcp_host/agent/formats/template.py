"""The chat-template turn format: models that do not speak Harmony, prompted with their own template.

Tools are offered as functions (the template's own `tools`, else LM Studio's default format) and
calls are read back from `[TOOL_REQUEST]` / `<tool_call>` blocks; several may come in one round.
With `required_tool`, the turn's first round is grammar-constrained to a valid call of that tool.
A base model with no template reads a `User:` / `Assistant:` transcript and has no end-of-turn token:
its answer ends where it starts the next speaker's line (`TRANSCRIPT_STOPS`), not at the token limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Final

from mcp_host.agent.calls import Emit, ToolCall
from mcp_host.agent.events import MessageDelta
from mcp_host.agent.formats.base import Fault, Round, TurnTools
from mcp_host.agent.formats.messages import Functions, MessagesHistory
from mcp_host.backends.base import Backend, ChatBackend, GenerationParams, UnsupportedFeatureError
from mcp_host.prompt.harmony import Effort
from mcp_host.prompt.template import (
    IncrementalDecoder,
    ModelTemplate,
    TemplateOutput,
    VisibleText,
    parse_tool_requests,
    tool_call_grammar,
)

# The speakers of the plain transcript (`prompt.template`): a line starting with one is the next turn.
TRANSCRIPT_STOPS = ("\nUser:", "\nAssistant:", "\nSystem:")


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

    @property
    def stop_texts(self) -> tuple[str, ...]:
        """Where an answer ends besides the model's end tokens: the next speaker of a plain transcript."""
        return TRANSCRIPT_STOPS if self.model.template.chat_template is None else ()

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

        params = replace(params, stop_tokens=self.model.stop_tokens, grammar=grammar)
        output = await self._stream(prompt, params, emit)
        content, requests, faults = parse_tool_requests(output.text, [tool.name for tool in offered])
        self._content = content
        self._faults = [Fault("model_output.tool_request", fault.text) for fault in faults]
        calls = [self._functions.call(request.name, request.arguments) for request in requests]
        self._note_calls(calls)
        return Round(calls=calls, faults=list(self._faults), stats=output.stats)

    async def _stream(self, prompt: list[int], params: GenerationParams, emit: Emit) -> TemplateOutput:
        """Generate, sending the text meant for the user as it grows (tool requests held back).

        As `ModelTemplate.stream`, and the answer also ends at a stop text (left out of the output).
        """
        output = TemplateOutput()
        decoder, visible, cut = IncrementalDecoder(self.backend), VisibleText(), StopTexts(self.stop_texts)
        pieces: list[str] = []

        async def keep(piece: str) -> None:
            pieces.append(piece)
            shown = visible.feed(piece)
            if shown:
                await emit(MessageDelta(text=shown))

        async with self.backend.generate(prompt, params) as generation:
            async for token in generation:
                if token in self.model.stop_tokens:
                    break
                output.tokens.append(token)
                await keep(cut.feed(decoder.feed(token)))
                if cut.stopped:
                    break
        if cut.stopped:
            generation.stats.finish("stop")  # the model ended its answer; the engine was stopped for it
        await keep(cut.feed(decoder.flush()) + cut.finish())
        shown = visible.finish()
        if shown:
            await emit(MessageDelta(text=shown))
        output.text = "".join(pieces)
        output.stats = generation.stats
        return output


class StopTexts:
    """A growing text cut at the first of `stops`; a tail that may begin one is held back until the next piece.

    cut = StopTexts(["\\nUser:"])
    cut.feed("Hi!\\nUs") == "Hi!"; cut.feed("er: more") == ""; cut.stopped
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = tuple(stop for stop in stops if stop)
        self._held = ""
        self.stopped = False

    def feed(self, piece: str) -> str:
        """The text that is now certain to come before any stop."""
        if self.stopped:
            return ""
        held = self._held + piece
        found = [index for index in (held.find(stop) for stop in self._stops) if index >= 0]
        if found:
            self.stopped, self._held = True, ""
            return held[: min(found)]
        keep = max(
            (cut for stop in self._stops for cut in range(len(stop) - 1, 0, -1) if held.endswith(stop[:cut])),
            default=0,
        )
        self._held = held[len(held) - keep :]
        return held[: len(held) - keep]

    def finish(self) -> str:
        """What was held back, once the text has ended without a stop."""
        held, self._held = ("" if self.stopped else self._held), ""
        return held
