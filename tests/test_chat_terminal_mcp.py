"""`mcp-host chat` in a real terminal (tmux) with server-everything: prompts as slash commands, Tab
completion from the server, and an elicitation form filled in; the model's side is a replayed recording."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prompt_toolkit import PromptSession
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document
from prompt_toolkit.input import DummyInput
from prompt_toolkit.output import DummyOutput
from rich.console import Console

from mcp_host.agent import ServerLog, ToolCallProgress, ToolCallResult
from mcp_host.backends.replay import ReplayBackend
from mcp_host.chat_cli import TurnView
from mcp_host.chat_commands import ChatState, SlashCommands
from mcp_host.chat_completion import SlashCompleter
from mcp_host.host import Host
from mcp_host.prompt import harmony_encoding
from tests.conftest import everything_command, write_config
from tests.test_chat_terminal import chat_in_tmux, keys, screen, wait_for, wait_for_prompt


def call(tool: str, arguments: str = "{}") -> str:
    return (
        "<|channel|>analysis<|message|>Call it.<|end|><|start|>assistant<|channel|>commentary "
        f"to=functions.everything__{tool} <|constrain|>json<|message|>{arguments}<|call|>"
    )


def final(text: str) -> str:
    return f"<|channel|>final<|message|>{text}<|return|>"


FORM_SCRIPT = [final("Sunny in Paris."), call("trigger_elicitation_request"), final("Thank you, form received.")]
FEATURES_SCRIPT = [
    call("trigger_sampling_request", '{"prompt": "Say hi", "maxTokens": 20}'),
    final("Hi from the model."),  # the server's sampling request, written by the chat's model
    call("get_resource_links", '{"count": 2}'),
    call("trigger_long_running_operation", '{"duration": 2, "steps": 2}'),
    call("trigger_elicitation_request"),
    final("All done."),
    final("Summary written."),
]
ALLOWED = ["get-resource-links", "trigger-long-running-operation", "trigger-elicitation-request"]
FORM = [  # each field's prompt, in the server's order, and what the user types (empty: Enter keeps the default)
    ("name", "Ada Lovelace"),
    ("check", "y"),
    ("firstLine", ""),
    ("email", ""),
    ("homepage", ""),
    ("birthdate", ""),
    ("integer", ""),
    ("number", ""),
    ("untitledSingleSelectEnum", "2"),
    ("untitledMultipleSelectEnum", ""),
    ("titledSingleSelectEnum", ""),
    ("titledMultipleSelectEnum", ""),
    ("legacyTitledEnum", ""),
]


def write_recording(path: Path, script: list[str]) -> None:
    encoding = harmony_encoding()
    lines = [json.dumps({"type": "header", "version": 1, "backend": "scripted gpt-oss"})]
    for text in script:
        tokens = encoding.encode(text, allowed_special="all")
        lines.append(json.dumps({"type": "generation", "prompt": [], "tokens": tokens, "stop_reason": "stop"}))
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def terminal(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """The chat in tmux, replaying the script the test passes (`indirect` parametrization)."""
    config = write_config(tmp_path / "mcp.json", {"everything": {"command": everything_command(), "args": ["stdio"]}})
    rules = "\n".join(f'"everything.{tool}" = "allow"' for tool in ALLOWED)
    (tmp_path / "settings.toml").write_text(f"[permissions.tools]\n{rules}\n")
    recording = tmp_path / "chat.jsonl"
    write_recording(recording, request.param)
    with chat_in_tmux(tmp_path, config, recording, speed=200, width=160) as session:
        yield session


def answer_at(session: str, prompt: str, text: str) -> None:
    """Type `text` once the line asking for it is on the screen (a form prompt starts `  <field>`)."""
    wait_for(session, prompt)
    if text:
        keys(session, "-l", text)
    keys(session, "Enter")


@pytest.mark.parametrize("terminal", [FORM_SCRIPT], indirect=True)
def test_prompts_completion_and_an_elicitation_form_in_the_terminal(terminal: str, tmp_path: Path) -> None:
    wait_for_prompt(terminal)

    # Tab completes an argument's value from the server; a missing required argument is named, no turn runs.
    keys(terminal, "-l", "/everything.completable-prompt department=Eng")
    keys(terminal, "Tab")
    wait_for(terminal, "department=Engineering")
    keys(terminal, "Enter")
    wait_for(terminal, "/everything.completable-prompt needs name=…")
    wait_for_prompt(terminal)

    # A prompt becomes the next user message and is sent as a turn.
    keys(terminal, "-l", "/everything.args-prompt city=Paris")
    keys(terminal, "Enter")
    shown = wait_for(terminal, "Sunny in Paris.")
    assert "everything.args-prompt → What's weather in Paris?" in shown
    wait_for_prompt(terminal)

    # The model calls the tool; the server's form is filled in; its result has the name and the default.
    keys(terminal, "-l", "Please fill in the form")
    keys(terminal, "Enter")
    shown = wait_for(terminal, "[a]ccept and fill in / [d]ecline / [c]ancel?")
    assert "everything asks: Please provide inputs for the following fields:" in shown
    keys(terminal, "a", "Enter")
    for field, text in FORM:
        answer_at(terminal, f"\n  {field}", text)
    shown = wait_for(terminal, "[s]end / [e]dit a field / [d]ecline / [c]ancel?")  # reviewed before it goes
    assert "about to send:" in shown and "name: Ada Lovelace" in shown
    keys(terminal, "s", "Enter")
    shown = wait_for(terminal, "Thank you, form received.")
    assert "User provided the requested information!" in shown and "Name: Ada Lovelace" in shown
    assert "  firstLine [It was a dark and stormy night.]:" in shown
    wait_for_prompt(terminal)

    saved = tmp_path / "transcript.json"
    keys(terminal, "-l", f"/save {saved}")
    keys(terminal, "Enter")
    wait_for(terminal, "saved to")
    transcript = saved.read_text()
    assert "What's weather in Paris?" in transcript
    assert '\\"name\\": \\"Ada Lovelace\\"' in transcript
    assert '\\"firstLine\\": \\"It was a dark and stormy night.\\"' in transcript
    assert '\\"untitledSingleSelectEnum\\": \\"Rachel\\"' in transcript
    keys(terminal, "/quit", "Enter")
    assert "Traceback" not in screen(terminal)


@pytest.mark.parametrize("terminal", [FEATURES_SCRIPT], indirect=True)
def test_sampling_progress_links_a_cancelled_form_and_attachments(terminal: str, tmp_path: Path) -> None:
    wait_for_prompt(terminal)
    keys(terminal, "-l", "Show me what the server can do")
    keys(terminal, "Enter")
    answer_at(terminal, "[y]es once / [a]lways / [n]o / [e]dit?", "y")  # the tool itself
    shown = wait_for(terminal, "asks the model to write a message (sampling)")
    assert "everything.trigger-sampling-request wants to run" in shown
    shown = wait_for(terminal, "maxTokens: 20, temperature: 0.7")
    assert "system: You are a helpful test server." in shown
    assert "user: Resource trigger-sampling-request context: Say hi" in shown
    keys(terminal, "y", "Enter")
    wait_for(terminal, "LLM sampling result")

    shown = wait_for(terminal, "/attach everything:demo://resource/dynamic/text/2")  # a resource link's hint
    assert "/attach everything:demo://resource/dynamic/blob/1" in shown
    wait_for(terminal, "1/2")  # the long-running operation's bar, while it runs
    wait_for(terminal, "Long running operation completed")

    wait_for(terminal, "[a]ccept and fill in / [d]ecline / [c]ancel?")
    keys(terminal, "a", "Enter")
    wait_for(terminal, "\n  name")
    keys(terminal, "-l", "Ad")
    keys(terminal, "C-c")  # cancels the form, not the turn
    shown = wait_for(terminal, "All done.")
    assert "cancelled the server's question" in shown and "User cancelled the elicitation dialog" in shown
    wait_for_prompt(terminal)

    keys(terminal, "-l", "/resources everything")
    keys(terminal, "Enter")
    wait_for(terminal, "demo://resource/static/document/architecture.md")
    keys(terminal, "-l", "/attach everything:demo://resource/static/document/architecture.md")
    keys(terminal, "Enter")
    wait_for(terminal, "it goes with your next message")
    keys(terminal, "-l", "Summarise it")
    keys(terminal, "Enter")
    shown = wait_for(terminal, "Summary written.")
    assert "with everything:demo://resource/static/document/architecture.md" in shown
    saved = tmp_path / "transcript.json"
    keys(terminal, "-l", f"/save {saved}")
    keys(terminal, "Enter")
    wait_for(terminal, "saved to")
    assert "--- attached: everything:demo://resource/static/document/architecture.md" in saved.read_text()
    keys(terminal, "/quit", "Enter")
    assert "Traceback" not in screen(terminal)


def quiet_view(out: io.StringIO) -> TurnView:
    console = Console(file=out, force_terminal=True, width=120, color_system=None)
    answers: PromptSession[str] = PromptSession(input=DummyInput(), output=DummyOutput())
    return TurnView(console, hide_reasoning=False, answers=answers, is_server=lambda name: name == "everything")


@pytest.mark.anyio
async def test_server_logs_progress_and_resource_link_hints_render() -> None:
    out = io.StringIO()
    view = quiet_view(out)
    chat: Any = None  # these events never reach the chat
    await view.show(ServerLog(server="everything", level="error", text="disk [full]\x1b[2J"), chat)
    assert "[everything] error: disk [full]\ufffd[2J" in out.getvalue()

    await view.show(ToolCallProgress(call_id="call_1", server="everything", progress=1, total=4, message="step"), chat)
    assert view.bars.active and "everything call_1: step" in out.getvalue() and "1/4" in out.getvalue()
    text = "links: [resource link demo://resource/dynamic/text/2] [resource link demo://resource/dynamic/text/2]"
    await view.show(
        ToolCallResult(call_id="call_1", tool="everything.get-resource-links", is_error=False, text=text), chat
    )
    assert not view.bars.active  # the call's result ends its bar
    assert out.getvalue().count("/attach everything:demo://resource/dynamic/text/2") == 1

    await view.show(ToolCallResult(call_id="call_2", tool="browser.open", is_error=False, text=text), chat)
    assert out.getvalue().count("/attach") == 1  # `browser` is no MCP server: no hint


async def completions(completer: SlashCompleter, text: str) -> list[str]:
    found = completer.get_completions_async(Document(text), CompleteEvent(completion_requested=True))
    return [Document(text).text[: len(text) + c.start_position] + c.text async for c in found]


@pytest.mark.anyio
async def test_tab_completion_and_server_slash_commands(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "mcp.json",
        {
            "everything": {"command": everything_command(), "args": ["stdio"]},
            "broken": {"command": sys.executable, "args": ["-c", "raise SystemExit(3)"]},
        },
    )
    async with Host(config, settings_path=tmp_path / "settings.toml") as host:
        await host.wait_settled()
        completer = SlashCompleter(host)
        assert await completions(completer, "hello") == []
        assert await completions(completer, "/re") == ["/reasoning", "/reset", "/resources"]
        assert "/everything.args-prompt" in await completions(completer, "/every")
        assert await completions(completer, "/loglevel ") == ["/loglevel broken", "/loglevel everything"]
        assert await completions(completer, "/loglevel everything cr") == ["/loglevel everything critical"]
        assert await completions(completer, "/attach ev") == ["/attach everything:"]
        assert "/attach everything:demo://resource/static/document/architecture.md" in await completions(
            completer, "/attach everything:demo://resource/static/document/arch"
        )
        assert await completions(completer, "/attach broken:") == []  # not ready: nothing, and no error
        assert await completions(completer, "/everything.args-prompt ") == [
            "/everything.args-prompt city=",
            "/everything.args-prompt state=",
        ]
        assert await completions(completer, "/everything.completable-prompt department=E") == [
            "/everything.completable-prompt department=Engineering"
        ]
        assert await completions(completer, "/everything.completable-prompt department=Engineering name=A") == [
            "/everything.completable-prompt department=Engineering name=Alice"
        ]
        assert await completions(completer, "/broken.p x=") == []
        await check_commands(host, tmp_path)


async def check_commands(host: Host, tmp_path: Path) -> None:
    """The slash commands that read or change the servers, against server-everything."""
    out = io.StringIO()
    console = Console(file=out, width=200, color_system=None)
    state = ChatState(effort="low")
    commands = SlashCommands(host, host.chat(ReplayBackend([])), console, state)

    async def run(line: str) -> str:
        out.seek(0)
        out.truncate()
        assert await commands.run(line) is None
        return out.getvalue()

    shown = await run("/prompts")
    assert "/everything.args-prompt city=… state=…?  A prompt with two arguments" in shown
    assert "everything logs from debug up" in await run("/loglevel everything debug")
    assert "'loud' is not one of debug, info" in await run("/loglevel everything loud")
    assert f"everything roots: {tmp_path.as_uri()}" in await run(f"/roots everything {tmp_path}")
    assert "no server named 'nope'" in await run("/attach nope:demo://x")
    assert "everything has no prompt named 'nope'" in await run("/everything.nope")
    assert "nothing attached" in await run("/attach")
    await run("/attach everything:demo://resource/static/document/features.md")
    assert "attached: everything:demo://resource/static/document/features.md" in await run("/attach")
    assert "1 attachment(s) dropped" in await run("/detach") and state.attachments == []
    assert "/loglevel SERVER LEVEL" in await run("/help")
    assert "unknown command or arguments: /frobnicate" in await run("/frobnicate")
    assert "reasoning effort: high" in await run("/reasoning high") and state.effort == "high"
