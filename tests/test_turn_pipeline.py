"""The turn pipeline on the real gemma GGUF (template path) and on scripted Harmony: history, sampling, streams.

Every test bounds the tokens it generates, not the clock.
"""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from mcp_host.agent import (
    ApprovalAnswer,
    ApprovalRequired,
    ChatOptions,
    Event,
    MessageDelta,
    ToolCallResult,
    TurnCompleted,
)
from mcp_host.backends import RecordedGeneration, RecordingBackend, ReplayBackend
from mcp_host.backends.llama_cpp import LlamaCppBackend
from mcp_host.errors import ChatBusyError, ChatClosedError, UnknownApprovalError
from mcp_host.host import Host
from mcp_host.prompt import harmony_encoding
from mcp_host.prompt.harmony import HarmonyOptions
from mcp_host.tools.spec import ToolResult
from tests.conftest import fixture_entry, write_config

pytestmark = pytest.mark.anyio


def completed(events: list[Event]) -> TurnCompleted:
    (done,) = [event for event in events if isinstance(event, TurnCompleted)]
    return done


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path / "mcp.json", {"fx": fixture_entry()})


async def test_the_template_prompt_holds_the_system_prompt_and_every_earlier_message(
    gemma: LlamaCppBackend, config: Path, tmp_path: Path
) -> None:
    recording = tmp_path / "rounds.jsonl"
    options = ChatOptions(
        harmony=HarmonyOptions(instructions="Answer in one word."), max_tokens_per_round=4, temperature=0.0
    )
    async with Host(config, settings_path=tmp_path / "settings.toml") as host:
        async with host.chat(RecordingBackend(gemma, recording), options) as chat:
            assert chat.format == "template"
            chat.load_messages(
                [
                    {"role": "system", "content": "The user is called Zed."},
                    {"role": "user", "content": "Hello, I am Zed."},
                    {"role": "assistant", "content": "Hello Zed, nice to meet you."},
                ]
            )
            async with chat.turn("What is my name?") as events:
                first = [event async for event in events]
            async with chat.turn("And again?") as events:
                second = [event async for event in events]
    # Four tokens may not finish the word: a turn cut at its token limit ends ("length"), it is not asked again.
    assert {completed(first).stop_reason, completed(second).stop_reason} <= {"answered", "length"}
    prompts = [gemma.detokenize(json.loads(line)["prompt"]) for line in recording.read_text().splitlines()[1:]]
    for text in ("Answer in one word.", "The user is called Zed.", "Hello, I am Zed.", "Hello Zed, nice to meet you."):
        assert text in prompts[0] and text in prompts[1]
    assert "What is my name?" in prompts[0]
    assert completed(first).answer in prompts[1] and "And again?" in prompts[1]  # the first turn, kept


async def test_max_tokens_temperature_and_seed_are_honoured_on_the_template_path(
    gemma: LlamaCppBackend, config: Path, tmp_path: Path
) -> None:
    async def answer(**sampling: object) -> TurnCompleted:
        options = ChatOptions(max_rounds=1, **sampling)  # type: ignore[arg-type]
        async with Host(config, settings_path=tmp_path / "settings.toml") as host, host.chat(gemma, options) as chat:
            events = [event async for event in chat.send("Write a story about a cat.")]
        return completed(events)

    short = await answer(max_tokens_per_round=3, temperature=0.0)
    assert short.stats.generated_tokens == 3
    seeded = [await answer(max_tokens_per_round=12, temperature=1.5, seed=seed) for seed in (7, 7, 8, 9)]
    assert seeded[0].answer == seeded[1].answer  # the same seed samples the same tokens
    assert len({done.answer for done in seeded}) > 1  # other seeds at a high temperature differ
    greedy = [await answer(max_tokens_per_round=12, temperature=0.0, seed=seed) for seed in (1, 2)]
    assert greedy[0].answer == greedy[1].answer  # temperature 0 is greedy whatever the seed


async def test_max_tokens_is_honoured_on_the_harmony_path(config: Path, tmp_path: Path) -> None:
    encoding = harmony_encoding()
    long_answer = "<|channel|>final<|message|>" + "word " * 50 + "<|return|>"
    backend = ReplayBackend([RecordedGeneration([], list(encoding.encode(long_answer, allowed_special="all")), "stop")])
    async with Host(config, settings_path=tmp_path / "settings.toml") as host:
        async with host.chat(backend, ChatOptions(max_rounds=1, max_tokens_per_round=6)) as chat:
            events = [event async for event in chat.send("Talk.")]
    assert completed(events).stats.generated_tokens == 6


async def test_breaking_out_of_send_after_the_first_event_then_closing_the_host_raises_nothing(
    gemma: LlamaCppBackend, config: Path, tmp_path: Path
) -> None:
    options = ChatOptions(max_rounds=1, max_tokens_per_round=64, temperature=0.0)
    async with Host(config, settings_path=tmp_path / "settings.toml") as host:
        chat = host.chat(gemma, options)  # not entered: its turns run in the host's task group
        async for event in chat.send("Write a story about a cat."):
            assert isinstance(event, MessageDelta)
            break
    async with Host(config, settings_path=tmp_path / "settings.toml") as host:
        async with host.chat(gemma, options) as chat:
            async for _ in chat.send("Write a story about a dog."):
                break
            with anyio.fail_after(30):  # the abandoned turn is cancelled, and the chat takes another
                while chat.busy:
                    await anyio.sleep(0.01)
            async with chat.turn("Hello") as events:
                async for _ in events:
                    break
            assert not chat.busy
            events_list = [event async for event in chat.send("Hi")]
    assert completed(events_list).stop_reason == "answered"


async def test_events_can_be_read_from_another_task_and_a_second_turn_waits_its_turn(
    gemma: LlamaCppBackend, config: Path, tmp_path: Path
) -> None:
    options = ChatOptions(max_rounds=1, max_tokens_per_round=8, temperature=0.0)
    received: list[Event] = []
    async with Host(config, settings_path=tmp_path / "settings.toml") as host, host.chat(gemma, options) as chat:
        async with chat.turn("Say hello.") as events:
            with pytest.raises(ChatBusyError):
                async with chat.turn("Another"):
                    pass

            async def read() -> None:
                received.extend([event async for event in events])

            async with anyio.create_task_group() as tg:
                tg.start_soon(read)
    assert completed(received).stop_reason == "answered"
    with pytest.raises(ChatClosedError):
        async with chat.turn("after close"):
            pass


async def test_a_chat_leaves_no_working_directory_behind(config: Path, tmp_path: Path) -> None:
    options = ChatOptions(harmony=HarmonyOptions(python=True))
    async with Host(config, settings_path=tmp_path / "settings.toml") as host:
        async with host.chat(ReplayBackend([]), options) as chat:
            workdir = chat.natives["python"].workdir  # type: ignore[attr-defined]
            assert workdir.exists()
        assert not workdir.exists()
        unentered = host.chat(ReplayBackend([]), options)
        other = unentered.natives["python"].workdir  # type: ignore[attr-defined]
    assert not other.exists()  # closed with the host


ANSWER = "<|channel|>final<|message|>{text}<|return|>"
CALL = "<|channel|>commentary to=functions.fx__{tool} <|constrain|>json<|message|>{arguments}<|call|>"


def script(*outputs: str) -> ReplayBackend:
    encoding = harmony_encoding()
    return ReplayBackend(
        [RecordedGeneration([], list(encoding.encode(text, allowed_special="all")), "stop") for text in outputs]
    )


async def test_exceptions_of_the_body_and_host_bugs_propagate_as_themselves(config: Path, tmp_path: Path) -> None:
    async with Host(config, settings_path=tmp_path / "settings.toml") as host:
        await host.wait_settled()
        with pytest.raises(KeyError):
            async with host.chat(script(ANSWER.format(text="hi"))) as chat:
                raise KeyError("body")
        with pytest.raises(ValueError, match="body"):
            async with host.chat(script(ANSWER.format(text="hi"))) as chat, chat.turn("x"):
                raise ValueError("body")

        async def broken(name: str, arguments: dict[str, object], limit_s: float | None, asks: object) -> ToolResult:
            raise RuntimeError("a host bug")

        chat = host.chat(script(CALL.format(tool="echo", arguments='{"text": "t"}'), ANSWER.format(text="ok")))
        chat._call_tool = broken  # a bug in the host's own code, where calls are executed
        with pytest.raises(RuntimeError, match="a host bug"):
            async with chat:
                async for event in chat.send("x"):
                    if isinstance(event, ApprovalRequired):
                        chat.answer(event.call_id, ApprovalAnswer("allow"))


async def test_breaking_out_of_send_lets_the_next_turn_start_at_once(config: Path, tmp_path: Path) -> None:
    async with Host(config, settings_path=tmp_path / "settings.toml") as host:
        await host.wait_settled()
        backend = script(CALL.format(tool="add", arguments='{"a": 1, "b": 2}'), ANSWER.format(text="again"))
        async with host.chat(backend) as chat:
            async for event in chat.send("x"):
                if isinstance(event, ApprovalRequired):
                    break  # the approval is never answered: the turn must not wait for it
            events = [event async for event in chat.send("y")]
    assert completed(events).answer == "again"


async def test_only_a_pending_approval_can_be_answered(config: Path, tmp_path: Path) -> None:
    async with Host(config, settings_path=tmp_path / "settings.toml") as host:
        await host.wait_settled()
        outputs = [CALL.format(tool="add", arguments='{"a": 1, "b": 2}'), ANSWER.format(text="ok")]
        async with host.chat(script(*outputs)) as chat:
            with pytest.raises(UnknownApprovalError):
                chat.answer("call_1", ApprovalAnswer("allow"))  # asked before the call exists
            async with chat.turn("x") as events:
                async for event in events:
                    if isinstance(event, ApprovalRequired):
                        chat.answer(event.call_id, ApprovalAnswer("allow", arguments=["not", "an", "object"]))  # type: ignore[arg-type]
                        with pytest.raises(UnknownApprovalError):
                            chat.answer(event.call_id, ApprovalAnswer("allow"))  # answered twice
                    if isinstance(event, ToolCallResult):
                        assert event.is_error and "not a JSON object" in event.text


async def test_a_turn_cut_by_the_host_closing_still_ends_with_turn_completed(config: Path, tmp_path: Path) -> None:
    events: list[Event] = []
    async with Host(config, settings_path=tmp_path / "settings.toml") as host:
        await host.wait_settled()
        chat = host.chat(script(CALL.format(tool="add", arguments='{"a": 1, "b": 2}'), ANSWER.format(text="ok")))
        async for event in chat.send("x"):
            events.append(event)
            if isinstance(event, ApprovalRequired):
                await host.aclose()
    assert completed(events).stop_reason == "cancelled"
    with pytest.raises(ChatClosedError):
        host.chat(script())


async def test_an_earlier_call_with_broken_arguments_is_rendered_not_a_crash(
    gemma: LlamaCppBackend, config: Path, tmp_path: Path
) -> None:
    broken = {"id": "c1", "type": "function", "function": {"name": "fx__add", "arguments": "{bad"}}
    async with Host(config, settings_path=tmp_path / "settings.toml") as host:
        async with host.chat(gemma, ChatOptions(max_rounds=1, max_tokens_per_round=2)) as chat:
            chat.load_messages([{"role": "assistant", "content": None, "tool_calls": [broken]}])
            events = [event async for event in chat.send("q")]
    assert completed(events).stop_reason in ("answered", "length")  # two tokens: it ends, whatever they are


async def test_the_host_can_be_closed_from_another_task_while_a_turn_runs(config: Path, tmp_path: Path) -> None:
    events: list[Event] = []
    async with Host(config, settings_path=tmp_path / "settings.toml") as host:
        await host.wait_settled()
        chat = host.chat(script(CALL.format(tool="add", arguments='{"a": 1, "b": 2}'), ANSWER.format(text="ok")))

        async def read() -> None:
            async for event in chat.send("x"):
                events.append(event)

        async def close_when_asked() -> None:
            with anyio.fail_after(10):
                while not any(isinstance(event, ApprovalRequired) for event in events):
                    await anyio.sleep(0.01)
            await host.aclose()  # from a task other than the one that entered the host

        async with anyio.create_task_group() as tg:
            tg.start_soon(read)
            tg.start_soon(close_when_asked)
    assert completed(events).stop_reason == "cancelled"
    assert all(status.state.value == "stopped" for status in host.statuses())
