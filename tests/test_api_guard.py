"""The cross-origin attack on the loopback API, step by step, against a real uvicorn server: each step refused.

The attack, as found on the first wave: a page the user visits (or a DNS-rebound name) creates a session
with `python`, sends a message, answers the approval "always", and from then on runs code with a blind
`text/plain` POST. Each request below is what a browser would send for that page.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import openai
import pytest

from mcp_host.api import create_app
from mcp_host.api.guard import BrowserGuard
from mcp_host.backends import RecordedGeneration, ReplayBackend
from mcp_host.host import Host
from mcp_host.prompt import harmony_encoding
from tests.conftest import fixture_entry, serve_app, write_config

pytestmark = pytest.mark.anyio

ANSWER = "<|channel|>final<|message|>Hello.<|return|>"
EVIL = "https://evil.example"
JSON = {"content-type": "application/json"}


def tokens(text: str) -> list[int]:
    return list(harmony_encoding().encode(text, allowed_special="all"))


@pytest.fixture
async def api(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A real server on 127.0.0.1 over the fixture MCP server; `request.param`: options of `create_app`."""
    config = write_config(tmp_path / "mcp.json", {"fx": fixture_entry()})
    backend = ReplayBackend([RecordedGeneration([], tokens(ANSWER), "stop")] * 4, name="openai/gpt-oss-20b")
    async with Host(config, settings_path=tmp_path / "settings.toml") as host:
        await host.wait_settled()
        async with serve_app(create_app(host, backend, **getattr(request, "param", {}))) as url:
            yield url


async def test_each_step_of_the_cross_origin_attack_is_refused(api: str) -> None:
    async with httpx2.AsyncClient(base_url=api, timeout=30) as http:
        session = json.dumps({"python": True}).encode()
        # 1. A page's blind "simple" POST: text/plain needs no preflight, and carries the page's Origin.
        blind = await http.post("/v1/sessions", content=session, headers={"content-type": "text/plain", "origin": EVIL})
        assert blind.status_code == 403, blind.text
        assert blind.json()["error"]["code"] == "origin_not_allowed"
        # 2. The same without an Origin (a form or a client that strips it): the body type alone is refused.
        plain = await http.post("/v1/sessions", content=session, headers={"content-type": "text/plain"})
        assert plain.status_code == 415, plain.text
        form = await http.post("/v1/sessions", content=b"python=true", headers={"origin": EVIL})
        assert form.status_code == 403
        # 3. A JSON POST from the page's origin (it would need a preflight, and CORS is off): refused too.
        cors = await http.post("/v1/sessions", content=session, headers={**JSON, "origin": EVIL})
        assert cors.status_code == 403
        assert "access-control-allow-origin" not in cors.headers
        # 4. DNS rebinding: the page's own name resolves to 127.0.0.1, so the browser sends it as Host
        # and treats the request as same-origin. Refused whatever the method, before any route runs.
        for method, path in (("POST", "/v1/sessions"), ("GET", "/v1/models"), ("GET", "/v1/tools")):
            rebound = await http.request(
                method, path, content=session if method == "POST" else None, headers={**JSON, "host": "evil.example"}
            )
            assert rebound.status_code == 421, (method, path, rebound.text)
            assert rebound.json()["error"]["code"] == "host_not_allowed"
        rebound_origin = await http.post(
            "/v1/sessions", content=session, headers={**JSON, "host": "evil.example:8321", "origin": EVIL}
        )
        assert rebound_origin.status_code == 421
        # 5. Restarting a server, and the blind completion with the host's python tool.
        restart = await http.post("/v1/servers/fx/restart", headers={"origin": EVIL})
        assert restart.status_code == 403
        completion = json.dumps(
            {
                "model": "openai/gpt-oss-20b",
                "messages": [{"role": "user", "content": "hi"}],
                "mcp_host": {"tools": ["python"]},
            }
        ).encode()
        blind_completion = await http.post(
            "/v1/chat/completions", content=completion, headers={"content-type": "text/plain", "origin": EVIL}
        )
        assert blind_completion.status_code == 403
        # Nothing of the above created a session.
        assert (await http.get("/v1/sessions/nope")).status_code == 404


async def test_same_origin_clients_and_plain_clients_still_work(api: str) -> None:
    port = api.rsplit(":", 1)[1]
    async with httpx2.AsyncClient(base_url=api, timeout=30) as http:
        # A page served by this server itself (a same-origin fetch carries Origin = the server's own origin).
        for origin in (api, f"http://localhost:{port}"):
            host = origin.removeprefix("http://")
            created = await http.post("/v1/sessions", json={}, headers={"origin": origin, "host": host})
            assert created.status_code == 201, created.text
            await http.delete(f"/v1/sessions/{created.json()['id']}", headers={"origin": origin, "host": host})
        # curl and scripts: no Origin; a JSON type with a charset; a POST with no body and no type.
        assert (await http.post("/v1/sessions", json={})).status_code == 201
        charset = await http.post(
            "/v1/sessions", content=b"{}", headers={"content-type": "application/json; charset=utf-8"}
        )
        assert charset.status_code == 201
        assert (await http.post("/v1/servers/fx/restart")).status_code == 200
        # Reads from any origin are answered (the browser withholds the answer without CORS headers).
        read = await http.get("/v1/models", headers={"origin": EVIL})
        assert read.status_code == 200
        assert "access-control-allow-origin" not in read.headers
        for host in ("localhost", "127.0.0.2:80", "[::1]:8321", "app.localhost", "LOCALHOST."):
            assert (await http.get("/v1/models", headers={"host": host})).status_code == 200, host
    # The official openai client, unchanged.
    client = openai.AsyncOpenAI(base_url=f"{api}/v1", api_key="unused", max_retries=0)
    reply = await client.chat.completions.create(
        model="openai/gpt-oss-20b", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.choices[0].message.content == "Hello."
    await client.close()


@pytest.mark.parametrize(
    "api", [{"cors_origins": ["https://app.example"], "allowed_hosts": ["chat.internal"]}], indirect=True
)
async def test_configured_origins_and_hosts_are_allowed(api: str) -> None:
    async with httpx2.AsyncClient(base_url=api, timeout=30) as http:
        preflight = await http.options(
            "/v1/sessions",
            headers={
                "origin": "https://app.example",
                "access-control-request-method": "POST",
                "access-control-request-headers": "content-type",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://app.example"
        allowed = await http.post("/v1/sessions", json={}, headers={"origin": "https://app.example"})
        assert allowed.status_code == 201
        assert allowed.headers["access-control-allow-origin"] == "https://app.example"
        assert (await http.post("/v1/sessions", json={}, headers={"origin": EVIL})).status_code == 403
        assert (await http.get("/v1/models", headers={"host": "chat.internal:8321"})).status_code == 200
        assert (await http.get("/v1/models", headers={"host": "other.internal"})).status_code == 421


@pytest.mark.parametrize("api", [{"cors_origins": ["https://app.example"]}], indirect=True)
async def test_a_cors_origin_does_not_open_the_mcp_json_editor(api: str, tmp_path: Path) -> None:
    # mcp.json holds secrets and chooses the commands the host runs: a web app trusted to chat is not trusted
    # with it. Every method is refused, the preflight too, before CORS could add a header.
    app, config = "https://app.example", tmp_path / "mcp.json"
    before = config.read_bytes()
    async with httpx2.AsyncClient(base_url=api, timeout=30) as http:
        version = (await http.get("/v1/config/mcp.json")).json()["version"]  # no Origin: a client, not a page
        evil = {"mcpServers": {"evil": {"command": "sh", "args": ["-c", f"touch {tmp_path / 'owned'}"]}}}
        preflight_headers = {"origin": app, "access-control-request-method": "PUT"}
        answers = [
            await http.get("/v1/config/mcp.json", headers={"origin": app}),
            await http.options("/v1/config/mcp.json", headers=preflight_headers),
            await http.put(
                "/v1/config/mcp.json", json={"text": json.dumps(evil), "version": version}, headers={"origin": app}
            ),
            await http.post("/v1/config/mcp.json/validate", json={"text": "{}"}, headers={"origin": app}),
        ]
        for answer in answers:
            assert answer.status_code == 403, answer.text
            assert not any(name.startswith("access-control-") for name in answer.headers), answer.headers
            error = answer.json()["error"]
            assert error["code"] == "cross_origin_refused" and "even with --cors-origin" in error["message"]
            assert "mcp.json holds secrets and chooses the commands the host runs" in error["message"]
            assert "args" not in answer.text  # nothing of the file
        assert config.read_bytes() == before and not (tmp_path / "owned").exists()
        # The rest of the API stays open to the app, and the editor to the server's own page.
        chat = await http.post("/v1/sessions", json={}, headers={"origin": app})
        assert chat.status_code == 201 and chat.headers["access-control-allow-origin"] == app
        own = await http.get("/v1/config/mcp.json", headers={"origin": api})
        assert own.status_code == 200 and own.json()["text"] == before.decode()


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1:1", True),
        ("localhost", True),
        ("[::1]", True),
        ("evil.example", False),
        ("localhost.evil.example", False),
        ("127.0.0.1.evil.example", False),
        ("[::ffff:8.8.8.8]", False),
        ("", False),
        ("0.0.0.0", False),
    ],
)
def test_host_names(host: str, allowed: bool) -> None:
    assert BrowserGuard(app=lambda *_: None).host_allowed(host) is allowed  # type: ignore[arg-type,return-value]
