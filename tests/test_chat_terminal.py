"""`mcp-host chat` in a real terminal (tmux): an approval prompt answered, and Ctrl-C cancelling a turn."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from mcp_host.prompt import harmony_encoding
from tests.conftest import ROOT, fixture_entry, write_config

SCRIPT = [
    "<|channel|>analysis<|message|>Use the add tool.<|end|><|start|>assistant<|channel|>commentary "
    'to=functions.fx__add <|constrain|>json<|message|>{"a": 20, "b": 22}<|call|>',
    "<|channel|>final<|message|>The sum is 42.<|return|>",
    "<|channel|>final<|message|>" + "This is a very long answer. " * 300 + "<|return|>",
    "<|channel|>final<|message|>Back again.<|return|>",
]


def write_recording(path: Path, script: list[str] = SCRIPT) -> None:
    encoding = harmony_encoding()
    lines = [json.dumps({"type": "header", "version": 1, "backend": "scripted gpt-oss"})]
    lines += [
        json.dumps(
            {
                "type": "generation",
                "prompt": [],
                "tokens": encoding.encode(text, allowed_special="all"),
                "stop_reason": "stop",
            }
        )
        for text in script
    ]
    path.write_text("\n".join(lines) + "\n")


@contextmanager
def chat_in_tmux(tmp_path: Path, config: Path, recording: Path, *, speed: int, width: int) -> Iterator[str]:
    """`mcp-host chat` replaying `recording` in a tmux session of its own (settings and cache in `tmp_path`)."""
    if shutil.which("tmux") is None:
        pytest.fail("tmux is not installed (apt-get install tmux; .ci/run does)")
    session = f"mcp-host-test-{time.monotonic_ns()}"
    command = (
        f"XDG_CACHE_HOME={tmp_path / 'cache'} MCP_HOST_SETTINGS={tmp_path / 'settings.toml'} "
        f"{sys.executable} -m mcp_host.cli --config {config} chat --replay {recording} --replay-speed {speed} "
        "--no-history; sleep 60"
    )
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", session, "-x", str(width), "-y", "50", command], check=True, cwd=ROOT
    )
    try:
        yield session
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[str]:
    config = write_config(tmp_path / "mcp.json", {"fx": fixture_entry()})
    recording = tmp_path / "chat.jsonl"
    write_recording(recording)
    with chat_in_tmux(tmp_path, config, recording, speed=40, width=120) as session:
        yield session


def screen(session: str) -> str:
    return subprocess.run(
        ["tmux", "capture-pane", "-t", session, "-p", "-S", "-200"], capture_output=True, text=True, check=True
    ).stdout


def wait_for(session: str, text: str, limit_s: float = 30) -> str:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        shown = screen(session)
        if text in shown:
            return shown
        time.sleep(0.1)
    raise AssertionError(f"{text!r} never appeared; the screen was:\n{screen(session)}")


def wait_for_prompt(session: str, limit_s: float = 30) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if screen(session).rstrip().endswith(">"):
            return
        time.sleep(0.1)
    raise AssertionError(f"no input prompt; the screen was:\n{screen(session)}")


def keys(session: str, *sequence: str) -> None:
    subprocess.run(["tmux", "send-keys", "-t", session, *sequence], check=True)


def test_approval_prompt_and_ctrl_c_cancels_the_turn_not_the_program(terminal: str) -> None:
    wait_for_prompt(terminal)
    keys(terminal, "What is 20 + 22?", "Enter")
    shown = wait_for(terminal, "[y]es once / [a]lways / [n]o / [e]dit?")
    assert "fx.add wants to run" in shown and '{"a": 20, "b": 22}' in shown
    keys(terminal, "y", "Enter")
    shown = wait_for(terminal, "(answered)")
    assert "← 42" in shown and "The sum is 42." in shown
    wait_for_prompt(terminal)

    keys(terminal, "Tell me a long story", "Enter")
    wait_for(terminal, "This is a very long answer.")
    keys(terminal, "C-c")
    shown = wait_for(terminal, "cancelled")
    assert shown.count("This is a very long answer.") < 300  # it stopped mid-answer
    wait_for_prompt(terminal)

    keys(terminal, "hello", "Enter")
    wait_for(terminal, "Back again.")  # the program is still there and answers
    keys(terminal, "/quit", "Enter")
