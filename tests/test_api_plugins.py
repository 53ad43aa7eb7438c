"""Plugins over HTTP on a real uvicorn server: `GET /v1/plugins`, plugin tools in `GET /v1/tools`, sessions
made with `"plugins"`, and `"mcp_host": {"tools": [PLUGIN]}` on chat completions."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest

from mcp_host.api import create_app
from mcp_host.backends import RecordedGeneration, ReplayBackend
from mcp_host.host import Host
from mcp_host.prompt import harmony_encoding
from tests.conftest import serve_app, write_config
from tests.test_plugins_cli import write_plugins

pytestmark = pytest.mark.anyio

CALL = (
    "<|channel|>analysis<|message|>Greet.<|end|><|start|>assistant<|channel|>commentary "
    'to=functions.greet__hi <|constrain|>json<|message|>{"name": "Ada"}<|call|>'
)
ANSWER = "<|channel|>final<|message|>Greeted.<|return|>"


def generation(text: str) -> RecordedGeneration:
    return RecordedGeneration([], list(harmony_encoding().encode(text, allowed_special="all")), "stop")


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[str, Host, Path]]:
    """The API over a host with our plugins `greet` (good) and `oops` (broken); yields the URL, host, broken file."""
    broken = write_plugins(tmp_path / "plugins")
    settings = tmp_path / "s.toml"
    settings.write_text(f'[plugins]\nfolder = "{tmp_path / "plugins"}"\n\n[permissions]\nallow_read_only = true\n')
    backend = ReplayBackend([generation(text) for text in (CALL, ANSWER)], name="openai/gpt-oss-20b")
    async with Host(write_config(tmp_path / "mcp.json", {}), settings_path=settings) as host:
        await host.wait_settled()
        async with serve_app(create_app(host, backend)) as url:
            yield url, host, broken


async def test_plugins_and_their_tools_are_listed(served: tuple[str, Host, Path]) -> None:
    url, host, broken = served
    async with httpx2.AsyncClient(base_url=url, timeout=30) as http:
        plugins = (await http.get("/v1/plugins")).json()
        assert plugins["object"] == "list"
        by_name = {entry["name"]: entry for entry in plugins["data"]}
        assert by_name["greet"]["state"] == "loaded" and by_name["greet"]["tools"] == ["hi"]
        assert by_name["greet"]["origin"] == "user" and by_name["greet"]["description"] == "Greets people."
        assert by_name["oops"]["state"] == "failed"
        assert by_name["oops"]["error"].startswith(f"{broken}:4: RuntimeError: broken on purpose")
        assert {entry["name"] for entry in plugins["data"] if entry["state"] == "loaded"} == set(host.plugins.names)

        tools = {tool["name"]: tool for tool in (await http.get("/v1/tools")).json()["data"]}
        assert tools["greet.hi"]["origin"] == "plugin" and tools["greet.hi"]["server"] == "greet"
        assert tools["greet.hi"]["identifier"] == "greet__hi"
        assert tools["greet.hi"]["input_schema"]["required"] == ["name"]
        assert not any(name.startswith("oops.") for name in tools)


async def test_a_session_with_chosen_plugins(served: tuple[str, Host, Path]) -> None:
    url, host, _ = served
    async with httpx2.AsyncClient(base_url=url, timeout=30) as http:
        for wrong in (["greet", "nope"], ["oops"]):
            refused = await http.post("/v1/sessions", json={"plugins": wrong})
            assert refused.status_code == 400, refused.text
            error = refused.json()["error"]
            assert error["param"] == "plugins" and f"loaded here: {host.plugins.names}" in error["message"]
        assert (await http.post("/v1/sessions", json={"plugins": "greet"})).status_code == 400

        everything = (await http.post("/v1/sessions")).json()["id"]
        assert (await http.get(f"/v1/sessions/{everything}")).json()["plugins"] is None
        created = await http.post("/v1/sessions", json={"plugins": ["greet"]})
        assert created.status_code == 201
        session = created.json()["id"]
        assert (await http.get(f"/v1/sessions/{session}")).json()["plugins"] == ["greet"]
        results = []
        async with http.stream("POST", f"/v1/sessions/{session}/messages", json={"content": "Greet Ada"}) as response:
            async for line in response.aiter_lines():
                if line.startswith("data: ") and '"tool_call.result"' in line:
                    results.append(json.loads(line[6:]))
        assert [(r["tool"], r["text"], r["is_error"]) for r in results] == [("greet.hi", "hi Ada", False)]


async def test_host_tools_on_completions_name_plugins(served: tuple[str, Host, Path]) -> None:
    url, host, _ = served
    async with httpx2.AsyncClient(base_url=url, timeout=30) as http:
        unknown = await http.post(
            "/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "hi"}], "mcp_host": {"tools": ["oops"]}},
        )
        assert unknown.status_code == 400
        assert f"plugins: {host.plugins.names}" in unknown.json()["error"]["message"]
        answered = await http.post(
            "/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "Greet Ada"}], "mcp_host": {"tools": ["greet"]}},
        )
        assert answered.status_code == 200, answered.text
        body = answered.json()
        assert body["choices"][0]["message"]["content"] == "Greeted."
        assert body["mcp_host"]["tool_calls"] == [{"tool": "greet.hi", "is_error": False, "result": "hi Ada"}]
