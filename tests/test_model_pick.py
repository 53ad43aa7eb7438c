"""How `mcp-host chat` picks its model: --model, gpt-oss on disk, a local server, the demo model, or advice."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import anyio
import pytest

from mcp_host import model_pick
from mcp_host.backends import ModelNotFoundError, find_gpt_oss
from mcp_host.backends.openai_http import OpenAIChatBackend, OpenAICompletionsBackend


class ModelsEndpoint(BaseHTTPRequestHandler):
    served = ["qwen3-4b", "openai/gpt-oss-20b"]
    completions = True

    def do_POST(self) -> None:  # noqa: N802 - an empty body is a bad request where the route exists
        self.send_response(400 if self.path == "/v1/completions" and self.completions else 404)
        self.end_headers()

    def do_GET(self) -> None:  # noqa: N802
        body = json.dumps({"data": [{"id": model} for model in self.served]}).encode()
        self.send_response(200 if self.path == "/v1/models" else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def local_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), ModelsEndpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def empty_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LMSTUDIO_MODELS_DIR", str(tmp_path / "lmstudio"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(model_pick, "LOCAL_SERVERS", ("http://127.0.0.1:9",))
    return tmp_path


def test_gpt_oss_on_disk_is_found_and_the_20b_preferred(empty_disk: Path) -> None:
    for name in ("gpt-oss-120b", "gpt-oss-20b"):
        folder = empty_disk / "lmstudio" / "openai" / name
        folder.mkdir(parents=True)
        (folder / f"{name}-MXFP4.gguf").write_bytes(b"GGUF")
    found = find_gpt_oss()
    assert found is not None and found.id == "openai/gpt-oss-20b"


def test_a_local_server_is_used_when_no_model_is_on_disk(
    empty_disk: Path, local_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(model_pick, "LOCAL_SERVERS", ("http://127.0.0.1:9", local_server))
    pick = model_pick.pick_model(None)
    assert isinstance(pick.backend, OpenAICompletionsBackend)
    assert pick.backend.model == "openai/gpt-oss-20b"  # gpt-oss preferred among the served models
    notice = (
        f"model openai/gpt-oss-20b on an OpenAI-compatible server at {local_server} (raw Harmony over "
        "/v1/completions as token ids; gpt-oss by its name: the server does not say a model's architecture)"
    )
    assert pick.notice == notice and pick.format == "harmony"
    anyio.run(pick.backend.aclose)
    explicit = model_pick.pick_model(local_server)
    assert isinstance(explicit.backend, OpenAICompletionsBackend) and explicit.backend.base_url == local_server
    anyio.run(explicit.backend.aclose)


def test_chat_mode_is_picked_for_other_models_and_servers_without_raw_completions(
    empty_disk: Path, local_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(model_pick, "LOCAL_SERVERS", (local_server,))
    monkeypatch.setattr(ModelsEndpoint, "served", ["qwen3-4b"])
    other = model_pick.pick_model(None)
    assert isinstance(other.backend, OpenAIChatBackend) and other.format == "chat"
    said = f"model qwen3-4b on an OpenAI-compatible server at {local_server} (chat mode, not gpt-oss"
    assert other.notice.startswith(said)
    anyio.run(other.backend.aclose)
    monkeypatch.setattr(ModelsEndpoint, "served", ["openai/gpt-oss-20b"])
    monkeypatch.setattr(ModelsEndpoint, "completions", False)
    chat_only = model_pick.pick_model(None)
    assert isinstance(chat_only.backend, OpenAIChatBackend) and chat_only.format == "chat"
    assert "chat mode, the server takes no raw prompt" in chat_only.notice
    anyio.run(chat_only.backend.aclose)


def test_the_demo_model_is_said_plainly_to_be_a_demo(empty_disk: Path) -> None:
    pick = model_pick.pick_model(None)
    assert pick.notice.startswith("DEMO MODEL: gemma-3-270m") and "lms get openai/gpt-oss-20b" in pick.notice
    anyio.run(pick.backend.aclose)


def test_with_nothing_at_all_the_message_says_how_to_get_gpt_oss(
    empty_disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(model_pick, "demo_model", lambda: None)
    with pytest.raises(ModelNotFoundError) as caught:
        model_pick.pick_model(None)
    message = str(caught.value)
    assert "no gpt-oss on disk, no LM Studio, Ollama or vLLM server" in message
    assert "huggingface.co/ggml-org/gpt-oss-20b-GGUF" in message
    with pytest.raises(ModelNotFoundError, match="found: none"):
        model_pick.pick_model("openai/gpt-oss-20b")
