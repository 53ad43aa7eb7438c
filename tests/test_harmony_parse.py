"""The streaming parser on real Harmony token sequences, well-formed and as seen broken in the field."""

from __future__ import annotations

import pytest

from mcp_host.backends.base import OutputReasoning, OutputText
from mcp_host.prompt import (
    HarmonyRenderer,
    HarmonyStreamParser,
    ParseEvent,
    ParseFault,
    PreambleDelta,
    TokenLog,
    ToolCallRequest,
    harmony_encoding,
)

FUNCTIONS = {"weather__forecast", "time__now"}


def tokens(text: str) -> list[int]:
    return list(harmony_encoding().encode(text, allowed_special="all"))


def parse(text: str, **builtins: bool) -> tuple[HarmonyStreamParser, list[ParseEvent]]:
    parser = HarmonyStreamParser(FUNCTIONS, **builtins)
    events: list[ParseEvent] = []
    for token in tokens(text):
        events.extend(parser.feed(token))
        if parser.done:
            break
    events.extend(parser.finish())
    return parser, events


def test_reasoning_then_answer_streams_deltas() -> None:
    parser, events = parse(
        "<|channel|>analysis<|message|>User says hi. Reply.<|end|>"
        "<|start|>assistant<|channel|>final<|message|>Hello there!<|return|>"
    )
    reasoning = "".join(e.text for e in events if isinstance(e, OutputReasoning))
    answer = "".join(e.text for e in events if isinstance(e, OutputText))
    assert (reasoning, answer) == ("User says hi. Reply.", "Hello there!")
    assert len([e for e in events if isinstance(e, OutputText)]) > 1  # streamed, not at the end
    assert parser.stop_reason == "return" and [m.channel for m in parser.messages] == ["analysis", "final"]


def test_preamble_then_function_call() -> None:
    parser, events = parse(
        "<|channel|>commentary<|message|>Checking the forecast.<|end|>"
        "<|start|>assistant<|channel|>commentary to=functions.weather__forecast "
        '<|constrain|>json<|message|>{"city": "Oslo"}<|call|>'
    )
    assert "".join(e.text for e in events if isinstance(e, PreambleDelta)) == "Checking the forecast."
    (call,) = [e for e in events if isinstance(e, ToolCallRequest)]
    assert (call.recipient, call.function, call.parsed, call.content_type) == (
        "functions.weather__forecast",
        "weather__forecast",
        {"city": "Oslo"},
        "json",
    )
    assert parser.stop_reason == "call"


def test_recipient_in_the_role_position_is_accepted() -> None:
    _, events = parse(" to=functions.time__now<|channel|>commentary <|constrain|>json<|message|>{}<|call|>")
    assert [type(e) for e in events] == [ToolCallRequest]


def test_builtin_calls_on_the_analysis_channel_are_normal() -> None:
    _, events = parse('<|channel|>analysis to=browser.search<|message|>{"query": "mcp"}<|call|>', browser=True)
    assert isinstance(events[-1], ToolCallRequest) and events[-1].parsed == {"query": "mcp"}
    _, events = parse("<|channel|>analysis to=python code<|message|>print(2 ** 10)<|call|>", python=True)
    assert isinstance(events[-1], ToolCallRequest) and events[-1].arguments == "print(2 ** 10)"


FAULTS = [
    (
        "recipient_both_positions",
        " to=functions.time__now<|channel|>commentary to=functions.time__now <|constrain|>json<|message|>{}<|call|>",
        "malformed_header",
        "named the recipient twice",
        "functions.time__now",
    ),
    (
        "name_with_spaces",
        "<|channel|>commentary to=functions.time now <|constrain|>json<|message|>{}<|call|>",
        "bad_name",
        "Tool names have no spaces",
        None,
    ),
    (
        "missing_start",
        "<|channel|>analysis<|message|>think<|end|><|channel|>final<|message|>Hi<|return|>",
        "missing_start",
        "missing <|start|>assistant",
        None,
    ),
    (
        "doubled_channel",
        "<|channel|>commentary<|channel|>analysis<|message|>think<|end|>",
        "doubled_channel",
        "two <|channel|> markers",
        None,
    ),
    (
        "invalid_json",
        '<|channel|>commentary to=functions.weather__forecast <|constrain|>json<|message|>{"city": Oslo}<|call|>',
        "invalid_json",
        "not valid JSON (Expecting value at line 1 column 10)",
        "functions.weather__forecast",
    ),
    (
        "json_not_object",
        "<|channel|>commentary to=functions.weather__forecast <|constrain|>json<|message|>[1, 2]<|call|>",
        "invalid_json",
        "must be a JSON object",
        "functions.weather__forecast",
    ),
    (
        "unknown_tool",
        "<|channel|>commentary to=functions.stock_price <|constrain|>json<|message|>{}<|call|>",
        "unknown_tool",
        "no tool named 'functions.stock_price'. Available tools: functions.time__now, functions.weather__forecast",
        "functions.stock_price",
    ),
    (
        "unknown_tool_outside_any_namespace",
        "<|channel|>commentary to=stock_price <|constrain|>json<|message|>{}<|call|>",
        "unknown_tool",
        "no tool named 'stock_price'",
        None,
    ),
    (
        "builtin_not_enabled",
        '<|channel|>analysis to=browser.search<|message|>{"query": "x"}<|call|>',
        "unknown_tool",
        "no tool named 'browser.search'",
        "browser.search",
    ),
    (
        "function_call_on_analysis",
        "<|channel|>analysis to=functions.time__now <|constrain|>json<|message|>{}<|call|>",
        "analysis_call",
        "must go to the commentary channel",
        "functions.time__now",
    ),
    (
        "call_ended_with_end",
        "<|channel|>commentary to=functions.time__now <|constrain|>json<|message|>{}<|end|>",
        "unterminated_call",
        "did not end with <|call|>",
        "functions.time__now",
    ),
    (
        "call_ended_with_return",
        "<|channel|>commentary to=functions.time__now <|constrain|>json<|message|>{}<|return|>",
        "unterminated_call",
        "did not end with <|call|>",
        "functions.time__now",
    ),
    (
        "cut_off",
        '<|channel|>commentary to=functions.weather__forecast <|constrain|>json<|message|>{"city": "Os',
        "truncated",
        "was cut off",
        "functions.weather__forecast",
    ),
]


@pytest.mark.parametrize(("case", "text", "kind", "fragment", "reply_as"), FAULTS, ids=[f[0] for f in FAULTS])
def test_each_field_fault_becomes_a_message_for_the_model(
    case: str, text: str, kind: str, fragment: str, reply_as: str | None
) -> None:
    parser, events = parse(text)
    faults = [e for e in events if isinstance(e, ParseFault)]
    assert len(faults) == 1, events
    fault = faults[0]
    assert (fault.kind, fault.reply_as) == (kind, reply_as)
    assert fragment in fault.text
    assert fault.raw  # the offending output is kept for logs and bug reports
    assert not any(isinstance(e, ToolCallRequest) for e in events)  # nothing is executed
    assert parser.done


def test_well_formed_messages_before_a_fault_are_kept() -> None:
    parser, events = parse("<|channel|>analysis<|message|>think<|end|><|channel|>final<|message|>Hi<|return|>")
    assert isinstance(events[0], OutputReasoning) and isinstance(events[-1], ParseFault)
    assert [m.channel for m in parser.messages] == ["analysis"]
    generated = tokens("<|channel|>analysis<|message|>think<|end|>")
    assert parser.clean_token_count == len(generated)


def test_the_error_path_tells_the_model_in_the_next_round() -> None:
    """A bad call Harmony can read stays, answered by its tool; an unreadable message goes, header and all."""
    renderer = HarmonyRenderer()
    log = TokenLog(renderer)
    log.start_turn(tokens("<|start|>user<|message|>hi<|end|><|start|>assistant"))
    for text, expected in [
        (
            "<|channel|>commentary to=functions.stock_price <|constrain|>json<|message|>{}<|call|>",
            "<|start|>assistant<|channel|>commentary to=functions.stock_price <|constrain|>json<|message|>{}<|call|>"
            "<|start|>functions.stock_price to=assistant<|channel|>commentary<|message|>There is no tool named",
        ),
        (
            "<|channel|>commentary<|channel|>analysis<|message|>x<|end|>",
            "<|start|>system<|message|>Your last message had two <|channel|> markers",
        ),
    ]:
        parser, events = parse(text)
        assert isinstance(events[-1], ParseFault)
        before = len(log) - len(renderer.assistant_start())  # the round's header is in the log already
        log.append_fault(tokens(text), parser)
        appended = renderer.encoding.decode(log.tokens[before:])
        assert appended.startswith(expected) and appended.endswith("<|end|><|start|>assistant")
