"""`mcp-host serve`: the HTTP chat API on 127.0.0.1 (another address needs --allow-remote and an API key)."""

from __future__ import annotations

import argparse
import ipaddress
import os

import anyio
import uvicorn
from rich.console import Console

from mcp_host.api.app import create_app
from mcp_host.errors import UsageError
from mcp_host.host import Host
from mcp_host.model_pick import pick_model


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


async def serve(host: Host, args: argparse.Namespace, console: Console) -> int:
    api_key = args.api_key or os.environ.get("MCP_HOST_API_KEY") or None
    check_bind(args.host, args.allow_remote, api_key)
    pick = await anyio.to_thread.run_sync(lambda: pick_model(args.model, replay=args.replay))
    if pick.notice:
        console.print(f"[dim]{pick.notice}[/dim]")
    app = create_app(host, pick.backend, api_key=api_key, cors_origins=args.cors_origin or None)
    server = uvicorn.Server(
        uvicorn.Config(app, host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=5)
    )
    console.print(f"serving on http://{args.host}:{args.port}/v1 (Ctrl-C stops it)")
    try:
        await server.serve()
    finally:
        await pick.backend.aclose()
    return 0
