"""The first minutes of a new user, in a real terminal (tmux): an empty home, `--config examples/mcp.json`, the demo
model. The chat reaches its prompt and suggests `/call`; the call asks, runs and shows its result; reading a long
prompt shows a percentage; Ctrl-C then cancels the turn and `/save` keeps all of it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, gemma_path, time_server_command
from tests.test_chat_terminal import keys, screen, wait_for, wait_for_prompt

PERCENT = re.compile(r"reading the prompt.*?(\d+)% \((\d+)/(\d+) tokens\)")


@pytest.fixture
def new_user(tmp_path: Path) -> Iterator[str]:
    """`mcp-host chat` in tmux for someone who has nothing yet: an empty home, no settings, no model of their own."""
    if shutil.which("tmux") is None:
        pytest.fail("tmux is not installed (apt-get install tmux; .ci/run does)")
    gemma_path()  # the demo model is installed (its package); it is unpacked into the empty home's cache
    home = tmp_path / "home"
    home.mkdir()
    path = os.pathsep.join([str(Path(time_server_command()).parent), str(Path(sys.executable).parent), "/usr/bin:/bin"])
    session = f"mcp-host-first-{time.monotonic_ns()}"
    command = (
        f"env -i HOME={home} PATH={path} TERM=xterm-256color LANG=C.UTF-8 "
        f"{sys.executable} -m mcp_host.cli --config examples/mcp.json chat --no-history; sleep 60"
    )
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "50", command], check=True, cwd=ROOT)
    try:
        yield session
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)


def wait_for_match(session: str, pattern: re.Pattern[str], accept: object, limit_s: float) -> re.Match[str]:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        for match in pattern.finditer(screen(session)):
            if accept(match):  # type: ignore[operator]
                return match
        time.sleep(0.05)
    raise AssertionError(f"{pattern.pattern!r} never matched; the screen was:\n{screen(session)}")


@pytest.mark.timeout(400)  # a busy 2-core machine: unpacking the model, then reading ~3,400 tokens at ~70/s
def test_a_new_user_sees_the_tool_flow_and_the_prompt_being_read(new_user: str, tmp_path: Path) -> None:
    wait_for_prompt(new_user, limit_s=240)  # unpacking the demo model, starting both servers
    shown = screen(new_user)
    assert "DEMO MODEL" in shown and "It never calls a tool by itself" in shown
    assert '/call time.get_current_time {"timezone": "America/New_York"}' in shown  # a real example that works

    keys(new_user, "-l", '/call time.get_current_time {"timezone": "Asia/Tokyo"}')
    keys(new_user, "Enter")
    shown = wait_for(new_user, "[y]es once / [a]lways / [n]o / [e]dit?")
    assert "time.get_current_time wants to run" in shown and '"timezone": "Asia/Tokyo"' in shown
    keys(new_user, "y", "Enter")
    shown = wait_for(new_user, "the call and its result are in the conversation")
    assert re.search(r'← \{ ?"timezone": "Asia/Tokyo", "datetime": "[^"]+\+09:00"', shown), shown
    wait_for_prompt(new_user)

    # Every tool is in the prompt: thousands of tokens, read batch by batch with a percentage that grows.
    keys(new_user, "-l", "What time is it in Tokyo?")
    keys(new_user, "Enter")
    first = wait_for_match(new_user, PERCENT, lambda m: True, limit_s=60)
    total = int(first.group(3))
    assert total > 1000
    wait_for_match(new_user, PERCENT, lambda m: 0 < int(m.group(2)) < total, limit_s=120)  # a batch later
    keys(new_user, "C-c")
    wait_for(new_user, "cancelled")
    wait_for_prompt(new_user)

    saved = tmp_path / "first.json"
    keys(new_user, "-l", f"/save {saved}")
    keys(new_user, "Enter")
    wait_for(new_user, "saved to")
    transcript = json.loads(saved.read_text())
    assert [m["role"] for m in transcript] == ["assistant", "tool", "user", "assistant"]
    assert "Asia/Tokyo" in transcript[1]["content"] and transcript[2]["content"] == "What time is it in Tokyo?"
    keys(new_user, "/quit", "Enter")
    assert "Traceback" not in screen(new_user)
