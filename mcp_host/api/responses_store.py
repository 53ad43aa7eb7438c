"""Where stored responses are kept: JSON records behind a small async interface.

    store = MemoryResponseStore()
    await store.put(record.id, record.to_json())
    record = StoredResponse.from_json(await store.get(response_id))   # get: None when there is none
    await store.delete(response_id)                                   # whether there was one

A record is the `Response` object as the client got it, plus the whole conversation through it (every
input and output item, so that a `previous_response_id` needs one read, and deleting an earlier response
breaks no later chain) and the calls it left waiting (function calls for their `function_call_output`,
approval requests for their `mcp_approval_response`). A response whose MCP turn waits on approvals alone also
keeps that turn as data (`paused`: `mcp_host.api.responses_paused`), so that a restarted server can go on with
it. Everything is plain JSON, so the durable store (`mcp_host.store`, SQLite or PostgreSQL) can take the
memory store's place unchanged.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Protocol

MAX_MEMORY_RECORDS = 10_000  # the memory store forgets its oldest records beyond this many,
MAX_MEMORY_CHARS = 512 * 1024 * 1024  # or beyond this much JSON


class ResponseStore(Protocol):
    """Records by response id; raises nothing of its own for a missing record."""

    async def get(self, response_id: str) -> dict[str, Any] | None: ...

    async def put(self, response_id: str, record: dict[str, Any]) -> None: ...

    async def delete(self, response_id: str) -> bool: ...

    async def take(self, response_id: str) -> bool:
        """True for the first request to continue the turn `response_id` waits on, across every server sharing
        the store; False for any other (so that no waiting call runs twice)."""
        ...


class MemoryResponseStore:
    """Records in this process, the oldest forgotten beyond `max_records` or `max_chars`; each kept as JSON
    text, so that nothing stored shares state with the live objects it came from."""

    def __init__(self, max_records: int = MAX_MEMORY_RECORDS, max_chars: int = MAX_MEMORY_CHARS) -> None:
        self.max_records = max_records
        self.max_chars = max_chars
        self._records: OrderedDict[str, str] = OrderedDict()
        self._chars = 0
        self._taken: set[str] = set()

    async def get(self, response_id: str) -> dict[str, Any] | None:
        text = self._records.get(response_id)
        return None if text is None else dict(json.loads(text))

    async def put(self, response_id: str, record: dict[str, Any]) -> None:
        self._drop(response_id)
        text = json.dumps(record, ensure_ascii=False)
        self._records[response_id] = text
        self._chars += len(text)
        while len(self._records) > 1 and (len(self._records) > self.max_records or self._chars > self.max_chars):
            forgotten, oldest = self._records.popitem(last=False)
            self._chars -= len(oldest)
            self._taken.discard(forgotten)

    async def delete(self, response_id: str) -> bool:
        self._taken.discard(response_id)
        return self._drop(response_id)

    async def take(self, response_id: str) -> bool:
        if response_id in self._taken:
            return False
        self._taken.add(response_id)
        return True

    def _drop(self, response_id: str) -> bool:
        text = self._records.pop(response_id, None)
        if text is not None:
            self._chars -= len(text)
        return text is not None


@dataclass
class StoredResponse:
    """One response's record (see the module's docstring)."""

    response: dict[str, Any]
    conversation: list[dict[str, Any]]
    input: list[dict[str, Any]]
    waiting_calls: list[str] = field(default_factory=list)  # function call ids
    waiting_approvals: list[str] = field(default_factory=list)  # approval request ids
    paused: dict[str, Any] | None = None  # the turn waiting on those approvals, rebuildable (`PausedTurn`)

    @property
    def id(self) -> str:
        return str(self.response["id"])

    @property
    def waiting(self) -> bool:
        return bool(self.waiting_calls or self.waiting_approvals)

    def to_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "response": self.response,
            "conversation": self.conversation,
            "input": self.input,
            "waiting_calls": self.waiting_calls,
            "waiting_approvals": self.waiting_approvals,
        }
        if self.paused is not None:
            record["paused"] = self.paused
        return record

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> StoredResponse:
        return cls(
            response=dict(record["response"]),
            conversation=list(record.get("conversation") or []),
            input=list(record.get("input") or []),
            waiting_calls=list(record.get("waiting_calls") or []),
            waiting_approvals=list(record.get("waiting_approvals") or []),
            paused=record.get("paused"),
        )
