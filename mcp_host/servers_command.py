"""`mcp-host servers` and `mcp-host tools`: what the host started, and the tools it got.

    mcp-host servers [--json] [--wait]     state, transport, tool count and error of each server
    mcp-host tools [--json]                every tool by qualified name

`servers` exits 1 when a server failed (after printing every one). It waits `GLANCE_S` for servers to
settle and shows the rest as `starting`; `--wait` waits until each is ready or failed, which its connect
timeout bounds (30 s by default).
"""

from __future__ import annotations

import argparse
import json

import anyio
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mcp_host.host import Host
from mcp_host.servers.state import ServerState, ServerStatus

EXIT_FAILED = 1
GLANCE_S = 5.0

_STATE_STYLE = {
    ServerState.READY: "green",
    ServerState.IDLE: "dim",
    ServerState.STARTING: "yellow",
    ServerState.FAILED: "red",
    ServerState.STOPPED: "dim",
}


def add_listing_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    servers = commands.add_parser("servers", help="start every server and show its state (exit code 1 when one failed)")
    servers.add_argument("--json", action="store_true", help="machine-readable output")
    servers.add_argument(
        "--wait",
        action="store_true",
        help=f"wait for every server to be ready or failed (default: show those still starting after {GLANCE_S:g}s)",
    )
    tools = commands.add_parser("tools", help="list every tool by qualified name")
    tools.add_argument("--json", action="store_true", help="machine-readable output")


async def settle(host: Host, args: argparse.Namespace) -> None:
    """Wait for what the command needs of the servers: nothing for `chat` and `serve` (they wait for the tools
    while the model loads); the tools for `tools` and `render` (at once for those the tool catalog knows);
    a glance for `servers` without `--wait`; every server ready or failed for the rest."""
    if args.command in ("chat", "serve"):
        return
    if args.command in ("tools", "render"):  # they end at once: a server known to fail gets its chance first
        await host.wait_tools_known(trust_failures=False)
    elif args.command == "servers" and not args.wait:
        with anyio.move_on_after(GLANCE_S):
            await host.wait_settled()
    else:
        await host.wait_settled()


def print_servers(console: Console, statuses: list[ServerStatus], as_json: bool, *, said_none: bool = False) -> int:
    """Every server's state; the exit code: `EXIT_FAILED` when one failed, else 0.

    `said_none`: the user was already told there are no servers (and how to add one), so none is not said again.
    """
    code = EXIT_FAILED if any(status.state is ServerState.FAILED for status in statuses) else 0
    if as_json:
        console.print_json(json.dumps([status.to_json() for status in statuses]))
        return code
    if not statuses:
        if not said_none:
            console.print("no servers configured (mcp-host config add NAME -- COMMAND [ARGS...] adds one)")
        return code
    table = Table("server", "state", "transport", "tools", box=None, pad_edge=False)
    table.add_column("error", overflow="fold")  # a long error wraps whole, never cut at the edge
    for status in statuses:
        style = _STATE_STYLE[status.state]
        error = status.error or ""
        if status.state is ServerState.STARTING and not error:
            error = f"still starting after {GLANCE_S:g}s (--wait waits for it)"
        elif status.state is ServerState.IDLE and not error:
            error = "lazy: starts when first used (its tools are known from the catalog)"
        table.add_row(
            escape(status.name),
            f"[{style}]{status.state.value}[/{style}]",
            status.transport,
            str(status.tools),
            escape(error),
        )
    console.print(table)
    return code


def print_tools(console: Console, host: Host, as_json: bool) -> None:
    specs = list(host.registry)
    if as_json:
        console.print_json(
            json.dumps(
                [
                    {
                        "name": spec.name,
                        "identifier": host.registry.names.to_identifier[spec.name],
                        "server": spec.server,
                        "origin": spec.origin,
                        "description": spec.description,
                        "input_schema": spec.input_schema,
                        "original_schema": spec.original_schema,
                        "annotations": spec.annotations,
                    }
                    for spec in specs
                ]
            )
        )
    else:
        table = Table("tool", "origin", "description", box=None, pad_edge=False)
        for spec in specs:
            table.add_row(spec.name, f"{spec.origin}:{spec.server}", escape(spec.summary))
        console.print(table)
    notes = Console(stderr=True, soft_wrap=True)
    for status in host.statuses():
        if status.state is not ServerState.READY:
            notes.print(
                f"[yellow]note:[/yellow] server {status.name} is {status.state.value}: {escape(status.error or '')}"
            )
    for plugin in host.plugins.statuses():
        if plugin.state == "failed":
            notes.print(f"[yellow]note:[/yellow] plugin {plugin.name} failed: {escape(plugin.error or '')}")
