"""The whole loop with a real MCP server and scripted gpt-oss outputs written as real Harmony token sequences."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

import anyio
import pytest

from mcp_host.agent import (
    ApprovalAnswer,
    ApprovalRequired,
    ChatOptions,
    ErrorEvent,
    Event,
    MessageDelta,
    ToolCallCreated,
    ToolCallResult,
    TurnCompleted,
)
from mcp_host.agent.chat import Chat
from mcp_host.backends import RecordedGeneration, ReplayBackend
from mcp_host.config.approvals import ApprovalStore, approvals_path
from mcp_host.host import Host
from mcp_host.prompt import harmony_encoding
from tests.conftest import fixture_entry, write_config

pytestmark = pytest.mark.anyio

ANSWER = "<|channel|>final<|message|>{text}<|return|>"


def call(tool: str, arguments: str, channel: str = "commentary") -> str:
    return (
        f"<|channel|>analysis<|message|>I should use {tool}.<|end|><|start|>assistant<|channel|>{channel} "
        f"to=functions.{tool} <|constrain|>json<|message|>{arguments}<|call|>"
    )


def script(*outputs: str) -> ReplayBackend:
    encoding = harmony_encoding()
    return ReplayBackend(
        [RecordedGeneration([], list(encoding.encode(text, allowed_special="all")), "stop") for text in outputs]
    )


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[Host]:
    config = write_config(tmp_path / "mcp.json", {"fx": fixture_entry()})
    async with Host(config, settings_path=tmp_path / "settings.toml", audit_path=tmp_path / "audit.jsonl") as running:
        await running.wait_settled()
        yield running


async def run_turn(chat: Chat, text: str, answers: Sequence[ApprovalAnswer] = ()) -> list[Event]:
    pending = list(answers)
    events: list[Event] = []
    async for event in chat.send(text):
        events.append(event)
        if isinstance(event, ApprovalRequired):
            chat.answer(event.call_id, pending.pop(0))
    return events


T = TypeVar("T")


def of(kind: type[T], events: list[Event]) -> list[T]:
    return [e for e in events if isinstance(e, kind)]


async def test_calls_a_tool_reads_the_result_and_answers(host: Host, tmp_path: Path) -> None:
    backend = script(call("fx__add", '{"a": 2, "b": 3}'), ANSWER.format(text="2 + 3 = 5."))
    chat = host.chat(backend)
    events = await run_turn(chat, "What is 2 + 3?", [ApprovalAnswer("allow")])
    (created,) = of(ToolCallCreated, events)
    assert (created.tool, created.arguments) == ("fx.add", {"a": 2, "b": 3})
    (result,) = of(ToolCallResult, events)
    assert (result.text, result.is_error) == ("5", False)  # the real server computed it
    assert "".join(e.text for e in of(MessageDelta, events)) == "2 + 3 = 5."
    (done,) = of(TurnCompleted, events)
    assert done.stop_reason == "answered" and done.stats.rounds == 2 and done.stats.tool_calls == 1
    # Round two's prompt is round one's plus what the model said plus the result: the cache is reused.
    first, second = backend.prompts
    assert second[: len(first)] == first and done.stats.prompt_tokens_reused >= len(first)
    assert "<|start|>functions.fx__add to=assistant<|channel|>commentary<|message|>5<|end|>" in (
        harmony_encoding().decode(second)
    )
    audit = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [entry["event"] for entry in audit] == ["decision", "approval", "call"]
    assert audit[2]["argument_keys"] == ["a", "b"] and "2" not in json.dumps(audit[2]["argument_keys"])


@pytest.mark.parametrize(
    ("bad_output", "kind", "told"),
    [
        (call("fx__add", '{"a": 1, "b": 2}', channel="analysis"), "analysis_call", "must go to the commentary"),
        (call("fx__add", '{"a": 1, b: 2}'), "invalid_json", "not valid JSON"),
        (call("fx__stock_price", "{}"), "unknown_tool", "There is no tool named 'functions.fx__stock_price'"),
    ],
)
async def test_bad_model_output_is_told_to_the_model_and_the_turn_goes_on(
    host: Host, bad_output: str, kind: str, told: str
) -> None:
    backend = script(bad_output, ANSWER.format(text="Sorry, done."))
    events = await run_turn(host.chat(backend), "Add 1 and 2")
    (error,) = of(ErrorEvent, events)
    assert error.kind == f"model_output.{kind}" and told in error.message
    assert not of(ToolCallCreated, events)  # nothing was executed
    assert told in harmony_encoding().decode(backend.prompts[1])  # the model reads it next round
    assert of(TurnCompleted, events)[0].stop_reason == "answered"


async def test_a_model_repeating_a_call_forever_is_told_and_stopped(host: Host) -> None:
    backend = script(*[call("fx__echo", '{"text": "again"}')] * 5)
    chat = host.chat(backend, ChatOptions(max_rounds=5, repeat_limit=2))
    events = await run_turn(chat, "loop", [ApprovalAnswer("always")])
    results = of(ToolCallResult, events)
    assert [r.is_error for r in results] == [False, False, True, True]
    assert "You have made this exact call 2 times" in results[2].text
    assert "used every tool round" in harmony_encoding().decode(backend.prompts[-1])
    assert of(TurnCompleted, events)[0].stop_reason == "max_rounds"


async def test_every_approval_answer(host: Host, tmp_path: Path) -> None:
    outputs = [call("fx__add", '{"a": 1, "b": 1}'), ANSWER.format(text="ok")]
    denied = await run_turn(host.chat(script(*outputs)), "x", [ApprovalAnswer("deny", reason="not now")])
    assert of(ToolCallResult, denied)[0].text == "Error: The user denied this call: not now"
    edited = await run_turn(host.chat(script(*outputs)), "x", [ApprovalAnswer("allow", arguments={"a": 40, "b": 2})])
    assert of(ToolCallResult, edited)[0].text == "42"
    once = await run_turn(host.chat(script(*outputs, *outputs)), "x", [ApprovalAnswer("allow")])
    assert of(ApprovalRequired, once)[0].reason == "the server did not describe what it does (no annotations)"

    always = host.chat(script(*outputs, *outputs))
    await run_turn(always, "x", [ApprovalAnswer("always")])
    second = await run_turn(always, "again")  # no answer needed now
    assert not of(ApprovalRequired, second) and of(ToolCallResult, second)[0].text == "2"
    saved = ApprovalStore(approvals_path(tmp_path / "settings.toml")).entries()
    assert [(a.server, a.tool) for a in saved] == [("fx", "add")]


async def test_always_persists_across_restarts_and_a_changed_tool_asks_again(host: Host, tmp_path: Path) -> None:
    outputs = [call("fx__add", '{"a": 1, "b": 1}'), ANSWER.format(text="ok")]
    await run_turn(host.chat(script(*outputs)), "x", [ApprovalAnswer("always")])
    config = tmp_path / "mcp.json"
    async with Host(config, settings_path=tmp_path / "settings.toml") as restarted:
        await restarted.wait_settled()
        events = await run_turn(restarted.chat(script(*outputs)), "x")
        assert not of(ApprovalRequired, events)
        # The same tool with a different description is a different tool: it asks again.
        spec = restarted.registry.get("fx.add")
        schema = {
            **spec.original_schema,
            "properties": {**spec.original_schema["properties"], "c": {"type": "integer"}},
        }
        restarted.registry.replace_server(
            "fx",
            [
                replace(s, original_schema=schema) if s.tool == "add" else s
                for s in restarted.registry.server_tools("fx")
            ],
        )
        assert spec.original_schema != restarted.registry.get("fx.add").original_schema
        events = await run_turn(restarted.chat(script(*outputs)), "x", [ApprovalAnswer("allow")])
        assert of(ApprovalRequired, events)


async def test_long_results_are_truncated_with_a_marker(host: Host) -> None:
    big = "x" * 500
    backend = script(call("fx__echo", json.dumps({"text": big})), ANSWER.format(text="ok"))
    events = await run_turn(host.chat(backend, ChatOptions(output_limit_chars=100)), "x", [ApprovalAnswer("allow")])
    (result,) = of(ToolCallResult, events)
    assert result.truncated_chars == 400
    assert result.text.endswith("[… output truncated: 400 of 500 characters cut]")


async def test_cancelling_a_turn_stops_the_tool_call_and_tells_the_server(host: Host, tmp_path: Path) -> None:
    marker = tmp_path / "cancelled.txt"
    arguments = json.dumps({"seconds": 30, "marker": str(marker)})
    backend = script(call("fx__sleep_marked", arguments), ANSWER.format(text="never"))
    chat = host.chat(backend)
    started = time.perf_counter()
    with anyio.move_on_after(3) as scope:
        async for event in chat.send("sleep"):
            if isinstance(event, ApprovalRequired):
                chat.answer(event.call_id, ApprovalAnswer("allow"))
    assert scope.cancelled_caught and time.perf_counter() - started < 5
    assert not chat.busy
    with anyio.fail_after(5):  # the MCP cancellation reached the server, which stopped the tool
        while not marker.exists():
            await anyio.sleep(0.05)
    assert marker.read_text() == "cancelled"
    events = await run_turn(host.chat(script(ANSWER.format(text="still fine"))), "next")
    assert of(TurnCompleted, events)[0].stop_reason == "answered"


async def test_act_runs_a_turn_with_lm_studio_style_callbacks(host: Host) -> None:
    backend = script(call("fx__add", '{"a": 4, "b": 5}'), ANSWER.format(text="It is 9."))
    seen: dict[str, list[object]] = {"fragments": [], "messages": [], "starts": [], "ends": [], "approvals": []}

    async def approve(event: ApprovalRequired) -> ApprovalAnswer:
        seen["approvals"].append(event.tool)
        return ApprovalAnswer("allow")

    done = await host.chat(backend).act(
        "What is 4 + 5?",
        on_fragment=seen["fragments"].append,
        on_message=seen["messages"].append,
        on_round_start=seen["starts"].append,
        on_round_end=seen["ends"].append,
        on_approval=approve,
    )
    assert done.stop_reason == "answered" and done.answer == "It is 9."
    assert seen["messages"] == ["It is 9."] and "".join(map(str, seen["fragments"])) == "It is 9."
    assert seen["approvals"] == ["fx.add"] and seen["starts"] == [0, 1] and seen["ends"] == [0, 1]
    denied = await host.chat(script(call("fx__add", '{"a": 1}'), ANSWER.format(text="ok"))).act("x")
    assert denied.stop_reason == "answered"  # without on_approval, the call is denied and the model goes on


async def test_an_always_answer_holds_for_every_chat_of_the_host(host: Host, tmp_path: Path) -> None:
    outputs = [call("fx__add", '{"a": 1, "b": 1}'), ANSWER.format(text="ok")]
    await run_turn(host.chat(script(*outputs)), "x", [ApprovalAnswer("always")])
    events = await run_turn(host.chat(script(*outputs)), "x")  # another chat: no question
    assert not of(ApprovalRequired, events)
    await run_turn(
        host.chat(script(call("fx__echo", '{"text": "t"}'), ANSWER.format(text="ok"))), "x", [ApprovalAnswer("always")]
    )
    saved = ApprovalStore(approvals_path(tmp_path / "settings.toml")).entries()
    assert sorted((a.server, a.tool) for a in saved) == [("fx", "add"), ("fx", "echo")]  # both kept
