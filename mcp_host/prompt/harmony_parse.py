"""Parsing what gpt-oss generates, token by token, into typed events.

    parser = HarmonyStreamParser(known_functions={"time__now"}, browser=False, python=True)
    for token in generated:
        for event in parser.feed(token):
            ...  # OutputReasoning, OutputText, PreambleDelta, ToolCallRequest, ParseFault
        if parser.done:
            break

A message's channel and recipient are known only at `<|message|>`; until then the tokens are
buffered (inside `openai_harmony.StreamableParser`). Every malformation seen in the field
becomes a `ParseFault` carrying a message for the model to read in the next round: never an
exception, and never a call silently dropped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

from openai_harmony import HarmonyEncoding, Message, Role, StreamableParser, StreamState

from mcp_host.backends.base import OutputReasoning, OutputText
from mcp_host.prompt.harmony import CALL_TOKEN, RETURN_TOKEN
from mcp_host.prompt.vocab import harmony_encoding

BROWSER_FUNCTIONS = ("browser.search", "browser.open", "browser.find")
END_TOKEN = 200007
_MESSAGE_ENDS = frozenset({END_TOKEN, RETURN_TOKEN, CALL_TOKEN})
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class PreambleDelta:
    """Text on the `commentary` channel with no recipient: what the model says it is about to do."""

    text: str


@dataclass(frozen=True)
class ToolCallRequest:
    """A well-formed call. `recipient` is `functions.<identifier>`, `browser.<fn>` or `python`.

    `arguments` is the raw text (JSON for functions and the browser, code for python);
    `parsed` holds the decoded JSON object where one is expected.
    """

    recipient: str
    arguments: str
    channel: str
    content_type: str | None
    parsed: dict[str, object] | None

    @property
    def function(self) -> str | None:
        """The identifier within `functions`, or None for built-in tools."""
        return self.recipient.removeprefix("functions.") if self.recipient.startswith("functions.") else None


@dataclass(frozen=True)
class ParseFault:
    """Output the host cannot act on, explained for the model.

    `reply_as` is who the explanation comes from when it is rendered back (the tool the model
    tried to call, when that much is known), `text` is what the model reads, and `raw` is the
    offending output for logs and bug reports.
    """

    kind: Literal[
        "malformed_header",
        "missing_start",
        "doubled_channel",
        "bad_name",
        "invalid_json",
        "unknown_tool",
        "analysis_call",
        "truncated",
        "unterminated_call",
        "call_without_recipient",
    ]
    text: str
    raw: str
    reply_as: str | None = None
    channel: str = "commentary"


ParseEvent = OutputReasoning | OutputText | PreambleDelta | ToolCallRequest | ParseFault


class HarmonyStreamParser:
    """Feeds generated tokens to Harmony's streaming parser and turns them into `ParseEvent`s.

    `done` becomes true at `<|return|>` or `<|call|>`, or at the first fault: after a fault the
    rest of the generation means nothing and the caller should stop generating. `stop_reason`
    says which. `messages` are the well-formed messages parsed so far, and `clean_token_count`
    how many generated tokens they span. `faulted_call` is the call a fault is about when Harmony
    parsed it whole and named a plausible tool (unknown tool, bad JSON, analysis channel, missing
    `<|call|>`): it ends at `token_count`, and `ParseFault.reply_as` is its recipient.
    `TokenLog.append_fault` uses these to keep the prompt well-formed after a fault.
    """

    def __init__(
        self,
        known_functions: Collection[str],
        *,
        browser: bool = False,
        python: bool = False,
        encoding: HarmonyEncoding | None = None,
    ) -> None:
        self.encoding = encoding or harmony_encoding()
        self.known_functions = frozenset(known_functions)
        self.browser = browser
        self.python = python
        self._parser = StreamableParser(self.encoding, Role.ASSISTANT, strict=False)
        self._tokens: list[int] = []
        self._message_count = 0
        self.clean_token_count = 0
        self.stop_reason: Literal["return", "call", "fault", "eos"] | None = None
        self.messages: list[Message] = []
        self.last_call: ToolCallRequest | None = None
        self.last_fault: ParseFault | None = None
        self.faulted_call: Message | None = None

    @property
    def done(self) -> bool:
        return self.stop_reason is not None

    @property
    def token_count(self) -> int:
        """How many tokens were fed before the parser stopped (through the fault, when there is one)."""
        return len(self._tokens)

    def feed(self, token: int) -> list[ParseEvent]:
        """Parse one generated token; returns the events it completes (often none)."""
        if self.done:
            return []
        self._tokens.append(token)
        try:
            self._parser.process(token)
        except Exception as exc:  # noqa: BLE001 - the Rust parser raises a bare HarmonyError
            return [self._fault_from_error(str(exc))]
        events: list[ParseEvent] = []
        delta = self._parser.last_content_delta  # only ever set inside a message's content
        if delta:
            event = self._route_delta(delta)
            if event is not None:
                events.append(event)
        if token not in _MESSAGE_ENDS:
            return events
        # Only these tokens complete a message; `messages` re-serialises all of them, so ask rarely.
        messages = self._parser.messages
        for message in messages[self._message_count :]:
            checked = self._check_message(message)
            if checked is not None:
                events.append(checked)
            if isinstance(checked, ParseFault):
                self.stop_reason = "fault"
                self.last_fault = checked
                if checked.reply_as is not None and checked.reply_as == message.recipient:
                    self.faulted_call = message  # complete, and a tool can answer it
                return events
            if isinstance(checked, ToolCallRequest):
                if token != CALL_TOKEN or self.last_call is not None:
                    fault = ParseFault(
                        "unterminated_call",
                        f"Your call to {checked.recipient} did not end with "
                        "<|call|>, so it was not executed. End every tool call with <|call|> and "
                        "wait for its result before going on.",
                        self._render_raw(message),
                        reply_as=checked.recipient,
                        channel=checked.channel,
                    )
                    self.stop_reason, self.last_fault, self.faulted_call = "fault", fault, message
                    return [*events[:-1], fault]
                self.last_call = checked
            elif token == CALL_TOKEN and message is messages[-1]:
                fault = ParseFault(
                    "call_without_recipient",
                    "Your last message ended with <|call|> but named no tool, so nothing was executed. A tool "
                    "call names its tool in the header: <|channel|>commentary to=functions.NAME "
                    "<|constrain|>json<|message|>{...}<|call|>.",
                    self._render_raw(message),
                    channel=message.channel or "commentary",
                )
                self.stop_reason, self.last_fault = "fault", fault
                return [*events, fault]
            self.messages.append(message)
            self.clean_token_count = len(self._tokens)
        self._message_count = len(messages)
        if token == RETURN_TOKEN:
            self.stop_reason = "return"
        elif token == CALL_TOKEN:
            self.stop_reason = "call"
        return events

    def finish(self) -> list[ParseEvent]:
        """The generation ended without a stop token (length limit, end of stream)."""
        if self.done:
            return []
        self.stop_reason = "eos"
        pending = self._parser.current_recipient
        if pending is not None or (self._parser.state is not StreamState.EXPECT_START and self._tokens):
            target = f" to {pending}" if pending else ""
            text = self.encoding.decode(self._tokens[self.clean_token_count :])
            self.last_fault = ParseFault(
                "truncated",
                f"Your last message{target} was cut off before it ended; nothing was executed. "
                "Send it again, complete.",
                text,
                reply_as=_reply_as(pending),
            )
            return [self.last_fault]
        return []

    # -- routing --------------------------------------------------------------------------

    def _route_delta(self, delta: str) -> ParseEvent | None:
        channel, recipient = self._parser.current_channel, self._parser.current_recipient
        if recipient is not None:
            return None  # arguments are reported whole, once the call is complete and checked
        if channel == "analysis":
            return OutputReasoning(delta)
        if channel == "final":
            return OutputText(delta)
        if channel == "commentary":
            return PreambleDelta(delta)
        return None  # an unknown channel is reported when its message completes

    def _check_message(self, message: Message) -> ToolCallRequest | ParseFault | None:
        text = "".join(getattr(part, "text", "") for part in message.content)
        channel = message.channel or ""
        recipient = message.recipient
        raw = self._render_raw(message)
        if "<|" in channel or (recipient is not None and "<|" in recipient):
            return _doubled_channel(raw)
        if channel not in ("analysis", "commentary", "final"):
            return ParseFault(
                "malformed_header",
                f"Your last message used the channel {channel!r}; the valid "
                "channels are analysis, commentary and final.",
                raw,
            )
        if recipient is None or recipient == "assistant":
            return None  # its text was already streamed as deltas
        return self._check_call(recipient, text, channel, message.content_type, raw)

    def _check_call(
        self, recipient: str, text: str, channel: str, content_type: str | None, raw: str
    ) -> ToolCallRequest | ParseFault:
        content_type = content_type.replace("<|constrain|>", "").strip() if content_type else None
        if recipient.startswith("functions."):
            name = recipient.removeprefix("functions.")
            if not _IDENTIFIER.match(name):
                return ParseFault(
                    "bad_name",
                    f"{recipient!r} is not a valid tool name. Tool names have no spaces "
                    f"or punctuation; choose one of: {self._listing()}.",
                    raw,
                )
            if name not in self.known_functions:
                return ParseFault(
                    "unknown_tool",
                    f"There is no tool named {recipient!r}. Available tools: {self._listing()}.",
                    raw,
                    reply_as=recipient,
                )
            if channel == "analysis":
                return ParseFault(
                    "analysis_call",
                    f"Calls to {recipient} must go to the commentary channel, not "
                    "analysis; nothing was executed. Send the call again on commentary.",
                    raw,
                    reply_as=recipient,
                    channel="analysis",
                )
            return self._with_json(recipient, text, channel, content_type, raw)
        if recipient in BROWSER_FUNCTIONS and self.browser:
            return self._with_json(recipient, text, channel, content_type, raw)
        if recipient == "python" and self.python:
            return ToolCallRequest(recipient, text, channel, content_type, None)
        if " " in recipient.strip():
            return ParseFault(
                "bad_name", f"{recipient!r} is not a valid tool name; choose one of: {self._listing()}.", raw
            )
        return ParseFault(
            "unknown_tool",
            f"There is no tool named {recipient!r}. Available tools: {self._listing()}.",
            raw,
            reply_as=_reply_as(recipient),
            channel=channel,
        )

    def _with_json(
        self, recipient: str, text: str, channel: str, content_type: str | None, raw: str
    ) -> ToolCallRequest | ParseFault:
        try:
            parsed = json.loads(text) if text.strip() else {}
        except json.JSONDecodeError as exc:
            return ParseFault(
                "invalid_json",
                f"The arguments for {recipient} are not valid JSON ({exc.msg} at "
                f"line {exc.lineno} column {exc.colno}); nothing was executed. Send the call again "
                "with a JSON object.",
                raw,
                reply_as=recipient,
                channel=channel,
            )
        if not isinstance(parsed, dict):
            return ParseFault(
                "invalid_json",
                f"The arguments for {recipient} must be a JSON object, not "
                f"{type(parsed).__name__}; nothing was executed.",
                raw,
                reply_as=recipient,
                channel=channel,
            )
        return ToolCallRequest(recipient, text, channel, content_type, parsed)

    def _fault_from_error(self, error: str) -> ParseFault:
        fault = self._classify_error(error)
        self.stop_reason = "fault"
        self.last_fault = fault
        return fault

    def _classify_error(self, error: str) -> ParseFault:
        raw = self.encoding.decode(self._tokens[self.clean_token_count :])
        if "expecting start token" in error:
            return ParseFault(
                "missing_start",
                "Your output was missing <|start|>assistant between two messages, "
                "so it was not understood after the first message. Begin every message with "
                "<|start|>assistant.",
                raw,
            )
        header = raw.partition("<|message|>")[0]
        if header.count("<|channel|>") > 1:  # after `<|start|>` Harmony reads the rest as the role and fails there
            return _doubled_channel(raw)
        recipient = _recipient_in(raw)
        if "remaining in message header" in error:
            if recipient is not None and raw.count(f"to={recipient}") > 1:
                return ParseFault(
                    "malformed_header",
                    f"Your call header named the recipient twice ('to={recipient}'"
                    " before and after <|channel|>); nothing was executed. Name it once, after the "
                    "channel.",
                    raw,
                    reply_as=_reply_as(recipient),
                )
            return ParseFault(
                "bad_name",
                f"The header of your last message could not be read: {error}. Tool names "
                f"have no spaces; choose one of: {self._listing()}.",
                raw,
            )
        return ParseFault(
            "malformed_header",
            f"Your last message could not be parsed ({error}); nothing was executed.",
            raw,
            reply_as=_reply_as(recipient),
        )

    def _listing(self) -> str:
        names = [f"functions.{name}" for name in sorted(self.known_functions)]
        names += list(BROWSER_FUNCTIONS) if self.browser else []
        names += ["python"] if self.python else []
        shown = ", ".join(names[:40]) + (f" and {len(names) - 40} more" if len(names) > 40 else "")
        return shown or "none (answer without tools)"

    def _render_raw(self, message: Message) -> str:
        try:
            return str(self.encoding.decode(self.encoding.render(message)))
        except Exception:  # noqa: BLE001 - a message too malformed to re-render is shown as parsed
            return str(message.to_json())


def _doubled_channel(raw: str) -> ParseFault:
    return ParseFault(
        "doubled_channel",
        "Your last message had two <|channel|> markers in its header, so "
        "it was not understood. Use exactly one channel per message.",
        raw,
    )


def _recipient_in(raw: str) -> str | None:
    match = re.search(r"to=([^\s<]+)", raw)
    return match.group(1) if match else None


def _reply_as(recipient: str | None) -> str | None:
    """A recipient usable as the author of the reply: only a plausible tool name qualifies."""
    if recipient is None:
        return None
    return recipient if re.match(r"^(functions\.[A-Za-z0-9_]+|browser\.[a-z]+|python)$", recipient) else None
