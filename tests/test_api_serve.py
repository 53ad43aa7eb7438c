"""`mcp-host serve` as a user runs it: loopback by default, CORS only when asked, graceful shutdown, no orphans."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx2

from mcp_host.prompt import harmony_encoding
from tests.conftest import ROOT, fixture_entry, free_port, pid_alive, wait_for_port, write_config


def recording(path: Path) -> Path:
    tokens = harmony_encoding().encode("<|channel|>final<|message|>Hello.<|return|>", allowed_special="all")
    path.write_text(
        json.dumps({"type": "header", "version": 1, "backend": "scripted gpt-oss"})
        + "\n"
        + json.dumps({"type": "generation", "prompt": [], "tokens": tokens, "stop_reason": "stop"})
        + "\n"
    )
    return path


def test_serve_answers_allows_only_configured_origins_and_shuts_down_cleanly(tmp_path: Path) -> None:
    config = write_config(tmp_path / "mcp.json", {"fx": fixture_entry(disabeld=True)})
    port = free_port()
    output = (tmp_path / "out.txt").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mcp_host.cli",
            "--config",
            str(config),
            "--settings",
            str(tmp_path / "s.toml"),
            "serve",
            "--port",
            str(port),
            "--replay",
            str(recording(tmp_path / "r.jsonl")),
            "--cors-origin",
            "http://app.example",
            "--allow-host",
            "chat.lan",
        ],
        cwd=ROOT,
        stdout=output,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, process, limit_s=60)
        base = f"http://127.0.0.1:{port}"
        servers = httpx2.get(f"{base}/v1/servers", timeout=10).json()["data"]
        pid = servers[0]["pid"]
        assert servers[0]["state"] == "ready" and pid_alive(pid)
        answer = httpx2.post(
            f"{base}/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]}, timeout=10
        ).json()
        assert answer["choices"][0]["message"]["content"] == "Hello."
        preflight = {"Access-Control-Request-Method": "POST"}
        allowed = httpx2.options(f"{base}/v1/chat/completions", headers={"Origin": "http://app.example", **preflight})
        assert allowed.headers.get("access-control-allow-origin") == "http://app.example"
        other = httpx2.options(f"{base}/v1/chat/completions", headers={"Origin": "http://evil.example", **preflight})
        assert other.headers.get("access-control-allow-origin") is None
        forged = httpx2.post(f"{base}/v1/sessions", json={}, headers={"Origin": "http://evil.example"})
        assert forged.status_code == 403
        assert httpx2.get(f"{base}/v1/models", headers={"Host": "chat.lan"}).status_code == 200
        assert httpx2.get(f"{base}/v1/models", headers={"Host": "evil.example"}).status_code == 421
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    deadline = time.monotonic() + 5
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(pid)  # the MCP server did not outlive the API
    output.close()
    printed = (tmp_path / "out.txt").read_text()
    assert "key 'disabeld'" in printed and 'did you mean "disabled"?' in printed  # the typo is named, not ignored
    assert "--cors-origin" in printed and "--allow-host NAME" in printed and "chat.lan" in printed


def test_serve_refuses_other_addresses_unless_asked_and_protected(tmp_path: Path) -> None:
    config = write_config(tmp_path / "mcp.json", {})
    refused = subprocess.run(
        [
            sys.executable,
            "-m",
            "mcp_host.cli",
            "--config",
            str(config),
            "serve",
            "--host",
            "0.0.0.0",
            "--replay",
            str(recording(tmp_path / "r.jsonl")),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2 and "--allow-remote" in refused.stderr
    keyless = subprocess.run(
        [
            sys.executable,
            "-m",
            "mcp_host.cli",
            "--config",
            str(config),
            "serve",
            "--host",
            "0.0.0.0",
            "--allow-remote",
            "--replay",
            str(tmp_path / "r.jsonl"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert keyless.returncode == 2 and "needs an API key" in keyless.stderr
