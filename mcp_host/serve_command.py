"""`mcp-host serve`: the HTTP chat API on 127.0.0.1 (another address needs --allow-remote and an API key).

Stopping (SIGTERM, Ctrl-C: the caller sets `stopping`) ends every open stream with its farewell event,
waits for the connections to close, and returns 0; the caller's host then stops every MCP server.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import logging
import os
import socket
import webbrowser
from collections.abc import Iterator
from pathlib import Path

import anyio
import uvicorn
from rich.console import Console

from mcp_host.api.app import create_app
from mcp_host.api.streaming import GracefulShutdown
from mcp_host.backends.models import discover_models
from mcp_host.backends.registry import ModelRegistry
from mcp_host.errors import UsageError
from mcp_host.host import Host
from mcp_host.model_pick import pick_model
from mcp_host.store import Store, open_store

logger = logging.getLogger(__name__)

# Once the streams have ended, what is left is non-streamed answers being sent.
GRACEFUL_SHUTDOWN_S = 5
# After that, the app's lifespan closes its sessions; past this, serving is cut short all the same, so that
# the host always gets to stop its servers.
STOP_LIMIT_S = GRACEFUL_SHUTDOWN_S + 5


def add_serve_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser("serve", help="serve the OpenAI-compatible chat API (loopback by default)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8321)
    serve.add_argument("--allow-remote", action="store_true", help="allow an address beyond this machine")
    serve.add_argument("--api-key", help="require this bearer key (default: $MCP_HOST_API_KEY)")
    serve.add_argument("--model", help="a .gguf path, an LM Studio id or an http:// server (as for chat)")
    serve.add_argument("--replay", type=Path, help="serve a recorded chat instead of a model")
    serve.add_argument("--replay-speed", type=float, default=0.0, help="replayed tokens per second (0: instant)")
    serve.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="allow browser pages from this origin (repeatable; CORS is off by default)",
    )
    serve.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="answer requests for this Host name too (repeatable; loopback names only by default)",
    )
    serve.add_argument(
        "--session-idle",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="close sessions nobody used for this long (default 3600)",
    )


def check_bind(address: str, allow_remote: bool, api_key: str | None) -> None:
    """Loopback by default; anything else must be asked for and protected. Raises `UsageError`."""
    try:
        loopback = ipaddress.ip_address(address).is_loopback
    except ValueError:
        loopback = address == "localhost"
    if loopback:
        return
    if not allow_remote:
        raise UsageError(f"refusing to listen on {address}: pass --allow-remote to serve beyond this machine")
    if not api_key:
        raise UsageError(f"listening on {address} needs an API key (--api-key or MCP_HOST_API_KEY)")


async def serve(host: Host, args: argparse.Namespace, console: Console, stopping: anyio.Event) -> int:
    """Serve until `stopping` is set; then end the open requests and return 0.

    State (sessions, threads, responses) is kept in the store `[api] store` names (default: SQLite in the
    state directory), opened before serving and closed after. Raises `StoreError`, `UsageError`, `BackendError`.
    """
    configured = host.settings.api.store
    async with await open_store(configured.get_secret_value() if configured else None) as store:
        return await _serve(host, args, console, stopping, store)


async def _serve(host: Host, args: argparse.Namespace, console: Console, stopping: anyio.Event, store: Store) -> int:
    api_key = args.api_key or os.environ.get("MCP_HOST_API_KEY") or None
    check_bind(args.host, args.allow_remote, api_key)
    async with anyio.create_task_group() as tg:  # the model loads while the servers start
        tg.start_soon(host.wait_tools_known)
        pick = await anyio.to_thread.run_sync(
            lambda: pick_model(args.model, replay=args.replay, replay_speed=args.replay_speed)
        )
        host.start_deferred()
    if pick.notice:
        console.print(f"[dim]{pick.notice}[/dim]")
    allowed_hosts = [*args.allow_host, *_bound_name(args.host)]
    settings = host.settings
    models = ModelRegistry(
        discover=lambda: discover_models([Path(place) for place in settings.models.paths]),
        preloaded=pick.backend,
        preloaded_path=pick.path,
        own_preloaded=True,
        resident=settings.models.resident,
        idle_ttl_s=settings.models.idle_ttl_s,
    )
    app = GracefulShutdown(
        create_app(
            host,
            models,
            unattended_calls=settings.api.unattended_calls == "allow",
            api_key=api_key,
            cors_origins=args.cors_origin or None,
            allowed_hosts=allowed_hosts,
            session_idle_s=args.session_idle,
            store=store,
            session_lease_s=settings.api.turn_lease_s,
        )
    )
    server = _Server(
        uvicorn.Config(
            app, host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S
        )
    )
    console.print(
        f"serving the API on http://{args.host}:{args.port}/v1 and the web chat on http://{args.host}:{args.port}/ "
        f"(Ctrl-C stops it); state kept in {store}"
    )
    console.print(_browser_notice(args.cors_origin, allowed_hosts), style="dim", highlight=False)
    try:
        async with anyio.create_task_group() as tg:

            async def stop_when_asked() -> None:
                await stopping.wait()
                app.begin()  # the streams end first, so that uvicorn's wait for the connections is short
                server.should_exit = True
                await anyio.sleep(STOP_LIMIT_S)
                logger.error("the server did not stop within %s s: stopping it now", STOP_LIMIT_S)
                tg.cancel_scope.cancel()

            tg.start_soon(stop_when_asked)
            if getattr(args, "open_browser", False):  # `chat --web`
                tg.start_soon(_open_when_listening, server, f"http://{args.host}:{args.port}/", console)
            await server.serve()
            tg.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            await pick.backend.aclose()
    return 0


async def _open_when_listening(server: _Server, url: str, console: Console) -> None:
    """Open the web chat in the user's browser once the server listens (`$BROWSER` is honoured)."""
    await server.listening.wait()
    if not await anyio.to_thread.run_sync(webbrowser.open, url):
        console.print(f"no browser could be opened here: open {url} yourself")


def _bound_name(address: str) -> list[str]:
    """A specific non-loopback address the server listens on is a name clients may use (not 0.0.0.0 or ::)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return [address]
    return [] if ip.is_unspecified or ip.is_loopback else [address]


def _browser_notice(origins: list[str], hosts: list[str]) -> str:
    """How the server treats web pages, and how to let a web app in."""
    lines = [
        "web pages: " + (f"allowed from {', '.join(origins)}" if origins else "refused (no --cors-origin)"),
        "  requests must name a loopback host" + (f" or {', '.join(hosts)}" if hosts else "") + " and send JSON;",
        "  to let a web app call this API: --cors-origin http://localhost:5173 (its exact origin);",
        "  to reach it under another name (a proxy, a LAN name): --allow-host NAME",
    ]
    return "\n".join(lines)


class _Server(uvicorn.Server):
    """uvicorn, with the signals left to the caller (`mcp_host.cli`).

    uvicorn's own handlers re-raise a caught SIGTERM or SIGINT once `serve()` returns, which kills the
    process before the host has stopped its MCP servers unless something else catches it, and they flag
    sse-starlette's process-wide shutdown, which cuts open streams without their farewell.
    """

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = anyio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self.listening.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
