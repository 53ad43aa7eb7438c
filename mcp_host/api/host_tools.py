"""Chat completions that use the host's own tools: `"mcp_host": {"tools": ["time", "calc", "browser", "python"]}`.

    turn = HostToolsTurn.from_request(host, backend, request)    # raises ApiError(400) before anything runs
    await turn.run(emit)                                         # in the task that answers the client

The named servers' and plugins' tools (and the native `browser` / `python`) run server-side under the
permission policy, in the host's full loop, after every earlier message of the request (system prompt
included); only the named plugins' hooks (pre- and postprocessors) run.
Nobody can answer an approval or a server's question on this endpoint, so a call that needs an
approval is denied with a reason the model reads, and a server's form (elicitation) is declined.
The answer comes back as an ordinary completion; the calls that ran are listed in the `mcp_host`
extension field of the response.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from mcp_host.agent import (
    ApprovalAnswer,
    ApprovalRequired,
    Chat,
    ChatOptions,
    ElicitationAnswer,
    ElicitationRequired,
    ErrorEvent,
    Event,
    MessageDelta,
    ReasoningDelta,
    ToolCallResult,
    TurnCompleted,
    TurnStats,
)
from mcp_host.api.answers import completion_json, usage
from mcp_host.api.completions import DEFAULT_MAX_TOKENS, check_tool_messages
from mcp_host.api.requests import ChatCompletionRequest
from mcp_host.backends.base import Backend, ChatBackend
from mcp_host.errors import ApiError
from mcp_host.host import Host
from mcp_host.prompt.harmony import Effort, HarmonyOptions
from mcp_host.tools.registry import ToolRegistry

NATIVES = ("browser", "python")
NOBODY_TO_ASK = "this tool needs an approval, and nobody can give one on this endpoint"


@dataclass(frozen=True)
class HostToolsTurn:
    """One validated request for the host's loop."""

    host: Host
    backend: Backend | ChatBackend
    model: str
    options: ChatOptions
    servers: list[str]  # and plugins: whose tools the turn offers
    earlier: list[dict[str, Any]]
    text: str
    effort: Effort | None
    unattended: bool = False

    @classmethod
    def from_request(
        cls, host: Host, backend: Backend | ChatBackend, request: ChatCompletionRequest, *, unattended: bool = False
    ) -> HostToolsTurn:
        """Raises `ApiError` (400) for what the turn could not run with.

        `unattended`: a call the policy would ask about runs (`[api] unattended_calls = "allow"`) instead of
        being denied with a reason the model reads.
        """
        assert request.mcp_host is not None
        names = request.mcp_host.tools
        if request.tools:
            raise ApiError(400, "use either client 'tools' or 'mcp_host.tools' in one request, not both", param="tools")
        servers = {status.name for status in host.statuses()}
        plugins = host.plugins.names
        unknown = [name for name in names if name not in servers and name not in plugins and name not in NATIVES]
        if unknown:
            raise ApiError(
                400,
                f"unknown host tools {unknown}; servers here: {sorted(servers)}, plugins: {plugins}, "
                "or browser, python",
                param="mcp_host.tools",
            )
        *earlier, last = request.messages
        if last.role != "user":
            raise ApiError(400, "with host tools the last message must be the user's", param="messages")
        check_tool_messages(request.messages)
        harmony = HarmonyOptions(
            reasoning_effort=request.reasoning_effort or host.settings.prompt.reasoning_effort,
            browser="browser" in names,
            python="python" in names,
        )
        options = ChatOptions(
            harmony=harmony,
            max_tokens_per_round=request.token_limit(DEFAULT_MAX_TOKENS),
            temperature=1.0 if request.temperature is None else request.temperature,
            top_p=1.0 if request.top_p is None else request.top_p,
            seed=request.seed,
            plugins=tuple(name for name in names if name in plugins),
        )
        return cls(
            host=host,
            backend=backend,
            model=backend.name,
            options=options,
            servers=[name for name in names if name not in NATIVES],
            earlier=[message.openai_dict() for message in earlier],
            text=last.text,
            effort=request.reasoning_effort,
            unattended=unattended,
        )

    async def run(self, emit: Callable[[Event], Awaitable[None]]) -> None:
        """The turn, start to end, in this task; every event goes to `emit`."""
        chat = self.host.chat(self.backend, self.options)
        chat.tools = _only(self.host.registry, self.servers)
        await run_unattended(
            chat, self.earlier, self.text, reasoning=self.effort, unattended=self.unattended, emit=emit
        )


async def run_unattended(
    chat: Chat,
    earlier: list[dict[str, Any]],
    text: str,
    *,
    reasoning: Effort | None,
    unattended: bool,
    emit: Callable[[Event], Awaitable[None]],
) -> None:
    """One turn of `chat` after `earlier`, where nobody answers: approvals are denied (allowed when `unattended`)
    with a reason the model reads, servers' forms declined. Every event goes to `emit`."""
    answer = ApprovalAnswer("allow") if unattended else ApprovalAnswer("deny", reason=NOBODY_TO_ASK)
    async with chat:
        chat.load_messages(earlier)
        async with chat.turn(text, reasoning=reasoning) as events:
            async for event in events:
                if isinstance(event, ApprovalRequired):
                    chat.answer(event.call_id, answer)
                elif isinstance(event, ElicitationRequired):
                    chat.answer_elicitation(event.elicitation_id, ElicitationAnswer("decline"))
                await emit(event)


def _only(registry: ToolRegistry, servers: list[str]) -> ToolRegistry:
    subset = ToolRegistry()
    for server in servers:
        subset.replace_server(server, registry.server_tools(server))
    return subset


@dataclass
class TurnSummary:
    """The events of a host-tools turn, gathered for a non-streamed answer."""

    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    done: TurnCompleted | None = None
    failure: str | None = None

    async def add(self, event: Event) -> None:
        if isinstance(event, MessageDelta):
            self.text.append(event.text)
        elif isinstance(event, ReasoningDelta):
            self.reasoning.append(event.text)
        elif isinstance(event, ToolCallResult):
            self.calls.append({"tool": event.tool, "is_error": event.is_error, "result": event.text})
        elif isinstance(event, ErrorEvent) and event.kind == "backend":
            self.failure = event.message
        elif isinstance(event, TurnCompleted):
            self.done = event

    def json(self, model: str) -> dict[str, Any]:
        """The whole completion; raises `ApiError` (502) when the model failed."""
        if self.failure is not None:
            raise ApiError(502, f"the model failed: {self.failure}")
        body = completion_json(
            model,
            text="".join(self.text),
            reasoning="".join(self.reasoning),
            finish_reason="length" if self.done is not None and self.done.stop_reason == "length" else "stop",
            usage=turn_usage(self.done.stats if self.done is not None else TurnStats()),
        )
        body["mcp_host"] = {"tool_calls": self.calls}
        return body


def turn_usage(stats: TurnStats) -> dict[str, int]:
    """OpenAI's `usage` of a whole turn, every round counted."""
    return usage(stats.prompt_tokens_evaluated + stats.prompt_tokens_reused, stats.generated_tokens)
