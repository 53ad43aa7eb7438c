"""Tools at scale: where every tool would crowd the context, each turn offers a selection of them.

Real servers: a generated `MCPServer` with 1,000 tools of varied names, descriptions and parameters (this
module, run as `python -m tests.test_tool_selection --serve`) and the published `mcp-server-time`; gpt-oss is
scripted as real Harmony tokens through `ReplayBackend`, which reports the prompt prefix a KV cache would reuse;
gemma runs for real through its chat template.
"""

from __future__ import annotations

import argparse
import inspect
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from bench.harmony import DOMAINS  # the same 25 domains the bench's 1,000 tools come from
from mcp_host.agent import ApprovalAnswer, ApprovalRequired, ChatOptions, ErrorEvent, Event, TurnCompleted
from mcp_host.agent.chat import Chat
from mcp_host.agent.selection import ToolSelection, conversation_of, terms
from mcp_host.backends import RecordedGeneration, ReplayBackend
from mcp_host.backends.llama_cpp import LlamaCppBackend
from mcp_host.config.settings import ToolSettings
from mcp_host.host import Host
from mcp_host.prompt import harmony_encoding
from mcp_host.tools import ToolSpec
from tests.conftest import ROOT, time_server_command, write_config

pytestmark = pytest.mark.anyio

# 25 domains x 10 verbs x 4 flavours = 1,000 tools, none of them about the time of day.
VERBS = [
    ("get", "Get one {obj} from {domain} by its id."),
    ("list", "List the {obj}s of {domain}, newest first."),
    ("create", "Create a new {obj} in {domain}."),
    ("update", "Change an existing {obj} in {domain}."),
    ("delete", "Remove a {obj} from {domain} for good."),
    ("search", "Search {domain} for {obj}s matching some words."),
    ("export", "Export {obj}s from {domain} as CSV."),
    ("archive", "Archive an old {obj} of {domain}."),
    ("count", "Count the {obj}s in {domain}."),
    ("share", "Share a {obj} of {domain} with someone."),
]
FLAVOURS = [
    ("", ""),
    ("_batch", " Works on many at once."),
    ("_draft", " Keeps a draft first."),
    ("_history", " Past versions too."),
]
ANSWER = "<|channel|>final<|message|>{text}<|return|>"
PINNED = ("many.notes_get_note", "many.weather_*_forecast")


def many_tools() -> list[tuple[str, str, tuple[str, ...]]]:
    """(name, description, parameter names) of the generated server's 1,000 tools."""
    return [
        (f"{domain}_{verb}_{obj}{suffix}", text.format(obj=obj, domain=domain) + extra, parameters)
        for domain, obj, parameters in DOMAINS
        for verb, text in VERBS
        for suffix, extra in FLAVOURS
    ]


def serve_many_tools() -> None:
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("many", version="1.0")
    for name, description, parameters in many_tools():

        def tool(**arguments: str) -> str:
            return json.dumps(arguments)

        signature = [
            inspect.Parameter(p, inspect.Parameter.KEYWORD_ONLY, default="", annotation=str) for p in parameters
        ]
        tool.__signature__ = inspect.Signature(signature)  # type: ignore[attr-defined]
        server.add_tool(tool, name=name, description=description)
    server.run("stdio")


def servers() -> dict[str, Any]:
    many = {"command": sys.executable, "args": ["-m", "tests.test_tool_selection", "--serve"], "cwd": str(ROOT)}
    return {"many": many, "time": {"command": time_server_command(), "args": ["--local-timezone", "UTC"]}}


@pytest.fixture(scope="module")
async def host(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Host]:
    folder = tmp_path_factory.mktemp("selection")
    config = write_config(folder / "mcp.json", servers())
    async with Host(config, settings_path=folder / "settings.toml", plugins=False) as running:
        await running.wait_settled()
        assert len(running.registry) == 1002, [status.error for status in running.statuses()]
        yield running


def call(tool: str, arguments: str) -> str:
    return (
        f"<|channel|>analysis<|message|>I should use {tool}.<|end|><|start|>assistant<|channel|>commentary "
        f"to=functions.{tool} <|constrain|>json<|message|>{arguments}<|call|>"
    )


def script(*outputs: str, context: int = 16384) -> ReplayBackend:
    encoding = harmony_encoding()
    generations = [
        RecordedGeneration([], list(encoding.encode(text, allowed_special="all")), "stop") for text in outputs
    ]
    return ReplayBackend(generations, context_length=context)


async def run_turn(chat: Chat, text: str, tools: Sequence[Callable[..., Any]] = ()) -> list[Event]:
    events: list[Event] = []
    async for event in chat.send(text, tools=tools):
        events.append(event)
        if isinstance(event, ApprovalRequired):
            chat.answer(event.call_id, ApprovalAnswer("allow"))
    return events


def completed(events: list[Event]) -> TurnCompleted:
    (done,) = [event for event in events if isinstance(event, TurnCompleted)]
    assert not [event for event in events if isinstance(event, ErrorEvent)]
    return done


def offered(selection: ToolSelection | None) -> dict[str, tuple[str, ...]]:
    assert selection is not None
    return {choice.name: choice.reasons for choice in selection.selected}


def developer_message(prompt: Sequence[int]) -> str:
    text = harmony_encoding().decode(list(prompt))
    start = text.index("<|start|>developer")
    return text[start : text.index("<|end|>", start)]


async def test_below_the_threshold_every_tool_is_offered_as_before(host: Host) -> None:
    few = host.registry.view(without=["many"])  # the time server's two tools
    prompts = []
    for settings in (ToolSettings(), ToolSettings(selection="off")):
        backend = script(ANSWER.format(text="It is noon."))
        chat = host.chat(backend, ChatOptions(tool_selection=settings), tools=few)
        completed(await run_turn(chat, "What time is it in Tokyo?"))
        assert chat.tool_selection is not None and not chat.tool_selection.active
        prompts.append(backend.prompts[0])
    assert prompts[0] == prompts[1]  # no change at all in what the model reads
    assert "type time__get_current_time" in developer_message(prompts[0])
    assert "type time__convert_time" in developer_message(prompts[0])


async def test_above_the_threshold_the_turn_offers_what_the_message_is_about_within_the_budget(host: Host) -> None:
    backend = script(
        call("time__get_current_time", '{"timezone": "Asia/Tokyo"}'),
        call("time__convert_time", '{"source_timezone": "Asia/Tokyo", "time": "12:00", "target_timezone": "UTC"}'),
        ANSWER.format(text="It is noon in Tokyo."),
    )
    chat = host.chat(backend)
    done = completed(await run_turn(chat, "What time is it in Tokyo?"))
    assert done.stop_reason == "answered" and done.stats.tool_calls == 2  # the real time server answered
    selection = chat.tool_selection
    assert selection is not None and selection.active
    assert selection.all_tokens > 2 * 16384  # every tool would not fit the context twice over
    assert selection.selected_tokens <= selection.budget_tokens == int(0.15 * 16384)
    reasons = offered(selection)
    assert reasons.pop("time.get_current_time") == reasons.pop("time.convert_time") == ("matches the conversation",)
    assert set(reasons.values()) == {("fills the budget",)}  # the rest of the budget: the registry's first tools
    assert 20 < len(reasons) < 60 and len(backend.prompts[0]) < 0.25 * 16384
    # One selection per turn: every round's prompt is the previous one plus what came since, tools untouched.
    first, second, third = backend.prompts
    assert second[: len(first)] == first and third[: len(second)] == second
    assert done.stats.prompt_tokens_reused >= len(first) + len(second)


async def test_pinned_tools_and_tools_used_earlier_always_stay(host: Host) -> None:
    backend = script(
        call("time__get_current_time", '{"timezone": "Asia/Tokyo"}'),
        ANSWER.format(text="It is noon."),
        ANSWER.format(text="Here is a jazz playlist."),
        ANSWER.format(text="Still jazz."),
    )
    options = ChatOptions(tool_selection=ToolSettings(pinned=PINNED))
    chat = host.chat(backend, options)
    completed(await run_turn(chat, "What time is it in Tokyo?"))
    pinned = {"many.notes_get_note"} | {f"many.weather_{verb}_forecast" for verb, _ in VERBS}
    first = offered(chat.tool_selection)
    assert all(first[name] == ("pinned",) for name in pinned) and "time.get_current_time" in first

    completed(await run_turn(chat, "Make me a playlist of jazz by Miles Davis"))
    second = offered(chat.tool_selection)
    assert second["time.get_current_time"] == ("used earlier",)
    assert all(second[name] == ("pinned",) for name in pinned)
    assert second["many.music_create_playlist"] == ("matches the conversation",)
    assert "type time__get_current_time" in developer_message(backend.prompts[2])
    assert chat.tool_selection is not None and chat.tool_selection.selected_tokens <= chat.tool_selection.budget_tokens

    # A chat restored from a snapshot still knows which tools the conversation used.
    restored = host.chat(backend, options)
    restored.restore(chat.snapshot())
    completed(await run_turn(restored, "And a playlist of rock?"))
    assert offered(restored.tool_selection)["time.get_current_time"] == ("used earlier",)


async def test_plugins_the_required_tool_and_the_turns_functions_stay(host: Host) -> None:
    schema = {"type": "object", "properties": {"expression": {"type": "string"}}}
    plugin = ToolSpec("calc", "evaluate", "Evaluate an arithmetic expression.", schema, schema, origin="plugin")
    backend = script(ANSWER.format(text="Done."))
    options = ChatOptions(required_tool="many__travel_get_booking")  # as the model calls it: kept all the same
    chat = host.chat(backend, options, tools=host.registry.view(extra=[plugin]))

    def look_up_flight(number: str) -> str:
        """Look up a flight by its number."""
        return number

    completed(await run_turn(chat, "What time is it in Tokyo?", [look_up_flight]))
    reasons = offered(chat.tool_selection)
    assert reasons["calc.evaluate"] == ("plugin",)
    assert reasons["many.travel_get_booking"] == ("required by the chat",)
    assert reasons["app.look_up_flight"] == ("offered for this turn",)
    tools = developer_message(backend.prompts[0])
    for name in ("calc__evaluate", "many__travel_get_booking", "app__look_up_flight"):
        assert f"type {name} =" in tools


async def test_a_second_turn_on_the_same_topic_reuses_the_prompt_up_to_the_conversation(host: Host) -> None:
    reused = {}
    for mode, context in (("auto", 16384), ("off", 131072)):  # every tool fits only the large context
        backend = script(ANSWER.format(text="It is noon in Tokyo."), ANSWER.format(text="3 am."), context=context)
        chat = host.chat(backend, ChatOptions(tool_selection=ToolSettings(selection=mode)))
        completed(await run_turn(chat, "What time is it in Tokyo?"))
        done = completed(await run_turn(chat, "And what time is it in London?"))
        first, second = backend.prompts
        assert second[: len(first)] == first  # the same tools, in the same order: the whole first prompt is shared
        reused[mode] = (done.stats.prompt_tokens_reused, done.stats.prompt_tokens_evaluated)
    # The same conversation evaluates as few new tokens with a selection as with every tool (which it does not hold).
    assert reused["auto"][1] == reused["off"][1] and reused["auto"][0] < reused["off"][0] / 10


async def test_a_turn_of_a_real_model_fits_its_context_with_a_selection(host: Host, gemma: LlamaCppBackend) -> None:
    chat = host.chat(gemma, ChatOptions(max_tokens_per_round=8, temperature=0.0))
    done = completed(await run_turn(chat, "What time is it in Tokyo?"))
    selection = chat.tool_selection
    assert selection is not None and selection.active and selection.all_tokens > 10 * gemma.context_length
    assert {"time.get_current_time", "time.convert_time"} <= set(offered(selection))
    assert done.stats.prompt_tokens_evaluated + done.stats.prompt_tokens_reused < gemma.context_length


def test_the_conversation_is_read_from_either_transcript_shape() -> None:
    from mcp_host.tools.names import NameMap

    names = NameMap.build([("time", "get_current_time"), ("many", "notes_get_note")])
    openai = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What time is it?"},
        {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "time__get_current_time"}}]},
        {"role": "tool", "content": "12:00"},
        {"role": "assistant", "content": [{"type": "text", "text": "Noon."}]},
    ]
    assert conversation_of(openai, names) == (["What time is it?", "Noon."], ["time.get_current_time"])
    harmony = [
        {"role": "user", "content": [{"type": "text", "text": "Note this"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "..."}], "channel": "analysis"},
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "{}"}],
            "recipient": "functions.many__notes_get_note",
        },
    ]
    assert conversation_of(harmony, names) == (["Note this"], ["many.notes_get_note"])
    assert terms("getCurrentTime in the time-zones of Tokyo") == ["get", "current", "time", "time", "zone", "tokyo"]


def mcp_host(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    config = write_config(folder / "mcp.json", servers())
    (folder / "settings.toml").write_text('[tools]\npinned = ["many.notes_get_note"]\n')
    command = [
        sys.executable,
        "-m",
        "mcp_host.cli",
        "--config",
        str(config),
        "--settings",
        str(folder / "settings.toml"),
    ]
    return subprocess.run([*command, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_render_shows_the_selected_tools_and_why(tmp_path: Path) -> None:
    result = mcp_host(tmp_path, "render", "--message", "What time is it in Tokyo?", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    selection = document["selection"]
    assert selection["active"] and selection["left_out"] == 1002 - len(selection["offered"])
    reasons = {tool["name"]: tool["reasons"] for tool in selection["offered"]}
    assert reasons.pop("many.notes_get_note") == ["pinned"]
    assert reasons.pop("time.convert_time") == reasons.pop("time.get_current_time") == ["matches the conversation"]
    assert {tuple(why) for why in reasons.values()} == {("fills the budget",)}
    assert all(tool["score"] > 0 for tool in selection["offered"] if tool["name"].startswith("time."))
    assert "type time__get_current_time" in document["prompt"] and "many__weather_get_forecast" in document["prompt"]
    assert "many__travel" not in document["prompt"]  # the budget was spent before the registry got that far
    budget = selection["budget_tokens"]
    assert selection["selected_tokens"] <= budget < document["tokens"] < 1.1 * budget
    assert "Each turn offers only the tools it needs" in document["warning"]

    table = mcp_host(tmp_path, "render", "--message", "Search my notes about jazz")
    assert table.returncode == 0, table.stderr
    assert "this turn offers" in table.stdout and "of 1002 tools" in table.stdout
    rows = {line.split()[0]: line.rstrip() for line in table.stdout.splitlines() if line.startswith("many.")}
    assert rows["many.notes_get_note"].endswith("pinned")
    assert rows["many.notes_search_note"].endswith("matches the conversation")
    assert "left out:" in table.stdout and "warning: tools take" in table.stderr


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="the generated 1,000-tool MCP server (stdio)")
    parser.add_argument("--serve", action="store_true")
    if parser.parse_args().serve:
        serve_many_tools()
