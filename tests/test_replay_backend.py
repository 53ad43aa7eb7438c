"""Recording real generations and replaying them token for token."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mcp_host.backends import BackendError, GenerationParams, RecordedGeneration, RecordingBackend, ReplayBackend
from mcp_host.backends.llama_cpp import LlamaCppBackend
from mcp_host.prompt import STOP_TOKENS, HarmonyStreamParser, ToolCallRequest, harmony_encoding

pytestmark = pytest.mark.anyio


async def collect(backend: RecordingBackend | ReplayBackend, prompt: list[int], params: GenerationParams) -> list[int]:
    async with backend.generate(prompt, params) as generation:
        return [token async for token in generation]


async def test_a_recorded_chat_replays_token_for_token(gemma: LlamaCppBackend, tmp_path: Path) -> None:
    path = tmp_path / "chat.jsonl"
    recorder = RecordingBackend(gemma, path)
    params = GenerationParams(max_tokens=12, temperature=0.0)
    first_prompt = [2, *gemma.tokenize("Tools are")]
    first = await collect(recorder, first_prompt, params)
    second_prompt = [*first_prompt, *first, *gemma.tokenize(" Also,")]
    second = await collect(recorder, second_prompt, params)

    replay = ReplayBackend.load(path, check_prompts=True)
    assert replay.name == f"replay of {gemma.name}" and replay.remaining == 2
    assert await collect(replay, first_prompt, params) == first
    async with replay.generate(second_prompt, params) as generation:
        assert [t async for t in generation] == second
    assert generation.stats.reused_prompt_tokens == len(first_prompt) + len(first)  # as a KV cache would
    with pytest.raises(BackendError, match="no more generations"):
        replay.generate(second_prompt, params)


async def test_a_different_prompt_is_caught_when_checking(tmp_path: Path) -> None:
    replay = ReplayBackend([RecordedGeneration([1, 2, 3], [4, 5], "stop")], check_prompts=True)
    with pytest.raises(BackendError, match="differs from the recording at token 2"):
        replay.generate([1, 2, 9], GenerationParams())


def test_unreadable_recordings_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"type": "header", "version": 1}) + "\n{not json\n")
    with pytest.raises(BackendError, match=f"{path}:2: not a recording line"):
        ReplayBackend.load(path)
    with pytest.raises(BackendError, match="cannot read recording"):
        ReplayBackend.load(tmp_path / "missing.jsonl")


async def test_scripted_gpt_oss_output_streams_through_the_harmony_parser() -> None:
    encoding = harmony_encoding()
    script = encoding.encode(
        "<|channel|>analysis<|message|>Need the time.<|end|><|start|>assistant<|channel|>"
        "commentary to=functions.time__now <|constrain|>json<|message|>{}<|call|>"
        "<|start|>assistant<|channel|>final<|message|>never reached<|return|>",
        allowed_special="all",
    )
    replay = ReplayBackend([RecordedGeneration([], list(script), "stop")], tokens_per_second=2000)
    parser = HarmonyStreamParser({"time__now"})
    async with replay.generate([200006], GenerationParams(stop_tokens=STOP_TOKENS)) as generation:
        async for token in generation:
            events = parser.feed(token)
            if any(isinstance(e, ToolCallRequest) for e in events):
                break
    assert parser.stop_reason == "call" and generation.stats.stop_reason == "stop"
