"""Servers' questions in the middle of a chat turn, on the real gemma GGUF and server-everything over stdio.

The first round is grammar-constrained to call the trigger tool (`required_tool`), so the whole path
runs on real llama.cpp: the call, the server's request, its approval or form, the model's sampling.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mcp_host.agent import (
    ApprovalAnswer,
    ApprovalRequired,
    ChatOptions,
    ElicitationAnswer,
    ElicitationRequired,
    Event,
    ToolCallResult,
    TurnCompleted,
)
from mcp_host.agent.asks import sampling_spec
from mcp_host.backends.llama_cpp import LlamaCppBackend
from mcp_host.errors import ElicitationInputError, UnknownApprovalError
from mcp_host.host import Host
from tests.conftest import everything_command, write_config

pytestmark = pytest.mark.anyio


def everything_config(tmp_path: Path) -> Path:
    return write_config(tmp_path / "mcp.json", {"everything": {"command": everything_command(), "args": ["stdio"]}})


async def test_sampling_is_approved_then_written_by_the_chats_own_model(gemma: LlamaCppBackend, tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    async with Host(everything_config(tmp_path), settings_path=tmp_path / "settings.toml", audit_path=audit) as host:
        await host.wait_settled()
        options = ChatOptions(
            required_tool="everything.trigger-sampling-request", max_rounds=2, max_tokens_per_round=96, seed=3
        )
        chat = host.chat(gemma, options)
        events: list[Event] = []
        async with chat.turn("Ask the server to sample a greeting.") as stream:
            async for event in stream:
                events.append(event)
                if isinstance(event, ApprovalRequired):
                    decision = "always" if event.tool.endswith("sampling/createMessage") else "allow"
                    chat.answer(event.call_id, ApprovalAnswer(decision))
    asked = [e for e in events if isinstance(e, ApprovalRequired)]
    assert [e.tool for e in asked] == ["everything.trigger-sampling-request", "everything.sampling/createMessage"]
    assert asked[1].reason.startswith("everything asks the model to write a message")
    assert isinstance(asked[1].arguments, dict) and asked[1].arguments["messages"]
    (result,) = [e for e in events if isinstance(e, ToolCallResult)]
    assert not result.is_error, result.text
    assert "LLM sampling result" in result.text and gemma.name in result.text  # gemma answered it
    assert isinstance(events[-1], TurnCompleted)
    # "always" persisted: the next sampling request of this server is not asked.
    assert host.permissions.verdict(sampling_spec("everything")).policy == "allow"
    assert '"event": "sampling"' in audit.read_text()


async def test_elicitation_form_is_validated_then_answered_and_late_answers_are_refused(
    gemma: LlamaCppBackend, tmp_path: Path
) -> None:
    async with Host(everything_config(tmp_path), settings_path=tmp_path / "settings.toml") as host:
        await host.wait_settled()
        options = ChatOptions(
            required_tool="everything.trigger-elicitation-request", max_rounds=2, max_tokens_per_round=64, seed=3
        )
        chat = host.chat(gemma, options)
        events: list[Event] = []
        problems: list[str] = []
        async with chat.turn("Ask me for my details.") as stream:
            async for event in stream:
                events.append(event)
                if isinstance(event, ApprovalRequired):
                    chat.answer(event.call_id, ApprovalAnswer("allow"))
                elif isinstance(event, ElicitationRequired):
                    with pytest.raises(ElicitationInputError) as wrong:
                        chat.answer_elicitation(event.elicitation_id, ElicitationAnswer("accept", {"email": "nope"}))
                    problems.append(str(wrong.value))
                    chat.answer_elicitation(
                        event.elicitation_id, ElicitationAnswer("accept", {"name": "Ada", "email": "ada@example.org"})
                    )
        (asked,) = [e for e in events if isinstance(e, ElicitationRequired)]
        assert asked.mode == "form" and asked.server == "everything" and asked.requested_schema
        assert "email: must be an email address" in problems[0]
        (result,) = [e for e in events if isinstance(e, ToolCallResult)]
        assert "Ada" in result.text and "It was a dark and stormy night." in result.text  # the default applied
        with pytest.raises(UnknownApprovalError):
            chat.answer_elicitation(asked.elicitation_id, ElicitationAnswer("decline"))
