"""Prompt formats: Harmony for gpt-oss (rendering, streaming parse, the token log), fully offline."""

from mcp_host.prompt.harmony import (
    STOP_TOKENS,
    FunctionTool,
    HarmonyOptions,
    HarmonyRenderer,
    PromptPart,
    assistant_message,
    drop_finished_reasoning,
    tool_call_message,
    tool_result_message,
    user_message,
)
from mcp_host.prompt.harmony_parse import (
    HarmonyStreamParser,
    ParseEvent,
    ParseFault,
    PreambleDelta,
    ToolCallRequest,
)
from mcp_host.prompt.token_log import TokenLog
from mcp_host.prompt.vocab import VocabularyError, ensure_vocabulary, harmony_encoding

__all__ = [
    "STOP_TOKENS",
    "FunctionTool",
    "HarmonyOptions",
    "HarmonyRenderer",
    "HarmonyStreamParser",
    "ParseEvent",
    "ParseFault",
    "PreambleDelta",
    "PromptPart",
    "TokenLog",
    "ToolCallRequest",
    "VocabularyError",
    "assistant_message",
    "drop_finished_reasoning",
    "ensure_vocabulary",
    "harmony_encoding",
    "tool_call_message",
    "tool_result_message",
    "user_message",
]
