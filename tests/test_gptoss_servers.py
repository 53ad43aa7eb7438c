"""gpt-oss served by LM Studio, Ollama and vLLM (stand-ins on 127.0.0.1, `tests/standins.py`) and by the real
`llama_cpp.server` with the tiny gpt-oss GGUF: the chat finds out what each server is, recognises gpt-oss by
what the server says of it, uses raw Harmony where the server takes a raw prompt and chat mode otherwise, says
which, and runs the whole loop (an MCP call with an approval) through it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from mcp_host import model_pick
from mcp_host.agent import (
    ApprovalAnswer,
    ApprovalRequired,
    ChatOptions,
    ErrorEvent,
    Event,
    ToolCallResult,
    TurnCompleted,
)
from mcp_host.backends.openai_http import (
    OllamaRawBackend,
    OpenAIChatBackend,
    OpenAICompletionsBackend,
    _hold_open_marker,
    harmony_stop,
)
from mcp_host.backends.served import survey
from mcp_host.host import Host
from mcp_host.prompt import harmony_encoding
from tests.conftest import fixture_entry, free_port, stop_process, wait_for_port, write_config
from tests.gptoss_model import tiny_gptoss
from tests.standins import Standin, serving

pytestmark = pytest.mark.anyio

CALL = (
    "<|channel|>analysis<|message|>The user wants a sum: use the add tool.<|end|>"
    "<|start|>assistant<|channel|>commentary to=functions.fx__add <|constrain|>json<|message|>"
    '{"a": 20, "b": 22}<|call|>'
)
ANSWER = "<|channel|>final<|message|>The sum is 42.<|return|>"
GPT_OSS = {"arch": "gpt-oss", "context": 131072}


def lmstudio(*extra: dict[str, Any]) -> Standin:
    models = [{"id": "qwen/qwen3-4b", "arch": "qwen3", "context": 32768}, {"id": "openai/gpt-oss-20b", **GPT_OSS}]
    return Standin("LM Studio", [*models, *extra], script=[CALL, ANSWER])


def ollama() -> Standin:
    models = [
        {"id": "llama3.2:3b", "arch": "llama", "context": 8192},
        {"id": "gpt-oss:20b", "arch": "gptoss", "context": 131072},
    ]
    return Standin("Ollama", models, script=[CALL, ANSWER])


def vllm() -> Standin:
    return Standin("vLLM", [{"id": "openai/gpt-oss-20b", "arch": "", "context": 65536}], script=[CALL, ANSWER])


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[Host]:
    config = write_config(tmp_path / "mcp.json", {"fx": fixture_entry()})
    async with Host(config, settings_path=tmp_path / "settings.toml", plugins=False) as running:
        await running.wait_settled()
        yield running


async def one_turn(host: Host, pick: model_pick.Pick, text: str = "What is 20 + 22?") -> list[Event]:
    events: list[Event] = []
    options = ChatOptions(max_rounds=3, max_tokens_per_round=256)
    try:
        async with host.chat(pick.backend, options) as chat, chat.turn(text) as turn:
            async for event in turn:
                events.append(event)
                if isinstance(event, ApprovalRequired):
                    chat.answer(event.call_id, ApprovalAnswer("allow"))
    finally:
        await pick.backend.aclose()
    return events


def answered(events: list[Event]) -> TurnCompleted:
    (done,) = [e for e in events if isinstance(e, TurnCompleted)]
    assert done.stop_reason == "answered", [e for e in events if isinstance(e, ErrorEvent)]
    return done


@pytest.mark.parametrize(
    ("make", "kind", "backend", "notice"),
    [
        (
            lmstudio,
            "LM Studio",
            OpenAICompletionsBackend,
            "(raw Harmony over /v1/completions as a text prompt, tokenized again by the server; "
            "gpt-oss by its architecture)",
        ),
        (
            ollama,
            "Ollama",
            OllamaRawBackend,
            "(raw Harmony over /api/generate (raw) as a text prompt, tokenized again "
            "by the server; gpt-oss by its architecture)",
        ),
        (
            vllm,
            "vLLM",
            OpenAICompletionsBackend,
            "(raw Harmony over /v1/completions as token ids; gpt-oss by its name: "
            "the server does not say a model's architecture)",
        ),
    ],
    ids=["lmstudio", "ollama", "vllm"],
)
async def test_each_server_is_recognised_and_runs_the_loop_in_raw_harmony(
    host: Host, make: Any, kind: str, backend: type, notice: str
) -> None:
    with serving(make()) as standin:
        pick = await anyio.to_thread.run_sync(model_pick.pick_model, standin.url)
        assert type(pick.backend) is backend and pick.format == "harmony"
        assert pick.notice.startswith(
            f"model {'gpt-oss:20b' if kind == 'Ollama' else 'openai/gpt-oss-20b'} on {kind} at"
        )
        assert pick.notice.endswith(notice)
        events = await one_turn(host, pick)
    done = answered(events)
    (result,) = [e for e in events if isinstance(e, ToolCallResult)]
    assert result.text == "42" and done.stats.tool_calls == 1
    assert "The sum is 42." in "".join(getattr(e, "text", "") for e in events if type(e).__name__ == "MessageDelta")

    generations = [b for path, b in standin.requests if path in ("/v1/completions", "/api/generate") and b]
    assert len(generations) == 2
    encoding = harmony_encoding()
    prompts = [
        body["prompt"] if isinstance(body["prompt"], list) else encoding.encode(body["prompt"], allowed_special="all")
        for body in generations
    ]
    if kind == "vLLM":
        assert all(isinstance(body["prompt"], list) for body in generations)  # token ids: no drift possible
    else:
        assert all(isinstance(body["prompt"], str) for body in generations)
    if kind == "Ollama":
        assert all(
            body["raw"] is True and set(body["options"]["stop"]) == {"<|call|>", "<|return|>"} for body in generations
        )
    # The second prompt extends the first by exactly what the model said (its call, and the stop token the server
    # cut off), then the tool's result: the host put back the <|call|> no server sent.
    said = encoding.encode(CALL, allowed_special="all")
    assert prompts[1][: len(prompts[0]) + len(said)] == prompts[0] + said
    assert encoding.decode(prompts[1][len(prompts[0]) + len(said) :]).startswith(
        "<|start|>functions.fx__add to=assistant"
    )


async def test_gpt_oss_is_known_by_the_architecture_the_server_names_never_by_its_name(host: Host) -> None:
    renamed = {"id": "my-finetune", **GPT_OSS}
    impostor = {"id": "gpt-oss-lookalike", "arch": "llama", "context": 4096}
    with serving(Standin("LM Studio", [impostor, renamed])) as standin:
        found = survey(standin.url)
        assert found is not None and found.kind == "LM Studio"
        assert [(m.id, m.harmony, m.known_by) for m in found.models] == [
            ("gpt-oss-lookalike", False, "architecture"),
            ("my-finetune", True, "architecture"),
        ]
        pick = await anyio.to_thread.run_sync(model_pick.pick_model, standin.url)
        assert pick.notice.startswith("model my-finetune on LM Studio") and pick.format == "harmony"
        assert pick.backend.context_length == 131072  # type: ignore[union-attr]
        await pick.backend.aclose()


async def test_another_model_runs_in_chat_mode_and_says_so(host: Host) -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "fx__add", "arguments": '{"a": 1, "b": 2}'}}
    chat = [{"reasoning": "Use the tool.", "tool_calls": [call]}, {"content": "It is 3."}]
    with serving(Standin("Ollama", [{"id": "llama3.2:3b", "arch": "llama", "context": 8192}], chat=chat)) as standin:
        pick = await anyio.to_thread.run_sync(model_pick.pick_model, standin.url)
        assert isinstance(pick.backend, OpenAIChatBackend) and pick.format == "chat"
        assert "(chat mode, not gpt-oss: the server applies the model's template and reads its calls)" in pick.notice
        events = await one_turn(host, pick, "What is 1 + 2?")
    answered(events)
    (result,) = [e for e in events if isinstance(e, ToolCallResult)]
    assert result.text == "3"
    second = [body for path, body in standin.requests if path == "/v1/chat/completions"][1]
    assert second["messages"][-1]["role"] == "tool" and second["messages"][-1]["content"] == "3"


async def test_the_servers_on_their_default_ports_are_found_in_order(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LMSTUDIO_MODELS_DIR", str(tmp_path / "none"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with serving(ollama()) as first, serving(vllm()) as second:
        monkeypatch.setattr(model_pick, "LOCAL_SERVERS", ("http://127.0.0.1:9", first.url, second.url))
        pick = await anyio.to_thread.run_sync(model_pick.pick_model, None)
        assert isinstance(pick.backend, OllamaRawBackend) and "on Ollama at" in pick.notice
        await pick.backend.aclose()
        monkeypatch.setattr(model_pick, "LOCAL_SERVERS", ("http://127.0.0.1:9", second.url))
        pick = await anyio.to_thread.run_sync(model_pick.pick_model, None)
        assert "on vLLM at" in pick.notice and pick.backend.context_length == 65536  # type: ignore[union-attr]
        await pick.backend.aclose()


# -- the real llama_cpp.server with the tiny gpt-oss model ---------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    model = tiny_gptoss(tmp_path_factory)
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(model),
            "--model_alias",
            "openai/gpt-oss-tiny",
            "--port",
            str(port),
            "--n_ctx",
            "8192",
            "--n_threads",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, process, limit_s=120)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(process)


async def test_the_real_llama_cpp_server_runs_a_turn_of_the_tiny_gpt_oss_in_raw_harmony(
    host: Host, tiny_server: str
) -> None:
    pick = await anyio.to_thread.run_sync(model_pick.pick_model, tiny_server)
    assert isinstance(pick.backend, OpenAICompletionsBackend) and pick.format == "harmony"
    assert "on an OpenAI-compatible server at" in pick.notice and "gpt-oss by its name" in pick.notice
    backend = pick.backend
    events = await one_turn(host, pick, "Say something.")
    # Random weights say garbage: the turn ends on its own terms (answered, faults reported, or out of rounds).
    (done,) = [e for e in events if isinstance(e, TurnCompleted)]
    assert done.stop_reason in ("answered", "max_rounds", "length", "error"), done
    assert not backend.send_token_ids  # llama_cpp.server refused token ids; the host fell back to text and says so
    assert backend.prompt_drift in (None, 0)


def test_the_stop_a_server_cut_off_is_told_by_the_message_in_progress() -> None:
    encoding = harmony_encoding()
    stops = frozenset(encoding.encode("<|call|><|return|>", allowed_special="all"))
    call, final = sorted(stops, reverse=True)  # 200012 <|call|>, 200002 <|return|>

    def ended(text: str, within: frozenset[int] = stops) -> int | None:
        return harmony_stop(encoding.encode(text, allowed_special="all"), within, encoding)

    assert ended(CALL.removesuffix("<|call|>")) == call
    assert ended("<|channel|>commentary<|message|>to= is only text here") == final
    assert ended(ANSWER.removesuffix("<|return|>")) == final
    assert ended("<|start|>assistant to=functions.fx__add<|channel|>commentary json<|message|>{}") == call
    assert ended("<|channel|>final<|message|>x", frozenset({final})) is None  # not a Harmony stop set


@pytest.mark.parametrize(
    ("piece", "now", "held"),
    [
        ("plain text", "plain text", ""),
        ("text<|chan", "text", "<|chan"),
        ("<|channel|>analysis", "<|channel|>analysis", ""),
        ("a<|end|>b<|mess", "a<|end|>b", "<|mess"),
        ("ends with <", "ends with ", "<"),
        ("<|" + "x" * 40, "<|" + "x" * 40, ""),  # too long to be a marker: text
    ],
)
def test_a_special_token_split_across_pieces_is_held_until_it_is_whole(piece: str, now: str, held: str) -> None:
    assert _hold_open_marker(piece) == (now, held)


def test_a_server_counting_the_prompt_otherwise_is_measured_and_said_once(caplog: pytest.LogCaptureFixture) -> None:
    backend = OpenAICompletionsBackend("http://127.0.0.1:9", "m", harmony_encoding(), send_token_ids=False)
    with caplog.at_level("WARNING", logger="mcp_host.backends.openai_http"):
        backend.saw_prompt(100, 100, as_ids=False)
        assert backend.prompt_drift == 0 and not caplog.records
        backend.saw_prompt(100, 103, as_ids=False)  # e.g. नमस्ते split otherwise by the server's pre-tokenizer
        backend.saw_prompt(120, 124, as_ids=False)
    assert backend.prompt_drift == 4
    (said,) = caplog.records
    assert "read the prompt as 103 tokens where the host rendered 100" in said.getMessage()
    assert "text (the server tokenizes it again)" in said.getMessage()
    anyio.run(backend.aclose)
