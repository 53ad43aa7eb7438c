"""The agent loop: chats, their events, permissions and approvals."""

from mcp_host.agent.asks import ElicitationAnswer
from mcp_host.agent.attachments import Attachment
from mcp_host.agent.calls import CallLimits, CallOutcome, CallPipeline, ToolCall
from mcp_host.agent.chat import Chat
from mcp_host.agent.chat_options import ChatOptions
from mcp_host.agent.events import (
    EVENT_ADAPTER,
    ApprovalRequired,
    ElicitationRequired,
    ErrorEvent,
    Event,
    MessageDelta,
    PromptProgress,
    ReasoningDelta,
    ServerLog,
    ToolCallCreated,
    ToolCallProgress,
    ToolCallResult,
    TurnCompleted,
    TurnStats,
)
from mcp_host.agent.formats import TurnFormat
from mcp_host.agent.permissions import ApprovalAnswer, AuditLog, Permissions, Verdict, fingerprint
from mcp_host.agent.selection import ToolChoice, ToolSelection
from mcp_host.agent.turn_stream import TurnEvents

__all__ = [
    "ApprovalAnswer",
    "ApprovalRequired",
    "Attachment",
    "AuditLog",
    "CallLimits",
    "CallOutcome",
    "CallPipeline",
    "Chat",
    "ChatOptions",
    "EVENT_ADAPTER",
    "ElicitationAnswer",
    "ElicitationRequired",
    "ErrorEvent",
    "Event",
    "MessageDelta",
    "Permissions",
    "PromptProgress",
    "ReasoningDelta",
    "ServerLog",
    "ToolCall",
    "ToolCallCreated",
    "ToolCallProgress",
    "ToolCallResult",
    "ToolChoice",
    "ToolSelection",
    "TurnCompleted",
    "TurnEvents",
    "TurnFormat",
    "TurnStats",
    "Verdict",
    "fingerprint",
]
