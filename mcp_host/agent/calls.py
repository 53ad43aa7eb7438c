"""The call pipeline every prompt format shares: policy → approval → execution → truncation → audit.

    pipeline = CallPipeline(tools, approvals, permissions=..., audit=..., limits=CallLimits())
    outcomes = await pipeline.run([ToolCall("functions.time__now", {}, spec)], emit, stats)

Calls that come together are decided one by one (each may need the user's approval, asked through an
`approval.required` event and answered with `Approvals.answer`), then the approved ones run
concurrently up to `max_parallel`, and their results are reported in the order the model made them.
A repeated identical call, an unknown tool, a denial, a timeout or a failing server becomes a result
the model reads; only the host's own bugs propagate.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Generic, Protocol, TypeVar

import anyio

from mcp_host.agent.events import ApprovalRequired, Event, ToolCallCreated, ToolCallResult, TurnStats
from mcp_host.agent.permissions import ApprovalAnswer, AuditLog, Permissions, describe_arguments
from mcp_host.errors import McpHostError, UnknownApprovalError
from mcp_host.servers.asks import ServerAsks
from mcp_host.tools.native.base import NativeTool
from mcp_host.tools.spec import ToolResult, ToolSpec

Emit = Callable[[Event], Awaitable[None]]
# (qualified name, arguments, timeout, who answers what the server asks during the call)
ToolCaller = Callable[[str, dict[str, Any], float | None, ServerAsks | None], Awaitable[ToolResult]]
# The tool as its running server lists it, for a spec the tool catalog stood in for (None: no longer offered).
LiveSpec = Callable[[ToolSpec], Awaitable[ToolSpec | None]]
# The answerer for one call: (call id, emit) -> it; closed when the call ends.
AsksFactory = Callable[[str, Emit], "CallAsks"]
A = TypeVar("A")


class CallAsks(ServerAsks, Protocol):
    """What a server asks during one call, answered by the turn; `close()` when the call ends."""

    def close(self) -> None: ...


@dataclass(frozen=True)
class CallLimits:
    """How calls run: their timeout, how much of a result the model reads, repeats and parallelism."""

    timeout_s: float | None = None
    output_limit_chars: int = 20_000
    repeat_limit: int = 3
    max_parallel: int = 4


@dataclass(frozen=True)
class ToolCall:
    """A call the model made, resolved by its prompt format: `spec` is None when no such tool is here."""

    name: str  # as the model wrote it: `functions.time__now`, `python`, `time__now`
    arguments: dict[str, Any]
    spec: ToolSpec | None
    call_id: str | None = None  # given when a restored turn runs a call that was announced before


@dataclass(frozen=True)
class CallOutcome:
    """What became of one call: the text the model reads next (truncated, errors marked)."""

    call: ToolCall
    call_id: str
    arguments: dict[str, Any]  # as run: the user may have edited them
    text: str
    is_error: bool


@dataclass
class _Decided:
    call: ToolCall
    call_id: str
    display: str
    arguments: dict[str, Any]
    result: ToolResult | None = None  # set when the call must not run


class Pending(Generic[A]):
    """Answers to questions a turn asked (approvals, elicitations), given from any task, awaited by the turn."""

    def __init__(self) -> None:
        self._pending: set[str] = set()
        self._answers: dict[str, A] = {}
        self._changed = anyio.Event()

    def expect(self, key: str) -> None:
        """Before the question is sent: only a pending question can be answered."""
        self._pending.add(key)

    def is_pending(self, key: str) -> bool:
        return key in self._pending

    def answer(self, key: str, answer: A) -> None:
        """Raises `UnknownApprovalError` when nothing is pending for `key`."""
        if key not in self._pending:
            raise UnknownApprovalError(f"nothing is waiting for an answer to {key!r}")
        self._pending.discard(key)
        self._answers[key] = answer
        self._changed.set()

    async def wait(self, key: str) -> A:
        while key not in self._answers:
            await self._changed.wait()
            self._changed = anyio.Event()
        return self._answers.pop(key)

    def drop(self, key: str) -> None:
        """The question went away unanswered (its call ended): a late answer is refused."""
        self._pending.discard(key)
        self._answers.pop(key, None)

    def forget(self) -> None:
        """At the end of a turn: nothing it asked can still be answered."""
        self._pending.clear()
        self._answers.clear()


class Approvals(Pending[ApprovalAnswer]):
    """Answers to `approval.required` events, by call id."""


@dataclass
class CallPipeline:
    """Runs the calls of one turn; knows the turn's repeats. Make one per turn."""

    call_tool: ToolCaller
    natives: Mapping[str, NativeTool]
    approvals: Approvals
    permissions: Permissions
    audit: AuditLog
    limits: CallLimits
    next_call_id: Callable[[], str]
    asks_for: AsksFactory | None = None
    live_spec: LiveSpec | None = None
    # Every result (MCP, native, plugin) passes through this before the model reads it (plugins' postprocessors).
    postprocess: Callable[[str, dict[str, Any], ToolResult], Awaitable[ToolResult]] | None = None
    _seen: Counter[str] = field(default_factory=Counter)

    async def run(self, calls: Sequence[ToolCall], emit: Emit, stats: TurnStats) -> list[CallOutcome]:
        decided = [await self._decide(call, emit, stats) for call in calls]
        limiter = anyio.CapacityLimiter(max(self.limits.max_parallel, 1))
        async with anyio.create_task_group() as tg:
            for entry in decided:
                tg.start_soon(self._execute, entry, limiter, emit)
        outcomes = []
        for entry in decided:
            outcome, event = self._reply(entry)
            await emit(event)
            outcomes.append(outcome)
        return outcomes

    async def _decide(self, call: ToolCall, emit: Emit, stats: TurnStats) -> _Decided:
        """The created event, repeat detection, the policy and the user's answer."""
        spec = call.spec
        call_id = call.call_id or self.next_call_id()
        entry = _Decided(call, call_id, spec.name if spec else call.name, dict(call.arguments))
        stats.tool_calls += 1
        await emit(ToolCallCreated(call_id=entry.call_id, tool=entry.display, arguments=entry.arguments))
        key = f"{call.name} {json.dumps(call.arguments, sort_keys=True)}"
        self._seen[key] += 1
        if self._seen[key] > self.limits.repeat_limit:
            self.audit.record("refused", call_id=entry.call_id, tool=entry.display, reason="repeated call")
            entry.result = ToolResult.error(
                f"You have made this exact call {self._seen[key] - 1} times already in this turn and got the "
                "same answer. Do not call it again; use the results you have or answer the user."
            )
            return entry
        if spec is None:
            self.audit.record("refused", call_id=entry.call_id, tool=entry.display, reason="not available")
            entry.result = ToolResult.error(f"{call.name} is not available here.")
            return entry
        if spec.from_catalog and self.live_spec is not None:
            # The policy reads the tool as the server lists it now (its annotations, its fingerprint for an
            # "always"), never the catalog's copy: an updated server's changed tool asks again.
            live = await self.live_spec(spec)
            if live is None:
                self.audit.record("refused", call_id=entry.call_id, tool=spec.name, reason="no longer offered")
                entry.result = ToolResult.error(f"{spec.name} is no longer offered by its server.")
                return entry
            spec = live
            entry.call = replace(call, spec=live)
        verdict = self.permissions.verdict(spec)
        self.audit.record(
            "decision", call_id=entry.call_id, tool=spec.name, policy=verdict.policy, reason=verdict.reason
        )
        if verdict.policy == "deny":
            entry.result = ToolResult.error(f"Permission denied: {verdict.reason}.")
        elif verdict.policy == "ask":
            self.approvals.expect(entry.call_id)
            await emit(
                ApprovalRequired(
                    call_id=entry.call_id, tool=spec.name, arguments=entry.arguments, reason=verdict.reason
                )
            )
            answer = await self.approvals.wait(entry.call_id)
            self.audit.record(
                "approval",
                call_id=entry.call_id,
                tool=spec.name,
                decision=answer.decision,
                edited=answer.arguments is not None,
            )
            if answer.decision == "deny":
                reason = f": {answer.reason}" if answer.reason else "."
                entry.result = ToolResult.error(f"The user denied this call{reason}")
            else:
                if answer.decision == "always":
                    self.permissions.remember(spec)
                if isinstance(answer.arguments, dict):
                    entry.arguments = answer.arguments
                elif answer.arguments is not None:
                    entry.result = ToolResult.error("The user's edited arguments were not a JSON object; not run.")
        return entry

    async def _execute(self, entry: _Decided, limiter: anyio.CapacityLimiter, emit: Emit) -> None:
        spec = entry.call.spec
        if entry.result is not None or spec is None:
            return
        async with limiter:
            if spec.origin == "native":
                result = await self.natives[spec.name].call(entry.arguments)
            else:
                asks = self.asks_for(entry.call_id, emit) if self.asks_for is not None else None
                try:
                    result = await self.call_tool(spec.name, entry.arguments, self.limits.timeout_s, asks)
                except McpHostError as exc:  # timeouts, a server that went away: the model reads it
                    result = ToolResult.error(str(exc))
                finally:
                    if asks is not None:
                        asks.close()
        if self.postprocess is not None:
            result = await self.postprocess(spec.name, entry.arguments, result)
        self.audit.record(
            "call",
            call_id=entry.call_id,
            tool=spec.name,
            is_error=result.is_error,
            result_chars=len(result.text),
            **describe_arguments(entry.arguments),
        )
        entry.result = result

    def _reply(self, entry: _Decided) -> tuple[CallOutcome, ToolCallResult]:
        result = entry.result if entry.result is not None else ToolResult.error("the call did not run")
        text = result.text
        limit = self.limits.output_limit_chars
        cut = max(len(text) - limit, 0)
        if cut:
            text = f"{text[:limit]}\n[… output truncated: {cut} of {len(text)} characters cut]"
        if result.is_error and not text.startswith("Error"):
            text = f"Error: {text}"
        event = ToolCallResult(
            call_id=entry.call_id, tool=entry.display, is_error=result.is_error, text=text, truncated_chars=cut
        )
        return CallOutcome(entry.call, entry.call_id, entry.arguments, text, result.is_error), event
