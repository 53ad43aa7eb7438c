"""OAuth for remote servers: the token store, the `needs login` state, refresh, and `mcp-host auth`.

Whole logins against a real authorization server run in test_conformance (every auth/* scenario).
"""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mcp_host import NeedsLoginError
from mcp_host.config.mcpjson import McpConfig, RemoteServerConfig, parse_config
from mcp_host.servers import ServerManager, ServerState
from mcp_host.servers.oauth import TokenStore, browser_login
from tests.conftest import ROOT, fast_settings, serve_app, write_config

ACCESS = "access-7f3a9c1e5b"
REFRESH = "refresh-2d8e4b6a0c"
FRESH = "fresh-access-9b1d3f5e7a"

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    yield tmp_path / "state"


def bearer_only(seen: list[str]) -> Starlette:
    """An MCP endpoint that refuses everyone (401), and a token endpoint that refreshes `REFRESH`."""

    async def mcp(request: Request) -> Response:
        seen.append(request.headers.get("authorization", ""))
        return JSONResponse({"error": "invalid_token"}, status_code=401, headers={"WWW-Authenticate": "Bearer"})

    async def token(request: Request) -> Response:
        form = await request.form()
        if form.get("grant_type") == "refresh_token" and form.get("refresh_token") == REFRESH:
            return JSONResponse({"access_token": FRESH, "token_type": "Bearer", "expires_in": 3600})
        return JSONResponse({"error": "invalid_grant"}, status_code=400)

    return Starlette(
        routes=[Route("/mcp", mcp, methods=["GET", "POST", "DELETE"]), Route("/token", token, methods=["POST"])]
    )


async def connect(name: str, config: RemoteServerConfig) -> tuple[ServerState, str | None, str]:
    async with ServerManager(fast_settings(restart_attempts=0)) as manager:
        await manager.apply(McpConfig(servers={name: config}))
        await manager.wait_settled()
        status = manager.connection(name).status()
        return status.state, status.error, status.transport


# -- the token store -------------------------------------------------------------------------------


async def test_token_store_is_private_atomic_and_quiet(state_home: Path) -> None:
    store = TokenStore.for_server("../evil name")
    assert store.path.parent == state_home / "mcp-host" / "oauth" and ".." not in store.path.name
    await store.set_tokens(OAuthToken(access_token=ACCESS, refresh_token=REFRESH, expires_in=60, scope="a b"))
    first_inode = store.path.stat().st_ino
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    await store.set_tokens(OAuthToken(access_token=FRESH, expires_in=60))
    assert store.path.stat().st_ino != first_inode  # replaced, never rewritten in place
    assert [p.name for p in store.path.parent.iterdir() if p.name.endswith(".tmp")] == []
    loaded = store.load()
    assert loaded.tokens is not None and loaded.tokens.access_token == FRESH
    assert loaded.expires_at is not None and time.time() < loaded.expires_at <= time.time() + 60
    for text in (repr(store), repr(loaded), str(loaded)):
        assert FRESH not in text and ACCESS not in text
    assert store.delete() and not store.path.exists() and not store.delete()


def test_auth_block_hides_secrets_and_names_keys(tmp_path: Path) -> None:
    text = json.dumps(
        {
            "mcpServers": {
                "gh": {
                    "url": "https://x.example/mcp",
                    "auth": {"client_id": "app", "client_secret": "${S}", "clientId": 1},
                }
            }
        }
    )
    config = parse_config(text, path=tmp_path / "mcp.json", environ={"S": "very-secret-value"})
    server = config.servers["gh"]
    assert isinstance(server, RemoteServerConfig) and server.auth is not None
    assert server.auth.client_secret is not None and server.auth.client_secret.get_secret_value() == "very-secret-value"
    assert "very-secret-value" not in repr(config)
    assert any("'auth.clientId'" in w and 'did you mean "client_id"' in w for w in config.warnings), config.warnings
    bad = json.dumps(
        {"mcpServers": {"cc": {"url": "https://x.example/mcp", "auth": {"grant_type": "client_credentials"}}}}
    )
    with pytest.raises(Exception, match=r"server 'cc', key 'auth'.*needs 'client_id'"):
        parse_config(bad, path=tmp_path / "mcp.json")


# -- connections that need a login ----------------------------------------------------------------


async def test_a_401_without_tokens_needs_login_and_never_falls_back_to_sse(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[str] = []
    async with serve_app(bearer_only(seen)) as base:
        state, error, transport = await connect("work", RemoteServerConfig(url=f"{base}/mcp"))
    assert state is ServerState.FAILED
    assert error == "needs login: run mcp-host auth login work", error  # exactly that, and no restarts
    assert str(NeedsLoginError("work")) == error
    assert transport == "http" and "-32603" not in error and "SSE" not in error
    assert "trying legacy SSE" not in caplog.text


async def test_a_static_header_refused_says_so() -> None:
    async with serve_app(bearer_only([])) as base:
        config = RemoteServerConfig(url=f"{base}/mcp", headers={"Authorization": "Bearer nope"})
        state, error, _ = await connect("static", config)
    assert state is ServerState.FAILED and error is not None and "HTTP 401 from" in error, error


async def test_an_expired_token_is_refreshed_without_a_person(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    store = TokenStore.for_server("work")
    await store.set_tokens(OAuthToken(access_token=ACCESS, refresh_token=REFRESH, expires_in=0))
    await store.set_client_info(OAuthClientInformationFull(client_id="registered-host"))
    async with serve_app(bearer_only(seen)) as base:
        state, error, _ = await connect("work", RemoteServerConfig(url=f"{base}/mcp"))
    refreshed = store.load().tokens
    assert refreshed is not None and refreshed.access_token == FRESH
    assert refreshed.refresh_token == REFRESH  # the server did not rotate it; it is kept
    assert seen and seen[0] == f"Bearer {FRESH}"
    assert error is not None and "needs login" in error  # the server still refuses: a person must log in
    for secret in (ACCESS, REFRESH, FRESH):
        assert secret not in caplog.text


async def test_stored_tokens_are_sent(http_server: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await TokenStore.for_server("web").set_tokens(OAuthToken(access_token=ACCESS, expires_in=3600))
    async with ServerManager(fast_settings()) as manager:
        await manager.apply(McpConfig(servers={"web": RemoteServerConfig(url=http_server)}))
        await manager.wait_settled()
        result = await manager.call_tool("web.header", {"name": "authorization"})
    assert result.text == f"Bearer {ACCESS}"
    assert ACCESS not in caplog.text


# -- the browser login's callback ---------------------------------------------------------------------


async def test_browser_login_takes_only_its_own_redirect() -> None:
    opened: list[str] = []
    async with browser_login(open_browser=opened.append, notify=lambda _: None) as login:
        await login.redirect("https://as.example/authorize?state=s-123&client_id=x")
        async with httpx2.AsyncClient() as http:
            forged = await http.get(login.redirect_uri, params={"code": "evil", "state": "other"})
            elsewhere = await http.get(login.redirect_uri.replace("/callback", "/"), params={"state": "s-123"})
            real = await http.get(login.redirect_uri, params={"code": "c-1", "state": "s-123"})
        result = await login.callback()
    assert opened == ["https://as.example/authorize?state=s-123&client_id=x"]
    assert login.redirect_uri.startswith("http://127.0.0.1:")
    assert (forged.status_code, elsewhere.status_code, real.status_code) == (400, 404, 200)
    assert (result.code, result.state) == ("c-1", "s-123")


# -- mcp-host auth status | logout -------------------------------------------------------------------


def mcp_host(config: Path, state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mcp_host.cli", "--config", str(config), "auth", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "XDG_STATE_HOME": str(state), "COLUMNS": "200"},
    )


async def test_auth_status_and_logout(tmp_path: Path, state_home: Path) -> None:
    config = write_config(tmp_path / "mcp.json", {"work": {"url": "https://x.example/mcp"}, "local": {"command": "x"}})
    store = TokenStore.for_server("work")
    await store.set_tokens(OAuthToken(access_token=ACCESS, refresh_token=REFRESH, expires_in=3600, scope="read write"))

    status = await anyio.to_thread.run_sync(mcp_host, config, state_home, "status", "work")
    assert status.returncode == 0, status.stderr
    assert "work: logged in; expires " in status.stdout and "refreshable; scopes: read write" in status.stdout
    assert ACCESS not in status.stdout + status.stderr and REFRESH not in status.stdout + status.stderr

    logout = await anyio.to_thread.run_sync(mcp_host, config, state_home, "logout", "work")
    assert (logout.returncode, logout.stdout.strip()) == (0, "logged out of work")
    assert not store.path.exists()
    after = await anyio.to_thread.run_sync(mcp_host, config, state_home, "status", "work")
    assert after.stdout.strip() == "work: not logged in", after.stderr

    unknown = await anyio.to_thread.run_sync(mcp_host, config, state_home, "status", "nope")
    assert unknown.returncode == 1 and "no server 'nope'" in unknown.stderr
    stdio = await anyio.to_thread.run_sync(mcp_host, config, state_home, "login", "local")
    assert stdio.returncode == 2 and "only remote servers log in" in stdio.stderr


async def test_a_failed_login_keeps_the_tokens_that_worked() -> None:
    from mcp_host.auth_command import login
    from mcp_host.errors import ServerStartError

    store = TokenStore.for_server("remote")
    await store.set_tokens(OAuthToken(access_token=ACCESS, refresh_token=REFRESH, expires_in=3600))
    with pytest.raises(ServerStartError, match="login to 'remote' failed"):
        await login("remote", RemoteServerConfig(url="http://127.0.0.1:9/mcp"), store)
    kept = store.load().tokens
    assert kept is not None and kept.access_token == ACCESS and kept.refresh_token == REFRESH
