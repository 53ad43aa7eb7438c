"""What servers ask during a turn's calls, turned into the turn's events and answered like approvals.

    elicitation/create      → `elicitation.required`, answered with `Chat.answer_elicitation(id, answer)`
    sampling/createMessage  → `approval.required` for `<server>.sampling/createMessage` (the permission
                              policy decides; "always" persists), then the chat's own model writes it
    notifications/progress  → `tool_call.progress`
    notifications/message   → every level to the server's log; errors and worse also as `server.log`

A question still open when its call ends is cancelled: the server gets `cancel`, a late answer 409.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
import mcp_types
from pydantic import ValidationError

from mcp_host.agent.calls import Approvals, Emit, Pending
from mcp_host.agent.events import ApprovalRequired, ElicitationRequired, ErrorEvent, ServerLog, ToolCallProgress
from mcp_host.agent.permissions import ApprovalAnswer, AuditLog, Permissions
from mcp_host.errors import ElicitationInputError, McpHostError
from mcp_host.servers.asks import LOG_LEVELS, SAMPLING_TOOL, SamplingReply
from mcp_host.servers.elicitation import apply_defaults, schema_problems, validate_content
from mcp_host.tools.spec import ToolSpec

Sampler = Callable[[mcp_types.CreateMessageRequestParams], Awaitable[SamplingReply]]
_ERROR_LEVEL = LOG_LEVELS.index("error")
PROGRESS_PER_S = 10
LOG_EVENTS_PER_CALL = 20
TEXT_CHARS = 2000


def _short(text: str | None) -> str | None:
    return text if text is None or len(text) <= TEXT_CHARS else f"{text[:TEXT_CHARS]}…"


@dataclass(frozen=True)
class ElicitationAnswer:
    """The user's answer to `elicitation.required`: accept (with the form's content), decline or cancel."""

    action: Literal["accept", "decline", "cancel"]
    content: dict[str, Any] | None = None


def sampling_spec(server: str) -> ToolSpec:
    """The permission subject for a server's sampling requests: rules and "always" name it like a tool."""
    return ToolSpec(
        server=server,
        tool=SAMPLING_TOOL,
        description="The server has the chat's model write a message (MCP sampling).",
        input_schema={},
        original_schema={},
    )


@dataclass
class TurnQuestions:
    """The open questions of one chat: elicitations by id, with the schema each answer must fit."""

    pending: Pending[ElicitationAnswer] = field(default_factory=Pending)
    schemas: dict[str, dict[str, Any] | None] = field(default_factory=dict)

    def answer(self, elicitation_id: str, answer: ElicitationAnswer) -> None:
        """Raises `UnknownApprovalError` (not pending) and `ElicitationInputError` (content does not fit)."""
        if answer.content is not None and not isinstance(answer.content, dict):
            raise ElicitationInputError("the answer's content must be an object of field values")
        if answer.action == "accept" and self.pending.is_pending(elicitation_id):
            schema = self.schemas.get(elicitation_id)
            if schema is not None:
                content = validate_content(schema, apply_defaults(schema, answer.content))
                answer = ElicitationAnswer("accept", content)
        self.pending.answer(elicitation_id, answer)


@dataclass
class TurnAsks:
    """The answerer for one MCP call of a turn (see the module's docstring)."""

    call_id: str
    emit: Emit
    questions: TurnQuestions
    approvals: Approvals
    permissions: Permissions
    audit: AuditLog
    sampler: Sampler
    next_id: Callable[[str], str]
    _closed: anyio.Event = field(default_factory=anyio.Event)
    _open: set[str] = field(default_factory=set)
    _last_progress: float = -math.inf
    _logged: int = 0

    @property
    def owner(self) -> object:
        """The chat these calls belong to (its open questions): a 2025-era server's question may go to any of them."""
        return self.questions

    def close(self) -> None:
        """The call ended: questions still open are cancelled."""
        self._closed.set()
        for key in self._open:
            self.questions.pending.drop(key)
            self.approvals.drop(key)

    async def _wait(self, pending: Pending[Any], key: str) -> Any | None:
        """The answer, or None when the call ended first."""
        if self._closed.is_set():
            return None
        self._open.add(key)
        answer: Any | None = None
        try:
            async with anyio.create_task_group() as tg:

                async def on_close() -> None:
                    await self._closed.wait()
                    tg.cancel_scope.cancel()

                tg.start_soon(on_close)
                answer = await pending.wait(key)
                tg.cancel_scope.cancel()
        finally:  # answered, the call ended, or the server cancelled the question (a task cancelled, its TTL passed)
            self._open.discard(key)
            pending.drop(key)
        return answer

    async def elicit(self, server: str, params: mcp_types.ElicitRequestParams) -> mcp_types.ElicitResult:
        key = self.next_id("elicit")
        is_url = isinstance(params, mcp_types.ElicitRequestURLParams)
        schema = dict(params.requested_schema) if isinstance(params, mcp_types.ElicitRequestFormParams) else None
        problems = schema_problems(schema) if schema is not None else []
        if problems:  # never shown: a form the host cannot check could not be answered safely either
            self.audit.record("elicitation", call_id=self.call_id, server=server, mode="form", action="refused")
            shown = "; ".join(problems[:5])
            await self.emit(
                ErrorEvent(
                    message=f"{server} sent a form that is not valid MCP ({shown}); declined", kind="elicitation"
                )
            )
            return mcp_types.ElicitResult(action="decline")
        self.questions.schemas[key] = schema
        self.questions.pending.expect(key)
        await self.emit(
            ElicitationRequired(
                elicitation_id=key,
                call_id=self.call_id,
                server=server,
                mode="url" if is_url else "form",
                message=params.message,
                requested_schema=schema,
                url=params.url if isinstance(params, mcp_types.ElicitRequestURLParams) else None,
            )
        )
        try:
            answer: ElicitationAnswer | None = await self._wait(self.questions.pending, key)
        finally:
            self.questions.schemas.pop(key, None)
        answer = answer or ElicitationAnswer("cancel")
        self.audit.record(
            "elicitation", call_id=self.call_id, server=server, mode="url" if is_url else "form", action=answer.action
        )
        if answer.action != "accept":
            return mcp_types.ElicitResult(action=answer.action)
        return mcp_types.ElicitResult(action="accept", content=None if is_url else (answer.content or {}))

    async def sample(self, server: str, params: mcp_types.CreateMessageRequestParams) -> SamplingReply:
        spec = sampling_spec(server)
        key = self.next_id("sampling")
        verdict = self.permissions.sampling_verdict(spec)
        self.audit.record("decision", call_id=key, tool=spec.name, policy=verdict.policy, reason=verdict.reason)
        if verdict.policy == "deny":
            return mcp_types.ErrorData(code=mcp_types.INVALID_REQUEST, message=f"sampling denied: {verdict.reason}")
        if verdict.policy == "ask":
            arguments = params.model_dump(mode="json", by_alias=True, exclude_none=True)
            self.approvals.expect(key)
            await self.emit(
                ApprovalRequired(
                    call_id=key,
                    tool=spec.name,
                    arguments=arguments,
                    reason=f"{server} asks the model to write a message (sampling) during {self.call_id}",
                )
            )
            answer: ApprovalAnswer | None = await self._wait(self.approvals, key)
            answer = answer or ApprovalAnswer("deny", reason="the call ended first")
            self.audit.record("approval", call_id=key, tool=spec.name, decision=answer.decision)
            if answer.decision == "deny":
                why = f": {answer.reason}" if answer.reason else ""
                return mcp_types.ErrorData(code=mcp_types.INVALID_REQUEST, message=f"the user declined sampling{why}")
            if answer.decision == "always":
                self.permissions.remember(spec)
            if isinstance(answer.arguments, dict):
                try:
                    params = mcp_types.CreateMessageRequestParams.model_validate(answer.arguments)
                except ValidationError as exc:
                    message = f"the user's edited request is not a sampling request: {exc.error_count()} error(s)"
                    return mcp_types.ErrorData(code=mcp_types.INVALID_PARAMS, message=message)
        try:
            reply = await self.sampler(params)
        except McpHostError as exc:
            return mcp_types.ErrorData(code=mcp_types.INTERNAL_ERROR, message=f"the model could not answer: {exc}")
        self.audit.record("sampling", call_id=key, tool=spec.name, model=getattr(reply, "model", None))
        return reply

    async def progress(self, server: str, progress: float, total: float | None, message: str | None) -> None:
        """At most `PROGRESS_PER_S` events a second reach the turn (and always the last step of a total)."""
        now = time.monotonic()
        done = total is not None and progress >= total
        if self._closed.is_set() or (now - self._last_progress < 1 / PROGRESS_PER_S and not done):
            return
        self._last_progress = now
        await self.emit(
            ToolCallProgress(
                call_id=self.call_id, server=server, progress=progress, total=total, message=_short(message)
            )
        )

    async def log(self, server: str, params: mcp_types.LoggingMessageNotificationParams) -> None:
        """Errors and worse reach the turn, at most `LOG_EVENTS_PER_CALL` of them (the server's log keeps all)."""
        level = params.level
        if self._closed.is_set() or level not in LOG_LEVELS or LOG_LEVELS.index(level) < _ERROR_LEVEL:
            return
        self._logged += 1
        if self._logged <= LOG_EVENTS_PER_CALL:
            data = params.data if isinstance(params.data, str) else repr(params.data)
            await self.emit(ServerLog(server=server, level=level, text=_short(data) or ""))
        elif self._logged == LOG_EVENTS_PER_CALL + 1:
            note = f"more errors from {server} during {self.call_id} are in its log only"
            await self.emit(ServerLog(server=server, level="notice", text=note))
