"""Stopping `mcp-host serve` and `mcp-host chat`, and losing the host: open streams end with their farewell,
and no MCP server outlives the host, even one that ignores both its stdin's EOF and SIGTERM.

Real processes throughout: the commands run as users run them, the model is a slow replay.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from mcp_host.api import create_app
from mcp_host.api.streaming import GracefulShutdown
from mcp_host.backends import RecordedGeneration, ReplayBackend
from mcp_host.host import Host
from mcp_host.prompt import harmony_encoding
from tests.conftest import FIXTURE_SERVER, ROOT, free_port, pid_alive, serve_app, wait_for_port, write_config
from tests.test_chat_terminal import keys, wait_for, wait_for_prompt

LONG_ANSWER = "<|channel|>final<|message|>" + "Once upon a time. " * 200 + "<|return|>"
SHUTTING_DOWN = {"message": "the server is shutting down", "type": "server_error", "code": "shutting_down"}

# The SDK fixture server, made stubborn: it ignores SIGTERM, stays after its stdin's EOF (a thread that is not
# a daemon keeps it), and with "child" starts a child that ignores SIGTERM too. Each pid goes to the pid file.
STUBBORN = """\
import os, runpy, signal, subprocess, sys, threading
pid_file, fixture, mode = sys.argv[1:4]
signal.signal(signal.SIGTERM, signal.SIG_IGN)
pids = [os.getpid()]
if mode == "child":
    pids.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"]).pid)
with open(pid_file, "a") as handle:
    handle.write("".join(f"{pid}\\n" for pid in pids))
threading.Thread(target=threading.Event().wait).start()
sys.argv = [fixture]
runpy.run_path(fixture, run_name="__main__")
"""

# A program that keeps a host with the servers of mcp.json, says "ready" once they are, and waits to be killed.
HOST_PARENT = """\
import sys
from pathlib import Path
import anyio
from mcp_host.host import Host

async def main() -> None:
    async with Host(Path(sys.argv[1]), settings_path=Path(sys.argv[2])) as host:
        await host.wait_settled()
        print(" ".join(status.state.value for status in host.statuses()), flush=True)
        await anyio.sleep(300)

anyio.run(main)
"""


def stubborn_server(tmp_path: Path, *, child: bool) -> tuple[Path, Path]:
    """An mcp.json with the stubborn server, and the file its pids will be in."""
    script = tmp_path / "stubborn.py"
    script.write_text(STUBBORN)
    pid_file = tmp_path / "server.pids"
    entry = {"command": sys.executable, "args": [str(script), str(pid_file), str(FIXTURE_SERVER), "child" * child]}
    return write_config(tmp_path / "mcp.json", {"stubborn": entry}), pid_file


def recording(path: Path, *answers: str) -> Path:
    encoding = harmony_encoding()
    lines = [json.dumps({"type": "header", "version": 1, "backend": "scripted gpt-oss"})]
    lines += [
        json.dumps(
            {
                "type": "generation",
                "prompt": [],
                "tokens": encoding.encode(answer, allowed_special="all"),
                "stop_reason": "stop",
            }
        )
        for answer in answers
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def recorded_pids(pid_file: Path, count: int, limit_s: float = 30) -> list[int]:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        pids = [int(line) for line in pid_file.read_text().split()] if pid_file.exists() else []
        if len(pids) >= count:
            return pids
        time.sleep(0.05)
    raise AssertionError(f"the server did not record {count} pids in {limit_s}s")


def survivors(pids: list[int], limit_s: float) -> list[int]:
    """The pids still alive after up to `limit_s`."""
    deadline = time.monotonic() + limit_s
    while any(pid_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [pid for pid in pids if pid_alive(pid)]


@contextmanager
def killed_afterwards(pid_file: Path) -> Iterator[None]:
    """Whatever a failed test left of the stubborn server is killed, so that no run leaks processes."""
    try:
        yield
    finally:
        for pid in [int(line) for line in pid_file.read_text().split()] if pid_file.exists() else []:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)


def data_lines(lines: Iterable[str]) -> list[str]:
    return [line.removeprefix("data: ") for line in lines if line.startswith("data: ")]


# In-process: the mechanism on the real app, fast.


@asynccontextmanager
async def graceful_app(tmp_path: Path, *answers: str) -> AsyncIterator[tuple[GracefulShutdown, str]]:
    encoding = harmony_encoding()
    backend = ReplayBackend(
        [RecordedGeneration([], list(encoding.encode(a, allowed_special="all")), "stop") for a in answers],
        tokens_per_second=50,
    )
    async with Host(write_config(tmp_path / "mcp.json", {}), settings_path=tmp_path / "settings.toml") as host:
        app = GracefulShutdown(create_app(host, backend))
        async with serve_app(app) as url:
            yield app, url


@pytest.mark.anyio
async def test_open_streams_end_with_an_error_and_done_and_pending_answers_with_503(tmp_path: Path) -> None:
    async with graceful_app(tmp_path, LONG_ANSWER, LONG_ANSWER) as (app, url), httpx2.AsyncClient() as client:
        request = {"messages": [{"role": "user", "content": "a long story"}]}
        whole: dict[str, Any] = {}
        async with (
            anyio.create_task_group() as tg,
            client.stream(
                "POST", f"{url}/v1/chat/completions", json={**request, "stream": True}, timeout=30
            ) as response,
        ):

            async def answer_whole() -> None:  # waits behind the stream for the one model
                reply = await client.post(f"{url}/v1/chat/completions", json=request, timeout=30)
                whole.update(status=reply.status_code, body=reply.json())

            lines: list[str] = []
            async for line in response.aiter_lines():
                lines.append(line)
                if "Once" in line and not app.begun:
                    tg.start_soon(answer_whole)
                    await anyio.sleep(0.3)
                    began = len(data_lines(lines))
                    started = time.monotonic()
                    app.begin()
            ended_s = time.monotonic() - started
        after = await client.post(f"{url}/v1/chat/completions", json={**request, "stream": True}, timeout=30)
    events = data_lines(lines)
    assert events[-2:] == [json.dumps({"error": SHUTTING_DOWN}, separators=(",", ":")), "[DONE]"]
    assert len(events) - began < 40 and ended_s < 1  # cut mid-answer, at once (the buffer held a few tokens)
    assert all(json.loads(event)["object"] == "chat.completion.chunk" for event in events[:-2])
    assert whole == {"status": 503, "body": {"error": {**SHUTTING_DOWN, "param": None}}}
    assert data_lines(after.text.splitlines()) == events[-2:]  # a stream begun afterwards ends at once


# The commands, as processes.


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_stopped_ends_its_stream_stops_every_server_and_exits_0(tmp_path: Path, signum: int) -> None:
    config, pid_file = stubborn_server(tmp_path, child=True)
    port = free_port()
    command = [sys.executable, "-m", "mcp_host.cli", "--config", str(config), "--settings", str(tmp_path / "s.toml")]
    command += ["serve", "--port", str(port), "--replay", str(recording(tmp_path / "r.jsonl", LONG_ANSWER))]
    command += ["--replay-speed", "20"]
    with killed_afterwards(pid_file):
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_for_port(port, process, limit_s=60)
            pids = recorded_pids(pid_file, 2)
            assert all(pid_alive(pid) for pid in pids)
            body = {"messages": [{"role": "user", "content": "a long story"}], "stream": True}
            signalled = 0.0
            lines: list[str] = []
            with httpx2.stream("POST", f"http://127.0.0.1:{port}/v1/chat/completions", json=body, timeout=30) as reply:
                for line in reply.iter_lines():
                    lines.append(line)
                    if "Once" in line and not signalled:
                        process.send_signal(signum)
                        signalled = time.monotonic()
            events = data_lines(lines)
            assert events[-2:] == [json.dumps({"error": SHUTTING_DOWN}, separators=(",", ":")), "[DONE]"]
            assert time.monotonic() - signalled < 2  # the stream did not wait for uvicorn's graceful timeout
            code = process.wait(timeout=30)
            exited_s = time.monotonic() - signalled
        finally:
            if process.poll() is None:
                process.kill()
            stderr = process.communicate()[1].decode(errors="replace")
        assert code == 0, stderr
        # EOF, 2 s; SIGTERM to the group, 2 s; SIGKILL: both pids ignore the first two.
        assert exited_s < 10, (exited_s, stderr)
        assert survivors(pids, 0.5) == []


@pytest.mark.parametrize("setpriv", [True, False], ids=["setpriv", "python-prctl"])
def test_servers_die_with_a_killed_host(tmp_path: Path, setpriv: bool) -> None:
    config, pid_file = stubborn_server(tmp_path, child=False)
    env = dict(os.environ)
    if not setpriv:  # no setpriv on PATH: the host sets the flag through its own interpreter
        env["PATH"] = str(Path(sys.executable).parent)
    with killed_afterwards(pid_file):
        parent = subprocess.Popen(
            [sys.executable, "-c", HOST_PARENT, str(config), str(tmp_path / "s.toml")],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            assert parent.stdout is not None
            assert parent.stdout.readline().strip() == "ready"
            (pid,) = recorded_pids(pid_file, 1)
            assert pid_alive(pid)
        finally:
            parent.kill()
            parent.communicate()
        assert survivors([pid], 10) == []


@pytest.fixture
def chat_terminal(tmp_path: Path) -> Iterator[tuple[str, Path, Path]]:
    """`mcp-host chat` with the stubborn server in tmux: the session, the chat's pid file, the server's."""
    config, pid_file = stubborn_server(tmp_path, child=True)
    chat_pid = tmp_path / "chat.pid"
    chat = [sys.executable, "-m", "mcp_host.cli", "--config", str(config), "chat", "--no-history"]
    chat += ["--replay", str(recording(tmp_path / "r.jsonl", LONG_ANSWER)), "--replay-speed", "20"]
    inner = f"echo $$ > {shlex.quote(str(chat_pid))}; exec {shlex.join(chat)}"
    command = (
        f"XDG_CACHE_HOME={tmp_path / 'cache'} MCP_HOST_SETTINGS={tmp_path / 'settings.toml'} "
        f"sh -c {shlex.quote(inner)}; echo chat exited with $?; sleep 60"
    )
    session = f"mcp-host-shutdown-{time.monotonic_ns()}"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "120", "-y", "50", command], check=True, cwd=ROOT)
    with killed_afterwards(pid_file):
        try:
            yield session, chat_pid, pid_file
        finally:
            subprocess.run(["tmux", "kill-session", "-t", session], check=False)


@pytest.mark.parametrize("when", ["at the prompt", "mid-answer"])
def test_chat_terminated_stops_every_server_and_exits_0(chat_terminal: tuple[str, Path, Path], when: str) -> None:
    session, chat_pid, pid_file = chat_terminal
    wait_for_prompt(session, limit_s=60)
    pids = recorded_pids(pid_file, 2)
    if when == "mid-answer":
        keys(session, "Tell me a long story", "Enter")
        wait_for(session, "Once upon a time. Once")
    os.kill(int(chat_pid.read_text()), signal.SIGTERM)
    shown = wait_for(session, "chat exited with", limit_s=15)  # EOF, 2 s; SIGTERM, 2 s; SIGKILL
    assert "chat exited with 0" in shown and "Traceback" not in shown, shown
    assert survivors(pids, 0.5) == []
