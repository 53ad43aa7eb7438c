"""A conversation saved as data while a call waits for approval, restored in a new chat, and resumed there.

What a server that is killed mid-turn and restarted does: the snapshot (JSON through a file) is all that
survives; the new chat runs the waiting call under the same id once approved, then the model goes on.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mcp_host.agent import (
    ApprovalAnswer,
    ApprovalRequired,
    Chat,
    ChatOptions,
    Event,
    ToolCallCreated,
    ToolCallResult,
    TurnCompleted,
)
from mcp_host.backends.llama_cpp import LlamaCppBackend
from mcp_host.host import Host
from mcp_host.prompt import harmony_encoding
from tests.conftest import fixture_entry, write_config
from tests.test_api_openai import scripted

pytestmark = pytest.mark.anyio
CALL = (
    "<|channel|>analysis<|message|>Add them.<|end|><|start|>assistant<|channel|>commentary "
    'to=functions.fx__add <|constrain|>json<|message|>{"a": 20, "b": 22}<|call|>'
)
FINAL = "<|channel|>final<|message|>It is 42.<|return|>"


async def until_approval(chat: Chat, text: str) -> tuple[ApprovalRequired, dict[str, object]]:
    """Run a turn until it asks for approval; the snapshot taken then (through JSON), and the turn dropped."""
    async with chat.turn(text) as events:
        async for event in events:
            if isinstance(event, ApprovalRequired):
                return event, json.loads(json.dumps(chat.snapshot()))
    raise AssertionError("the turn never asked for approval")


async def resumed(chat: Chat, call_ids: list[str], answer: ApprovalAnswer) -> list[Event]:
    seen: list[Event] = []
    async with chat.resume(call_ids=call_ids) as events:
        async for event in events:
            seen.append(event)
            if isinstance(event, ApprovalRequired):
                chat.answer(event.call_id, answer)
    return seen


async def test_a_harmony_turn_waiting_on_approval_goes_on_in_a_new_chat(tmp_path: Path) -> None:
    config = write_config(tmp_path / "mcp.json", {"fx": fixture_entry()})
    async with Host(config, settings_path=tmp_path / "settings.toml") as host:
        await host.wait_settled()
        first = host.chat(scripted(CALL, name="openai/gpt-oss-20b"), ChatOptions())
        async with first:
            asked, snapshot = await until_approval(first, "What is 20 + 22?")
        assert asked.call_id == "call_1" and asked.tool == "fx.add"

        model = scripted(FINAL, name="openai/gpt-oss-20b")
        second = host.chat(model, ChatOptions())
        async with second:
            second.restore(snapshot)
            events = await resumed(second, [asked.call_id], ApprovalAnswer("allow"))
            (created,) = [e for e in events if isinstance(e, ToolCallCreated)]
            (result,) = [e for e in events if isinstance(e, ToolCallResult)]
            (done,) = [e for e in events if isinstance(e, TurnCompleted)]
            assert created.call_id == asked.call_id and created.arguments == {"a": 20, "b": 22}
            assert result.text == "42" and not result.is_error  # computed by the real server
            assert done.stop_reason == "answered" and done.answer == "It is 42."
            prompt = harmony_encoding().decode(model.prompts[0])
            assert "What is 20 + 22?" in prompt and "to=functions.fx__add" in prompt
            assert prompt.rstrip().endswith("<|start|>assistant")
            assert "<|start|>functions.fx__add to=assistant<|channel|>commentary<|message|>42<|end|>" in prompt
            assert second.snapshot()["calls_made"] == 1  # the next call is call_2, never a second call_1


async def test_a_denied_call_after_restore_is_not_run(tmp_path: Path) -> None:
    config = write_config(tmp_path / "mcp.json", {"fx": fixture_entry()})
    async with Host(config, settings_path=tmp_path / "settings.toml") as host:
        await host.wait_settled()
        async with host.chat(scripted(CALL, name="openai/gpt-oss-20b"), ChatOptions()) as first:
            asked, snapshot = await until_approval(first, "What is 20 + 22?")
        model = scripted(FINAL, name="openai/gpt-oss-20b")
        async with host.chat(model, ChatOptions()) as second:
            second.restore(snapshot)
            events = await resumed(second, [asked.call_id], ApprovalAnswer("deny", reason="not now"))
        (result,) = [e for e in events if isinstance(e, ToolCallResult)]
        assert result.is_error and "not now" in result.text
        assert "not now" in harmony_encoding().decode(model.prompts[0])


async def test_a_snapshot_of_another_format_is_refused(tmp_path: Path, gemma: LlamaCppBackend) -> None:
    config = write_config(tmp_path / "mcp.json", {})
    async with Host(config, settings_path=tmp_path / "settings.toml") as host:
        harmony = host.chat(scripted(name="openai/gpt-oss-20b"), ChatOptions())
        template = host.chat(gemma, ChatOptions())
        with pytest.raises(ValueError, match="'harmony' conversation cannot go on with a template model"):
            template.restore(harmony.snapshot())
        await harmony.aclose()
        await template.aclose()


async def test_a_template_turn_with_a_real_model_goes_on_after_restore(gemma: LlamaCppBackend, tmp_path: Path) -> None:
    config = write_config(tmp_path / "mcp.json", {"fx": fixture_entry()})
    async with Host(config, settings_path=tmp_path / "settings.toml") as host:
        await host.wait_settled()
        options = ChatOptions(required_tool="fx.add", max_rounds=2, max_tokens_per_round=64, temperature=0.2, seed=5)
        async with host.chat(gemma, options) as first:
            asked, snapshot = await until_approval(first, "Please add 20 and 22 with the tool.")
        assert snapshot["format"] == "template"
        async with host.chat(gemma, options) as second:
            second.restore(snapshot)
            events = await resumed(second, [asked.call_id], ApprovalAnswer("allow"))
            (result,) = [e for e in events if isinstance(e, ToolCallResult)]
            arguments = asked.arguments
            assert result.text == str(arguments["a"] + arguments.get("b", 2))  # type: ignore[operator]
            assert isinstance(events[-1], TurnCompleted) and events[-1].stats.rounds == 2
            messages = second.transcript()
            assert [m["role"] for m in messages][:4] == ["user", "assistant", "tool", "assistant"], messages
            assert messages[1]["tool_calls"][0]["id"] == asked.call_id
