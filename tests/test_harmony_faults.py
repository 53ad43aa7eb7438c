"""After a parse fault the token log is still a well-formed Harmony conversation, checked token by token.

Every fault seen in the field (`FAULTS`) is generated as the agent loop does it (tokens fed until the
parser stops), appended with `TokenLog.append_fault`, and the whole log is then walked token by token
and parsed back with openai_harmony itself.
"""

from __future__ import annotations

import re

import pytest
from openai_harmony import Message, Role

from mcp_host.prompt import (
    HarmonyOptions,
    HarmonyRenderer,
    HarmonyStreamParser,
    ParseFault,
    TokenLog,
    harmony_encoding,
    tool_call_message,
    tool_result_message,
    user_message,
)
from tests.test_harmony_parse import FAULTS, FUNCTIONS, tokens

START, END, MESSAGE, CHANNEL, CONSTRAIN, RETURN, CALL = 200006, 200007, 200008, 200005, 200003, 200002, 200012
ENDS = {END, CALL, RETURN}
AUTHOR = re.compile(r"^(system|developer|user|assistant|functions\.\w+|browser\.\w+|python)( to=\S+)?$")
REASONING = "<|channel|>analysis<|message|>The user wants the time.<|end|><|start|>assistant"
OPTIONS = HarmonyOptions(start_date="2025-06-01")


@pytest.fixture(scope="module")
def renderer() -> HarmonyRenderer:
    return HarmonyRenderer()


def generate(text: str) -> tuple[HarmonyStreamParser, list[int]]:
    """What the agent loop collects: tokens until the parser is done, then `finish()` at the end of the stream."""
    parser = HarmonyStreamParser(FUNCTIONS)
    generated: list[int] = []
    for token in tokens(text):
        generated.append(token)
        parser.feed(token)
        if parser.done:
            break
    parser.finish()
    return parser, generated


def new_log(renderer: HarmonyRenderer, earlier_round: bool) -> tuple[TokenLog, list[Message]]:
    """A log ready for generation: a fresh turn, or one that already ran a tool."""
    history = [user_message("What time is it in Oslo?")]
    log = TokenLog(renderer)
    log.start_turn(renderer.render_prompt(OPTIONS, [], history))
    if earlier_round:
        call = '<|channel|>commentary to=functions.weather__forecast <|constrain|>json<|message|>{"city": "Oslo"}'
        log.append_generated(tokens(call + "<|call|>"))
        result = tool_result_message("functions.weather__forecast", "Sunny, 21 °C")
        log.append_tool_result(result)
        history += [tool_call_message("functions.weather__forecast", '{"city": "Oslo"}'), result]
    return log, history


def assert_well_formed(renderer: HarmonyRenderer, log: list[int]) -> list[Message]:
    """Walk the log token by token; return what openai_harmony parses back from it."""
    encoding = renderer.encoding
    assert log[-2:] == renderer.assistant_start(), encoding.decode(log[-20:])
    body = log[:-2]
    index = 0
    while index < len(body):
        assert body[index] == START, f"expected <|start|> at {index}: {encoding.decode(body[index : index + 20])!r}"
        message = body.index(MESSAGE, index)
        header = body[index + 1 : message]
        assert header, "<|start|> followed directly by <|message|>"
        assert not set(header) & {START, *ENDS}, f"a header runs into another message: {encoding.decode(header)!r}"
        assert header.count(CHANNEL) <= 1 and set(filter(encoding.is_special_token, header)) <= {CHANNEL, CONSTRAIN}
        author = encoding.decode(header).split("<|channel|>")[0].split("<|constrain|>")[0].strip()
        assert AUTHOR.match(author), f"not an author: {author!r}"
        end = next((i for i in range(message + 1, len(body)) if encoding.is_special_token(body[i])), len(body))
        assert end < len(body) and body[end] in ENDS, f"message not closed: {encoding.decode(body[index:end])!r}"
        index = end + 1
    return list(encoding.parse_messages_from_completion_tokens(body, None, strict=True))


def assert_reply_agrees(parsed: list[Message]) -> None:
    """The fault's reply answers a call present in the log, or comes from the system when no call is open."""
    *before, reply = parsed
    previous = before[-1]
    if reply.author.role == Role.TOOL:
        assert previous.author.role == Role.ASSISTANT
        assert (previous.recipient, previous.channel) == (reply.author.name, reply.channel)
        assert reply.recipient == "assistant"
    else:
        assert reply.author.role == Role.SYSTEM
        open_call = previous.author.role == Role.ASSISTANT and previous.recipient not in (None, "assistant")
        assert not open_call, previous


def dicts(messages: list[Message]) -> list[dict[str, object]]:
    return [message.to_dict() for message in messages]


def text_of(message: Message) -> str:
    return "".join(getattr(part, "text", "") for part in message.content)


@pytest.mark.parametrize("earlier_round", [False, True], ids=["first_round", "after_a_tool_round"])
@pytest.mark.parametrize("after_reasoning", [False, True], ids=["only_the_bad_message", "after_reasoning"])
@pytest.mark.parametrize(("case", "text", "kind", "fragment", "reply_as"), FAULTS, ids=[f[0] for f in FAULTS])
def test_the_log_stays_well_formed_after_each_fault(
    renderer: HarmonyRenderer,
    case: str,
    text: str,
    kind: str,
    fragment: str,
    reply_as: str | None,
    after_reasoning: bool,
    earlier_round: bool,
) -> None:
    log, history = new_log(renderer, earlier_round)
    prompt = list(log.tokens)
    parser, generated = generate(REASONING + text if after_reasoning else text)
    fault = parser.last_fault
    assert isinstance(fault, ParseFault) and fault.kind == kind

    added = log.append_fault(generated, parser)

    parsed = assert_well_formed(renderer, log.tokens)
    # The log is the prompt (less its last `<|start|>assistant` when that opened the bad message) plus the messages.
    assert dicts(parsed) == dicts(assert_well_formed(renderer, prompt) + added)
    # ... and the history the caller keeps says the same, once re-rendered at the next turn.
    assert dicts(parsed) == dicts(assert_well_formed(renderer, renderer.render_prompt(OPTIONS, [], history + added)))
    assert_reply_agrees(parsed)
    assert fragment in text_of(added[-1])
    assert not after_reasoning or added[0].channel == "analysis"
    kept_call = added[-1].author.role == Role.TOOL
    assert kept_call == (parser.faulted_call is not None)
    if kept_call:  # the model sees its own call, token for token (a `<|return|>` closes it as `<|end|>`)
        assert reply_as is not None and added[-1].author.name == reply_as
        generated_call = generated[: parser.token_count]
        if generated_call[-1] == RETURN:
            generated_call[-1] = END
        assert log.tokens[len(prompt) : len(prompt) + len(generated_call)] == generated_call
    else:  # the bad message is gone, its `<|start|>assistant` included, and the system quotes it whole
        assert log.tokens[: len(prompt) - 2] == prompt[:-2]
        quoted = renderer.encoding.decode(generated[parser.clean_token_count :])
        opened = "" if after_reasoning or case == "missing_start" else "<|start|>assistant"
        assert text_of(added[-1]).endswith(f"\n{opened}{quoted}")


def test_a_generation_that_was_only_a_bad_call_leaves_no_dangling_header(renderer: HarmonyRenderer) -> None:
    """The bug this guards: `…<|start|>assistant<|start|>functions.x to=assistant…` in the prompt."""
    log, _ = new_log(renderer, earlier_round=False)
    prompt = list(log.tokens)
    parser, generated = generate(
        " to=functions.time__now<|channel|>commentary to=functions.time__now <|constrain|>json<|message|>{}<|call|>"
    )
    added = log.append_fault(generated, parser)
    assert renderer.encoding.decode(log.tokens).endswith(
        "What time is it in Oslo?<|end|>"
        "<|start|>system<|message|>Your call header named the recipient twice ('to=functions.time__now' before "
        "and after <|channel|>); nothing was executed. Name it once, after the channel.\n\n"
        "What you wrote, which is not kept in the conversation:\n"
        "<|start|>assistant to=functions.time__now<|channel|>commentary to=functions.time__now "
        "<|constrain|>json<|message|>"
        "<|end|><|start|>assistant"
    )
    # The quote is text: `<|channel|>` in it is not the special token.
    system_start = len(prompt) - 2
    quoted = log.tokens[system_start + 3 : -3]
    assert CHANNEL not in quoted and START not in quoted
    assert [m.author.role for m in added] == [Role.SYSTEM]


def test_a_generation_that_was_only_a_call_to_an_unknown_tool_keeps_it_for_its_reply(
    renderer: HarmonyRenderer,
) -> None:
    log, _ = new_log(renderer, earlier_round=False)
    prompt = list(log.tokens)
    parser, generated = generate(
        "<|channel|>commentary to=functions.stock_price <|constrain|>json<|message|>{}<|call|>"
    )
    added = log.append_fault(generated, parser)
    assert renderer.encoding.decode(log.tokens[len(prompt) - 2 :]) == (
        "<|start|>assistant<|channel|>commentary to=functions.stock_price <|constrain|>json<|message|>{}<|call|>"
        "<|start|>functions.stock_price to=assistant<|channel|>commentary<|message|>There is no tool named "
        "'functions.stock_price'. Available tools: functions.time__now, functions.weather__forecast.<|end|>"
        "<|start|>assistant"
    )
    assert [(m.author.role, m.recipient) for m in added] == [
        (Role.ASSISTANT, "functions.stock_price"),
        (Role.TOOL, "assistant"),
    ]


def test_a_long_runaway_output_is_quoted_by_its_ends(renderer: HarmonyRenderer) -> None:
    log, _ = new_log(renderer, earlier_round=False)
    parser, generated = generate("<|channel|>commentary to=functions.weather__forecast<|message|>" + "x" * 20_000)
    (added,) = log.append_fault(generated, parser)
    text = text_of(added)
    assert parser.last_fault is not None and parser.last_fault.kind == "truncated"
    assert len(text) < 2_500 and "characters …]" in text and text.endswith("xxx")
    assert_well_formed(renderer, log.tokens)


def test_misuse_is_an_error(renderer: HarmonyRenderer) -> None:
    log, _ = new_log(renderer, earlier_round=False)
    parser, generated = generate("<|channel|>final<|message|>It is noon.<|return|>")
    with pytest.raises(ValueError, match="stopped at a fault"):
        log.append_fault(generated, parser)
    parser, generated = generate("<|channel|>commentary<|channel|>analysis<|message|>x<|end|>")
    with pytest.raises(ValueError, match="the parser was fed"):
        log.append_fault(generated[:-1], parser)
    log.append_generated(tokens("<|channel|>final<|message|>Hi<|end|>"))
    with pytest.raises(ValueError, match="does not end in <\\|start\\|>assistant"):
        log.append_fault(generated, parser)


def test_a_call_token_ending_a_message_without_a_recipient_is_a_fault() -> None:
    """A server that streamed `<|message|>` as text, or a model that forgot the recipient: nothing runs, it is said."""
    encoding = harmony_encoding()
    parser = HarmonyStreamParser({"fx__add"})
    events = []
    for token in encoding.encode('<|channel|>commentary<|message|>{"a": 1}<|call|>', allowed_special="all"):
        events += parser.feed(token)
    assert parser.stop_reason == "fault" and parser.last_call is None
    (fault,) = [e for e in events if isinstance(e, ParseFault)]
    assert fault.kind == "call_without_recipient" and "named no tool" in fault.text
