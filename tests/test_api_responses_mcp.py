"""The Responses API's MCP tools, run by the host: the SDK fixture server over Streamable HTTP (a request's own
server, by URL) and over stdio (an mcp.json server, by label), driven by the official `openai` client.

The model is scripted Harmony (gpt-oss cannot run here); the replay's prompts show what the model read.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import openai
import pytest
from starlette.applications import Starlette

from mcp_host.api import create_app
from mcp_host.api.errors import EXCEPTION_HANDLERS
from mcp_host.api.requests import BodyReader
from mcp_host.api.responses import ResponsesRoutes
from mcp_host.backends.registry import ModelRegistry
from mcp_host.host import Host
from mcp_host.prompt import harmony_encoding
from mcp_host.prompt.harmony import HarmonyRenderer
from tests.conftest import fixture_entry, serve_app, write_config
from tests.test_api_openai import Served, scripted

pytestmark = pytest.mark.anyio
MODEL = "openai/gpt-oss-20b"
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    "strict": None,
}


def call(tool: str, arguments: dict[str, Any], thought: str = "Use the tool.") -> str:
    return (
        f"<|channel|>analysis<|message|>{thought}<|end|><|start|>assistant<|channel|>commentary "
        f"to=functions.{tool} <|constrain|>json<|message|>{json.dumps(arguments)}<|call|>"
    )


def final(text: str, thought: str = "Done.") -> str:
    return (
        f"<|channel|>analysis<|message|>{thought}<|end|><|start|>assistant<|channel|>final<|message|>{text}<|return|>"
    )


def prompt(served: Served, index: int) -> str:
    return harmony_encoding().decode(served.backend.prompts[index])  # type: ignore[attr-defined]


def result_in(prompt: str, tool: str, text: str) -> bool:
    return f"<|start|>functions.{tool} to=assistant<|channel|>commentary<|message|>{text}<|end|>" in prompt


async def mcp_serving(
    tmp_path: Path,
    outputs: list[str],
    *,
    ephemeral: bool = True,
    servers: dict[str, Any] | None = None,
    unattended: bool = False,
    settings: str = "",
) -> AsyncIterator[Served]:
    api = "[api]\nallow_ephemeral_mcp = true\n" if ephemeral else ""
    (tmp_path / "settings.toml").write_text(api + settings)
    config = write_config(tmp_path / "mcp.json", servers or {})
    backend = scripted(*outputs)
    async with (
        Host(config, settings_path=tmp_path / "settings.toml") as host,
        serve_app(create_app(host, backend, unattended_calls=unattended)) as url,
    ):
        served = Served(url, backend)
        try:
            yield served
        finally:
            for client in served.clients:
                await client.close()


def strict(served: Served) -> openai.AsyncOpenAI:
    client = openai.AsyncOpenAI(
        base_url=f"{served.url}/v1", api_key="not-needed", max_retries=0, _strict_response_validation=True
    )
    served.clients.append(client)
    return client


async def respond(client: openai.AsyncOpenAI, stream: bool, **params: Any) -> tuple[Any, list[Any]]:
    """The response, and its stream's events when streamed (through the client's own stream helper)."""
    if not stream:
        return await client.responses.create(model=MODEL, **params), []
    async with client.responses.stream(model=MODEL, **params) as events:
        seen = [event async for event in events]
        response = await events.get_final_response()
    assert [event.sequence_number for event in seen] == list(range(len(seen)))
    assert seen[0].type == "response.created" and seen[-1].type == "response.completed"
    return response, seen


def kinds(response: Any) -> list[str]:
    return [item.type for item in response.output]


STREAMED = pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])


@STREAMED
async def test_never_runs_the_allowed_tools_and_lists_them(tmp_path: Path, http_server: str, stream: bool) -> None:
    mcp = {
        "type": "mcp",
        "server_label": "fixture",
        "server_url": http_server,
        "require_approval": "never",
        "allowed_tools": ["add", "echo"],
    }
    outputs = [call("fixture__add", {"a": 2, "b": 3}), final("2 + 3 = 5."), final("You're welcome.")]
    async for served in mcp_serving(tmp_path, outputs):
        client = strict(served)
        response, events = await respond(client, stream, input="What is 2 + 3?", tools=[mcp])
        assert kinds(response) == ["mcp_list_tools", "reasoning", "mcp_call", "reasoning", "message"]
        listing, _, ran, _, _ = response.output
        assert listing.server_label == "fixture" and {tool.name for tool in listing.tools} == {"add", "echo"}
        echo = next(tool for tool in listing.tools if tool.name == "echo")
        assert echo.annotations == {"readOnlyHint": True} and echo.input_schema["required"] == ["text"]
        assert (ran.server_label, ran.name, json.loads(ran.arguments)) == ("fixture", "add", {"a": 2, "b": 3})
        assert ran.output == "5" and ran.error is None and ran.approval_request_id is None
        assert response.output_text == "2 + 3 = 5." and response.status == "completed"
        assert "type fixture__add" in prompt(served, 0) and "fixture__sleep" not in prompt(served, 0)
        assert result_in(prompt(served, 1), "fixture__add", "5")
        if stream:
            names = [event.type for event in events]
            for expected in (
                "response.mcp_list_tools.in_progress",
                "response.mcp_list_tools.completed",
                "response.mcp_call_arguments.delta",
                "response.mcp_call_arguments.done",
                "response.mcp_call.in_progress",
                "response.mcp_call.completed",
            ):
                assert expected in names
            assert names.index("response.mcp_call.completed") < names.index("response.output_text.delta")

        later, _ = await respond(client, stream, previous_response_id=response.id, input="Thanks!", tools=[mcp])
        assert kinds(later) == ["reasoning", "message"]  # listed once in the conversation already
        resumed = prompt(served, 2)
        assert result_in(resumed, "fixture__add", "5") and "<|message|>2 + 3 = 5.<|end|>" in resumed
        assert resumed.endswith("<|start|>user<|message|>Thanks!<|end|><|start|>assistant")


@STREAMED
async def test_an_approved_call_runs_in_the_next_response(tmp_path: Path, http_server: str, stream: bool) -> None:
    mcp = {"type": "mcp", "server_label": "fixture", "server_url": http_server}  # OpenAI's default: always ask
    async for served in mcp_serving(tmp_path, [call("fixture__add", {"a": 20, "b": 22}), final("It is 42.")]):
        client = strict(served)
        asked, _ = await respond(client, stream, input="20 + 22?", tools=[mcp])
        assert kinds(asked) == ["mcp_list_tools", "reasoning", "mcp_approval_request"]
        request = asked.output[-1]
        assert (request.server_label, request.name, json.loads(request.arguments)) == (
            "fixture",
            "add",
            {"a": 20, "b": 22},
        )
        assert request.id.startswith("mcpr_") and len(served.backend.prompts) == 1  # type: ignore[attr-defined]

        approval = {"type": "mcp_approval_response", "approval_request_id": request.id, "approve": True}
        done, _ = await respond(client, stream, previous_response_id=asked.id, input=[approval], tools=[mcp])
        assert kinds(done) == ["mcp_call", "reasoning", "message"]
        assert done.output[0].approval_request_id == request.id and done.output[0].output == "42"
        assert done.output_text == "It is 42." and result_in(prompt(served, 1), "fixture__add", "42")
        assert done.usage is not None and done.usage.input_tokens_details.cached_tokens > 0


@STREAMED
async def test_a_denied_call_does_not_run_and_the_model_is_told(tmp_path: Path, http_server: str, stream: bool) -> None:
    marker = tmp_path / "ran"
    mcp = {"type": "mcp", "server_label": "fixture", "server_url": http_server, "require_approval": "always"}
    arguments = {"seconds": 0, "marker": str(marker)}
    async for served in mcp_serving(tmp_path, [call("fixture__sleep_marked", arguments), final("Fine, I won't.")]):
        client = strict(served)
        asked, _ = await respond(client, stream, input="Sleep.", tools=[mcp])
        denial = {
            "type": "mcp_approval_response",
            "approval_request_id": asked.output[-1].id,
            "approve": False,
            "reason": "not now",
        }
        done, _ = await respond(client, stream, previous_response_id=asked.id, input=[denial], tools=[mcp])
        assert kinds(done) == ["reasoning", "message"] and done.output_text == "Fine, I won't."
        assert "The user denied this call: not now" in prompt(served, 1)
        assert not marker.exists()


async def test_per_tool_rules_and_a_read_only_filter(tmp_path: Path, http_server: str) -> None:
    rules = {"type": "mcp", "server_label": "fixture", "server_url": http_server}
    per_tool = {**rules, "require_approval": {"never": {"tool_names": ["echo"]}}}
    outputs = [call("fixture__echo", {"text": "hi"}), call("fixture__add", {"a": 1}), final("3"), final("ok")]
    async for served in mcp_serving(tmp_path, outputs):
        client = strict(served)
        first = await client.responses.create(model=MODEL, input="Echo, then add.", tools=[per_tool])  # type: ignore[list-item]
        assert kinds(first) == ["mcp_list_tools", "reasoning", "mcp_call", "reasoning", "mcp_approval_request"]
        assert first.output[2].name == "echo" and first.output[2].output == "hi"
        assert first.output[-1].name == "add"
        approve = {"type": "mcp_approval_response", "approval_request_id": first.output[-1].id, "approve": True}
        second = await client.responses.create(model=MODEL, previous_response_id=first.id, input=[approve])
        assert second.output[0].type == "mcp_call" and second.output[0].output == "3"  # b defaults to 2

        read_only = {**rules, "allowed_tools": {"read_only": True}, "require_approval": "never"}
        listed = await client.responses.create(model=MODEL, input="Which tools?", tools=[read_only])  # type: ignore[list-item]
        assert [tool.name for tool in listed.output[0].tools] == ["echo"]
        assert "fixture__echo" in prompt(served, 3) and "fixture__add" not in prompt(served, 3)


async def test_function_and_mcp_tools_in_one_turn(tmp_path: Path, http_server: str) -> None:
    mcp = {"type": "mcp", "server_label": "fixture", "server_url": http_server, "require_approval": "never"}
    outputs = [
        call("fixture__echo", {"text": "Paris"}),
        call("app__get_weather", {"city": "Paris"}, "Now the weather."),
        final("Sunny in Paris."),
        final("Still sunny."),
    ]
    async for served in mcp_serving(tmp_path, outputs):
        client = strict(served)
        async with client.responses.stream(model=MODEL, input="Weather where?", tools=[mcp, WEATHER]) as stream:  # type: ignore[list-item]
            events = [event async for event in stream]
            first = await stream.get_final_response()
        assert [event.sequence_number for event in events] == list(range(len(events)))
        assert kinds(first) == ["mcp_list_tools", "reasoning", "mcp_call", "reasoning", "function_call"]
        function = first.output[-1]
        assert function.name == "get_weather" and json.loads(function.arguments) == {"city": "Paris"}
        assert "type app__get_weather" in prompt(served, 0) and "type fixture__echo" in prompt(served, 0)

        output = {"type": "function_call_output", "call_id": function.call_id, "output": "sunny"}
        second = await client.responses.create(model=MODEL, previous_response_id=first.id, input=[output])
        assert kinds(second) == ["reasoning", "message"] and second.output_text == "Sunny in Paris."
        assert result_in(prompt(served, 2), "app__get_weather", "sunny")
        assert result_in(prompt(served, 2), "fixture__echo", "Paris")

        # A second answer to the same response: its turn ended, so the loop cannot take it up again...
        with pytest.raises(openai.ConflictError) as gone:
            await client.responses.create(model=MODEL, previous_response_id=first.id, input=[output], tools=[mcp])  # type: ignore[list-item]
        assert gone.value.code == "turn_expired"  # type: ignore[attr-defined]
        # ...but without MCP tools nothing needs to run here: the stored conversation is answered as it is.
        fork = await client.responses.create(model=MODEL, previous_response_id=first.id, input=[output])
        assert fork.output_text == "Still sunny." and result_in(prompt(served, 3), "fixture__echo", "Paris")
        assert result_in(prompt(served, 3), "get_weather", "sunny")


async def test_an_mcp_json_server_by_its_label(tmp_path: Path) -> None:
    mcp = {"type": "mcp", "server_label": "calc", "require_approval": "never", "allowed_tools": ["add"]}
    outputs = [call("calc__add", {"a": 2, "b": 2}), final("4")]
    servers = {"calc": fixture_entry()}
    async for served in mcp_serving(tmp_path, outputs, ephemeral=False, servers=servers, unattended=True):
        response = await strict(served).responses.create(model=MODEL, input="2 + 2?", tools=[mcp])  # type: ignore[list-item]
        assert kinds(response) == ["mcp_list_tools", "reasoning", "mcp_call", "reasoning", "message"]
        assert response.output[2].output == "4" and response.output_text == "4"
        with pytest.raises(openai.BadRequestError) as unknown:
            await served.client().responses.create(
                model=MODEL, input="x", tools=[{"type": "mcp", "server_label": "nothing"}]
            )
        assert unknown.value.param == "tools.0"  # type: ignore[attr-defined]


async def test_never_does_not_waive_the_hosts_policy_for_its_own_servers(tmp_path: Path) -> None:
    """`never` on an mcp.json server the host's policy asks about: denied (the call never runs), saying why,
    unless the settings allow unattended calls (the test above)."""
    mcp = {"type": "mcp", "server_label": "calc", "require_approval": "never"}
    outputs = [call("calc__add", {"a": 2, "b": 2}), final("I may not add.")]
    async for served in mcp_serving(tmp_path, outputs, ephemeral=False, servers={"calc": fixture_entry()}):
        response = await strict(served).responses.create(model=MODEL, input="2 + 2?", tools=[mcp])  # type: ignore[list-item]
        assert kinds(response) == ["mcp_list_tools", "reasoning", "mcp_call", "reasoning", "message"]
        denied = response.output[2]
        assert denied.output is None and "unattended_calls" in str(denied.error)
        told = prompt(served, 1)
        assert "unattended_calls" in told and "functions.calc__add to=assistant" in told


async def test_always_asks_even_where_the_hosts_policy_allows(tmp_path: Path) -> None:
    """The client wants to approve every call: the host's `allow` for the server does not skip the question."""
    mcp = {"type": "mcp", "server_label": "calc", "require_approval": "always"}
    outputs = [call("calc__add", {"a": 2, "b": 2}), final("4")]
    allow = '[permissions.servers]\ncalc = "allow"\n'
    servers = {"calc": fixture_entry()}
    async for served in mcp_serving(tmp_path, outputs, ephemeral=False, servers=servers, settings=allow):
        client = strict(served)
        asked = await client.responses.create(model=MODEL, input="2 + 2?", tools=[mcp])  # type: ignore[list-item]
        assert kinds(asked) == ["mcp_list_tools", "reasoning", "mcp_approval_request"]
        answer = {"type": "mcp_approval_response", "approval_request_id": asked.output[-1].id, "approve": True}
        done = await client.responses.create(
            model=MODEL,
            previous_response_id=asked.id,
            input=[answer],  # type: ignore[list-item]
            tools=[mcp],  # type: ignore[list-item]
        )
        assert kinds(done)[0] == "mcp_call" and done.output[0].output == "4" and done.output_text == "4"


async def test_servers_by_url_need_the_setting(tmp_path: Path, http_server: str) -> None:
    mcp = {"type": "mcp", "server_label": "fixture", "server_url": http_server}
    async for served in mcp_serving(tmp_path, [final("unused")], ephemeral=False):
        with pytest.raises(openai.PermissionDeniedError) as refused:
            await served.client().responses.create(model=MODEL, input="x", tools=[mcp])  # type: ignore[list-item]
        assert refused.value.param == "tools.0" and "allow_ephemeral_mcp" in str(refused.value)  # type: ignore[attr-defined]
        assert served.backend.prompts == []  # type: ignore[attr-defined]


async def test_new_words_after_an_answer_and_a_deleted_response(tmp_path: Path, http_server: str) -> None:
    mcp = {"type": "mcp", "server_label": "fixture", "server_url": http_server, "require_approval": "always"}
    outputs = [
        call("fixture__add", {"a": 1, "b": 1}),
        final("2."),
        final("Bye."),
        *[call("fixture__add", {"a": 5})] * 2,
    ]
    async for served in mcp_serving(tmp_path, outputs):
        client = strict(served)
        asked = await client.responses.create(model=MODEL, input="1 + 1?", tools=[mcp])  # type: ignore[list-item]
        approval = {"type": "mcp_approval_response", "approval_request_id": asked.output[-1].id, "approve": True}
        both = await client.responses.create(
            model=MODEL, previous_response_id=asked.id, input=[approval, {"role": "user", "content": "Bye!"}]
        )
        assert kinds(both) == ["mcp_call", "reasoning", "message", "reasoning", "message"]
        assert both.output_text == "2.Bye." and prompt(served, 2).endswith("<|message|>Bye!<|end|><|start|>assistant")

        waiting = await client.responses.create(model=MODEL, input="5 + 2?", tools=[mcp])  # type: ignore[list-item]
        assert kinds(waiting)[-1] == "mcp_approval_request"
        await client.responses.delete(waiting.id)  # its turn closes with it
        approval = {"type": "mcp_approval_response", "approval_request_id": waiting.output[-1].id, "approve": True}
        with pytest.raises(openai.NotFoundError):
            await client.responses.create(model=MODEL, previous_response_id=waiting.id, input=[approval])
        left = await client.responses.create(model=MODEL, input="5 + 2?", tools=[mcp])  # type: ignore[list-item]
        assert kinds(left)[-1] == "mcp_approval_request"  # still waiting when the server stops: it closes too


async def test_a_turn_that_waits_too_long_is_closed(tmp_path: Path, http_server: str) -> None:
    (tmp_path / "settings.toml").write_text("[api]\nallow_ephemeral_mcp = true\n")
    backend = scripted(call("fixture__add", {"a": 1, "b": 2}))
    mcp = {"type": "mcp", "server_label": "fixture", "server_url": http_server}
    async with Host(write_config(tmp_path / "mcp.json", {}), settings_path=tmp_path / "settings.toml") as host:
        registry = ModelRegistry(discover=list, preloaded=backend)
        responses = ResponsesRoutes(host, registry, BodyReader(1 << 20), HarmonyRenderer(), idle_expiry_s=0.2)

        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            async with registry, responses:
                yield

        app = Starlette(routes=responses.routes(), lifespan=lifespan, exception_handlers=dict(EXCEPTION_HANDLERS))
        async with (
            serve_app(app) as url,
            openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0) as client,
        ):
            asked = await client.responses.create(model=MODEL, input="1 + 2?", tools=[mcp])  # type: ignore[list-item]
            await anyio.sleep(0.5)
            approval = {"type": "mcp_approval_response", "approval_request_id": asked.output[-1].id, "approve": True}
            with pytest.raises(openai.ConflictError) as gone:
                await client.responses.create(model=MODEL, previous_response_id=asked.id, input=[approval], tools=[mcp])  # type: ignore[list-item]
            assert gone.value.code == "turn_expired"  # type: ignore[attr-defined]
            assert (await client.responses.retrieve(asked.id)).output[-1].type == "mcp_approval_request"


async def test_a_failing_call_carries_its_error_and_the_model_reads_it(tmp_path: Path, http_server: str) -> None:
    mcp = {"type": "mcp", "server_label": "fixture", "server_url": http_server, "require_approval": "never"}
    async for served in mcp_serving(tmp_path, [call("fixture__add", {"a": "many"}), final("That failed.")]):
        response, events = await respond(strict(served), True, input="add many", tools=[mcp])
        failed = response.output[2]
        assert failed.type == "mcp_call" and failed.status == "failed" and failed.output is None
        assert failed.error is not None and failed.error.type == "mcp_tool_execution_error"
        assert "response.mcp_call.failed" in [event.type for event in events]
        assert "<|start|>functions.fixture__add to=assistant<|channel|>commentary<|message|>Error" in prompt(served, 1)
