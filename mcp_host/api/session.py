"""One open session of `/v1/sessions`: its chat, its stored state, and what its turn has asked the client.

The `Sessions` collection (`mcp_host.api.sessions`) opens and closes them; the turn routes
(`session_turns`), the answer routes (`session_answers`) and the tool routes (`chat_tools_routes`) find the
session of a request through `Sessions.session_of`, handed to them as a `FindSession`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio
from starlette.requests import Request

from mcp_host.agent import Chat, ElicitationRequired
from mcp_host.api.session_ledger import SessionState


@dataclass
class Session:
    id: str
    chat: Chat
    state: SessionState
    closing: anyio.Event = field(default_factory=anyio.Event)
    closed: anyio.Event = field(default_factory=anyio.Event)
    pending: set[str] = field(default_factory=set)
    announced: set[str] = field(default_factory=set)  # every approval ever asked for, to tell 409 from 404
    questions: dict[str, ElicitationRequired] = field(default_factory=dict)  # elicitations waiting for an answer
    asked: set[str] = field(default_factory=set)  # every elicitation ever asked for, to tell 409 from 404
    turn: anyio.CancelScope | None = None  # the running turn, if any
    deleted: bool = False  # a DELETE took it: requests that found it before answer 404 (`Sessions.delete`)
    # Held while the record is written at rest (a rename, a change of tools, an answer kept for a resume) and
    # while a turn is taken: a turn never starts between such a write's check and the write, so neither undoes
    # the other.
    writing: anyio.Lock = field(default_factory=anyio.Lock)
    last_used: float = field(default_factory=time.monotonic)

    def touch(self) -> None:
        self.last_used = time.monotonic()

    def idle_for(self) -> float:
        """Seconds since the last request; a session answering a message is never idle."""
        return 0.0 if self.busy else time.monotonic() - self.last_used

    @property
    def busy(self) -> bool:
        return self.turn is not None

    @property
    def created(self) -> int:
        return self.state.created

    @property
    def model(self) -> str:
        return self.state.model


# The session a request names (`{id}` in its path), brought back from the store if needed: `Sessions.session_of`.
FindSession = Callable[[Request], Awaitable[Session]]
