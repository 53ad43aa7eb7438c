"""The token log: a chat's prompt as the model saw it, grown by appending within a turn.

    log = TokenLog(renderer)
    log.start_turn(renderer.render_prompt(options, tools, history))   # re-rendered at turn boundaries only
    log.append_generated(tokens)                                        # exactly what the model produced
    log.append_tool_result(tool_result_message("functions.x", "42"))   # + <|start|>assistant
    history.extend(log.append_fault(generated, parser))                # a round that ended in a ParseFault

Re-rendering history moves a call's `to=` from the channel into the role position, so a
re-rendered prompt differs from what the model generated; appending keeps every round's prompt
a strict extension of the last, which is what lets a backend reuse its KV cache. The one
exception is a fault in the first message of a round: its `<|start|>assistant` came with the
prompt, and it goes with the message.
"""

from __future__ import annotations

from collections.abc import Sequence

from openai_harmony import Message, Role

from mcp_host.prompt.harmony import RETURN_TOKEN, HarmonyRenderer, tool_result_message
from mcp_host.prompt.harmony_parse import END_TOKEN, HarmonyStreamParser

# What the model wrote is quoted back to it; a runaway generation is quoted by its two ends.
_QUOTE_LIMIT = 2000


class TokenLog:
    """Append-only within a turn (bar the header a bad first message takes with it); `start_turn()` re-renders."""

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

    def append_generated(self, tokens: Sequence[int]) -> None:
        self._extend(tokens)

    def append_tool_result(self, message: Message) -> None:
        """The rendered result, then `<|start|>assistant` so that the model speaks next."""
        self._extend(self.renderer.render_message(message) + self.renderer.assistant_start())

    def append_fault(self, generated: Sequence[int], parser: HarmonyStreamParser) -> list[Message]:
        """Close a round the parser stopped at a fault; returns the messages to add to the history.

            history.extend(log.append_fault(generated, parser))

        `generated` is what the model produced this round (what `parser` was fed). The round's
        well-formed messages are kept. A bad call that Harmony parsed whole and that names a
        plausible tool (`parser.faulted_call`: unknown tool, bad JSON, analysis channel, missing
        `<|call|>`) is kept too, exactly as generated (a `<|return|>` becomes `<|end|>`), and the
        fault is that tool's reply on the call's channel. Anything else (a broken header, a
        missing `<|start|>`, a cut-off message) is cut at the last complete message, together
        with the `<|start|>assistant` that opened it, and a system message explains the fault and
        quotes what the model wrote. Either way the log stays a Harmony conversation that ends in
        `<|start|>assistant` and that openai_harmony parses back to the history plus these messages.

        Raises `ValueError` when the parser did not stop at a fault, when `generated` is shorter
        than what the parser was fed, or when the log does not end in `<|start|>assistant`.
        """
        fault = parser.last_fault
        if fault is None:
            raise ValueError("append_fault() needs a parser that stopped at a fault")
        if len(generated) < parser.token_count:
            raise ValueError(f"generated holds {len(generated)} tokens; the parser was fed {parser.token_count}")
        call, recipient = parser.faulted_call, fault.reply_as
        if call is not None and recipient is not None:
            kept = list(generated[: parser.token_count])
            if kept[-1] == RETURN_TOKEN:  # `<|return|>` ends a turn; within a conversation a message ends in `<|end|>`
                kept[-1] = END_TOKEN
            reply = tool_result_message(recipient, fault.text, channel=call.channel or fault.channel)
            self.append_generated(kept)
            self.append_tool_result(reply)
            return [*parser.messages, call, reply]
        clean = parser.clean_token_count
        dropped = list(generated[clean : parser.token_count])
        if clean == 0:  # the bad message opened with the log's own `<|start|>assistant`: it goes too
            dropped = self._drop_assistant_start() + dropped
        self.append_generated(generated[:clean])
        written = self.renderer.encoding.decode(dropped)
        notice = Message.from_role_and_content(Role.SYSTEM, _with_quote(fault.text, written))
        self.append_tool_result(notice)
        return [*parser.messages, notice]

    def _drop_assistant_start(self) -> list[int]:
        start = self.renderer.assistant_start()
        if self.tokens[-len(start) :] != start:
            raise ValueError("the token log does not end in <|start|>assistant: nothing was generated from it")
        del self.tokens[-len(start) :]
        self.appended_this_turn -= len(start)
        return start

    def _extend(self, tokens: Sequence[int]) -> None:
        self.tokens.extend(tokens)
        self.appended_this_turn += len(tokens)


def _with_quote(text: str, written: str) -> str:
    if not written:
        return text
    if len(written) > _QUOTE_LIMIT:
        half = _QUOTE_LIMIT // 2
        written = f"{written[:half]}[… {len(written) - 2 * half} characters …]{written[-half:]}"
    return f"{text}\n\nWhat you wrote, which is not kept in the conversation:\n{written}"
