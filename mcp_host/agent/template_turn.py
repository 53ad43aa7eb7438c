"""One chat turn for models that do not speak Harmony: their chat template, `[TOOL_REQUEST]` calls.

Calls that come together are decided one by one (each may need the user's approval), then the
approved ones run concurrently up to `max_parallel_calls`, and their results go back in order.
With `required_tool`, the first round is grammar-constrained to a valid call of that tool.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Literal

import anyio

from mcp_host.agent.events import ErrorEvent, Event, MessageDelta, TurnCompleted, TurnStats
from mcp_host.backends.base import BackendError
from mcp_host.prompt.harmony_parse import ToolCallRequest
from mcp_host.prompt.template import (
    ModelTemplate,
    TemplateError,
    TemplateOutput,
    TemplateTool,
    parse_tool_requests,
    tool_call_grammar,
)

if TYPE_CHECKING:
    from mcp_host.agent.chat import Chat, PreparedCall


async def template_turn(chat: Chat, text: str) -> AsyncIterator[Event]:
    from mcp_host.agent.chat import PreparedCall, add_generation_stats

    started = time.perf_counter()
    backend = chat.backend
    names = chat.tools.names
    tools = [TemplateTool(names.to_identifier[s.name], s.description or s.name, s.input_schema) for s in chat.tools]
    # Native tools are ordinary functions for models that were not trained on them.
    natives = {name.replace(".", "_"): name for name in chat.natives}
    tools += [
        TemplateTool(identifier, chat.natives[name].spec.description, chat.natives[name].spec.input_schema)
        for identifier, name in natives.items()
    ]
    model = ModelTemplate(backend)
    required = _required_identifier(chat)
    chat.messages.append({"role": "user", "content": text})
    stats = TurnStats()
    seen_calls: dict[str, int] = {}
    outcome: Literal["answered", "max_rounds", "cancelled", "error"] = "max_rounds"
    for round_index in range(chat.options.max_rounds):
        stats.rounds += 1
        offered = [] if round_index == chat.options.max_rounds - 1 and round_index > 0 else tools
        try:
            prompt = model.prompt(chat.messages, offered)
        except (BackendError, TemplateError) as exc:
            yield ErrorEvent(message=str(exc), kind="backend")
            outcome = "error"
            break
        grammar = None
        if required is not None and round_index == 0:
            grammar = tool_call_grammar([tool for tool in tools if tool.name == required])
        params = chat.options.generation_params(model.stop_tokens, grammar)
        output = TemplateOutput()
        try:
            async for delta in model.stream(prompt, params, output):
                yield MessageDelta(text=delta)
        except BackendError as exc:
            yield ErrorEvent(message=str(exc), kind="backend")
            outcome = "error"
            break
        add_generation_stats(stats, output.stats)
        content, requests, faults = parse_tool_requests(output.text, [t.name for t in offered])
        assistant: dict[str, Any] = {"role": "assistant", "content": content or None}
        prepared = [
            PreparedCall(
                ToolCallRequest(
                    natives.get(r.name, f"functions.{r.name}"),
                    json.dumps(r.arguments),
                    "commentary",
                    "json",
                    r.arguments,
                )
            )
            for r in requests
        ]
        for call in prepared:
            async for event in chat._prepare_call(call, seen_calls, stats):
                yield event
        if prepared:
            assistant["tool_calls"] = [
                {
                    "id": p.call_id,
                    "type": "function",
                    "function": {
                        "name": _identifier(p.call.recipient),
                        "arguments": json.dumps(p.arguments or p.call.parsed),
                    },
                }
                for p in prepared
            ]
        chat.messages.append(assistant)
        for fault in faults:
            yield ErrorEvent(message=fault.text, kind="model_output.tool_request")
            chat.messages.append({"role": "user", "content": f"(from the host) {fault.text}"})
        if not prepared and not faults:
            outcome = "answered"
            break
        limiter = anyio.CapacityLimiter(chat.options.max_parallel_calls)
        async with anyio.create_task_group() as tg:
            for call in prepared:
                tg.start_soon(_run_limited, chat, call, limiter)
        for call in prepared:
            yield chat._reply(call.call, call.call_id, call.display, call.result_or_error())
    stats.duration_s = time.perf_counter() - started
    yield TurnCompleted(stop_reason=outcome, stats=stats)


async def _run_limited(chat: Chat, call: PreparedCall, limiter: anyio.CapacityLimiter) -> None:
    async with limiter:
        await chat._execute_prepared(call)


def _required_identifier(chat: Chat) -> str | None:
    name = chat.options.required_tool
    if name is None:
        return None
    return chat.tools.names.to_identifier.get(name, name)


def _identifier(recipient: str) -> str:
    """The name a template-path model knows a tool by: `functions.x` → `x`, `browser.search` → `browser_search`."""
    return recipient.removeprefix("functions.").replace(".", "_")
