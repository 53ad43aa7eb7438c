"""`sampling/createMessage` answered by the chat's own model.

The server's messages become a conversation of their own (never the chat's history): its system
prompt becomes the instructions, its tools (if it sent any) the only tools, and the model's reply
comes back as text or as `tool_use` blocks. There is one model, so model preferences map to what
can change: `intelligencePriority` above `speedPriority` asks for more reasoning, the reverse for less.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import mcp_types

from mcp_host.agent.events import Event
from mcp_host.agent.formats import TurnTools, make_format
from mcp_host.backends.base import Backend, ChatBackend
from mcp_host.prompt.harmony import Effort, HarmonyRenderer
from mcp_host.tools.registry import ToolRegistry
from mcp_host.tools.spec import ToolSpec

if TYPE_CHECKING:
    from mcp_host.agent.chat_options import ChatOptions

SAMPLING_SERVER = "sampling"  # the pseudo server that holds a request's own tools


def _effort(preferences: mcp_types.ModelPreferences | None, default: Effort) -> Effort:
    if preferences is None:
        return default
    intelligence = preferences.intelligence_priority or 0.0
    speed = max(preferences.speed_priority or 0.0, preferences.cost_priority or 0.0)
    if intelligence > speed + 0.25:
        return "high"
    if speed > intelligence + 0.25:
        return "low"
    return default


def _text(block: Any) -> str:
    if isinstance(block, mcp_types.TextContent):
        return block.text
    return f"[{getattr(block, 'type', 'unknown')} content]"


def _messages(params: mcp_types.CreateMessageRequestParams) -> tuple[list[dict[str, Any]], str]:
    """Earlier messages in OpenAI chat shape, and the text of the last user message (the turn's input)."""
    history: list[dict[str, Any]] = []
    for message in params.messages:
        blocks = message.content if isinstance(message.content, list) else [message.content]
        texts = [_text(b) for b in blocks if not isinstance(b, mcp_types.ToolUseContent | mcp_types.ToolResultContent)]
        uses = [b for b in blocks if isinstance(b, mcp_types.ToolUseContent)]
        results = [b for b in blocks if isinstance(b, mcp_types.ToolResultContent)]
        for result in results:
            text = "\n".join(_text(b) for b in result.content)
            history.append({"role": "tool", "tool_call_id": result.tool_use_id, "content": text})
        if uses:
            calls = [
                {"id": u.id, "type": "function", "function": {"name": u.name, "arguments": json.dumps(u.input)}}
                for u in uses
            ]
            history.append({"role": "assistant", "content": "\n".join(texts) or None, "tool_calls": calls})
        elif texts:
            history.append({"role": message.role, "content": "\n".join(texts)})
    last = ""
    if history and history[-1]["role"] == "user":
        last = history.pop()["content"]
    return history, last


def _tools(params: mcp_types.CreateMessageRequestParams) -> ToolRegistry:
    registry = ToolRegistry()
    choice = params.tool_choice.mode if params.tool_choice is not None else "auto"
    if params.tools and choice != "none":
        registry.replace_server(
            SAMPLING_SERVER,
            [ToolSpec.from_mcp(SAMPLING_SERVER, tool) for tool in params.tools],
        )
    return registry


async def sample(
    backend: Backend | ChatBackend,
    options: ChatOptions,
    renderer: HarmonyRenderer | None,
    params: mcp_types.CreateMessageRequestParams,
) -> mcp_types.CreateMessageResult | mcp_types.CreateMessageResultWithTools:
    """Generate the reply to a sampling request with `backend`; raises `BackendError`, `TemplateError`."""
    harmony = replace(options.harmony, browser=False, python=False, instructions=params.system_prompt)
    effort = _effort(params.model_preferences, harmony.reasoning_effort)
    sampling_options = replace(options, harmony=harmony, required_tool=None)
    turn_format = make_format(backend, sampling_options, renderer)
    history, last = _messages(params)
    turn_format.load_messages(history)
    registry = _tools(params)
    turn_format.start_turn(last, TurnTools(registry, {}), effort)
    limit = min(params.max_tokens, options.max_tokens_per_round)
    generation = replace(
        options.generation_params(),
        max_tokens=limit,
        temperature=options.temperature if params.temperature is None else params.temperature,
    )

    async def ignore(_event: Event) -> None:
        return None

    round_ = await turn_format.generate(generation, last_round=not len(registry), emit=ignore)
    model = backend.name
    calls = [call for call in round_.calls if call.spec is not None]
    if calls:
        uses: list[mcp_types.SamplingMessageContentBlock] = [
            mcp_types.ToolUseContent(name=call.spec.tool, id=f"toolu_{index}", input=call.arguments)
            for index, call in enumerate(calls, start=1)
            if call.spec is not None
        ]
        return mcp_types.CreateMessageResultWithTools(
            role="assistant", content=uses, model=model, stop_reason="toolUse"
        )
    turn_format.end_round([])
    stop = "maxTokens" if round_.stats.generated_tokens >= limit else "endTurn"
    return mcp_types.CreateMessageResult(
        role="assistant", content=mcp_types.TextContent(text=turn_format.answer()), model=model, stop_reason=stop
    )
