"""One chat turn for models that do not speak Harmony: their chat template, `[TOOL_REQUEST]` calls.

Calls that come together are decided one by one (each may need the user's approval), then the
approved ones run concurrently up to `max_parallel_calls`, and their results go back in order.
With `required_tool`, the first round is grammar-constrained to a valid call of that tool.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Literal

import anyio

from mcp_host.agent.events import ErrorEvent, Event, MessageDelta, TurnCompleted, TurnStats
from mcp_host.backends.base import BackendError
from mcp_host.prompt.harmony_parse import ToolCallRequest
from mcp_host.prompt.template import (
    NATIVE_OPEN,
    REQUEST_OPEN,
    TemplateError,
    TemplatePrompt,
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
    template = TemplatePrompt(getattr(backend, "chat_template", None))
    required = _required_identifier(chat)
    chat.messages.append({"role": "user", "content": text})
    stats = TurnStats()
    seen_calls: dict[str, int] = {}
    outcome: Literal["answered", "max_rounds", "cancelled", "error"] = "max_rounds"
    stop = frozenset(getattr(backend, "eog_tokens", None) or {int(getattr(backend, "eos_token", -1))})
    guard = ControlTextGuard(getattr(backend, "control_texts", ()))
    for round_index in range(chat.options.max_rounds):
        stats.rounds += 1
        offered = [] if round_index == chat.options.max_rounds - 1 and round_index > 0 else tools
        try:
            prompt = _bos(backend) + backend.tokenize(template.render(guard.messages(chat.messages), offered))
        except (BackendError, TemplateError) as exc:
            yield ErrorEvent(message=str(exc), kind="backend")
            outcome = "error"
            break
        grammar = None
        if required is not None and round_index == 0:
            grammar = tool_call_grammar([tool for tool in tools if tool.name == required])
        params = chat.options.generation_params(stop, grammar)
        generated: list[int] = []
        shown = ""
        try:
            async with backend.generate(prompt, params) as generation:
                async for token in generation:
                    if token in stop:
                        break
                    generated.append(token)
                    visible = visible_text(backend.detokenize(generated))
                    if len(visible) > len(shown):
                        yield MessageDelta(text=visible[len(shown) :])
                        shown = visible
        except BackendError as exc:
            yield ErrorEvent(message=str(exc), kind="backend")
            outcome = "error"
            break
        add_generation_stats(stats, generation.stats)
        content, requests, faults = parse_tool_requests(backend.detokenize(generated), [t.name for t in offered])
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


def _bos(backend: object) -> list[int]:
    bos = getattr(backend, "bos_token", None)
    return [bos] if isinstance(bos, int) else []


def visible_text(text: str) -> str:
    """Text for the user: everything before a tool request, holding back what may be the start of one."""
    head = text.split(REQUEST_OPEN, 1)[0].split(NATIVE_OPEN, 1)[0]
    for marker in (REQUEST_OPEN, NATIVE_OPEN):
        for cut in range(len(marker) - 1, 0, -1):
            if head.endswith(marker[:cut]):
                return head[:-cut]
    return head


def _identifier(recipient: str) -> str:
    """The name a template-path model knows a tool by: `functions.x` → `x`, `browser.search` → `browser_search`."""
    return recipient.removeprefix("functions.").replace(".", "_")


class ControlTextGuard:
    """Keeps text from tools, pages and users from turning into the model's control tokens.

    The rendered template is tokenized with special tokens enabled (the template's own markup needs
    them), so a tool result containing `<end_of_turn><start_of_turn>user` would forge a turn. Such
    text is broken with a zero-width space before rendering; the model still reads it.
    """

    def __init__(self, control_texts: tuple[str, ...]) -> None:
        ordered = sorted(set(control_texts), key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def text(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(lambda match: match.group(0)[0] + "\u200b" + match.group(0)[1:], text)

    def messages(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**m, "content": self.text(m["content"])} if isinstance(m.get("content"), str) else m for m in messages]
