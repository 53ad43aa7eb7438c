"""The whole loop with the real gemma GGUF on the template path: a required tool call reaches a real MCP server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mcp_host.agent import ChatOptions, ToolCallCreated, ToolCallResult, TurnCompleted
from mcp_host.backends import RecordingBackend
from mcp_host.backends.llama_cpp import LlamaCppBackend
from mcp_host.host import Host
from tests.conftest import fixture_entry, write_config

pytestmark = pytest.mark.anyio


async def test_a_required_call_reaches_the_server_and_the_result_is_fed_back(
    gemma: LlamaCppBackend, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "mcp.json", {"fx": fixture_entry()})
    settings = tmp_path / "settings.toml"
    settings.write_text('[permissions.tools]\n"fx.add" = "allow"\n')
    recording = tmp_path / "rounds.jsonl"
    async with Host(config, settings_path=settings) as host:
        await host.wait_settled()
        options = ChatOptions(required_tool="fx.add", max_rounds=2, max_tokens_per_round=96, temperature=0.2, seed=5)
        chat = host.chat(RecordingBackend(gemma, recording), options)
        assert chat.format == "template"
        events = [event async for event in chat.send("Please add 20 and 22 with the tool.")]
    (created,) = [e for e in events if isinstance(e, ToolCallCreated)]
    assert created.tool == "fx.add" and isinstance(created.arguments, dict)
    arguments = created.arguments
    (result,) = [e for e in events if isinstance(e, ToolCallResult)]
    assert not result.is_error
    assert result.text == str(arguments["a"] + arguments.get("b", 2))  # computed by the real server
    (done,) = [e for e in events if isinstance(e, TurnCompleted)]
    assert done.stats.rounds == 2 and done.stats.tool_calls == 1
    rounds = [json.loads(line) for line in recording.read_text().splitlines()[1:]]
    second_prompt = gemma.detokenize(rounds[1]["prompt"])
    assert f"Result of tool fx__add: {result.text}" in second_prompt  # fed back to the model
    assert "[TOOL_REQUEST]" in gemma.detokenize(rounds[0]["tokens"])
