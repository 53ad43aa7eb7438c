"""`mcp-host resources | read | prompts | prompt`: what servers offer beyond tools, from the terminal.

    mcp-host resources [SERVER] [--json]                    resources and templates of one server or all
    mcp-host read SERVER URI [--json] [--output FILE]       a resource's text; binary contents to FILE
    mcp-host prompts [SERVER] [--json]                      prompts with their arguments
    mcp-host prompt SERVER NAME [ARG=VALUE ...] [--json]    a prompt's messages

A command that names a server starts only that one; a server not configured is a usage error (2),
one that is not ready or fails the request an error (1), as for `mcp-host call`.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
from pathlib import Path
from typing import Any

import mcp_types
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mcp_host.chat_forms import printable, shown
from mcp_host.config.mcpjson import load_config
from mcp_host.errors import ServerNotReadyError, ServerRequestError, UsageError
from mcp_host.host import Host
from mcp_host.servers.connection import Connection
from mcp_host.servers.features import prompt_text, resource_texts
from mcp_host.servers.state import ServerState

COMMANDS = frozenset({"resources", "read", "prompts", "prompt"})
DESCRIPTION_MIN_WIDTH = 30


def add_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the four commands on `mcp-host`'s subparsers."""
    resources = commands.add_parser("resources", help="list the resources and resource templates of servers")
    resources.add_argument("server", nargs="?", help="only this server (default: every ready server)")
    resources.add_argument("--json", action="store_true", help="machine-readable output")

    read = commands.add_parser("read", help="read one resource: SERVER URI")
    read.add_argument("server")
    read.add_argument("uri")
    read.add_argument("--output", type=Path, metavar="FILE", help="write the contents (binary too) to FILE")
    read.add_argument("--json", action="store_true", help="print the whole result as JSON (binary as base64)")

    prompts = commands.add_parser("prompts", help="list the prompts of servers, with their arguments")
    prompts.add_argument("server", nargs="?", help="only this server (default: every ready server)")
    prompts.add_argument("--json", action="store_true", help="machine-readable output")

    prompt = commands.add_parser("prompt", help="get a prompt's messages: SERVER NAME [ARG=VALUE ...]")
    prompt.add_argument("server")
    prompt.add_argument("name")
    prompt.add_argument("arguments", nargs="*", metavar="ARG=VALUE", help="the prompt's arguments")
    prompt.add_argument("--json", action="store_true", help="machine-readable output")


def servers_to_start(args: argparse.Namespace, config_path: Path) -> list[str] | None:
    """The one server a command names (checked against mcp.json: a `UsageError` if absent), else None: all."""
    if args.command not in COMMANDS or args.server is None:
        return None
    names = load_config(config_path).servers
    if args.server not in names:
        known = ", ".join(sorted(names)) or "none"
        raise UsageError(f"{args.server!r} is not a configured server (servers: {known})")
    return [args.server]


async def run_feature_command(console: Console, host: Host, args: argparse.Namespace) -> int:
    """Run one of `COMMANDS` on the started host; its errors are `McpHostError`s for `main` to print."""
    if args.command == "resources":
        return await _resources(console, host, args)
    if args.command == "read":
        return await _read(console, await _ready(host, args.server), args)
    if args.command == "prompts":
        return await _prompts(console, host, args)
    return await _prompt(console, await _ready(host, args.server), args)


async def _ready(host: Host, server: str) -> Connection:
    connection = host.manager.connection(server)
    await connection.wait_started()  # a lazy server starts for its first use
    if connection.state is not ServerState.READY:
        raise ServerNotReadyError(f"server {server!r} is {connection.state.value}: {connection.error}", server=server)
    return connection


async def _chosen(host: Host, server: str | None) -> list[Connection]:
    """The named server (which must be ready), or every ready one, with a note on stderr for the others."""
    if server is not None:
        return [await _ready(host, server)]
    ready = []
    for connection in host.manager.connections:
        if connection.state is ServerState.READY:
            ready.append(connection)
        else:
            _note(f"server {connection.name} is {connection.state.value}: {connection.error or ''}")
    return ready


def _note(text: str) -> None:
    Console(stderr=True, soft_wrap=True).print(f"[yellow]note:[/yellow] {escape(text)}")


async def _resources(console: Console, host: Host, args: argparse.Namespace) -> int:
    listing: list[dict[str, Any]] = []
    for connection in await _chosen(host, args.server):
        resources = await connection.list_resources()
        templates = await connection.list_resource_templates()
        listing.extend(
            {"server": connection.name, "kind": "resource", **_dump(r, exclude={"icons", "annotations", "meta"})}
            for r in resources
        )
        listing.extend(
            {"server": connection.name, "kind": "template", **_dump(t, exclude={"icons", "annotations", "meta"})}
            for t in templates
        )
    if args.json:
        console.print_json(json.dumps(listing))
        return 0
    if not listing:
        console.print("no resources")
        return 0
    rows = [
        [
            entry["server"],
            entry.get("uri") or entry["uriTemplate"],
            entry.get("title") or entry["name"],
            entry.get("mimeType") or "",
            _first_line(entry.get("description")),
        ]
        for entry in listing
    ]
    _print_table(console, ["server", "uri", "name", "type", "description"], rows)
    return 0


async def _read(console: Console, connection: Connection, args: argparse.Namespace) -> int:
    result = await connection.read_resource(args.uri)
    if args.output is not None:
        data = b"".join(_bytes(connection.name, contents) for contents in result.contents)
        try:
            args.output.write_bytes(data)
        except OSError as exc:
            raise UsageError(f"cannot write --output {args.output}: {exc.strerror or exc}") from exc
        Console(stderr=True, soft_wrap=True).print(f"wrote {len(data)} bytes to {escape(str(args.output))}")
        return 0
    if args.json:
        console.print_json(json.dumps(_dump(result)))
        return 0
    for part in resource_texts(result):
        if part.binary_bytes:
            _note(f"{part.text}: write it to a file with --output FILE")
        else:
            console.out(_for_terminal(console, part.text), highlight=False)
    return 0


def _for_terminal(console: Console, text: str) -> str:
    """A server's text as printed: on a terminal, control characters replaced (no screen clearing or
    title setting by a server); piped or redirected, exactly as the server sent it."""
    return printable(text) if console.is_terminal else text


def _bytes(server: str, contents: mcp_types.TextResourceContents | mcp_types.BlobResourceContents) -> bytes:
    if isinstance(contents, mcp_types.TextResourceContents):
        return contents.text.encode()
    try:
        return base64.b64decode(contents.blob, validate=True)
    except binascii.Error as exc:
        raise ServerRequestError(f"{server}: {contents.uri} came as invalid base64: {exc}", server=server) from exc


async def _prompts(console: Console, host: Host, args: argparse.Namespace) -> int:
    listing: list[dict[str, Any]] = []
    for connection in await _chosen(host, args.server):
        listing.extend(
            {"server": connection.name, **_dump(p, exclude={"icons", "meta"})} for p in await connection.list_prompts()
        )
    if args.json:
        console.print_json(json.dumps(listing))
        return 0
    if not listing:
        console.print("no prompts")
        return 0
    rows = [
        [
            entry["server"],
            entry["name"],
            " ".join(f"{a['name']}{'' if a.get('required') else '?'}" for a in entry.get("arguments") or []),
            _first_line(entry.get("description")),
        ]
        for entry in listing
    ]
    _print_table(console, ["server", "prompt", "arguments", "description"], rows)
    if any(entry.get("arguments") for entry in listing):
        console.print("[dim]arguments ending in ? are optional[/dim]")
    return 0


async def _prompt(console: Console, connection: Connection, args: argparse.Namespace) -> int:
    arguments = _arguments(args.arguments)
    result = await connection.get_prompt(args.name, arguments)
    messages = prompt_text(result)
    if args.json:
        document = {
            "name": args.name,
            "description": result.description,
            "messages": [{"role": role, "text": text} for role, text in messages],
        }
        console.print_json(json.dumps(document))
        return 0
    for index, (role, text) in enumerate(messages):
        if index:
            console.print()
        console.print(f"[bold]{shown(role)}[/bold]")
        console.out(_for_terminal(console, text), highlight=False)
    return 0


def _arguments(items: list[str]) -> dict[str, str]:
    arguments: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"prompt arguments are ARG=VALUE, got {item!r}")
        arguments[key.strip()] = value
    return arguments


def _dump(model: Any, *, exclude: set[str] | None = None) -> dict[str, Any]:
    dumped: dict[str, Any] = model.model_dump(mode="json", by_alias=True, exclude_none=True, exclude=exclude)
    return dumped


def _print_table(console: Console, headers: list[str], rows: list[list[str]]) -> None:
    """Plain-text cells; every column but the last is never cut (a uri or a name is copied), the last wraps."""
    table = Table(box=None, pad_edge=False)
    for header in headers[:-1]:
        table.add_column(header, no_wrap=True)
    table.add_column(headers[-1], min_width=DESCRIPTION_MIN_WIDTH)
    for row in rows:
        table.add_row(*(shown(cell) for cell in row))
    fixed = sum(max(len(header), *(len(row[i]) for row in rows)) + 2 for i, header in enumerate(headers[:-1]))
    needed = fixed + DESCRIPTION_MIN_WIDTH
    if console.width < needed:  # wider than the terminal (or a pipe's 80 columns): lines wrap, cells stay whole
        console = Console(file=console.file, width=needed, force_terminal=console.is_terminal)
    console.print(table)


def _first_line(text: str | None) -> str:
    return (text or "").strip().split("\n", 1)[0]
