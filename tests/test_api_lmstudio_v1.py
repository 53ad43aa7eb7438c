"""LM Studio 0.4's `POST /api/v1/chat` on a real uvicorn server on 127.0.0.1, driven over real HTTP.

The model is scripted Harmony (gpt-oss cannot run here); the tools are the SDK fixture server's, over stdio from
mcp.json and over Streamable HTTP on 127.0.0.1 as the request's own (ephemeral) server.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from mcp_host.api import create_app
from mcp_host.api.host_tools import NOBODY_TO_ASK
from mcp_host.api.integrations import EphemeralServer, RequestTools
from mcp_host.api.streaming import GracefulShutdown
from mcp_host.backends.base import Backend
from mcp_host.backends.registry import ModelRegistry
from mcp_host.config.settings import ApiSettings, HostSettings, PermissionSettings
from mcp_host.host import Host
from mcp_host.prompt import harmony_encoding
from mcp_host.servers.state import ServerState
from tests.conftest import fixture_entry, free_port, serve_app, write_config
from tests.test_api_openai import scripted

pytestmark = pytest.mark.anyio
MODEL = "openai/gpt-oss-20b"
ALLOW_FIXTURE = PermissionSettings(servers={"fixture": "allow"})
JSON = {"content-type": "application/json"}


def call(tool: str, arguments: str, thought: str = "Use the tool.") -> str:
    return (
        f"<|channel|>analysis<|message|>{thought}<|end|><|start|>assistant<|channel|>commentary "
        f"to=functions.{tool} <|constrain|>json<|message|>{arguments}<|call|>"
    )


def final(text: str, thought: str = "Answer now.") -> str:
    return (
        f"<|channel|>analysis<|message|>{thought}<|end|><|start|>assistant<|channel|>final<|message|>{text}<|return|>"
    )


@dataclass
class V1:
    url: str
    http: httpx2.AsyncClient
    host: Host

    async def chat(self, body: dict[str, Any]) -> httpx2.Response:
        return await self.http.post("/api/v1/chat", json=body)

    async def stream(self, body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """The named events of a streamed chat, each checked to carry its own name as `type`."""
        return await read_events(self.http, "/api/v1/chat", {**body, "stream": True})


async def read_events(http: httpx2.AsyncClient, path: str, body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    events: list[tuple[str, dict[str, Any]]] = []
    name = ""
    async with http.stream("POST", path, json=body) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                name = line.removeprefix("event:").strip()
            elif line.startswith("data:"):
                data = json.loads(line.removeprefix("data:").strip())
                assert data["type"] == name
                events.append((name, data))
    return events


@asynccontextmanager
async def v1_server(
    tmp_path: Path,
    models: ModelRegistry | Backend,
    *,
    servers: dict[str, Any] | None = None,
    settings: HostSettings | None = None,
    unattended_calls: bool = False,
    api_key: str | None = None,
) -> AsyncIterator[V1]:
    """The API over a host with these mcp.json `servers`, served by uvicorn on 127.0.0.1."""
    config = write_config(tmp_path / "mcp.json", servers or {})
    host = Host(config, settings=settings or HostSettings(), settings_path=tmp_path / "settings.toml", plugins=False)
    async with host:
        await host.wait_settled()
        app = create_app(host, models, unattended_calls=unattended_calls, api_key=api_key)
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        async with serve_app(app) as url, httpx2.AsyncClient(base_url=url, timeout=60, headers=headers) as http:
            yield V1(url, http, host)


def rendered(backend: Any, index: int = 0) -> str:
    return str(harmony_encoding().decode(backend.prompts[index]))


async def test_a_tool_call_runs_and_comes_back_as_lm_studio_shows_it(tmp_path: Path) -> None:
    backend = scripted(call("fixture__echo", '{"text": "hi"}'), final("It said hi."), name=MODEL)
    settings = HostSettings(permissions=ALLOW_FIXTURE)
    async with v1_server(tmp_path, backend, servers={"fixture": fixture_entry()}, settings=settings) as api:
        answer = await api.chat({"model": MODEL, "input": "Echo hi", "integrations": ["mcp/fixture"]})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model_instance_id"] == MODEL
    assert body["output"] == [
        {"type": "reasoning", "content": "Use the tool."},
        {
            "type": "tool_call",
            "tool": "echo",
            "arguments": {"text": "hi"},
            "output": '[{"type": "text", "text": "hi"}]',
            "provider_info": {"type": "plugin", "plugin_id": "mcp/fixture"},
        },
        {"type": "reasoning", "content": "Answer now."},
        {"type": "message", "content": "It said hi."},
    ]
    stats = body["stats"]
    assert set(stats) == {
        "input_tokens",
        "total_output_tokens",
        "reasoning_output_tokens",
        "tokens_per_second",
        "time_to_first_token_seconds",
    }  # nothing was loaded for this request: no model_load_time_seconds
    assert stats["input_tokens"] > 0 and stats["total_output_tokens"] > stats["reasoning_output_tokens"] > 0
    assert body["response_id"].startswith("resp_") and "thread_id" not in body


async def test_a_streamed_turn_sends_every_event_in_order_and_chat_end_holds_the_answer(tmp_path: Path) -> None:
    outputs = [call("fixture__echo", '{"text": "hi"}'), final("It said hi.")]
    backend = scripted(*outputs, *outputs, name=MODEL)
    settings = HostSettings(permissions=ALLOW_FIXTURE)
    body = {"model": MODEL, "input": "Echo hi", "integrations": ["mcp/fixture"], "store": False}
    async with v1_server(tmp_path, backend, servers={"fixture": fixture_entry()}, settings=settings) as api:
        events = await api.stream(body)
        whole = (await api.chat(body)).json()
    names = [name for name, _ in events]
    deltas = {"reasoning.delta", "message.delta"}
    assert [name for index, name in enumerate(names) if name not in deltas or names[index - 1] != name] == [
        "chat.start",
        "prompt_processing.start",
        "prompt_processing.progress",
        "prompt_processing.progress",
        "prompt_processing.end",
        "reasoning.start",
        "reasoning.delta",
        "reasoning.end",
        "tool_call.start",
        "tool_call.arguments",
        "tool_call.success",
        "reasoning.start",
        "reasoning.delta",
        "reasoning.end",
        "message.start",
        "message.delta",
        "message.end",
        "chat.end",
    ]
    data = dict(events)
    assert data["chat.start"] == {"type": "chat.start", "model_instance_id": MODEL}
    provider = {"type": "plugin", "plugin_id": "mcp/fixture"}
    assert data["tool_call.start"] == {"type": "tool_call.start", "tool": "echo", "provider_info": provider}
    assert data["tool_call.arguments"]["arguments"] == {"text": "hi"}
    assert data["tool_call.success"]["output"] == '[{"type": "text", "text": "hi"}]'
    progress = [event["progress"] for name, event in events if name == "prompt_processing.progress"]
    assert progress == [0.0, 1.0]
    text = "".join(event["content"] for name, event in events if name == "message.delta")
    result = data["chat.end"]["result"]
    assert text == "It said hi." and result["output"][-1] == {"type": "message", "content": text}
    assert result["output"] == whole["output"] and "response_id" not in result and "response_id" not in whole


async def test_a_call_the_policy_would_ask_about_is_denied_unless_unattended_calls_are_allowed(tmp_path: Path) -> None:
    body = {"model": MODEL, "input": "Add", "integrations": ["mcp/fixture"]}
    outputs = (call("fixture__add", '{"a": 1, "b": 2}'), final("Done."))
    async with v1_server(tmp_path, scripted(*outputs, name=MODEL), servers={"fixture": fixture_entry()}) as api:
        denied = (await api.chat(body)).json()["output"][1]
    assert denied["type"] == "invalid_tool_call" and NOBODY_TO_ASK in denied["reason"]
    assert denied["metadata"] == {
        "type": "tool_error",
        "tool_name": "add",
        "arguments": {"a": 1, "b": 2},
        "provider_info": {"type": "plugin", "plugin_id": "mcp/fixture"},
    }
    backend = scripted(*outputs, name=MODEL)
    async with v1_server(tmp_path, backend, servers={"fixture": fixture_entry()}, unattended_calls=True) as api:
        allowed = (await api.chat(body)).json()["output"][1]
    assert allowed["type"] == "tool_call" and allowed["output"] == '[{"type": "text", "text": "3"}]'


async def test_allowed_tools_filter_what_the_model_is_offered(tmp_path: Path) -> None:
    backend = scripted(final("Nothing to do."), final("Nothing to do."), name=MODEL)
    async with v1_server(tmp_path, backend, servers={"fixture": fixture_entry()}) as api:
        only_echo = {"type": "plugin", "id": "mcp/fixture", "allowed_tools": ["echo"]}
        assert (await api.chat({"model": MODEL, "input": "x", "integrations": [only_echo]})).status_code == 200
        assert (await api.chat({"model": MODEL, "input": "x", "integrations": ["mcp/fixture"]})).status_code == 200
    narrow, wide = rendered(backend, 0), rendered(backend, 1)
    assert "type fixture__echo" in narrow and "fixture__add" not in narrow and "fixture__env" not in narrow
    assert "type fixture__add" in wide and "type fixture__env" in wide
    assert len(narrow) < len(wide)


async def test_a_failing_tool_and_a_tool_that_does_not_exist_are_failures(tmp_path: Path) -> None:
    backend = scripted(
        call("fixture__fail", '{"message": "boom"}'),
        call("open_browser", '{"url": "https://lmstudio.ai"}'),
        final("Both failed."),
        name=MODEL,
    )
    settings = HostSettings(permissions=ALLOW_FIXTURE)
    body = {"model": MODEL, "input": "Try", "integrations": ["mcp/fixture"]}
    async with v1_server(tmp_path, backend, servers={"fixture": fixture_entry()}, settings=settings) as api:
        events = await api.stream(body)
    failures = [event for name, event in events if name == "tool_call.failure"]
    assert [failure["metadata"]["type"] for failure in failures] == ["tool_error", "invalid_name"]
    assert "Error executing tool fail" in failures[0]["reason"] and failures[0]["metadata"]["tool_name"] == "fail"
    assert failures[1]["metadata"] == {"type": "invalid_name", "tool_name": "open_browser"}
    assert "open_browser" in failures[1]["reason"]
    result = dict(events)["chat.end"]["result"]
    invalid = [item for item in result["output"] if item["type"] == "invalid_tool_call"]
    assert [{**item, "type": "tool_call.failure"} for item in invalid] == failures
    assert result["output"][-1] == {"type": "message", "content": "Both failed."}


async def test_mcp_json_servers_are_refused_when_the_settings_say_so_and_unknown_ones_are_named(tmp_path: Path) -> None:
    settings = HostSettings(api=ApiSettings(allow_mcp_json_servers=False))
    servers = {"fixture": fixture_entry()}
    async with v1_server(tmp_path, scripted(name=MODEL), servers=servers, settings=settings) as api:
        refused = await api.chat({"model": MODEL, "input": "x", "integrations": ["mcp/fixture"]})
        assert refused.status_code == 403
        assert "Permission denied to use plugin 'mcp/fixture'" in refused.json()["error"]["message"]
        assert refused.json()["error"]["param"] == "integrations.0"
    async with v1_server(tmp_path, scripted(name=MODEL), servers=servers) as api:
        unknown = await api.chat({"model": MODEL, "input": "x", "integrations": ["mcp/fixture", "mcp/playwright"]})
        assert unknown.status_code == 400 and unknown.json()["error"]["param"] == "integrations.1"
        assert "'playwright' is not in mcp.json; available: mcp/fixture" in unknown.json()["error"]["message"]
        other = await api.chat({"model": MODEL, "input": "x", "integrations": [{"type": "plugin", "id": "lms/x"}]})
        assert other.status_code == 400 and "available: mcp/fixture" in other.json()["error"]["message"]
        twice = await api.chat({"model": MODEL, "input": "x", "integrations": ["mcp/fixture", "mcp/fixture"]})
        assert twice.status_code == 400 and "named twice" in twice.json()["error"]["message"]
        no_tool = {"type": "plugin", "id": "mcp/fixture", "allowed_tools": ["nope"]}
        missing = await api.chat({"model": MODEL, "input": "x", "integrations": [no_tool]})
        assert missing.status_code == 400 and missing.json()["error"]["param"] == "integrations.0.allowed_tools"
        assert "'echo'" in missing.json()["error"]["message"]


async def test_the_requests_own_mcp_server_needs_the_setting_and_then_works_with_its_headers(
    tmp_path: Path, http_server: str
) -> None:
    remote = {
        "type": "ephemeral_mcp",
        "server_label": "remote",
        "server_url": http_server,
        "allowed_tools": ["header"],
        "headers": {"X-Api-Key": "s3cret"},
    }
    body = {"model": MODEL, "input": "Which key?", "integrations": [remote]}
    async with v1_server(tmp_path, scripted(name=MODEL)) as api:
        refused = await api.chat(body)
    assert refused.status_code == 403 and refused.json()["error"]["param"] == "integrations.0"
    assert "allow_ephemeral_mcp = true" in refused.json()["error"]["message"]

    backend = scripted(call("remote__header", '{"name": "x-api-key"}'), final("The key is s3cret."), name=MODEL)
    settings = HostSettings(api=ApiSettings(allow_ephemeral_mcp=True))
    async with v1_server(tmp_path, backend, settings=settings, unattended_calls=True) as api:
        events = await api.stream(body)
    data = dict(events)
    provider = {"type": "ephemeral_mcp", "server_label": "remote"}
    assert data["tool_call.success"] == {
        "type": "tool_call.success",
        "tool": "header",
        "arguments": {"name": "x-api-key"},
        "output": '[{"type": "text", "text": "s3cret"}]',
        "provider_info": provider,
    }
    prompt = rendered(backend)
    assert "type remote__header" in prompt and "remote__echo" not in prompt


async def test_the_requests_own_servers_are_closed_after_it(tmp_path: Path, http_server: str) -> None:
    config = write_config(tmp_path / "mcp.json", {"fixture": fixture_entry()})
    async with Host(config, settings_path=tmp_path / "settings.toml", plugins=False) as host:
        await host.wait_settled()
        tools = RequestTools(
            host, [EphemeralServer("remote", http_server)], allow_configured=True, allow_ephemeral=True
        )
        async with tools:
            assert [status.state for status in tools.statuses()] == [ServerState.READY]
            assert "remote.echo" in tools.registry and tools.provider("remote.echo") is not None
            result = await tools.call_tool("remote.echo", {"text": "over http"}, None, None)
            assert result.text == "over http"
        assert [status.state for status in tools.statuses()] == [ServerState.STOPPED]
        with pytest.raises(Exception, match="fixture"):
            RequestTools(host, [EphemeralServer("fixture", http_server)], allow_configured=True, allow_ephemeral=True)


async def test_a_server_that_cannot_be_reached_is_an_mcp_connection_error(tmp_path: Path) -> None:
    nowhere = {
        "type": "ephemeral_mcp",
        "server_label": "gone",
        "server_url": f"http://127.0.0.1:{free_port()}/mcp",
    }
    body = {"model": MODEL, "input": "x", "integrations": [nowhere]}
    settings = HostSettings(api=ApiSettings(allow_ephemeral_mcp=True))
    async with v1_server(tmp_path, scripted(name=MODEL), settings=settings) as api:
        whole = await api.chat(body)
        events = await api.stream(body)
    assert whole.status_code == 502 and whole.json()["error"]["code"] == "mcp_connection_error"
    assert [name for name, _ in events] == ["chat.start", "error", "chat.end"]
    error = dict(events)["error"]["error"]
    assert error["type"] == "mcp_connection_error" and "gone" in error["message"]
    assert dict(events)["chat.end"]["result"]["output"] == []


async def test_stored_conversations_continue_and_unstored_ones_do_not(tmp_path: Path) -> None:
    backend = scripted(final("Noted: blue."), final("You said blue."), final("Still blue."), final("Ok."), name=MODEL)
    async with v1_server(tmp_path, backend) as api:
        first = (await api.chat({"model": MODEL, "input": "My favorite color is blue."})).json()
        second = await api.chat({"model": MODEL, "input": "What color?", "previous_response_id": first["response_id"]})
        assert second.status_code == 200 and second.json()["response_id"] != first["response_id"]
        older = await api.chat(
            {"model": MODEL, "input": "Again?", "thread_id": "thread_" + first["response_id"].removeprefix("resp_")}
        )
        assert older.json()["thread_id"].startswith("thread_") and older.json()["response_id"].startswith("resp_")
        unstored = (await api.chat({"model": MODEL, "input": "Tell me a joke.", "store": False})).json()
        assert "response_id" not in unstored
        unknown = await api.chat({"model": MODEL, "input": "x", "previous_response_id": "resp_unknown"})
        assert unknown.status_code == 404 and unknown.json()["error"]["param"] == "previous_response_id"
    continued = rendered(backend, 1)
    assert "My favorite color is blue." in continued and "Noted: blue." in continued
    assert "What color?" not in rendered(backend, 2) and "My favorite color is blue." in rendered(backend, 2)
    assert "blue" not in rendered(backend, 3)


async def test_bad_requests_are_400s_naming_the_field(tmp_path: Path) -> None:
    backend = scripted(name=MODEL)
    backend.context_length = 4096
    async with v1_server(tmp_path, backend) as api:

        async def error(body: object, status: int = 400) -> dict[str, Any]:
            answer = await api.http.post("/api/v1/chat", content=json.dumps(body), headers=JSON)
            assert answer.status_code == status, answer.text
            error: dict[str, Any] = answer.json()["error"]
            return error

        assert (await error([1, 2]))["message"] == "the request body must be a JSON object"
        assert (await error({"input": "x"}))["param"] == "model"
        assert (await error({"model": MODEL}))["param"] == "input"
        assert (await error({"model": MODEL, "input": 3}))["param"] == "input"
        assert (await error({"model": MODEL, "input": "x", "stream": "no"}))["param"] == "stream"
        assert (await error({"model": MODEL, "input": "x", "temperature": "hot"}))["param"] == "temperature"
        assert (await error({"model": MODEL, "input": "x", "reasoning": "max"}))["param"] == "reasoning"
        assert (await error({"model": MODEL, "input": "x", "integrations": [{"type": "magic"}]}))["param"].startswith(
            "integrations.0"
        )
        assert (await error({"model": MODEL, "input": "x", "previous_response_id": "thread_1"}))["param"] == (
            "previous_response_id"
        )
        both = await error({"model": MODEL, "input": "x", "previous_response_id": "resp_1", "thread_id": "thread_1"})
        assert "not both" in both["message"]
        assert (await error({"model": MODEL, "input": "x", "mcp_servers": []}))["param"] == "mcp_servers"
        image = {"type": "image", "data_url": "data:image/png;base64,iVBORw0KGgo="}
        refused = await error({"model": MODEL, "input": [{"type": "text", "content": "What?"}, image]})
        assert refused["param"] == "input.1" and "images are not supported" in refused["message"]
        unknown = await error({"model": "nobody/nothing", "input": "x"}, 404)
        assert unknown["code"] == "model_not_found" and MODEL in unknown["message"]
        huge = await error({"model": MODEL, "input": "word " * 20_000})
        assert huge["param"] == "input" and huge["code"] == "context_length_exceeded"
        too_big = await api.http.post("/api/v1/chat", content=b"x" * (9 * 1024 * 1024), headers=JSON)
        assert too_big.status_code == 413


async def test_downloads_are_refused_with_a_way_to_get_models(tmp_path: Path) -> None:
    async with v1_server(tmp_path, scripted(name=MODEL)) as api:
        download = await api.http.post("/api/v1/models/download", json={"model": "ibm/granite-4-micro"})
        assert download.status_code == 501 and "offline" in download.json()["error"]["message"]
        assert (await api.http.post("/api/v1/models/download", json={})).status_code == 400
        jobs = await api.http.get("/api/v1/models/download/status")
        assert jobs.json() == {"downloading": [], "completed": [], "failed": [], "paused": []}
        job = await api.http.get("/api/v1/models/download/status/job_493c7c9ded")
        assert job.status_code == 404 and job.json()["error"]["code"] == "job_not_found"


async def test_reasoning_and_the_system_prompt_reach_the_harmony_prompt(tmp_path: Path) -> None:
    backend = scripted(*[final("Ok.")] * 4, name=MODEL)
    async with v1_server(tmp_path, backend) as api:
        for reasoning in ("off", "on", "high", None):
            body = {"model": MODEL, "input": "x", "system_prompt": "Answer in French.", "reasoning": reasoning}
            assert (await api.chat({key: value for key, value in body.items() if value is not None})).status_code == 200
    efforts = [rendered(backend, index) for index in range(4)]
    off, on, high, default = efforts
    assert "Reasoning: low" in off and "Reasoning: medium" in on and "Reasoning: high" in high
    assert "Reasoning: medium" in default  # the host's default effort
    assert all("Answer in French." in prompt for prompt in efforts)


async def test_a_client_that_goes_away_cancels_the_turn_and_its_tool_call(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    backend = scripted(call("fixture__sleep_marked", json.dumps({"seconds": 30, "marker": str(marker)})), name=MODEL)
    body = {"model": MODEL, "input": "Sleep", "integrations": ["mcp/fixture"], "stream": True}
    settings = HostSettings(permissions=ALLOW_FIXTURE)
    async with v1_server(tmp_path, backend, servers={"fixture": fixture_entry()}, settings=settings) as api:
        async with api.http.stream("POST", "/api/v1/chat", json=body) as response:
            async for line in response.aiter_lines():
                if line == "event: tool_call.arguments":
                    break  # the call is running: hang up
        with anyio.fail_after(10):
            while not marker.exists():
                await anyio.sleep(0.05)
    assert marker.read_text() == "cancelled"


async def test_a_stream_open_when_the_server_stops_ends_with_an_error_and_chat_end(tmp_path: Path) -> None:
    backend = scripted(call("fixture__sleep", '{"seconds": 30}'), name=MODEL)
    body = {"model": MODEL, "input": "Sleep", "integrations": ["mcp/fixture"], "stream": True}
    config = write_config(tmp_path / "mcp.json", {"fixture": fixture_entry()})
    settings = HostSettings(permissions=ALLOW_FIXTURE)
    async with Host(config, settings=settings, settings_path=tmp_path / "s.toml", plugins=False) as host:
        app = GracefulShutdown(create_app(host, backend))
        async with serve_app(app) as url, httpx2.AsyncClient(base_url=url, timeout=30) as http:
            names: list[str] = []
            async with http.stream("POST", "/api/v1/chat", json=body) as response:
                async for line in response.aiter_lines():
                    if line.startswith("event:"):
                        names.append(line.removeprefix("event:").strip())
                        if names[-1] == "tool_call.arguments":
                            app.begin()
                    elif line.startswith("data:") and names[-1] in ("error", "chat.end"):
                        data = json.loads(line.removeprefix("data:"))
                        if names[-1] == "error":
                            assert data["error"]["code"] == "shutting_down"
                        else:
                            assert data["result"]["output"][0] == {"type": "reasoning", "content": "Use the tool."}
    assert names[-2:] == ["error", "chat.end"]
