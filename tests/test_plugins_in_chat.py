"""The bundled plugins (`files`, `fetch`, `calc`) in chat turns: scripted Harmony with exact arguments and
results, and the real gemma GGUF making a grammar-constrained call to each (its arguments are its own)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

from mcp_host.agent import ApprovalAnswer, ApprovalRequired, ChatOptions, Event, ToolCallResult, TurnCompleted
from mcp_host.backends import RecordedGeneration, RecordingBackend, ReplayBackend
from mcp_host.backends.llama_cpp import LlamaCppBackend
from mcp_host.host import Host
from mcp_host.prompt import harmony_encoding
from tests.conftest import serve_app, write_config

pytestmark = pytest.mark.anyio


def script(*outputs: str) -> ReplayBackend:
    encoding = harmony_encoding()
    return ReplayBackend(
        [RecordedGeneration([], list(encoding.encode(text, allowed_special="all")), "stop") for text in outputs]
    )


def call(identifier: str, arguments: dict[str, object]) -> str:
    return (
        f"<|channel|>commentary to=functions.{identifier} <|constrain|>json<|message|>{json.dumps(arguments)}<|call|>"
    )


ANSWER = "<|channel|>final<|message|>done<|return|>"


def page() -> Starlette:
    async def home(_request: object) -> HTMLResponse:
        return HTMLResponse("<html><head><title>Notes</title></head><body><p>The code word is heron.</p></body></html>")

    return Starlette(routes=[Route("/", home)])


async def run(host: Host, backend: ReplayBackend | LlamaCppBackend, options: ChatOptions, text: str) -> list[Event]:
    chat = host.chat(backend, options)
    events: list[Event] = []
    async with chat.turn(text) as stream:
        async for event in stream:
            events.append(event)
            if isinstance(event, ApprovalRequired):
                chat.answer(event.call_id, ApprovalAnswer("allow"))
    return events


def settings(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "settings.toml"
    path.write_text(f"[permissions]\nallow_read_only = true\n{extra}")
    return path


async def test_each_bundled_plugin_in_a_scripted_harmony_turn(tmp_path: Path) -> None:
    roots = tmp_path / "work"
    roots.mkdir()
    (roots / "notes.txt").write_text("first line\nsecond line\n")
    async with serve_app(page()) as base:
        backend = script(
            call("files__read", {"path": "notes.txt"}),
            call("files__write", {"path": "out/answer.txt", "content": "42"}),
            call("files__read", {"path": "../outside.txt"}),
            call("calc__calculate", {"expression": "2**10 + sqrt(16)"}),
            call("fetch__fetch", {"url": f"{base}/"}),
            ANSWER,
        )
        config = write_config(tmp_path / "mcp.json", {})
        host_settings = settings(
            tmp_path,
            '[plugins]\nenabled = ["files", "fetch", "calc"]\n[plugins.fetch]\nallow_private_addresses = true\n',
        )
        async with Host(config, settings_path=host_settings) as host:
            options = ChatOptions(roots=(str(roots),), max_rounds=6)
            events = await run(host, backend, options, "Use the plugins.")
    asked = [e.tool for e in events if isinstance(e, ApprovalRequired)]
    # destructive, and open-world: asked; the other read-only tools ran without asking (allow_read_only)
    assert asked == ["files.write", "fetch.fetch"]
    read, wrote, escaped, calculated, fetched = [e for e in events if isinstance(e, ToolCallResult)]
    assert "first line" in read.text and "second line" in read.text and not read.is_error
    assert not wrote.is_error and (roots / "out" / "answer.txt").read_text() == "42"
    assert escaped.is_error and "outside" in escaped.text
    assert calculated.text.strip() == "1028"
    assert "The code word is heron." in fetched.text and not fetched.is_error
    assert isinstance(events[-1], TurnCompleted) and events[-1].stop_reason == "answered"


@pytest.mark.parametrize("tool", ["files.list", "calc.calculate", "fetch.fetch"])
async def test_the_real_model_calls_each_bundled_plugin(tool: str, gemma: LlamaCppBackend, tmp_path: Path) -> None:
    roots = tmp_path / "work"
    roots.mkdir()
    (roots / "notes.txt").write_text("hello\n")
    config = write_config(tmp_path / "mcp.json", {})
    async with Host(config, settings_path=settings(tmp_path)) as host:
        options = ChatOptions(
            required_tool=tool,
            plugins=(tool.split(".")[0],),
            roots=(str(roots),),
            max_rounds=1,
            max_tokens_per_round=128,
            temperature=0.2,
            seed=2,
            call_timeout_s=5,
        )
        recording = tmp_path / "rounds.jsonl"
        events = await run(host, RecordingBackend(gemma, recording), options, "Use the tool.")
    generated = gemma.detokenize(json.loads(recording.read_text().splitlines()[-1])["tokens"])
    results = [e for e in events if isinstance(e, ToolCallResult)]
    assert len(results) == 1, generated
    (result,) = results
    assert result.tool == tool
    # The model's own arguments: the plugin answered (a result, or its own error), never "not available".
    assert "not available" not in result.text and "invalid arguments" not in result.text, result.text
    assert not result.is_error or result.text.startswith(f"Error: {tool} failed: ")  # the plugin's own verdict
    assert isinstance(events[-1], TurnCompleted)


async def test_bundled_plugins_are_off_until_enabled_globally_or_per_chat(tmp_path: Path) -> None:
    config = write_config(tmp_path / "mcp.json", {})
    async with Host(config, settings_path=settings(tmp_path)) as host:
        statuses = {s.name: s for s in host.plugins.statuses() if s.origin == "bundled"}
        assert {"files", "fetch", "calc"} <= set(statuses)
        assert all(s.state == "loaded" and not s.on_by_default for s in statuses.values())
        assert not [spec for spec in host.registry if spec.server in statuses]  # not offered to every chat
        backend = script(call("calc__calculate", {"expression": "6*7"}), ANSWER)
        events = await run(host, backend, ChatOptions(plugins=("calc",)), "Six times seven?")
        (result,) = [e for e in events if isinstance(e, ToolCallResult)]
        assert result.text.strip() == "42"
        assert "calc__calculate" in harmony_encoding().decode(backend.prompts[0])
        assert (await host.call_tool("calc.calculate", {"expression": "1+1"})).text.strip() == "2"
    enabled = settings(tmp_path, '[plugins]\nenabled = ["calc"]\n')
    async with Host(config, settings_path=enabled) as host:
        assert {spec.name for spec in host.registry} == {"calc.calculate", "calc.convert"}
