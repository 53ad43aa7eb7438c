"""The OpenAI-compatible backend against a real server on 127.0.0.1: llama-cpp-python's own llama_cpp.server."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from mcp_host.agent import (
    ApprovalAnswer,
    ApprovalRequired,
    ChatOptions,
    ErrorEvent,
    Event,
    ToolCallResult,
    TurnCompleted,
)
from mcp_host.backends import BackendError, GenerationParams, demo_model
from mcp_host.backends.openai_http import (
    ModelOutput,
    OpenAIChatBackend,
    OpenAICompletionsBackend,
    OutputEnd,
    OutputText,
    OutputToolCall,
)
from mcp_host.host import Host
from tests.conftest import fixture_entry, free_port, stop_process, wait_for_port, write_config
from tests.test_api_openai import serving

pytestmark = pytest.mark.anyio

GET_TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Current time in a timezone",
        "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]},
    },
}


class LocalTokenizer:
    """The model's own tokenizer (vocabulary only), for raw mode with a non-Harmony model."""

    def __init__(self, path: str) -> None:
        import llama_cpp

        self._llama = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)

    def encode(self, text: str, *, allowed_special: object = "all") -> list[int]:
        return list(self._llama.tokenize(text.encode(), add_bos=False, special=True))

    def decode(self, tokens: list[int]) -> str:
        return bytes(self._llama.detokenize(tokens, special=True)).decode("utf-8", "replace")


def start_server() -> tuple[subprocess.Popen[bytes], str]:
    model = demo_model()
    assert model is not None
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(model.path),
            "--port",
            str(port),
            "--n_ctx",
            "4096",
            "--chat_format",
            "chatml-function-calling",
            "--seed",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, process, limit_s=60)
    return process, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    process, url = start_server()
    try:
        yield url
    finally:
        stop_process(process)


@pytest.fixture(scope="module")
def tokenizer() -> LocalTokenizer:
    model = demo_model()
    assert model is not None
    return LocalTokenizer(str(model.path))


async def test_raw_mode_streams_tokens_and_falls_back_to_text_prompts(server: str, tokenizer: LocalTokenizer) -> None:
    backend = OpenAICompletionsBackend(server, "gemma", tokenizer)
    prompt = [2, *tokenizer.encode("The capital of France is")]
    tokens: list[int] = []
    try:
        async with backend.generate(prompt, GenerationParams(max_tokens=16, temperature=0.0)) as generation:
            async for token in generation:
                tokens.append(token)
    finally:
        await backend.aclose()
    assert backend.send_token_ids is False  # llama_cpp.server refused token ids; text was sent instead
    assert tokenizer.decode(tokens).strip()
    assert generation.stats.stop_reason == "length" and generation.stats.generated_tokens == len(tokens)


async def test_chat_mode_streams_text(server: str) -> None:
    backend = OpenAIChatBackend(server, "gemma")
    events: list[ModelOutput] = []
    try:
        async for event in backend.chat(
            [{"role": "user", "content": "Say hello."}], GenerationParams(max_tokens=12, temperature=0.0)
        ):
            events.append(event)
    finally:
        await backend.aclose()
    deltas = [e for e in events if isinstance(e, OutputText)]
    assert len(deltas) > 1 and isinstance(events[-1], OutputEnd)


async def test_chat_mode_accumulates_streamed_tool_call_deltas(server: str) -> None:
    tool = GET_TIME
    backend = OpenAIChatBackend(server, "gemma")
    events: list[ModelOutput] = []
    try:
        async for event in backend.chat(
            [{"role": "user", "content": "What time is it in Tokyo?"}],
            GenerationParams(max_tokens=60, temperature=0.0),
            tools=[tool],
            tool_choice={"type": "function", "function": {"name": "get_time"}},
        ):
            events.append(event)
    finally:
        await backend.aclose()
    (call,) = [e for e in events if isinstance(e, OutputToolCall)]
    assert call.name == "get_time" and call.id
    assert isinstance(json.loads(call.arguments)["tz"], str)  # whole JSON, joined from many fragments


async def test_connection_errors_and_http_errors_are_clear(server: str, tokenizer: LocalTokenizer) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    backend = OpenAIChatBackend(dead, "gemma")
    with pytest.raises(BackendError, match=f"cannot reach {dead}/v1/chat/completions"):
        async for _ in backend.chat([{"role": "user", "content": "hi"}], GenerationParams()):
            pass
    await backend.aclose()
    bad = OpenAIChatBackend(server, "gemma")
    with pytest.raises(BackendError, match="answered HTTP"):
        async for _ in bad.chat([{"role": "nobody", "content": 3}], GenerationParams()):
            pass
    await bad.aclose()


async def test_a_server_killed_mid_stream_ends_with_an_error_not_a_hang(tokenizer: LocalTokenizer) -> None:
    process, url = start_server()
    backend = OpenAICompletionsBackend(url, "gemma", tokenizer, send_token_ids=False)
    received = 0
    started = time.perf_counter()
    try:
        with anyio.fail_after(20), pytest.raises(BackendError, match="mid-stream|without \\[DONE\\]"):
            async with backend.generate(
                [2, *tokenizer.encode("Once upon a time")], GenerationParams(max_tokens=3000, temperature=1.0)
            ) as generation:
                async for _ in generation:
                    received += 1
                    if received == 3:
                        process.kill()
    finally:
        stop_process(process)
        await backend.aclose()
    assert received >= 3 and time.perf_counter() - started < 20


async def test_the_whole_loop_runs_in_chat_mode_with_an_mcp_tool_and_an_approval(server: str, tmp_path: Path) -> None:
    """A model served by an OpenAI-compatible server in chat mode: the server parses the call, the host runs it."""
    config = write_config(tmp_path / "mcp.json", {"fx": fixture_entry()})
    backend = OpenAIChatBackend(server, "gemma")
    options = ChatOptions(required_tool="fx.add", max_rounds=2, max_tokens_per_round=48, temperature=0.0)
    events: list[Event] = []
    try:
        async with Host(config, settings_path=tmp_path / "settings.toml") as host:
            await host.wait_settled()
            async with host.chat(backend, options) as chat:
                assert chat.format == "chat"
                async with chat.turn("Add 20 and 22 with the tool.") as turn:
                    async for event in turn:
                        events.append(event)
                        if isinstance(event, ApprovalRequired):
                            chat.answer(event.call_id, ApprovalAnswer("allow"))
                transcript = chat.transcript()
    finally:
        await backend.aclose()
    (asked,) = [e for e in events if isinstance(e, ApprovalRequired)]
    (result,) = [e for e in events if isinstance(e, ToolCallResult)]
    assert asked.tool == "fx.add" and isinstance(asked.arguments, dict)
    assert not result.is_error and result.text == str(asked.arguments["a"] + asked.arguments.get("b", 2))
    (done,) = [e for e in events if isinstance(e, TurnCompleted)]
    assert done.stop_reason == "answered", [e for e in events if isinstance(e, ErrorEvent)]
    assert done.stats.rounds == 2 and done.stats.tool_calls == 1
    tool_message = next(m for m in transcript if m["role"] == "tool")
    assert tool_message["content"] == result.text and tool_message["name"] == "fx__add"  # sent back to the server


async def test_the_api_passes_chat_completions_through_to_a_chat_mode_server(server: str, tmp_path: Path) -> None:
    """`mcp-host serve` in front of a server in chat mode: the openai client gets the server's answer and calls."""
    backend = OpenAIChatBackend(server, "gemma")
    tool = GET_TIME
    try:
        async for served in serving(tmp_path, [], backend):  # type: ignore[arg-type]
            client = served.client()
            answer = await client.chat.completions.create(
                model="gemma", messages=[{"role": "user", "content": "Say hello."}], max_tokens=8, temperature=0
            )
            assert answer.choices[0].message.content and answer.usage is not None
            stream = await client.chat.completions.create(
                model="gemma",
                messages=[{"role": "user", "content": "What time is it in Tokyo?"}],
                tools=[tool],  # type: ignore[list-item]
                tool_choice={"type": "function", "function": {"name": "get_time"}},
                max_tokens=40,
                temperature=0,
                stream=True,
            )
            names, arguments = [], []
            async for chunk in stream:
                for call in chunk.choices[0].delta.tool_calls or [] if chunk.choices else []:
                    if call.function and call.function.name:
                        names.append(call.function.name)
                    if call.function and call.function.arguments:
                        arguments.append(call.function.arguments)
    finally:
        await backend.aclose()
    assert names == ["get_time"] and isinstance(json.loads("".join(arguments))["tz"], str)
