"""Chat completions that use the host's own tools: `"mcp_host": {"tools": ["time", "browser", "python"]}`.

The named servers' tools (and the native `browser` / `python`) run server-side under the permission
policy, in the host's full loop. Nobody can answer an approval on this endpoint, so a call that
needs one is denied with a reason the model reads. The answer comes back as an ordinary completion;
the calls that ran are listed in the `mcp_host` extension field of the response.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from mcp_host.agent import (
    ApprovalAnswer,
    ApprovalRequired,
    ChatOptions,
    MessageDelta,
    ReasoningDelta,
    ToolCallResult,
    TurnCompleted,
)
from mcp_host.agent.events import Event
from mcp_host.api.completions import EFFORTS, harmony_history
from mcp_host.api.errors import ApiError
from mcp_host.backends.base import Backend
from mcp_host.host import Host
from mcp_host.prompt.harmony import Effort, HarmonyOptions
from mcp_host.tools.registry import ToolRegistry

NATIVES = ("browser", "python")


def requested_host_tools(body: dict[str, Any]) -> list[str] | None:
    extension = body.get("mcp_host")
    if extension is None:
        return None
    tools = extension.get("tools") if isinstance(extension, dict) else None
    if not isinstance(tools, list) or not all(isinstance(name, str) for name in tools):
        raise ApiError(
            400, "'mcp_host.tools' must be an array of server names, 'browser' or 'python'", param="mcp_host.tools"
        )
    if body.get("tools"):
        raise ApiError(400, "use either client 'tools' or 'mcp_host.tools' in one request, not both", param="tools")
    return tools


async def run_with_host_tools(
    host: Host, backend: Backend, body: dict[str, Any], names: list[str]
) -> AsyncIterator[Event]:
    """The host's loop for this request; events as the chat produces them."""
    servers = {status.name for status in host.statuses()}
    unknown = [name for name in names if name not in servers and name not in NATIVES]
    if unknown:
        raise ApiError(
            400,
            f"unknown host tools {unknown}; servers here: {sorted(servers)}, or browser, python",
            param="mcp_host.tools",
        )
    messages = body.get("messages")
    if (
        not isinstance(messages, list)
        or not messages
        or not isinstance(messages[-1], dict)
        or (messages[-1].get("role") != "user")
    ):
        raise ApiError(400, "with host tools the last message must be the user's", param="messages")
    effort: Effort = body.get("reasoning_effort") or "medium"
    if effort not in EFFORTS:
        raise ApiError(400, f"'reasoning_effort' must be one of {', '.join(EFFORTS)}", param="reasoning_effort")
    instructions, history = harmony_history(messages[:-1])
    options = ChatOptions(
        harmony=HarmonyOptions(
            reasoning_effort=effort, instructions=instructions, browser="browser" in names, python="python" in names
        )
    )
    chat = host.chat(backend, options)
    chat.tools = _only(host.registry, [name for name in names if name not in NATIVES])
    chat.history.extend(history)
    content = messages[-1].get("content")
    try:
        async for event in chat.send(content if isinstance(content, str) else str(content)):
            if isinstance(event, ApprovalRequired):
                chat.answer(
                    event.call_id,
                    ApprovalAnswer(
                        "deny", reason="this tool needs an approval, and nobody can give one on this endpoint"
                    ),
                )
            yield event
    finally:
        await chat.aclose()


def _only(registry: ToolRegistry, servers: list[str]) -> ToolRegistry:
    subset = ToolRegistry()
    for server in servers:
        subset.replace_server(server, registry.server_tools(server))
    return subset


def summarise(events: list[Event]) -> tuple[str, str, list[dict[str, Any]], TurnCompleted | None]:
    """Answer text, reasoning, the calls that ran, and the end of the turn."""
    text = "".join(e.text for e in events if isinstance(e, MessageDelta))
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    calls = [
        {"tool": e.tool, "is_error": e.is_error, "result": e.text} for e in events if isinstance(e, ToolCallResult)
    ]
    done = next((e for e in events if isinstance(e, TurnCompleted)), None)
    return text, reasoning, calls, done
