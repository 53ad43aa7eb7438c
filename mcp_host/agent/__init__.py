"""The agent loop: chats, their events, permissions and approvals."""

from mcp_host.agent.calls import CallLimits, CallOutcome, CallPipeline, ToolCall
from mcp_host.agent.chat import Chat, ChatOptions, TurnEvents
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
from mcp_host.agent.formats import TurnFormat
from mcp_host.agent.permissions import ApprovalAnswer, AuditLog, Permissions, Verdict, fingerprint

__all__ = [
    "EVENT_ADAPTER",
    "ApprovalAnswer",
    "ApprovalRequired",
    "AuditLog",
    "CallLimits",
    "CallOutcome",
    "CallPipeline",
    "Chat",
    "ChatOptions",
    "ErrorEvent",
    "Event",
    "MessageDelta",
    "Permissions",
    "ReasoningDelta",
    "ToolCall",
    "ToolCallCreated",
    "ToolCallResult",
    "TurnCompleted",
    "TurnEvents",
    "TurnFormat",
    "TurnStats",
    "Verdict",
    "fingerprint",
]
