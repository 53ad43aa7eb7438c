"""`mcp-host serve` killed with `kill -9` mid-turn and started again on the same store: nothing is lost.

Real processes (the server and its stdio MCP server), a real store (SQLite in a temporary folder, or a
throwaway PostgreSQL cluster), a real HTTP client. The model is a replayed gpt-oss script, one per run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest

from mcp_host.prompt import harmony_encoding
from tests.conftest import ROOT, fixture_entry, free_port, wait_for_port, write_config

CALL = (
    "<|channel|>analysis<|message|>Add them.<|end|><|start|>assistant<|channel|>commentary "
    'to=functions.fx__add <|constrain|>json<|message|>{"a": 20, "b": 22}<|call|>'
)
FINAL = "<|channel|>final<|message|>It is 42.<|return|>"
SLOW = "<|channel|>final<|message|>" + "word " * 400 + "<|return|>"
AGAIN = "<|channel|>final<|message|>Hello again.<|return|>"
LEASE_S = 1.0


def recording(path: Path, *outputs: str) -> Path:
    encoding = harmony_encoding()
    lines = [json.dumps({"type": "header", "version": 1, "backend": "scripted gpt-oss"})]
    for output in outputs:
        tokens = encoding.encode(output, allowed_special="all")
        lines.append(json.dumps({"type": "generation", "prompt": [], "tokens": tokens, "stop_reason": "stop"}))
    path.write_text("\n".join(lines) + "\n")
    return path


class Served:
    def __init__(self, base: str, process: subprocess.Popen[bytes]) -> None:
        self.base = base
        self.process = process

    def kill_now(self) -> None:
        """kill -9 the server's whole process group (its MCP server too), as an OOM killer or a power cut would."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=20)


@contextmanager
def server(tmp_path: Path, store_url: str, outputs: tuple[str, ...], name: str, speed: float = 0.0) -> Iterator[Served]:
    """`mcp-host serve` in its own process group (its MCP server too), on a free port."""
    config = write_config(tmp_path / "mcp.json", {"fx": fixture_entry()})
    settings = tmp_path / "settings.toml"
    settings.write_text(f'[api]\nstore = "{store_url}"\nturn_lease_s = {LEASE_S}\n')
    port = free_port()
    log = (tmp_path / f"{name}.log").open("wb")
    command = [sys.executable, "-m", "mcp_host.cli", "--config", str(config), "--settings", str(settings)]
    replay = recording(tmp_path / f"{name}.jsonl", *outputs)
    command += ["serve", "--port", str(port), "--replay", str(replay), "--replay-speed", str(speed)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_port(port, process, limit_s=60)
        yield Served(f"http://127.0.0.1:{port}", process)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)  # as the test wants it, or at its end
        process.wait(timeout=20)
        log.close()


def events_until(response: httpx2.Response, wanted: str) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    for line in response.iter_lines():
        if line.startswith("data: "):
            event = json.loads(line[6:])
            seen.append(event)
            if event["type"] == wanted:
                return seen
    raise AssertionError(f"the stream ended before {wanted}: {seen}")


def text_of(response: dict[str, Any]) -> str:
    """What the official client's `output_text` adds up: the text of the response's messages."""
    items = [item for item in response["output"] if item["type"] == "message"]
    return "".join(part["text"] for item in items for part in item["content"] if part["type"] == "output_text")


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite://{tmp_path}/api.sqlite3"
    import psycopg

    admin: str = request.getfixturevalue("postgres_server")
    name = f"restart_{os.getpid()}_{free_port()}"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    return admin.rsplit("/", 1)[0] + f"/{name}"


def test_a_session_waiting_on_approval_survives_kill_9_and_goes_on(tmp_path: Path, store_url: str) -> None:
    with server(tmp_path, store_url, (CALL,), "first") as served:
        base = served.base
        session = httpx2.post(f"{base}/v1/sessions", json={}, timeout=30).json()["id"]
        with httpx2.stream(
            "POST", f"{base}/v1/sessions/{session}/messages", json={"content": "What is 20 + 22?"}, timeout=30
        ) as response:
            asked = events_until(response, "approval.required")[-1]
            served.kill_now()
    assert asked["call_id"] == "call_1"

    with server(tmp_path, store_url, (FINAL, AGAIN), "second") as served:
        base = served.base
        state = httpx2.get(f"{base}/v1/sessions/{session}", timeout=30).json()
        assert state["state"] == "interrupted" and state["pending_approvals"] == ["call_1"]
        assert state["waiting_calls"] == [{"call_id": "call_1", "tool": "fx.add", "arguments": {"a": 20, "b": 22}}]
        assert any("What is 20 + 22?" in json.dumps(message) for message in state["history"])
        answered = httpx2.post(f"{base}/v1/sessions/{session}/approvals/call_1", json={"decision": "allow"}, timeout=30)
        assert answered.json()["resume"] == f"/v1/sessions/{session}/resume"
        with httpx2.stream("POST", f"{base}/v1/sessions/{session}/resume", timeout=30) as response:
            events = events_until(response, "turn.completed")
        (result,) = [event for event in events if event["type"] == "tool_call.result"]
        assert result["call_id"] == "call_1" and result["text"] == "42"  # run by the new server's MCP server
        assert events[-1]["stop_reason"] == "answered" and events[-1]["answer"] == "It is 42."
        assert httpx2.get(f"{base}/v1/sessions/{session}", timeout=30).json()["state"] == "idle"


def test_a_turn_killed_mid_answer_is_interrupted_and_can_be_answered_again(tmp_path: Path, store_url: str) -> None:
    with server(tmp_path, store_url, (SLOW,), "first", speed=50.0) as served:
        base = served.base
        session = httpx2.post(f"{base}/v1/sessions", json={"instructions": "Be brief."}, timeout=30).json()["id"]
        with httpx2.stream(
            "POST", f"{base}/v1/sessions/{session}/messages", json={"content": "Say hello."}, timeout=30
        ) as response:
            events_until(response, "message.delta")
            served.kill_now()

    with server(tmp_path, store_url, (AGAIN,), "second") as served:
        base = served.base
        state = httpx2.get(f"{base}/v1/sessions/{session}", timeout=30).json()
        assert state["state"] == "interrupted" and state["interrupted_message"] == "Say hello."
        assert state["pending_approvals"] == []
        with httpx2.stream("POST", f"{base}/v1/sessions/{session}/resume", timeout=30) as response:
            events = events_until(response, "turn.completed")
        assert events[-1]["answer"] == "Hello again."
        again = httpx2.post(f"{base}/v1/sessions/{session}/resume", timeout=30)
        assert again.status_code == 409  # nothing left to resume
        assert httpx2.delete(f"{base}/v1/sessions/{session}", timeout=30).status_code == 200
        assert httpx2.get(f"{base}/v1/sessions/{session}", timeout=30).status_code == 404


def test_threads_and_response_chains_survive_kill_9(tmp_path: Path, store_url: str) -> None:
    hello = "<|channel|>final<|message|>Hello, Ada.<|return|>"
    noted = "<|channel|>final<|message|>Noted: 7.<|return|>"
    with server(tmp_path, store_url, (hello, noted), "first") as served:
        base = served.base
        model = httpx2.get(f"{base}/v1/models", timeout=30).json()["data"][0]["id"]
        chat = httpx2.post(f"{base}/api/v1/chat", json={"model": model, "input": "I am Ada."}, timeout=30).json()
        response = httpx2.post(f"{base}/v1/responses", json={"model": model, "input": "Remember 7."}, timeout=30)
        first = response.json()
        served.kill_now()
    assert chat["output"][-1]["content"] == "Hello, Ada." and text_of(first) == "Noted: 7."

    again = "<|channel|>final<|message|>You are Ada.<|return|>"
    seven = "<|channel|>final<|message|>It was 7.<|return|>"
    with server(tmp_path, store_url, (again, seven), "second") as served:
        base = served.base
        stored = httpx2.get(f"{base}/v1/responses/{first['id']}", timeout=30).json()
        assert stored["id"] == first["id"] and stored["output"] == first["output"]
        follow = {"model": model, "input": "Who am I?", "previous_response_id": chat["response_id"]}
        answer = httpx2.post(f"{base}/api/v1/chat", json=follow, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json()["output"][-1]["content"] == "You are Ada."
        chained = {"model": model, "input": "What was it?", "previous_response_id": first["id"]}
        next_response = httpx2.post(f"{base}/v1/responses", json=chained, timeout=30)
        assert next_response.status_code == 200, next_response.text
        assert text_of(next_response.json()) == "It was 7."
        assert next_response.json()["previous_response_id"] == first["id"]
        unknown = httpx2.post(f"{base}/api/v1/chat", json={**follow, "previous_response_id": "resp_nosuch"}, timeout=30)
        assert unknown.status_code == 404
