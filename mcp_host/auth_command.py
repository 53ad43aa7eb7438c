"""`mcp-host auth login|logout|status SERVER`: OAuth logins to remote MCP servers.

    mcp-host auth login github      # opens the browser once; the tokens are kept for every later start
    mcp-host auth status github     # logged in or not, expiry and scopes (never a token)
    mcp-host auth logout github     # forget the tokens and the client registration

Servers never open a browser by themselves: one that needs a login fails with
"needs login: run mcp-host auth login NAME" until this is run.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime
from pathlib import Path

import anyio
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from rich.console import Console
from rich.markup import escape

from mcp_host.config.mcpjson import RemoteServerConfig, load_config
from mcp_host.errors import ServerStartError, UnknownServerError, UsageError
from mcp_host.servers.connection import CLIENT_INFO
from mcp_host.servers.describe import describe_exception
from mcp_host.servers.oauth import LOGIN_TIMEOUT_S, RemoteAuth, TokenStore, browser_login, make_auth


def add_auth_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    auth = commands.add_parser("auth", help="log in to, out of, or check an OAuth-protected remote server")
    auth.add_argument("action", choices=["login", "logout", "status"])
    auth.add_argument("server", help="the server's name in mcp.json")


def run_auth(args: argparse.Namespace, config_path: Path, console: Console) -> int:
    config = _remote_server(config_path, args.server)
    store = TokenStore.for_server(args.server)
    if args.action == "login":
        anyio.run(login, args.server, config, store)
        console.print(f"logged in to [bold]{escape(args.server)}[/bold]")
        _print_status(console, args.server, store)
    elif args.action == "logout":
        gone = store.delete()
        console.print(f"{'logged out of' if gone else 'no stored login for'} [bold]{escape(args.server)}[/bold]")
    else:
        _print_status(console, args.server, store)
    return 0


async def login(name: str, config: RemoteServerConfig, store: TokenStore) -> None:
    """Log in to server `name` once, through the browser: connect (the server's 401 starts the flow), disconnect.

    The login starts without the old tokens, so it always asks the user (the client registration is
    reused); they are replaced only when it succeeds, so a failed login leaves the old ones working.
    Raises `ServerStartError` when the login or the connection fails.
    """
    staged = store.staged()
    port = config.auth.callback_port if config.auth else None
    auth: RemoteAuth | None = None
    try:
        with anyio.fail_after(LOGIN_TIMEOUT_S + 60):
            async with browser_login(port) as handlers:
                auth = make_auth(name, config, store=staged, login=handlers)
                async with _client(config, auth):
                    pass
        staged.commit()
    except Exception as exc:
        if auth is not None and (problem := auth.problem()) is not None:
            raise problem from exc
        raise ServerStartError(f"login to {name!r} failed: {describe_exception(exc)}", server=name) from exc


@asynccontextmanager
async def _client(config: RemoteServerConfig, auth: RemoteAuth) -> AsyncIterator[Client]:
    async with AsyncExitStack() as stack:
        if config.transport == "sse":
            transport = sse_client(config.url, headers=dict(config.headers), auth=auth)
        else:
            http = await stack.enter_async_context(create_mcp_http_client(headers=dict(config.headers), auth=auth))
            transport = streamable_http_client(config.url, http_client=http)
        yield await stack.enter_async_context(Client(transport, client_info=CLIENT_INFO))


def _remote_server(config_path: Path, name: str) -> RemoteServerConfig:
    servers = load_config(config_path).servers
    if name not in servers:
        known = ", ".join(sorted(servers)) or "none"
        raise UnknownServerError(f"no server {name!r} in {config_path} (servers: {known})", server=name)
    server = servers[name]
    if not isinstance(server, RemoteServerConfig):
        raise UsageError(f"server {name!r} is started by the host (stdio); only remote servers log in")
    return server


def _print_status(console: Console, name: str, store: TokenStore) -> None:
    stored = store.load()
    tokens = stored.tokens
    if tokens is None:
        console.print(f"[bold]{escape(name)}[/bold]: not logged in")
        return
    if stored.expires_at is not None:
        when = datetime.fromtimestamp(stored.expires_at).astimezone().isoformat(timespec="seconds")
        expiry = f"{'expired' if stored.expires_at < time.time() else 'expires'} {when}"
    else:
        expiry = "no expiry given"
    refresh = "refreshable" if tokens.refresh_token else "no refresh token"
    scopes = escape(tokens.scope or "-")
    console.print(f"[bold]{escape(name)}[/bold]: logged in; {expiry}; {refresh}; scopes: {scopes}", soft_wrap=True)
