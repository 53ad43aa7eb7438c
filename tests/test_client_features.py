"""The client side of MCP beyond tools, against `@modelcontextprotocol/server-everything` over stdio and HTTP.

Roots, elicitation (form and URL), sampling, progress, logging, resources (read, templates, subscribe),
prompts with completion, and the task-only tool, each through the host's `ServerManager`; the sampling and
elicitation the server sends as tasks are in test_client_tasks.py.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import mcp_types
import pytest

from mcp_host.agent import ElicitationRequired, ErrorEvent, ToolCallResult, TurnCompleted
from mcp_host.backends import RecordedGeneration, ReplayBackend
from mcp_host.config.mcpjson import McpConfig, RemoteServerConfig, ServerConfig, StdioServerConfig
from mcp_host.errors import ToolCallError
from mcp_host.host import Host
from mcp_host.prompt import harmony_encoding
from mcp_host.servers import ServerManager, ServerState
from mcp_host.servers.asks import NoOneToAsk, SamplingReply
from mcp_host.servers.elicitation import ElicitationInputError, apply_defaults, form_fields, validate_content
from tests.conftest import everything_command, fast_settings, fixture_entry, write_config

pytestmark = pytest.mark.anyio

EVERY_TOOL = {
    "echo",
    "get-annotated-message",
    "get-env",
    "get-resource-links",
    "get-resource-reference",
    "get-structured-content",
    "get-sum",
    "get-tiny-image",
    "gzip-file-as-resource",
    "toggle-simulated-logging",
    "toggle-subscriber-updates",
    "trigger-long-running-operation",
    "get-roots-list",
    "trigger-elicitation-request",
    "trigger-url-elicitation",
    "trigger-sampling-request",
    "simulate-research-query",
    "trigger-sampling-request-async",
    "trigger-elicitation-request-async",
}


class ScriptedUser(NoOneToAsk):
    """Answers like a user would, and records what it was asked."""

    def __init__(self) -> None:
        self.elicitations: list[mcp_types.ElicitRequestParams] = []
        self.samplings: list[mcp_types.CreateMessageRequestParams] = []
        self.progress_seen: list[tuple[float, float | None, str | None]] = []
        self.logs: list[mcp_types.LoggingMessageNotificationParams] = []
        self.action: str = "accept"

    async def elicit(self, server: str, params: mcp_types.ElicitRequestParams) -> mcp_types.ElicitResult:
        self.elicitations.append(params)
        if self.action != "accept":
            return mcp_types.ElicitResult(action=self.action)  # type: ignore[arg-type]
        if isinstance(params, mcp_types.ElicitRequestURLParams):
            return mcp_types.ElicitResult(action="accept")
        schema = dict(params.requested_schema)
        answers = {"name": "Ada Lovelace", "check": True, "email": "ada@example.org", "interpretation": "technical"}
        content = validate_content(
            schema, apply_defaults(schema, {k: v for k, v in answers.items() if k in schema.get("properties", {})})
        )
        return mcp_types.ElicitResult(action="accept", content=content)

    async def sample(self, server: str, params: mcp_types.CreateMessageRequestParams) -> SamplingReply:
        self.samplings.append(params)
        return mcp_types.CreateMessageResult(
            role="assistant", content=mcp_types.TextContent(text="sampled reply"), model="scripted"
        )

    async def progress(self, server: str, progress: float, total: float | None, message: str | None) -> None:
        self.progress_seen.append((progress, total, message))

    async def log(self, server: str, params: mcp_types.LoggingMessageNotificationParams) -> None:
        self.logs.append(params)


@pytest.fixture(params=["stdio", "http"])
def everything(request: pytest.FixtureRequest) -> ServerConfig:
    if request.param == "stdio":
        return StdioServerConfig(command=everything_command(), args=["stdio"])
    url: str = request.getfixturevalue("everything_http")
    return RemoteServerConfig(url=url)


@asynccontextmanager
async def connected(config: ServerConfig, user: NoOneToAsk) -> AsyncIterator[ServerManager]:
    changes: list[tuple[str, str]] = []
    async with ServerManager(
        fast_settings(connect_timeout_s=30, log_level="debug"),
        asks=user,
        on_change=lambda _c, what, detail: changes.append((what, detail)),
    ) as manager:
        manager.changes = changes  # type: ignore[attr-defined]
        await manager.apply(McpConfig(servers={"everything": config}))
        await manager.wait_settled()
        connection = manager.connection("everything")
        assert connection.state is ServerState.READY, connection.error
        yield manager


async def test_every_tool_is_offered_and_roots_are_the_working_directory(everything: ServerConfig) -> None:
    async with connected(everything, ScriptedUser()) as manager:
        offered = {spec.tool for spec in manager.registry.server_tools("everything")}
        # Every one, the async sampling/elicitation triggers too: the host runs tasks for the server
        # (their calls are in test_client_tasks.py).
        assert offered == EVERY_TOOL
        roots = await manager.call_tool("everything.get-roots-list", {})
        assert Path(os.getcwd()).as_uri() in roots.text
        connection = manager.connection("everything")
        served = connection.roots_served
        await connection.set_roots(["/tmp"])
        with anyio.fail_after(10):  # the server asks again once told the roots changed
            while connection.roots_served == served:
                await anyio.sleep(0.05)
        changed = await manager.call_tool("everything.get-roots-list", {})
        assert "file:///tmp" in changed.text and Path(os.getcwd()).as_uri() not in changed.text


async def test_elicitation_form_url_decline_and_cancel(everything: ServerConfig) -> None:
    user = ScriptedUser()
    async with connected(everything, user) as manager:
        result = await manager.call_tool("everything.trigger-elicitation-request", {})
        assert not result.is_error, result.text
        assert "Ada Lovelace" in result.text and "It was a dark and stormy night." in result.text
        assert isinstance(user.elicitations[0], mcp_types.ElicitRequestFormParams)
        url = await manager.call_tool(
            "everything.trigger-url-elicitation", {"url": "https://example.org/login", "elicitationId": "e1"}
        )
        assert not url.is_error, url.text
        assert isinstance(user.elicitations[1], mcp_types.ElicitRequestURLParams)
        assert user.elicitations[1].url == "https://example.org/login"
        for action in ("decline", "cancel"):
            user.action = action
            answered = await manager.call_tool("everything.trigger-elicitation-request", {})
            assert action in answered.text.lower(), answered.text


async def test_sampling_progress_and_logging(everything: ServerConfig) -> None:
    user = ScriptedUser()
    async with connected(everything, user) as manager:
        sampled = await manager.call_tool("everything.trigger-sampling-request", {"prompt": "Say hi", "maxTokens": 5})
        assert "sampled reply" in sampled.text
        assert user.samplings[0].max_tokens == 5
        long = await manager.call_tool("everything.trigger-long-running-operation", {"duration": 1, "steps": 3})
        assert not long.is_error
        assert [p[0] for p in user.progress_seen] == [1, 2, 3] and user.progress_seen[-1][1] == 3
        await manager.call_tool("everything.toggle-simulated-logging", {})
        with anyio.fail_after(15):  # the server logs once at once, then every 5 s
            while not manager.connection("everything").logs:
                await anyio.sleep(0.1)
        level = manager.connection("everything").logs[0][1]
        assert level in ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")


async def test_resources_templates_subscribe_and_updates(everything: ServerConfig) -> None:
    async with connected(everything, ScriptedUser()) as manager:
        connection = manager.connection("everything")
        resources = await connection.list_resources()
        assert any(r.uri == "demo://resource/static/document/architecture.md" for r in resources)
        templates = await connection.list_resource_templates()
        assert {t.uri_template for t in templates} >= {"demo://resource/dynamic/text/{resourceId}"}
        read = await connection.read_resource("demo://resource/dynamic/text/7")
        assert isinstance(read.contents[0], mcp_types.TextResourceContents)
        await connection.subscribe_resource("demo://resource/dynamic/text/7")
        await manager.call_tool("everything.toggle-subscriber-updates", {})
        changes: list[tuple[str, str]] = manager.changes  # type: ignore[attr-defined]
        with anyio.fail_after(15):  # updates come every 5 s
            while not any(what == "resource_updated" for what, _ in changes):
                await anyio.sleep(0.1)
        assert ("resource_updated", "demo://resource/dynamic/text/7") in changes


async def test_prompts_and_completion(everything: ServerConfig) -> None:
    async with connected(everything, ScriptedUser()) as manager:
        connection = manager.connection("everything")
        prompts = {p.name: p for p in await connection.list_prompts()}
        assert {"simple-prompt", "args-prompt", "completable-prompt"} <= set(prompts)
        got = await connection.get_prompt("args-prompt", {"city": "Paris"})
        assert "Paris" in json.dumps(got.model_dump(mode="json"))
        suggestions = await connection.complete(mcp_types.PromptReference(name="completable-prompt"), "department", "E")
        assert "Engineering" in suggestions


async def test_task_only_tool_runs_as_a_task_and_asks_through_it(everything: ServerConfig) -> None:
    user = ScriptedUser()
    async with connected(everything, user) as manager:
        spec = manager.registry.get("everything.simulate-research-query")
        assert spec.task_support == "required"
        result = await manager.call_tool("everything.simulate-research-query", {"topic": "MCP tasks"})
        assert not result.is_error, result.text
        assert "Research Report" in result.text and "MCP tasks" in result.text
        assert any(message for _p, _t, message in user.progress_seen)  # the task's status messages
        ambiguous = await manager.call_tool(
            "everything.simulate-research-query", {"topic": "python", "ambiguous": True}
        )
        assert not ambiguous.is_error, ambiguous.text
        assert user.elicitations, "the ambiguous query asks for clarification through the task"


def test_elicitation_forms_validate_types_enums_formats_and_defaults() -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 2},
            "age": {"type": "integer", "minimum": 0},
            "color": {"type": "string", "enum": ["red", "green"], "enumNames": ["Red", "Green"]},
            "mail": {"type": "string", "format": "email"},
            "when": {"type": "string", "format": "date", "default": "2026-01-01"},
            "tags": {"type": "array", "items": {"anyOf": [{"const": "a", "title": "A"}, {"const": "b"}]}},
            "ok": {"type": "boolean", "default": False},
        },
        "required": ["name", "age"],
    }
    fields = {f.name: f for f in form_fields(schema)}
    assert fields["color"].kind == "enum" and fields["color"].options == (("red", "Red"), ("green", "Green"))
    assert fields["tags"].kind == "multi" and fields["color"].coerce("2") == "green"
    assert fields["age"].coerce("41") == 41 and fields["ok"].coerce("yes") is True
    with pytest.raises(ElicitationInputError):
        fields["age"].coerce("4.5")
    good = validate_content(schema, apply_defaults(schema, {"name": "Ada", "age": 36, "tags": ["a"]}))
    assert good == {"name": "Ada", "age": 36, "when": "2026-01-01", "tags": ["a"], "ok": False}
    with pytest.raises(ElicitationInputError) as problems:
        validate_content(schema, {"name": "A", "age": -1, "color": "blue", "mail": "nope", "when": "soon"})
    text = str(problems.value)
    for expected in ("name: must be at least 2", "age: must be at least 0", "color: must be one of", "mail:", "when:"):
        assert expected in text


async def test_a_late_result_after_a_timeout_is_discarded_cleanly(caplog: pytest.LogCaptureFixture) -> None:
    async with ServerManager(fast_settings()) as manager:
        await manager.apply(McpConfig(servers={"fx": StdioServerConfig(**fixture_entry())}))
        await manager.wait_settled()
        with pytest.raises(ToolCallError, match="did not answer within 0.3s"):
            await manager.call_tool("fx.stubborn", {"seconds": 1.0}, timeout_s=0.3)
        await anyio.sleep(1.5)  # the server answers the cancelled call meanwhile
        assert (await manager.call_tool("fx.echo", {"text": "next"})).text == "next"
        assert manager.connection("fx").state is ServerState.READY
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


@pytest.mark.parametrize("protocol", ["auto", "legacy"])
async def test_both_protocol_eras_route_questions_progress_and_logs_to_the_call(protocol: str) -> None:
    """2026-07-28 servers ask through input-required results, 2025-11-25 ones with requests: same answers."""
    user = ScriptedUser()
    async with ServerManager(fast_settings(protocol=protocol, log_level="debug"), asks=user) as manager:
        await manager.apply(McpConfig(servers={"fx": StdioServerConfig(**fixture_entry())}))
        await manager.wait_settled()
        connection = manager.connection("fx")
        assert connection.state is ServerState.READY, connection.error
        era = connection.status().protocol_version
        assert (era == "2025-11-25") == (protocol == "legacy"), era
        result = await manager.call_tool("fx.ask_name", {})
        assert result.text == "accept: Ada Lovelace", result.text
        user.action = "decline"
        assert (await manager.call_tool("fx.ask_name", {})).text == "decline: -"
        assert user.progress_seen and user.progress_seen[0] == (1, 2, "asking")
        assert any(params.level == "warning" for params in user.logs)


@pytest.mark.parametrize("protocol", ["auto", "legacy"])
async def test_a_question_never_reaches_another_chats_user(protocol: str) -> None:
    """Chat B's call is in flight when chat A's call asks: A answers on 2026-07-28 (the question rides A's
    call); a 2025-era request names no call, so with two chats in flight it is declined, never shown to B."""
    alice, bob = ScriptedUser(), ScriptedUser()
    alice_answer = {"name": "Ada Lovelace"}
    async with ServerManager(fast_settings(protocol=protocol)) as manager:
        await manager.apply(McpConfig(servers={"fx": StdioServerConfig(**fixture_entry())}))
        await manager.wait_settled()
        results: dict[str, str] = {}

        async def bobs_call() -> None:
            results["bob"] = (await manager.call_tool("fx.sleep", {"seconds": 2}, asks=bob)).text

        async with anyio.create_task_group() as tg:
            tg.start_soon(bobs_call)
            await anyio.sleep(0.3)  # bob's call is in flight first
            results["alice"] = (await manager.call_tool("fx.ask_name", {}, asks=alice)).text
    assert not bob.elicitations  # bob never sees alice's question
    assert results["bob"] == "slept 2.0"
    if protocol == "legacy":
        assert results["alice"] == "decline: -"
    else:
        assert results["alice"] == f"accept: {alice_answer['name']}" and len(alice.elicitations) == 1


ROGUE = Path(__file__).parent / "fixtures" / "rogue_server.py"


def harmony_script(*outputs: str) -> ReplayBackend:
    """A model that says exactly these Harmony generations, one per round."""
    encoding = harmony_encoding()
    return ReplayBackend(
        [RecordedGeneration([], list(encoding.encode(text, allowed_special="all")), "stop") for text in outputs]
    )


async def test_a_form_that_is_not_valid_mcp_is_declined_in_a_turn_and_garbage_tasks_are_errors(tmp_path: Path) -> None:
    hostile = {
        "type": "object",
        "properties": {"n": {"type": "integer", "minimum": "x"}, "deep": {"type": "object"}},
    }
    config = write_config(tmp_path / "mcp.json", {"rogue": {"command": sys.executable, "args": [str(ROGUE)]}})
    settings = tmp_path / "settings.toml"
    settings.write_text('[permissions.servers]\nrogue = "allow"\n')
    backend = harmony_script(
        f"<|channel|>commentary to=functions.rogue__ask <|constrain|>json<|message|>"
        f"{json.dumps({'schema': json.dumps(hostile)})}<|call|>",
        "<|channel|>commentary to=functions.rogue__task_garbage <|constrain|>json<|message|>{}<|call|>",
        "<|channel|>final<|message|>done<|return|>",
    )
    async with Host(config, settings_path=settings, plugins=False) as host:
        await host.wait_settled()
        events = [event async for event in host.chat(backend).send("go")]
    assert not [e for e in events if isinstance(e, ElicitationRequired)], events  # never shown to the user
    (refused,) = [e for e in events if isinstance(e, ErrorEvent) and e.kind == "elicitation"]
    assert "rogue sent a form that is not valid MCP" in refused.message and "deep: type 'object'" in refused.message
    asked, task = [e for e in events if isinstance(e, ToolCallResult)]
    assert '"action": "decline"' in asked.text
    assert task.is_error and "the server's answer is not a tool result" in task.text
    assert isinstance(events[-1], TurnCompleted) and events[-1].stop_reason == "answered"


async def test_sampling_with_the_servers_tools_comes_back_as_tool_use(tmp_path: Path) -> None:
    """The server offers a tool inside its sampling request; the chat's model calls it; the server gets tool_use."""
    config = write_config(tmp_path / "mcp.json", {"fx": fixture_entry()})
    settings = tmp_path / "settings.toml"
    settings.write_text('[permissions.tools]\n"fx.sample_with_tools" = "allow"\n[permissions.sampling]\nfx = "allow"\n')
    backend = harmony_script(
        "<|channel|>commentary to=functions.fx__sample_with_tools <|constrain|>json<|message|>{}<|call|>",
        # the sampling request's own turn: the model calls the server's tool, offered as sampling.get_weather
        "<|channel|>commentary to=functions.sampling__get_weather <|constrain|>json<|message|>"
        '{"city": "Paris"}<|call|>',
        "<|channel|>final<|message|>done<|return|>",
    )
    async with Host(config, settings_path=settings, plugins=False) as host:
        await host.wait_settled()
        events = [event async for event in host.chat(backend).send("go")]
    (result,) = [e for e in events if isinstance(e, ToolCallResult)]
    reply = json.loads(result.text)  # as the server's SDK parsed it (its own field names)
    assert reply["stop_reason"] == "toolUse" and reply["model"] == "replay"
    (use,) = reply["content"] if isinstance(reply["content"], list) else [reply["content"]]
    assert use["type"] == "tool_use" and use["name"] == "get_weather" and use["input"] == {"city": "Paris"}
    sampling_prompt = harmony_encoding().decode(backend.prompts[1])
    assert "What is the weather in Paris?" in sampling_prompt and "sampling__get_weather" in sampling_prompt
