"""Prompt formats of the chat turn: Harmony, the model's chat template, a server's chat."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mcp_host.agent.formats.base import Fault, Round, TurnFormat, TurnTools
from mcp_host.agent.formats.harmony import HarmonyFormat
from mcp_host.agent.formats.server_chat import ServerChatFormat
from mcp_host.agent.formats.template import TemplateFormat
from mcp_host.backends.base import Backend, ChatBackend
from mcp_host.errors import UnsupportedFeatureError
from mcp_host.prompt.harmony import HarmonyRenderer

if TYPE_CHECKING:
    from mcp_host.agent.chat_options import ChatOptions

__all__ = [
    "Fault",
    "HarmonyFormat",
    "Round",
    "ServerChatFormat",
    "TemplateFormat",
    "TurnFormat",
    "TurnTools",
    "make_format",
]


def make_format(backend: Backend | ChatBackend, options: ChatOptions, renderer: HarmonyRenderer | None) -> TurnFormat:
    """The format the options ask for, else the one the backend declares. Raises `UnsupportedFeatureError`."""
    kind = options.format if options.format != "auto" else backend.capabilities.prompt_format
    harmony = options.harmony
    if kind == "chat":
        if not isinstance(backend, ChatBackend):
            raise UnsupportedFeatureError(f"{backend.name} takes token prompts, not chat messages")
        return ServerChatFormat(
            backend,
            instructions=harmony.instructions,
            reasoning_effort=harmony.reasoning_effort,
            required_tool=options.required_tool,
        )
    if not isinstance(backend, Backend):
        raise UnsupportedFeatureError(f"{backend.name} applies its own chat template; use the `chat` format")
    if kind == "harmony":
        return HarmonyFormat(backend, harmony, renderer)
    return TemplateFormat(backend, instructions=harmony.instructions, required_tool=options.required_tool)
