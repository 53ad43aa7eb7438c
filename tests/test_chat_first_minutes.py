"""The first minutes with the terminal chat, below the terminal: `/call` through the approval flow into the
conversation, slash commands that say what is wrong, a transcript answer that ends at the next speaker, a
cancelled answer kept in the conversation, and the progress lines. Real models (gemma-3-270m) and real servers."""

from __future__ import annotations

import io
import json
import shlex
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest
from prompt_toolkit import PromptSession
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document
from prompt_toolkit.input import DummyInput
from prompt_toolkit.output import DummyOutput
from rich.console import Console

from mcp_host.agent import (
    ApprovalAnswer,
    ApprovalRequired,
    Chat,
    ChatOptions,
    MessageDelta,
    ToolCallCreated,
    ToolCallResult,
    TurnCompleted,
)
from mcp_host.agent.calls import Approvals
from mcp_host.agent.events import Event, PromptProgress
from mcp_host.agent.formats.template import StopTexts
from mcp_host.backends import RecordingBackend
from mcp_host.backends.llama_cpp import LlamaCppBackend
from mcp_host.backends.replay import ReplayBackend
from mcp_host.chat_call import UserCall, example_call
from mcp_host.chat_cli import CANCELLED_NOTE, TurnView, run_turn
from mcp_host.chat_commands import ChatState, SlashCommands
from mcp_host.chat_completion import SlashCompleter
from mcp_host.chat_progress import ProgressBars
from mcp_host.host import Host
from mcp_host.model_pick import pick_model
from tests.conftest import fixture_entry, gemma_path, time_server_command, write_config

pytestmark = pytest.mark.anyio
TOKYO = '/call time.get_current_time {"timezone": "Asia/Tokyo"}'


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[Host]:
    """A host with the published time server, asking before every call (the defaults)."""
    config = write_config(
        tmp_path / "mcp.json", {"time": {"command": time_server_command(), "args": ["--local-timezone", "UTC"]}}
    )
    async with Host(config, settings_path=tmp_path / "settings.toml", plugins=False) as host:
        await host.wait_settled()
        yield host


def console_to(out: io.StringIO) -> Console:
    return Console(file=out, force_terminal=True, width=200, color_system=None)


def quiet_view(out: io.StringIO) -> TurnView:
    answers: PromptSession[str] = PromptSession(input=DummyInput(), output=DummyOutput())
    return TurnView(console_to(out), hide_reasoning=False, answers=answers)


class Commands:
    """Slash commands with their output captured per command."""

    def __init__(self, host: Host, chat: Chat) -> None:
        self.out = io.StringIO()
        self.state = ChatState(effort="low")
        self.commands = SlashCommands(host, chat, Console(file=self.out, width=300, color_system=None), self.state)

    async def run(self, line: str) -> str:
        self.out.seek(0)
        self.out.truncate()
        assert await self.commands.run(line) is None
        return " ".join(self.out.getvalue().split())

    async def call(self, line: str, decision: str = "allow") -> tuple[bool, list[Event]]:
        """`/call` as the chat runs it, the approval answered with `decision`."""
        call = await self.commands.run(line)
        assert isinstance(call, UserCall), self.out.getvalue()
        events: list[Event] = []

        async def show(event: Event, approvals: Approvals) -> None:
            events.append(event)
            if isinstance(event, ApprovalRequired):
                approvals.answer(event.call_id, ApprovalAnswer(decision))  # type: ignore[arg-type]

        return await self.commands.run_call(call, show), events


def test_stop_texts_hold_back_what_may_begin_the_next_speaker() -> None:
    cut = StopTexts(["\nUser:", "\nAssistant:"])
    assert cut.feed("Paris.") == "Paris."
    assert cut.feed("\nU") == ""  # it may be the next speaker
    assert cut.feed("nder the sea") == "\nUnder the sea"  # it was not
    assert cut.feed(".\n\nUs") == ".\n"
    assert cut.feed("er: and now") == "" and cut.stopped
    assert cut.feed("more") == "" and cut.finish() == ""
    unfinished = StopTexts(["\nUser:"])
    assert unfinished.feed("Bye\nUse") == "Bye" and unfinished.finish() == "\nUse"


async def test_a_transcript_answer_ends_at_the_next_speaker(gemma: LlamaCppBackend, tmp_path: Path) -> None:
    config = write_config(tmp_path / "mcp.json", {})
    async with Host(config, settings_path=tmp_path / "settings.toml", plugins=False) as host:
        chat = host.chat(gemma, ChatOptions(temperature=0.0, seed=7))
        assert chat.format == "template"  # gemma-3-270m has no chat template: a User/Assistant transcript
        chat.load_messages(
            [
                {"role": "user", "content": "Say one."},
                {"role": "assistant", "content": "One."},
                {"role": "user", "content": "Say two."},
                {"role": "assistant", "content": "Two."},
            ]
        )
        events = [event async for event in chat.send("Say three.")]
    (done,) = [event for event in events if isinstance(event, TurnCompleted)]
    said = "".join(event.text for event in events if isinstance(event, MessageDelta))
    assert done.stop_reason == "answered" and done.stats.generated_tokens < 30, said  # not 4,096 tokens of turns
    assert "User:" not in said and "Assistant:" not in said and said.strip() == done.answer
    assert chat.transcript()[-1] == {"role": "assistant", "content": done.answer}


async def test_call_runs_through_the_approval_flow_into_the_conversation(
    host: Host, gemma: LlamaCppBackend, tmp_path: Path
) -> None:
    recording = tmp_path / "rounds.jsonl"
    chat = host.chat(RecordingBackend(gemma, recording), ChatOptions(max_tokens_per_round=4, temperature=0.0))
    commands = Commands(host, chat)
    assert example_call(host.registry) == '/call time.get_current_time {"timezone": "America/New_York"}'

    recorded, events = await commands.call(TOKYO)
    assert recorded
    created, asked, result = events
    assert isinstance(created, ToolCallCreated) and created.tool == "time.get_current_time"
    assert isinstance(asked, ApprovalRequired) and asked.arguments == {"timezone": "Asia/Tokyo"}
    assert isinstance(result, ToolCallResult) and not result.is_error and '"timezone": "Asia/Tokyo"' in result.text
    call, answer = chat.transcript()
    assert call["role"] == "assistant" and call["tool_calls"][0]["function"] == {
        "name": "time__get_current_time",
        "arguments": '{"timezone": "Asia/Tokyo"}',
    }
    assert answer == {
        "role": "tool",
        "tool_call_id": "user_call_1",
        "name": "time__get_current_time",
        "content": result.text,
    }

    recorded, events = await commands.call(TOKYO, decision="deny")  # denied: it stays out of the conversation
    assert not recorded and isinstance(events[-1], ToolCallResult) and events[-1].is_error
    assert len(chat.transcript()) == 2

    async with chat:
        [_ async for _ in chat.send("What time is it there?")]
    prompt = gemma.detokenize(json.loads(recording.read_text().splitlines()[1])["prompt"])
    assert "Result of tool time__get_current_time:" in prompt and "Asia/Tokyo" in prompt  # the model reads it

    harmony = host.chat(ReplayBackend([]))  # gpt-oss: the call as Harmony messages
    recorded, _ = await Commands(host, harmony).call(TOKYO)
    call_message, result_message = harmony.transcript()
    assert recorded and call_message["recipient"] == "functions.time__get_current_time"
    assert result_message["name"] == "functions.time__get_current_time"


async def test_slash_commands_say_what_is_wrong(host: Host, gemma: LlamaCppBackend) -> None:
    commands = Commands(host, host.chat(gemma))
    expected = {
        "/reasoning extreme": "/reasoning: 'extreme' is not one of low, medium, high (now: low)",
        "/reasoning": "/reasoning: needs low|medium|high",
        "/reasoning high": "reasoning effort: high, which does nothing for this model: only gpt-oss (Harmony)",
        "/save": "/save: needs FILE (usage: /save FILE)",
        "/loglevel time": "/loglevel: needs LEVEL (usage: /loglevel SERVER LEVEL)",
        "/reset now": "/reset: takes no arguments",
        "/plugin maybe greet": "/plugin: 'maybe' is not on or off (usage: /plugin on|off NAME)",
        "/call": "/call needs a tool: /call SERVER.TOOL {json}",
        "/call time.get_curent_time {}": (
            "/call: no tool named 'time.get_curent_time'; did you mean time.get_current_time? (/tools lists them)"
        ),
        "/call weather.now": "/call: no tool named 'weather.now' (/tools lists them)",
        "/call time.get_current_time {timezone: Tokyo}": (
            "/call time.get_current_time: the arguments are not JSON: "
            "Expecting property name enclosed in double quotes at column 2"
        ),
        "/call time.get_current_time [1]": (
            '/call time.get_current_time: the arguments must be a JSON object, like {"timezone": "America/New_York"}'
        ),
        "/call time.get_current_time {}": (
            "/call time.get_current_time: the arguments do not fit the tool's schema: 'timezone' is a required "
            'property; for example {"timezone": "America/New_York"}'
        ),
        '/call time.get_current_time {"timezone": 9}': "9 is not of type 'string' (at timezone)",
    }
    for line, message in expected.items():
        assert message in await commands.run(line), line
    assert commands.state.effort == "high"

    harmony = Commands(host, host.chat(ReplayBackend([])))
    assert await harmony.run("/reasoning medium") == "reasoning effort: medium"

    tab = CompleteEvent(completion_requested=True)
    found = SlashCompleter(host).get_completions_async(Document("/call time.g"), tab)
    assert [completion.text async for completion in found] == ["time.get_current_time"]  # Tab completes the tool


class CancellingView(TurnView):
    """Cancels the turn at the first event `stop_at` accepts, as Ctrl-C would."""

    def __init__(self, out: io.StringIO, scope: anyio.CancelScope, stop_at: Any) -> None:
        answers: PromptSession[str] = PromptSession(input=DummyInput(), output=DummyOutput())
        super().__init__(console_to(out), hide_reasoning=False, answers=answers)
        self.scope, self.stop_at = scope, stop_at

    async def show(self, event: Any, chat: Chat, *, approvals: Approvals | None = None) -> None:
        await super().show(event, chat, approvals=approvals)
        if self.stop_at(self, event):
            self.scope.cancel()


async def test_a_cancelled_answer_stays_in_the_conversation_and_in_save(
    host: Host, gemma: LlamaCppBackend, tmp_path: Path
) -> None:
    chat = host.chat(gemma, ChatOptions(temperature=0.0, max_tokens_per_round=200))
    state = ChatState(effort="low")
    out = io.StringIO()
    async with chat:
        with anyio.CancelScope() as scope:  # cancelled a few words into the answer
            view = CancellingView(out, scope, lambda view, event: len(view.said) >= 20)
            await run_turn(chat, "Tell me a long story about a dragon.", state, view)
        assert scope.cancelled_caught and view.said
        assert chat.transcript()[-1] == {"role": "assistant", "content": view.said}

        long_question = "Please summarise this: " + "The dragon slept. " * 150  # longer than one batch
        with anyio.CancelScope() as scope:  # cancelled while the prompt is read, before any answer
            view = CancellingView(out, scope, lambda view, event: isinstance(event, PromptProgress))
            await run_turn(chat, long_question, state, view)
        assert scope.cancelled_caught and view.said == ""
    saved = tmp_path / "chat.json"
    assert f"saved to {saved} (4 messages)" in await Commands(host, chat).run(f"/save {saved}")
    transcript = json.loads(saved.read_text())
    assert [m["role"] for m in transcript] == ["user", "assistant", "user", "assistant"]  # never two users in a row
    assert transcript[3]["content"] == CANCELLED_NOTE


async def test_progress_lines_show_the_prompt_read_and_the_calls_running() -> None:
    out = io.StringIO()
    view = quiet_view(out)
    chat: Any = None  # these events need no answer
    view.begin_turn()
    assert not view.bars.active  # a short wait shows nothing
    await view.show(PromptProgress(done=0, total=2578), chat)
    assert view.bars.active and "reading the prompt" in out.getvalue() and "0% (0/2578 tokens)" in out.getvalue()
    await view.show(PromptProgress(done=1024, total=2578), chat)
    assert "39% (1024/2578 tokens)" in out.getvalue()
    await view.show(MessageDelta(text="Let me check."), chat)
    assert not view.bars.active  # the text has the bottom line
    await view.show(ToolCallCreated(call_id="call_1", tool="time.get_current_time", arguments={}), chat)
    assert view.bars.active and "time.get_current_time" in out.getvalue() and "0:00" in out.getvalue()
    await view.show(ToolCallResult(call_id="call_1", tool="time.get_current_time", is_error=False, text="{}"), chat)
    assert not view.bars.active  # the call's line went; the model's comes back only if it keeps us waiting
    await anyio.sleep(0.4)
    await view.bars.while_drawing(lambda: anyio.sleep(0.2))  # redrawn meanwhile, then gone
    assert "waiting for the model" in out.getvalue() and not view.bars.active


async def test_add_puts_a_server_into_mcp_json_and_the_chat_uses_it(
    tmp_path: Path, gemma: LlamaCppBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no mcp.json yet at LM Studio's path: `/add` creates it, the running host starts the server."""
    monkeypatch.setenv("HOME", str(tmp_path))
    config = tmp_path / ".lmstudio" / "mcp.json"
    async with Host(config, settings_path=tmp_path / "settings.toml", plugins=False) as host:
        commands = Commands(host, host.chat(gemma))
        entry = fixture_entry()
        said = await commands.run(f"/add fx -- {shlex.join([entry['command'], *entry['args']])}")
        assert "added fx to" in said and json.loads(config.read_text())["mcpServers"]["fx"] == entry
        with anyio.fail_after(60):  # the host starts the server
            while "fx.add" not in host.registry:
                await anyio.sleep(0.1)
        assert "fx" in await commands.run("/servers")
        refused = {
            "/add": "/add: usage: /add NAME -- COMMAND [ARGS…] or /add NAME --url URL",
            "/add fx -- true": "fx",  # the name is taken: mcp.json stays as it was
            "/add web --url ftp://nowhere": "web",
        }
        for line, named in refused.items():
            said = await commands.run(line)
            assert named in said and "added" not in said, (line, said)
        assert list(json.loads(config.read_text())["mcpServers"]) == ["fx"]


async def test_loading_the_model_shows_how_far_it_got(monkeypatch: pytest.MonkeyPatch) -> None:
    """The chat loads its model in a thread; llama.cpp's load progress reaches the bottom line as a bar."""
    monkeypatch.setattr("mcp_host.chat_progress.QUIET_S", 0.0)  # drawn however fast the machine loads it
    out = io.StringIO()
    bars = ProgressBars(console_to(out))
    heard: list[float] = []

    def on_load(fraction: float) -> None:
        heard.append(fraction)
        anyio.from_thread.run_sync(bars.loaded, fraction)

    bars.waiting("loading the model")
    load = partial(pick_model, str(gemma_path()), progress=on_load)
    pick = await bars.while_drawing(partial(anyio.to_thread.run_sync, load))
    await pick.backend.aclose()
    assert heard and heard == sorted(heard) and heard[-1] == 1.0
    assert "loading the model" in out.getvalue() and "100%" in out.getvalue()
