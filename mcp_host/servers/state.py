"""A server connection's lifecycle, as the user sees it.

idle ──(first use)──▶ starting ──▶ ready ──▶ failed ──(backoff)──▶ starting ...
                         │                    ▲
                         └────────────────────┘          any state ──stop()──▶ stopped

`idle` is a lazy server (`[servers] lazy` in the host settings) that the tool catalog knows: its tools are
offered from the catalog and it starts when a call or a request first needs it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class ServerState(enum.StrEnum):
    IDLE = "idle"
    STARTING = "starting"
    READY = "ready"
    FAILED = "failed"
    STOPPED = "stopped"


@dataclass(frozen=True)
class ServerStatus:
    """A snapshot of one connection, for `mcp-host servers` and `GET /v1/servers`."""

    name: str
    state: ServerState
    transport: str
    tools: int
    error: str | None = None
    restarts: int = 0
    protocol_version: str | None = None
    server_name: str | None = None
    server_version: str | None = None
    pid: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state.value,
            "transport": self.transport,
            "tools": self.tools,
            "error": self.error,
            "restarts": self.restarts,
            "protocol_version": self.protocol_version,
            "server": {"name": self.server_name, "version": self.server_version},
            "pid": self.pid,
        }
