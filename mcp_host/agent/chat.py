"""The agent loop for gpt-oss: generate, parse, ask, call tools, feed results back, until the model answers.

    chat = Chat(backend, tools=registry, call_tool=manager.call_tool, permissions=permissions)
    async for event in chat.send("What time is it in Tokyo?"):
        if isinstance(event, ApprovalRequired):
            chat.answer(event.call_id, ApprovalAnswer("allow"))

Within a turn the prompt only grows (the token log), so the backend reuses its cache every round.
Failures the model can recover from (a bad call, a denied permission, a timeout, a tool error) are
told to the model as the tool's reply; only the host's own bugs propagate.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
from openai_harmony import Message, Role

from mcp_host.agent.events import (
    Annotation,
    ApprovalRequired,
    ErrorEvent,
    Event,
    MessageDelta,
    ReasoningDelta,
    ToolCallCreated,
    ToolCallResult,
    TurnCompleted,
    TurnStats,
)
from mcp_host.agent.permissions import ApprovalAnswer, AuditLog, Permissions, describe_arguments
from mcp_host.agent.template_turn import template_turn
from mcp_host.backends.base import Backend, BackendError, GenerationParams, GenerationStats
from mcp_host.errors import McpHostError
from mcp_host.prompt import harmony_parse as parsed
from mcp_host.prompt.harmony import (
    STOP_TOKENS,
    Effort,
    FunctionTool,
    HarmonyOptions,
    HarmonyRenderer,
    tool_result_message,
    user_message,
)
from mcp_host.prompt.token_log import TokenLog, fault_message
from mcp_host.tools.native.base import NativeTool
from mcp_host.tools.registry import ToolRegistry
from mcp_host.tools.spec import ToolResult, ToolSpec

ToolCaller = Callable[[str, dict[str, Any], float | None], Awaitable[ToolResult]]


@dataclass(frozen=True)
class ChatOptions:
    """Per-chat settings; `send(..., reasoning=...)` overrides the effort for one turn."""

    harmony: HarmonyOptions = field(default_factory=HarmonyOptions)
    max_rounds: int = 10
    max_tokens_per_round: int = 4096
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    call_timeout_s: float | None = None
    output_limit_chars: int = 20_000
    repeat_limit: int = 3
    format: Literal["auto", "harmony", "template"] = "auto"
    required_tool: str | None = None  # template path: the first round must call this tool (grammar-constrained)
    max_parallel_calls: int = 4

    def generation_params(self, stop_tokens: frozenset[int], grammar: str | None = None) -> GenerationParams:
        return GenerationParams(
            max_tokens=self.max_tokens_per_round,
            temperature=self.temperature,
            top_p=self.top_p,
            seed=self.seed,
            stop_tokens=stop_tokens,
            grammar=grammar,
        )


class Chat:
    """One conversation with gpt-oss and the host's tools. Not for concurrent turns: one `send()` at a time."""

    def __init__(
        self,
        backend: Backend,
        *,
        tools: ToolRegistry,
        call_tool: ToolCaller,
        permissions: Permissions,
        audit: AuditLog | None = None,
        options: ChatOptions | None = None,
        renderer: HarmonyRenderer | None = None,
        natives: dict[str, NativeTool] | None = None,
    ) -> None:
        self.backend = backend
        self.tools = tools
        self._call_tool = call_tool
        self.permissions = permissions
        self.audit = audit or AuditLog(None)
        self.options = options or ChatOptions()
        self.renderer = renderer or HarmonyRenderer()
        self.natives = dict(natives or {})  # by the name the model calls: `python`, `browser.search`
        self.history: list[Message] = []
        self.log = TokenLog(self.renderer)
        self._answers: dict[str, ApprovalAnswer] = {}
        self._answered = anyio.Event()
        self._next_call = 0
        self.busy = False
        self.messages: list[dict[str, Any]] = []  # the template path's history, in OpenAI chat shape
        self.format = self.options.format if self.options.format != "auto" else detect_format(backend)

    def answer(self, call_id: str, answer: ApprovalAnswer) -> None:
        """Answer an `approval.required` event (from any task)."""
        self._answers[call_id] = answer
        self._answered.set()

    def _annotations(self, answer: str) -> list[Annotation]:
        browser = self.natives.get("browser.open")
        session = getattr(browser, "session", None)
        if session is None or not answer:
            return []
        return [
            Annotation(start=c.start, end=c.end, url=c.url, title=c.title, line_start=c.line_start, line_end=c.line_end)
            for c in session.citations(answer)
        ]

    async def aclose(self) -> None:
        """Stop the chat's native tools (its python interpreter). Idempotent."""
        for tool in self.natives.values():
            await tool.aclose()

    def reset(self) -> None:
        self.history.clear()
        self.messages.clear()

    async def act(
        self,
        text: str,
        *,
        on_message: Callable[[str], Any] | None = None,
        on_fragment: Callable[[str], Any] | None = None,
        on_round_start: Callable[[int], Any] | None = None,
        on_round_end: Callable[[int], Any] | None = None,
        on_approval: Callable[[ApprovalRequired], Awaitable[ApprovalAnswer]] | None = None,
        on_event: Callable[[Event], Any] | None = None,
    ) -> TurnCompleted:
        """LM Studio `.act()` style: run a turn with callbacks instead of an event stream.

        Without `on_approval`, calls that need approval are denied (nobody is there to say yes).
        """
        rounds = 0
        final: list[str] = []
        completed: TurnCompleted | None = None
        if on_round_start:
            on_round_start(0)
        async for event in self.send(text):
            if on_event:
                on_event(event)
            if isinstance(event, MessageDelta):
                final.append(event.text)
                if on_fragment:
                    on_fragment(event.text)
            elif isinstance(event, ApprovalRequired):
                answer = (
                    await on_approval(event)
                    if on_approval
                    else ApprovalAnswer("deny", reason="no one is available to approve it")
                )
                self.answer(event.call_id, answer)
            elif isinstance(event, ToolCallResult):
                if on_round_end:
                    on_round_end(rounds)
                rounds += 1
                if on_round_start:
                    on_round_start(rounds)
            elif isinstance(event, TurnCompleted):
                completed = event
        if on_round_end:
            on_round_end(rounds)
        if on_message:
            on_message("".join(final))
        assert completed is not None, "a turn always ends with turn.completed"
        return completed

    async def send(self, text: str, *, reasoning: Effort | None = None) -> AsyncIterator[Event]:
        """Run one turn: an async stream of events ending with `turn.completed`."""
        if self.busy:
            raise McpHostError("this chat is already answering; wait for turn.completed")
        self.busy = True
        try:
            async for event in self._turn(text, reasoning):
                yield event
        finally:
            self.busy = False

    async def _turn(self, text: str, reasoning: Effort | None) -> AsyncIterator[Event]:
        if self.format == "template":
            async for event in template_turn(self, text):
                yield event
            return
        started = time.perf_counter()
        harmony = self.options.harmony if reasoning is None else self.options.harmony.with_effort(reasoning)
        names = self.tools.names
        functions = FunctionTool.from_specs(list(self.tools), names)
        known = {tool.identifier for tool in functions}
        self.history.append(user_message(text))
        self.log.start_turn(self.renderer.render_prompt(harmony, functions, self.history))
        stats = TurnStats()
        seen_calls: dict[str, int] = {}
        outcome: Literal["answered", "max_rounds", "cancelled", "error"] = "max_rounds"
        for round_index in range(self.options.max_rounds):
            stats.rounds += 1
            if round_index == self.options.max_rounds - 1 and round_index > 0:
                self._append(
                    Message.from_role_and_content(
                        Role.SYSTEM, "You have used every tool round of this turn; answer the user now, without tools."
                    )
                )
                known = set()
            parser = parsed.HarmonyStreamParser(
                known, browser=harmony.browser, python=harmony.python, encoding=self.renderer.encoding
            )
            generated: list[int] = []
            params = self.options.generation_params(STOP_TOKENS)
            try:
                async with self.backend.generate(self.log.tokens, params) as generation:
                    async for token in generation:
                        generated.append(token)
                        for parse_event in parser.feed(token):
                            mapped = _stream_event(parse_event)
                            if mapped is not None:
                                yield mapped
                        if parser.done:
                            break
            except BackendError as exc:
                yield ErrorEvent(message=str(exc), kind="backend")
                outcome = "error"
                break
            add_generation_stats(stats, generation.stats)
            if not parser.done:
                parser.finish()
            fault = parser.last_fault
            if fault is not None:
                self.log.append_generated(generated[: parser.clean_token_count])
                self.history.extend(parser.messages)
                self._append(fault_message(fault))
                yield ErrorEvent(message=fault.text, kind=f"model_output.{fault.kind}")
                continue
            self.log.append_generated(generated)
            self.history.extend(parser.messages)
            call = parser.last_call if parser.stop_reason == "call" else None
            if call is None:
                outcome = "answered"
                break
            async for call_event in self._run_call(call, seen_calls, stats):
                yield call_event
        stats.duration_s = time.perf_counter() - started
        answer = "".join(m.content[0].text for m in self.history[-1:] if m.channel == "final" and m.content)
        yield TurnCompleted(stop_reason=outcome, stats=stats, answer=answer, annotations=self._annotations(answer))

    async def _run_call(
        self, call: parsed.ToolCallRequest, seen_calls: dict[str, int], stats: TurnStats
    ) -> AsyncIterator[Event]:
        """Decide, ask, run and reply to one call (the Harmony path: one call per round)."""
        prepared = PreparedCall(call)
        async for event in self._prepare_call(prepared, seen_calls, stats):
            yield event
        await self._execute_prepared(prepared)
        yield self._reply(call, prepared.call_id, prepared.display, prepared.result_or_error())

    async def _prepare_call(
        self, prepared: PreparedCall, seen_calls: dict[str, int], stats: TurnStats
    ) -> AsyncIterator[Event]:
        """Everything before running: the created event, repeat detection, the policy, the user's answer.

        Leaves `prepared.result` set when the call must not run, else `prepared.spec` and its arguments.
        """
        call = prepared.call
        self._next_call += 1
        prepared.call_id = call_id = f"call_{self._next_call}"
        spec = (
            self.tools.get_by_identifier(call.function)
            if call.function and call.function in (self.tools.names.to_qualified)
            else None
        )
        prepared.display = spec.name if spec else call.recipient
        arguments: dict[str, Any] = dict(call.parsed or {})
        if call.recipient in self.natives:
            spec = self.natives[call.recipient].spec
            prepared.display = spec.name
            if call.parsed is None:  # python's arguments are the code itself
                arguments = {"code": call.arguments}
        stats.tool_calls += 1
        yield ToolCallCreated(call_id=call_id, tool=prepared.display, arguments=arguments)
        key = f"{call.recipient} {json.dumps(arguments, sort_keys=True)}"
        seen_calls[key] = seen_calls.get(key, 0) + 1
        if seen_calls[key] > self.options.repeat_limit:
            self.audit.record("refused", call_id=call_id, tool=prepared.display, reason="repeated call")
            prepared.result = ToolResult.error(
                f"You have made this exact call {seen_calls[key] - 1} times already in this turn and got the "
                "same answer. Do not call it again; use the results you have or answer the user."
            )
            return
        if spec is None:
            self.audit.record("refused", call_id=call_id, tool=prepared.display, reason="not available")
            prepared.result = ToolResult.error(f"{call.recipient} is not available here.")
            return
        verdict = self.permissions.verdict(spec)
        self.audit.record("decision", call_id=call_id, tool=spec.name, policy=verdict.policy, reason=verdict.reason)
        if verdict.policy == "deny":
            prepared.result = ToolResult.error(f"Permission denied: {verdict.reason}.")
            return
        if verdict.policy == "ask":
            yield ApprovalRequired(call_id=call_id, tool=spec.name, arguments=arguments, reason=verdict.reason)
            answer = await self._wait_for(call_id)
            self.audit.record(
                "approval",
                call_id=call_id,
                tool=spec.name,
                decision=answer.decision,
                edited=answer.arguments is not None,
            )
            if answer.decision == "deny":
                reason = f": {answer.reason}" if answer.reason else "."
                prepared.result = ToolResult.error(f"The user denied this call{reason}")
                return
            if answer.decision == "always":
                self.permissions.remember(spec)
            if answer.arguments is not None:
                arguments = answer.arguments
        prepared.spec, prepared.arguments = spec, arguments

    async def _execute_prepared(self, prepared: PreparedCall) -> None:
        if prepared.result is not None or prepared.spec is None:
            return
        result = await self._execute(prepared.spec, prepared.arguments)
        self.audit.record(
            "call",
            call_id=prepared.call_id,
            tool=prepared.spec.name,
            is_error=result.is_error,
            result_chars=len(result.text),
            **describe_arguments(prepared.arguments),
        )
        prepared.result = result

    async def _execute(self, spec: ToolSpec, arguments: dict[str, Any]) -> ToolResult:
        if spec.origin == "native":
            return await self.natives[spec.name].call(arguments)
        try:
            return await self._call_tool(spec.name, arguments, self.options.call_timeout_s)
        except McpHostError as exc:  # timeouts, a server that went away: the model reads it
            return ToolResult.error(str(exc))

    async def _wait_for(self, call_id: str) -> ApprovalAnswer:
        while call_id not in self._answers:
            await self._answered.wait()
            self._answered = anyio.Event()
        return self._answers.pop(call_id)

    def _reply(self, call: parsed.ToolCallRequest, call_id: str, display: str, result: ToolResult) -> ToolCallResult:
        text = result.text
        limit = self.options.output_limit_chars
        cut = max(len(text) - limit, 0)
        if cut:
            text = f"{text[:limit]}\n[… output truncated: {cut} of {len(text)} characters cut]"
        if result.is_error and not text.startswith("Error"):
            text = f"Error: {text}"
        if self.format == "template":
            name = call.recipient.removeprefix("functions.").replace(".", "_")
            self.messages.append({"role": "tool", "tool_call_id": call_id, "name": name, "content": text})
        else:
            self._append(tool_result_message(call.recipient, text, channel=call.channel))
        return ToolCallResult(call_id=call_id, tool=display, is_error=result.is_error, text=text, truncated_chars=cut)

    def _append(self, message: Message) -> None:
        self.log.append_tool_result(message)
        self.history.append(message)


def _stream_event(event: parsed.ParseEvent) -> Event | None:
    if isinstance(event, parsed.ReasoningDelta):
        return ReasoningDelta(text=event.text)
    if isinstance(event, parsed.MessageDelta):
        return MessageDelta(text=event.text)
    return None  # preambles, calls and faults are handled once the round ends


def add_generation_stats(stats: TurnStats, generation: GenerationStats) -> None:
    stats.prompt_tokens_evaluated += generation.evaluated_prompt_tokens
    stats.prompt_tokens_reused += generation.reused_prompt_tokens
    stats.generated_tokens += generation.generated_tokens
    if stats.time_to_first_token_s is None:
        stats.time_to_first_token_s = generation.time_to_first_token_s
    stats.tokens_per_second = generation.tokens_per_second or stats.tokens_per_second


@dataclass
class PreparedCall:
    """One call on its way: decided (`result` set, it will not run) or approved (`spec` and `arguments`)."""

    call: parsed.ToolCallRequest
    call_id: str = ""
    display: str = ""
    spec: ToolSpec | None = None
    arguments: dict[str, Any] = field(default_factory=dict)
    result: ToolResult | None = None

    def result_or_error(self) -> ToolResult:
        return self.result if self.result is not None else ToolResult.error("the call did not run")


def detect_format(backend: Backend) -> Literal["harmony", "template"]:
    """gpt-oss speaks Harmony; every other model gets its own chat template (or LM Studio's default format)."""
    template = getattr(backend, "chat_template", None)
    if "gpt-oss" in backend.name.lower() or (isinstance(template, str) and "<|channel|>" in template):
        return "harmony"
    if backend.name.startswith("replay"):
        return "harmony"  # recordings and scripts in this project are of gpt-oss
    return "template"
