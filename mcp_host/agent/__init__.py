"""The agent loop: chats, their events, permissions and approvals."""

from mcp_host.agent.chat import Chat, ChatOptions
from mcp_host.agent.events import (
    EVENT_ADAPTER,
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
from mcp_host.agent.permissions import ApprovalAnswer, AuditLog, Permissions, Verdict, fingerprint

__all__ = [
    "EVENT_ADAPTER",
    "ApprovalAnswer",
    "ApprovalRequired",
    "AuditLog",
    "Chat",
    "ChatOptions",
    "ErrorEvent",
    "Event",
    "MessageDelta",
    "Permissions",
    "ReasoningDelta",
    "ToolCallCreated",
    "ToolCallResult",
    "TurnCompleted",
    "TurnStats",
    "Verdict",
    "fingerprint",
]
