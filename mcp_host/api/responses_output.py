"""A `Response` object being produced: its output items, and (streamed) the events that build them.

    draft = ResponseDraft(fields, send)         # `send(type, json)` takes each stream event; None: not streamed
    await draft.start()                         # response.created, response.in_progress
    await draft.reasoning("Need the weather.")  # a `reasoning` item, opened on the first piece
    await draft.text("It is sunny.")            # the reasoning item is done; a `message` item opens
    await draft.finish("completed", usage)      # open items done, then response.completed
    draft.json()                                # the whole Response, as returned and stored

Events come in the order the `openai` client's stream accumulator needs (an item is added before its
content, a content part before its deltas, every item done before the response is), each with the next
`sequence_number`. Item ids are OpenAI's prefixes: `rs_`, `msg_`, `fc_`, `mcpl_`, `mcp_`, `mcpr_`.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Literal

ARGUMENT_FRAGMENT = 32  # streamed call arguments arrive in pieces, as OpenAI sends them
Status = Literal["completed", "incomplete", "failed"]
Send = Callable[[str, str], Awaitable[None]]  # (event type, its JSON), written at once: items change afterwards


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def usage_json(*, input_tokens: int, cached_tokens: int, output_tokens: int, reasoning_tokens: int) -> dict[str, Any]:
    """OpenAI's `usage`: `cached_tokens` are the prompt tokens the model reused from its cache."""
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": cached_tokens, "cache_write_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
        "total_tokens": input_tokens + output_tokens,
    }


class ResponseDraft:
    """One response being produced; `fields` are its fixed fields (model, tools, instructions, ...)."""

    def __init__(self, fields: dict[str, Any], send: Send | None = None, *, response_id: str | None = None) -> None:
        self.id = response_id or new_id("resp")
        self.created_at = int(time.time())
        self.fields = fields
        self.output: list[dict[str, Any]] = []
        self.status: str = "in_progress"
        self.usage: dict[str, Any] | None = None
        self.error: dict[str, Any] | None = None
        self.incomplete: dict[str, Any] | None = None
        self.send = send  # set before start() to stream
        self._sequence = 0
        self._open: dict[str, Any] | None = None  # the reasoning or message item text is going into
        self._positions: dict[str, int] = {}  # output index by item id
        self._calls: dict[str, dict[str, Any]] = {}  # open MCP call items by the caller's key

    # -- the response ---------------------------------------------------------------------------

    def json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": self.status,
            "completed_at": int(time.time()) if self.status == "completed" else None,
            "error": self.error,
            "incomplete_details": self.incomplete,
            "output": self.output,
            "usage": self.usage,
            **self.fields,
        }

    @property
    def output_text(self) -> str:
        """Every `output_text` of the response, joined (the client's `output_text`)."""
        return "".join(
            part["text"]
            for item in self.output
            if item["type"] == "message"
            for part in item["content"]
            if part["type"] == "output_text"
        )

    async def start(self) -> None:
        await self._event("response.created", response=self.json())
        await self._event("response.in_progress", response=self.json())

    async def finish(
        self,
        status: Status,
        usage: dict[str, Any],
        *,
        error: str | None = None,
        incomplete_reason: str | None = None,
    ) -> None:
        """Close what is open, then `response.completed`, `.incomplete` or `.failed` with the whole response."""
        await self._close_open()
        self.status = status
        self.usage = usage
        if error is not None:
            self.error = {"code": "server_error", "message": error}
        if incomplete_reason is not None:
            self.incomplete = {"reason": incomplete_reason}
        await self._event(f"response.{status}", response=self.json())

    def error_json(self, message: str, code: str = "server_error") -> str:
        """OpenAI's stream `error` event (its fields at the top level, not under `error`), numbered next."""
        return self._numbered("error", {"code": code, "message": message, "param": None})

    # -- streamed text --------------------------------------------------------------------------

    async def reasoning(self, delta: str) -> None:
        item = await self._text_item("reasoning")
        item["content"][0]["text"] += delta
        await self._event("response.reasoning_text.delta", **self._where(item), content_index=0, delta=delta)

    async def text(self, delta: str) -> None:
        item = await self._text_item("message")
        item["content"][0]["text"] += delta
        await self._event("response.output_text.delta", **self._where(item), content_index=0, delta=delta, logprobs=[])

    async def _text_item(self, kind: Literal["reasoning", "message"]) -> dict[str, Any]:
        if self._open is not None and self._open["type"] == kind:
            return self._open
        await self._close_open()
        if kind == "reasoning":
            item: dict[str, Any] = {"id": new_id("rs"), "type": "reasoning", "summary": [], "content": []}
            part: dict[str, Any] = {"type": "reasoning_text", "text": ""}
        else:
            item = {"id": new_id("msg"), "type": "message", "role": "assistant", "status": "in_progress", "content": []}
            part = {"type": "output_text", "text": "", "annotations": []}
        await self._add(item)
        item["content"].append(part)
        await self._event("response.content_part.added", **self._where(item), content_index=0, part=part)
        self._open = item
        return item

    async def _close_open(self) -> None:
        item, self._open = self._open, None
        if item is None:
            return
        part = item["content"][0]
        if item["type"] == "reasoning":
            await self._event("response.reasoning_text.done", **self._where(item), content_index=0, text=part["text"])
        else:
            await self._event(
                "response.output_text.done", **self._where(item), content_index=0, text=part["text"], logprobs=[]
            )
        await self._event("response.content_part.done", **self._where(item), content_index=0, part=part)
        item["status"] = "completed"
        await self._done(item)

    # -- whole items ----------------------------------------------------------------------------

    async def function_call(self, call_id: str, name: str, arguments: str) -> dict[str, Any]:
        """A call for the client to run: the response ends with it."""
        await self._close_open()
        item = {
            "id": new_id("fc"),
            "type": "function_call",
            "call_id": call_id,
            "name": name,
            "arguments": "",
            "status": "in_progress",
        }
        await self._add(item)
        for fragment in _fragments(arguments):
            await self._event("response.function_call_arguments.delta", **self._where(item), delta=fragment)
        item["arguments"] = arguments
        await self._event("response.function_call_arguments.done", **self._where(item), arguments=arguments)
        item["status"] = "completed"
        await self._done(item)
        return item

    async def mcp_list_tools(self, server_label: str, tools: list[dict[str, Any]], error: str | None = None) -> None:
        await self._close_open()
        item: dict[str, Any] = {
            "id": new_id("mcpl"),
            "type": "mcp_list_tools",
            "server_label": server_label,
            "tools": [],
        }
        await self._add(item)
        await self._event("response.mcp_list_tools.in_progress", **self._where(item))
        item["tools"], item["error"] = tools, error
        await self._event(f"response.mcp_list_tools.{'failed' if error else 'completed'}", **self._where(item))
        await self._done(item)

    async def mcp_approval_request(self, server_label: str, name: str, arguments: str) -> dict[str, Any]:
        await self._close_open()
        item = {
            "id": new_id("mcpr"),
            "type": "mcp_approval_request",
            "server_label": server_label,
            "name": name,
            "arguments": arguments,
        }
        await self._add(item)
        await self._done(item)
        return item

    async def mcp_call_started(
        self, key: str, server_label: str, name: str, arguments: str, approval_request_id: str | None = None
    ) -> None:
        """An MCP call the host runs; `mcp_call_finished(key, ...)` completes it."""
        await self._close_open()
        item = {
            "id": new_id("mcp"),
            "type": "mcp_call",
            "server_label": server_label,
            "name": name,
            "arguments": "",
            "output": None,
            "error": None,
            "approval_request_id": approval_request_id,
            "status": "in_progress",
        }
        await self._add(item)
        for fragment in _fragments(arguments):
            await self._event("response.mcp_call_arguments.delta", **self._where(item), delta=fragment)
        item["arguments"] = arguments
        await self._event("response.mcp_call_arguments.done", **self._where(item), arguments=arguments)
        await self._event("response.mcp_call.in_progress", **self._where(item))
        self._calls[key] = item

    def has_call(self, key: str) -> bool:
        return key in self._calls

    async def mcp_call_finished(self, key: str, text: str, *, failed: bool) -> None:
        item = self._calls.pop(key)
        if failed:
            item["status"] = "failed"
            item["error"] = {"type": "mcp_tool_execution_error", "content": [{"type": "text", "text": text}]}
        else:
            item["status"] = "completed"
            item["output"] = text
        await self._event(f"response.mcp_call.{'failed' if failed else 'completed'}", **self._where(item))
        await self._done(item)

    # -- plumbing -------------------------------------------------------------------------------

    def _where(self, item: dict[str, Any]) -> dict[str, Any]:
        return {"item_id": item["id"], "output_index": self._positions[item["id"]]}

    async def _add(self, item: dict[str, Any]) -> None:
        self._positions[item["id"]] = len(self.output)
        self.output.append(item)
        await self._event("response.output_item.added", output_index=self._positions[item["id"]], item=item)

    async def _done(self, item: dict[str, Any]) -> None:
        await self._event("response.output_item.done", output_index=self._positions[item["id"]], item=item)

    async def _event(self, kind: str, **fields: Any) -> None:
        if self.send is not None:
            await self.send(kind, self._numbered(kind, fields))

    def _numbered(self, kind: str, fields: dict[str, Any]) -> str:
        event = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return json.dumps(event, ensure_ascii=False, separators=(",", ":"))


def _fragments(text: str) -> list[str]:
    return [text[start : start + ARGUMENT_FRAGMENT] for start in range(0, len(text), ARGUMENT_FRAGMENT)]
