"""The `TurnFormat` protocol: how one kind of model is prompted and how its output becomes calls.

    format.start_turn("What time is it?", tools, reasoning=None)
    round = await format.generate(params, last_round=False, emit=emit)   # streams deltas through `emit`
    format.end_round(outcomes)                                          # the calls' results go back in

Three implementations: Harmony for gpt-oss (`HarmonyFormat`), the model's own chat template
(`TemplateFormat`), and a server that applies its template itself (`ServerChatFormat`). Each owns
its history; the round loop in `mcp_host.agent.rounds` and the call pipeline in `mcp_host.agent.calls`
are the same for all. `generate` raises `BackendError` (and `TemplateError` while rendering).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from mcp_host.agent.calls import CallOutcome, Emit, ToolCall
from mcp_host.backends.base import Backend, ChatBackend, GenerationParams, GenerationStats, PromptFormat
from mcp_host.prompt.harmony import Effort
from mcp_host.tools.native.base import NativeTool
from mcp_host.tools.registry import ToolRegistry


@dataclass(frozen=True)
class TurnTools:
    """The tools of one turn: the registry's (MCP servers, plugins) and the chat's natives by name."""

    registry: ToolRegistry
    natives: Mapping[str, NativeTool]


@dataclass(frozen=True)
class Fault:
    """Model output that could not be used; `text` is what the model is told."""

    kind: str
    text: str


@dataclass
class Round:
    """What one generation produced: calls to run, faults the model is told about, and its cost."""

    calls: list[ToolCall] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    stats: GenerationStats = field(default_factory=GenerationStats)

    @property
    def answered(self) -> bool:
        return not self.calls and not self.faults


class TurnFormat(Protocol):
    """One prompt format with its own history. Rounds alternate `generate` and `end_round`."""

    @property
    def name(self) -> PromptFormat:
        """`harmony`, `template` or `chat`."""
        ...

    def rebind(self, backend: Backend | ChatBackend) -> None:
        """Generate with `backend` from now on: the same model, loaded again. Raises `UnsupportedFeatureError`."""
        ...

    def load_messages(self, messages: Sequence[Mapping[str, Any]]) -> None:
        """Earlier conversation in OpenAI chat shape (system/developer, user, assistant with tool_calls, tool)."""
        ...

    def start_turn(self, text: str, tools: TurnTools, reasoning: Effort | None) -> None:
        """Add the user's message and build the turn's prompt."""
        ...

    def snapshot(self) -> dict[str, Any]:
        """The history and the round in progress (calls waiting for their results), JSON-able, for `restore`."""
        ...

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        """Replace the history with a `snapshot` of this format. Raises `ValueError` for one it cannot use."""
        ...

    def resume_turn(self, tools: TurnTools, reasoning: Effort | None) -> list[ToolCall]:
        """Start a turn from a restored round in progress: the calls to run before the next generation."""
        ...

    async def generate(self, params: GenerationParams, *, last_round: bool, emit: Emit) -> Round:
        """One generation, its visible deltas sent through `emit`. `last_round`: no more tools this turn."""
        ...

    def end_round(self, outcomes: Sequence[CallOutcome]) -> None:
        """Record the round's output and its calls' results (empty when there were none) in the history."""
        ...

    def answer(self) -> str:
        """The turn's final answer text, once it has ended."""
        ...

    def transcript(self) -> list[dict[str, Any]]:
        """The history as JSON-ready dicts (for saving a chat)."""
        ...

    def reset(self) -> None:
        """Forget the conversation (the instructions stay)."""
        ...
