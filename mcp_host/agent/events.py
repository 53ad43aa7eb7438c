"""The events of a chat turn, shared by the library, the terminal chat and the HTTP API's SSE stream.

One pydantic model per event, discriminated by `type`:

    prompt.progress · reasoning.delta · message.delta · tool_call.created · approval.required
    tool_call.progress · elicitation.required · server.log · tool_call.result · turn.completed · error

    async for event in chat.send("What time is it?"):
        if isinstance(event, MessageDelta): print(event.text, end="")
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from mcp_host.backends.base import GenerationStats


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True)


class PromptProgress(_Event):
    """The model is reading a long prompt: `done` of `total` tokens evaluated (what it had cached is not counted).

    Sent by engines that evaluate the prompt themselves (llama.cpp) when it is longer than one batch: first
    `done=0`, then after each batch, `done == total` last, before the round's first delta.
    """

    type: Literal["prompt.progress"] = "prompt.progress"
    done: int
    total: int


class ReasoningDelta(_Event):
    type: Literal["reasoning.delta"] = "reasoning.delta"
    text: str


class MessageDelta(_Event):
    type: Literal["message.delta"] = "message.delta"
    text: str


class ToolCallCreated(_Event):
    type: Literal["tool_call.created"] = "tool_call.created"
    call_id: str
    tool: str = Field(description="Qualified name: `server.tool`, `browser.search`, `python`.")
    arguments: dict[str, Any] | str


class ApprovalRequired(_Event):
    type: Literal["approval.required"] = "approval.required"
    call_id: str
    tool: str
    arguments: dict[str, Any] | str
    reason: str = Field(description="Why the policy asks: no annotations, destructive, runs code...")


class ToolCallProgress(_Event):
    """A call in flight reported progress (MCP `notifications/progress`, or a task's status message)."""

    type: Literal["tool_call.progress"] = "tool_call.progress"
    call_id: str
    server: str
    progress: float
    total: float | None = None
    message: str | None = None


class ElicitationRequired(_Event):
    """A server asks the user for input during a call; answer with `Chat.answer_elicitation`.

    `mode` "form": fill `requested_schema` (a flat object of primitive fields; `form_fields()` reads it).
    `mode` "url": the user should open `url` (never opened for them) and then accept, decline or cancel.
    """

    type: Literal["elicitation.required"] = "elicitation.required"
    elicitation_id: str
    call_id: str | None
    server: str
    mode: Literal["form", "url"]
    message: str
    requested_schema: dict[str, Any] | None = None
    url: str | None = None


class ServerLog(_Event):
    """A server logged an error (or worse) while the turn ran; every level goes to its log."""

    type: Literal["server.log"] = "server.log"
    server: str
    level: str
    text: str


class ToolCallResult(_Event):
    type: Literal["tool_call.result"] = "tool_call.result"
    call_id: str
    tool: str
    is_error: bool
    text: str
    truncated_chars: int = 0


class TurnStats(BaseModel):
    """A turn's cost, summed over its rounds' `GenerationStats`."""

    rounds: int = 0
    tool_calls: int = 0
    prompt_tokens_evaluated: int = 0
    prompt_tokens_reused: int = 0
    generated_tokens: int = 0
    time_to_first_token_s: float | None = None
    tokens_per_second: float = 0.0
    duration_s: float = 0.0

    def add_generation(self, generation: GenerationStats) -> None:
        self.prompt_tokens_evaluated += generation.evaluated_prompt_tokens
        self.prompt_tokens_reused += generation.reused_prompt_tokens
        self.generated_tokens += generation.generated_tokens
        if self.time_to_first_token_s is None:
            self.time_to_first_token_s = generation.time_to_first_token_s
        self.tokens_per_second = generation.tokens_per_second or self.tokens_per_second


class Annotation(BaseModel):
    """A browser citation `【cursor†Lstart-Lend】` in the answer, resolved to the page it cites."""

    start: int = Field(description="Character offsets of the citation in the turn's answer text.")
    end: int
    url: str
    title: str
    line_start: int
    line_end: int


class TurnCompleted(_Event):
    type: Literal["turn.completed"] = "turn.completed"
    stop_reason: Literal["answered", "max_rounds", "length", "cancelled", "error"]  # length: the token limit
    stats: TurnStats
    answer: str = ""
    annotations: list[Annotation] = Field(default_factory=list)


class ErrorEvent(_Event):
    type: Literal["error"] = "error"
    message: str
    kind: str = "error"


Event = Annotated[
    PromptProgress
    | ReasoningDelta
    | MessageDelta
    | ToolCallCreated
    | ApprovalRequired
    | ToolCallProgress
    | ElicitationRequired
    | ServerLog
    | ToolCallResult
    | TurnCompleted
    | ErrorEvent,
    Field(discriminator="type"),
]
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)
