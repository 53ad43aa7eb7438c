"""`mcp-host config add`, and which mcp.json a command uses.

    mcp-host config add time -- uvx mcp-server-time
    mcp-host config add remote --url https://example.com/mcp --header "Authorization=Bearer ${TOKEN}"

The file is `--config`, else `$MCP_HOST_CONFIG`, else LM Studio's `~/.lmstudio/mcp.json`. A file someone
named must exist (except for `config add`, which creates it); LM Studio's may not exist yet, which
means no servers: every command still runs, and says once how to add one (`missing_config_note`).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from mcp_host.config.edit import add_server
from mcp_host.config.paths import CONFIG_ENV, default_config_path
from mcp_host.errors import ConfigSchemaError, UsageError

ADD_USAGE = (
    "mcp-host config add NAME [--env K=V] [--cwd DIR] -- COMMAND [ARGS...]\n"
    "       mcp-host config add NAME --url URL [--header K=V] [--sse]"
)


def add_config_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    config = commands.add_parser("config", help="edit mcp.json")
    actions = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    add = actions.add_parser(
        "add", help="add a server: NAME -- COMMAND ARGS...  or  NAME --url URL [--header K=V]", usage=ADD_USAGE
    )
    add.add_argument("name")
    add.add_argument("--url", help="address of a remote (Streamable HTTP or SSE) server")
    add.add_argument("--header", action="append", default=[], metavar="K=V", help="HTTP header (repeatable)")
    add.add_argument("--sse", action="store_true", help="the remote server speaks legacy SSE")
    add.add_argument("--env", action="append", default=[], metavar="K=V", help="environment variable (repeatable)")
    add.add_argument("--cwd", help="working directory of a stdio server")
    add.add_argument("--timeout-ms", type=int, help="per-server timeout in milliseconds (LM Studio's 'timeout')")
    add.add_argument("--replace", action="store_true", help="overwrite a server of the same name")


def config_path(args: argparse.Namespace) -> Path:
    return Path(args.config).expanduser() if args.config else default_config_path()


def check_config_path(args: argparse.Namespace, path: Path) -> bool:
    """Whether mcp.json exists. Raises `ConfigSchemaError` when a file someone named (`--config`,
    `$MCP_HOST_CONFIG`) does not: only LM Studio's own may be missing (no servers)."""
    if path.exists():
        return True
    if args.config:
        named_by = "--config"
    elif os.environ.get(CONFIG_ENV):
        named_by = f"${CONFIG_ENV}"
    else:
        return False  # LM Studio's own, which it writes when a first server is added
    option = f" --config {path}" if args.config else ""
    raise ConfigSchemaError(
        f"{path}: file not found (named by {named_by}); "
        f"`mcp-host{option} config add NAME -- COMMAND [ARGS...]` creates it with a first server",
        path=path,
        server=None,
        key=None,
    )


def missing_config_note(path: Path, command: str) -> str:
    """What a command says, once, when LM Studio's mcp.json does not exist yet: no servers, and how to add one."""
    lines = [
        f"no MCP servers: {path} does not exist yet. Add a server with",
        "  mcp-host config add NAME -- COMMAND [ARGS...]   e.g. mcp-host config add time -- uvx mcp-server-time",
        "  mcp-host config add NAME --url URL              a remote server (Streamable HTTP or SSE)",
    ]
    if command == "chat":
        lines.append("or, in the chat: /add NAME -- COMMAND [ARGS...]  (or /add NAME --url URL)")
    if command in ("chat", "serve"):
        lines.append(f"(from another terminal: the running {command} picks the new server up)")
    return "\n".join(lines)


def run_config(args: argparse.Namespace, command_line: list[str], path: Path, console: Console) -> int:
    """`config add`: validate, then write mcp.json atomically (created 0600 when missing)."""
    entry: dict[str, Any]
    if args.url and command_line:
        raise UsageError("give either --url or '-- COMMAND ARGS...', not both")
    if args.url:
        if args.env or args.cwd:
            raise UsageError("--env and --cwd are for stdio servers")
        entry = {"url": args.url}
        if args.header:
            entry["headers"] = _pairs(args.header, "--header")
        if args.sse:
            entry["type"] = "sse"
    elif command_line:
        if args.header or args.sse:
            raise UsageError("--header and --sse are for remote servers")
        entry = {"command": command_line[0], "args": command_line[1:]}
        if args.env:
            entry["env"] = _pairs(args.env, "--env")
        if args.cwd:
            entry["cwd"] = args.cwd
    else:
        raise UsageError("say how to reach the server: '-- COMMAND ARGS...' or --url URL")
    if args.timeout_ms is not None:
        entry["timeout"] = args.timeout_ms
    add_server(path, args.name, entry, replace=args.replace)
    console.print(f"added server [bold]{escape(args.name)}[/bold] to {escape(str(path))}", soft_wrap=True)
    return 0


def _pairs(items: list[str], flag: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"{flag} takes KEY=VALUE, got {item!r}")
        pairs[key.strip()] = value
    return pairs
