"""A Responses conversation (input and output items, as JSON) turned into the chat messages the model reads.

    messages = chat_messages(items, function_name=str, mcp_name=identifier_for)

Messages keep their text; calls become assistant `tool_calls` followed by their results: a
`function_call` with the client's `function_call_output`, an `mcp_call` with its output or error, an
`mcp_approval_request` the client denied with the denial the model was told. Reasoning of earlier turns
is left out (Harmony drops it once a turn has ended), and so are tool listings and requests nobody
answered. `function_name` and `mcp_name` give the names the model knows the tools by in this request.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from mcp_host.tools.names import identifier_for

Item = dict[str, Any]
Message = dict[str, Any]


def denial_text(reason: str | None) -> str:
    """What the model reads for a call the user denied (the call pipeline's own words)."""
    return f"Error: The user denied this call: {reason}" if reason else "Error: The user denied this call."


def chat_messages(
    items: Sequence[Item],
    *,
    function_name: Callable[[str], str] = str,
    mcp_name: Callable[[str, str], str] = identifier_for,
) -> list[Message]:
    """The conversation as OpenAI chat messages (see the module's docstring)."""
    ran = {item.get("approval_request_id") for item in items if item.get("type") == "mcp_call"}
    denied = {
        item["approval_request_id"]: item.get("reason")
        for item in items
        if item.get("type") == "mcp_approval_response" and not item.get("approve")
    }
    messages: list[Message] = []
    for item in items:
        kind = item.get("type", "message")
        if kind == "message":
            messages.append({"role": item["role"], "content": item_text(item.get("content"))})
        elif kind == "function_call":
            _add_call(messages, item["call_id"], function_name(item["name"]), item.get("arguments") or "{}")
        elif kind == "function_call_output":
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": item_text(item.get("output"))})
        elif kind == "mcp_call":
            call_id = item.get("id") or item["name"]
            _add_call(messages, call_id, mcp_name(item["server_label"], item["name"]), item.get("arguments") or "{}")
            messages.append({"role": "tool", "tool_call_id": call_id, "content": mcp_result_text(item)})
        elif kind == "mcp_approval_request" and item["id"] not in ran and item["id"] in denied:
            _add_call(messages, item["id"], mcp_name(item["server_label"], item["name"]), item.get("arguments") or "{}")
            messages.append({"role": "tool", "tool_call_id": item["id"], "content": denial_text(denied[item["id"]])})
    return messages


def _add_call(messages: list[Message], call_id: str, name: str, arguments: str) -> None:
    """An assistant call; calls that follow one another share one assistant message, as models make them."""
    call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
    last = messages[-1] if messages else None
    if last is not None and last["role"] == "assistant" and last.get("tool_calls") and not last["content"]:
        last["tool_calls"].append(call)
    else:
        messages.append({"role": "assistant", "content": "", "tool_calls": [call]})


def item_text(content: Any) -> str:
    """A message's (or an output's) text: a string, or its text parts joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text") or part.get("refusal") or "") for part in content if isinstance(part, dict))
    return ""


def mcp_result_text(item: Item) -> str:
    """What the model read of an MCP call: its output, or its error marked as one."""
    error = item.get("error")
    if not error:
        return str(item.get("output") or "")
    if isinstance(error, dict):
        text = error.get("message") or item_text(error.get("content")) or str(error.get("content") or "")
    else:
        text = str(error)
    return text if text.startswith("Error") else f"Error: {text}"


def split_last_user(messages: list[Message]) -> tuple[list[Message], str | None]:
    """(the messages before the last, the last one's text) when the conversation ends with the user's words."""
    if messages and messages[-1]["role"] == "user":
        return messages[:-1], str(messages[-1]["content"])
    return messages, None
