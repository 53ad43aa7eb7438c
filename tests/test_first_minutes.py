"""The first five minutes: `mcp-host` on a machine with no mcp.json yet, run as a user runs it.

Each process gets a HOME of its own, so `~/.lmstudio/mcp.json` does not exist unless the test writes it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from mcp_host.prompt import harmony_encoding
from tests.conftest import FIXTURE_SERVER, ROOT, free_port, stop_process, wait_for_port, write_config

NOTE = "note: no MCP servers:"
# What the recorded model says: a call of fx.add (a server the user adds during the chat), then the answer.
SCRIPT = [
    "<|channel|>analysis<|message|>Use the add tool.<|end|><|start|>assistant<|channel|>commentary "
    'to=functions.fx__add <|constrain|>json<|message|>{"a": 20, "b": 22}<|call|>',
    "<|channel|>final<|message|>The sum is 42.<|return|>",
]


def write_recording(path: Path) -> None:
    encoding = harmony_encoding()
    lines = [{"type": "header", "version": 1, "backend": "scripted gpt-oss"}]
    lines += [
        {
            "type": "generation",
            "prompt": [],
            "tokens": encoding.encode(text, allowed_special="all"),
            "stop_reason": "stop",
        }
        for text in SCRIPT
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def fresh_env(home: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in ("MCP_HOST_CONFIG", "MCP_HOST_SETTINGS")}
    return {**env, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "XDG_CACHE_HOME": str(home / "cache")}


def mcp_host(
    home: Path, *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mcp_host.cli", *args],
        cwd=ROOT,
        env=env or fresh_env(home),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def says_how_to_add_a_server_once(home: Path, stderr: str) -> None:
    assert stderr.count(NOTE) == 1, stderr
    assert f"{home / '.lmstudio' / 'mcp.json'} does not exist yet" in stderr
    assert "mcp-host config add NAME -- COMMAND [ARGS...]" in stderr and "mcp-host config add NAME --url URL" in stderr


@pytest.mark.parametrize(
    ("args", "stdout"),
    [
        (("servers",), ""),
        (("servers", "--json"), "[]"),
        (("tools", "--json"), "[]"),
        (("render", "--message", "hi"), "<|start|>user<|message|>hi<|end|>"),
        (("resources",), "no resources"),
        (("prompts", "--json"), "[]"),
    ],
)
def test_every_command_runs_without_mcp_json(tmp_path: Path, args: tuple[str, ...], stdout: str) -> None:
    result = mcp_host(tmp_path, *args)
    assert result.returncode == 0, result.stderr
    says_how_to_add_a_server_once(tmp_path, result.stderr)
    assert stdout in result.stdout
    assert "no servers configured" not in result.stdout  # said once, on stderr
    assert not (tmp_path / ".lmstudio" / "mcp.json").exists()  # nothing written behind the user's back


def test_call_without_mcp_json_still_runs_plugin_tools(tmp_path: Path) -> None:
    result = mcp_host(tmp_path, "call", "calc.calculate", '{"expression": "6 * 7"}')
    assert (result.returncode, result.stdout.strip()) == (0, "42"), result.stderr
    says_how_to_add_a_server_once(tmp_path, result.stderr)


def test_a_named_config_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    result = mcp_host(tmp_path, "--config", str(missing), "servers")
    assert result.returncode == 2
    assert f"error: {missing}: file not found (named by --config)" in result.stderr
    assert f"mcp-host --config {missing} config add NAME -- COMMAND" in result.stderr
    assert NOTE not in result.stderr and "Traceback" not in result.stderr

    from_env = mcp_host(tmp_path, "tools", env={**fresh_env(tmp_path), "MCP_HOST_CONFIG": str(missing)})
    assert from_env.returncode == 2 and "file not found (named by $MCP_HOST_CONFIG)" in from_env.stderr

    lmstudio = tmp_path / ".lmstudio" / "mcp.json"  # LM Studio's path, but named: it must exist too
    assert mcp_host(tmp_path, "servers", "--config", str(lmstudio)).returncode == 2


def test_config_add_creates_the_default_file_and_the_note_goes(tmp_path: Path) -> None:
    added = mcp_host(tmp_path, "config", "add", "fx", "--", sys.executable, str(FIXTURE_SERVER))
    assert added.returncode == 0, added.stderr
    assert f"added server fx to {tmp_path / '.lmstudio' / 'mcp.json'}" in " ".join(added.stdout.split())
    servers = mcp_host(tmp_path, "servers", "--json")
    assert servers.returncode == 0 and NOTE not in servers.stderr
    assert [(entry["name"], entry["state"]) for entry in json.loads(servers.stdout)] == [("fx", "ready")]


def test_an_empty_config_says_how_to_add_a_server(tmp_path: Path) -> None:
    config = write_config(tmp_path / "mcp.json", {})
    result = mcp_host(tmp_path, "--config", str(config), "servers")
    assert result.returncode == 0 and NOTE not in result.stderr
    assert "no servers configured (mcp-host config add NAME -- COMMAND [ARGS...] adds one)" in result.stdout


def test_chat_without_mcp_json_answers_and_picks_up_a_server_added_meanwhile(tmp_path: Path) -> None:
    recording = tmp_path / "chat.jsonl"
    write_recording(recording)
    env = fresh_env(tmp_path)
    chat = subprocess.Popen(
        [sys.executable, "-m", "mcp_host.cli", "chat", "--replay", str(recording), "--no-history"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert chat.stdin is not None
    try:
        time.sleep(3)
        added = mcp_host(tmp_path, "config", "add", "fx", "--", sys.executable, str(FIXTURE_SERVER))
        assert added.returncode == 0, added.stderr
        time.sleep(4)  # the chat follows edits of mcp.json: the new server starts
        # The recorded model calls fx.add, the new server's tool: "y" allows it once.
        chat.stdin.write("What is 20 + 22?\ny\n/servers\n/quit\n")
        chat.stdin.flush()
        stdout, stderr = chat.communicate(timeout=60)
    finally:
        if chat.poll() is None:
            stop_process(chat)
    assert chat.returncode == 0, stderr
    says_how_to_add_a_server_once(tmp_path, stderr)
    assert "(from another terminal: the running chat picks the new server up)" in stderr
    assert "← 42" in stdout and "The sum is 42." in stdout
    assert any(line.split()[:2] == ["fx", "ready"] for line in stdout.splitlines()), stdout


def test_serve_without_mcp_json(tmp_path: Path) -> None:
    recording = tmp_path / "chat.jsonl"
    write_recording(recording)
    port = free_port()
    serve = subprocess.Popen(
        [sys.executable, "-m", "mcp_host.cli", "serve", "--port", str(port), "--replay", str(recording)],
        cwd=ROOT,
        env=fresh_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_port(port, serve)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/servers", timeout=10) as response:
            assert json.load(response) is not None
        serve.send_signal(signal.SIGTERM)
        _, stderr = serve.communicate(timeout=30)
    finally:
        if serve.poll() is None:
            stop_process(serve)
    assert serve.returncode == 0, stderr
    says_how_to_add_a_server_once(tmp_path, stderr)


def test_plugins_need_no_mcp_json(tmp_path: Path) -> None:
    listed = mcp_host(tmp_path, "plugins", "--json")
    assert listed.returncode == 0 and NOTE not in listed.stderr  # plugins start no server: nothing to say
    assert "calc" in {plugin["name"] for plugin in json.loads(listed.stdout)}
    named = mcp_host(tmp_path, "--config", str(tmp_path / "nope.json"), "plugins")
    assert named.returncode == 0 and "file not found (plugin names not checked" in named.stderr
