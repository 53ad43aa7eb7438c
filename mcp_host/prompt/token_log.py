"""The token log: a chat's prompt as the model saw it, grown by appending within a turn.

    log = TokenLog(renderer)
    log.start_turn(renderer.render_prompt(options, tools, history))   # re-rendered at turn boundaries only
    log.append_generated(tokens)                                        # exactly what the model produced
    log.append_tool_result(tool_result_message("functions.x", "42"))   # + <|start|>assistant

Re-rendering history moves a call's `to=` from the channel into the role position, so a
re-rendered prompt differs from what the model generated; appending keeps every round's prompt
a strict extension of the last, which is what lets a backend reuse its KV cache.
"""

from __future__ import annotations

from openai_harmony import Message, Role

from mcp_host.prompt.harmony import HarmonyRenderer, tool_result_message
from mcp_host.prompt.harmony_parse import ParseFault


def fault_message(fault: ParseFault) -> Message:
    """How a parse fault is told to the model: as the reply of the tool it meant to call, else from the system."""
    if fault.reply_as is not None:
        return tool_result_message(fault.reply_as, fault.text, channel=fault.channel)
    return Message.from_role_and_content(Role.SYSTEM, fault.text)


class TokenLog:
    """Append-only within a turn; `start_turn()` replaces it with a fresh rendering."""

    def __init__(self, renderer: HarmonyRenderer) -> None:
        self.renderer = renderer
        self.tokens: list[int] = []
        self.turns = 0
        self.appended_this_turn = 0

    def __len__(self) -> int:
        return len(self.tokens)

    def start_turn(self, prompt: list[int]) -> None:
        self.tokens = list(prompt)
        self.turns += 1
        self.appended_this_turn = 0

    def append_generated(self, tokens: list[int]) -> None:
        self._extend(tokens)

    def append_tool_result(self, message: Message) -> None:
        """The rendered result, then `<|start|>assistant` so that the model speaks next."""
        self._extend(self.renderer.render_message(message) + self.renderer.assistant_start())

    def append_fault(self, fault: ParseFault) -> None:
        self.append_tool_result(fault_message(fault))

    def _extend(self, tokens: list[int]) -> None:
        self.tokens.extend(tokens)
        self.appended_this_turn += len(tokens)
