"""The `mcp-host` command.

    mcp-host chat                             chat with gpt-oss and every tool (approvals, Ctrl-C cancels a turn)
    mcp-host servers [--wait]                 state, transport, tool count and error of each server
    mcp-host tools                            every tool by qualified name
    mcp-host call time.get_current_time '{"timezone": "UTC"}'      (a plugin's tool: PLUGIN.TOOL)
    mcp-host plugins | plugins new NAME       each plugin's state, or a skeleton plugin   (mcp_host.plugins_command)
    mcp-host resources | read SERVER URI | prompts | prompt SERVER NAME k=v   (mcp_host.resources_command)
    mcp-host render --reasoning high --browser    the exact gpt-oss prompt and what each part costs
    mcp-host config add time -- uvx mcp-server-time                  (mcp_host.config_command)
    mcp-host config add remote --url https://example.com/mcp --header "Authorization=Bearer ${TOKEN}"
    mcp-host auth login remote                 log in to an OAuth-protected server (opens the browser once)
    mcp-host --no-plugins tools               no plugins at all (any command); `chat --plugins a,b`: only these
    mcp-host chat --config my.json -v         global options go before or after the command

Without `--config` and with no `~/.lmstudio/mcp.json` yet, every command runs with no servers and says
once how to add one; a file named by `--config` or `$MCP_HOST_CONFIG` must exist.

Exit codes: 0 success, 1 the operation failed (a tool error, a server not ready, `servers` with a failed
one), 2 bad usage or config.
SIGTERM ends `chat` and `serve` (Ctrl-C too for serve) with 0, once every MCP server has stopped.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, cast

import anyio
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape

from mcp_host._version import __version__
from mcp_host.auth_command import add_auth_parser, run_auth
from mcp_host.chat_cli import run_chat
from mcp_host.config.mcpjson import load_config
from mcp_host.config.paths import audit_log_path
from mcp_host.config_command import add_config_parser, check_config_path, config_path, missing_config_note, run_config
from mcp_host.errors import ConfigError, McpHostError, ServerNotReadyError, UsageError
from mcp_host.host import Host
from mcp_host.plugins_command import add_plugins_parser, check_plugin_tool, parse_plugin_names, run_plugins
from mcp_host.render_command import render_prompt
from mcp_host.resources_command import COMMANDS as RESOURCE_COMMANDS
from mcp_host.resources_command import add_parsers as add_resource_parsers
from mcp_host.resources_command import run_feature_command, servers_to_start
from mcp_host.serve_command import add_serve_parser, serve
from mcp_host.servers.state import ServerState
from mcp_host.servers_command import EXIT_FAILED, add_listing_parsers, print_servers, print_tools, settle
from mcp_host.tools.spec import ToolResult

EXIT_USAGE = 2

# The signals that end `chat` and `serve` cleanly, exit code 0: the command winds down (serve ends its open
# streams first), then the host stops every MCP server. They are caught from before the first server starts
# until the last has stopped. Ctrl-C in chat cancels the turn instead (see chat_cli).
_STOP_SIGNALS: dict[str, tuple[signal.Signals, ...]] = {
    "chat": (signal.SIGTERM,),
    "serve": (signal.SIGTERM, signal.SIGINT),
}

GLOBAL_OPTIONS_HELP = (
    "--config, --settings, --no-plugins and -v go before or after the command "
    "(mcp-host chat --config x.json); given in both places, the one after the command wins."
)


class _CommandParser(argparse.ArgumentParser):
    """A command's parser: it takes the global options too, so that they may follow the command."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        _add_global_options(self.add_argument_group("global options (before or after the command)"), after=True)


def _add_global_options(group: argparse._ActionsContainer, *, after: bool = False) -> None:
    """The options every command takes. After the command their default is `SUPPRESS`: argparse copies
    only what a command's parser set, so an option given before the command is kept unless repeated after."""

    def default(value: object) -> object:
        return argparse.SUPPRESS if after else value

    group.add_argument(
        "--config",
        type=Path,
        default=default(None),
        help="mcp.json to use, which must exist unless for config add (default: $MCP_HOST_CONFIG, else "
        "~/.lmstudio/mcp.json, whose absence means no servers)",
    )
    group.add_argument(
        "--settings",
        type=Path,
        default=default(None),
        help="host settings TOML (default: ~/.config/mcp-host/settings.toml)",
    )
    group.add_argument(
        "--no-plugins",
        action="store_true",
        default=default(False),
        help="load no plugins (bundled, yours or installed)",
    )
    group.add_argument("-v", "--verbose", action="count", default=default(0), help="log more (-v info, -vv debug)")


def _at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mcp-host", description="An MCP host for local models.", epilog=GLOBAL_OPTIONS_HELP
    )
    parser.add_argument("--version", action="version", version=f"mcp-host {__version__}")
    _add_global_options(parser)
    # The modules that add commands only need ArgumentParsers; these are, with the global options added.
    commands = cast(
        "argparse._SubParsersAction[argparse.ArgumentParser]",
        parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_CommandParser),
    )
    add_listing_parsers(commands)

    call = commands.add_parser("call", help='call one tool: SERVER.TOOL \'{"json": "args"}\'')
    call.add_argument("tool", help="qualified tool name, SERVER.TOOL or PLUGIN.TOOL")
    call.add_argument("arguments", nargs="?", default="{}", help="arguments as a JSON object (default {})")
    call.add_argument("--timeout", type=float, help="seconds to wait for the result")
    call.add_argument("--json", action="store_true", help="print the whole result as JSON")
    add_resource_parsers(commands)
    add_plugins_parser(commands)

    chat = commands.add_parser("chat", help="chat with the model and every tool (the main job)")
    chat.add_argument("--model", help="a .gguf path, an LM Studio id (openai/gpt-oss-20b) or an http:// server")
    chat.add_argument("--reasoning", choices=["low", "medium", "high"], help="reasoning effort (default: settings)")
    chat.add_argument("--hide-reasoning", action="store_true", help="do not show the model's reasoning")
    chat.add_argument("--max-rounds", type=_at_least_one, help="model generations per turn at most (default 10)")
    chat.add_argument("--max-tokens", type=_at_least_one, help="tokens per generation at most (default 4096)")
    chat.add_argument("--python", action="store_true", help="enable the python tool (asks before each run)")
    chat.add_argument(
        "--browser",
        action="store_true",
        help="enable the browser tool (search needs [browser] search_url in the settings)",
    )
    chat.add_argument("--replay", type=Path, help="replay a recorded chat instead of running a model")
    chat.add_argument("--replay-speed", type=float, default=0.0, help="replayed tokens per second (0: instant)")
    chat.add_argument("--no-history", action="store_true", help="do not keep input history on disk")
    chat.add_argument("--record", type=Path, help="record every generation to this file (for bug reports)")
    chat.add_argument(
        "--plugins", type=parse_plugin_names, metavar="A,B", help="only these plugins in this chat (default: all)"
    )
    chat.add_argument(
        "--web",
        action="store_true",
        help="chat in your browser instead: serve the web chat on 127.0.0.1 (as `serve`) and open it",
    )
    chat.add_argument("--port", type=int, default=8321, help="the web chat's port (with --web; default 8321)")

    add_serve_parser(commands)

    render = commands.add_parser("render", help="print the exact prompt gpt-oss would see, with token counts")
    render.add_argument("--reasoning", choices=["low", "medium", "high"], help="reasoning effort (default: settings)")
    render.add_argument("--browser", action="store_true", help="enable the built-in browser tool")
    render.add_argument("--python", action="store_true", help="enable the built-in python tool")
    render.add_argument("--instructions", help="developer instructions")
    render.add_argument("--message", help="a user message to end the prompt with")
    render.add_argument(
        "--model", help="a gpt-oss GGUF (id or path): its context length is used (read from its header, not loaded)"
    )
    render.add_argument(
        "--context", type=int, help="context window in tokens, for the warning (default: the model's, or settings)"
    )
    render.add_argument("--json", action="store_true", help="machine-readable output")

    add_config_parser(commands)
    add_auth_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    command_line: list[str] = []
    if "--" in args_list:
        split = args_list.index("--")
        args_list, command_line = args_list[:split], args_list[split + 1 :]
    args = build_parser().parse_args(args_list)
    _configure_logging(args.verbose)
    console = Console()
    errors = Console(stderr=True, soft_wrap=True)
    try:
        path = config_path(args)
        if args.command == "chat" and args.web:
            _as_web_chat(args)
        if args.command == "config":
            return run_config(args, command_line, path, console)
        if command_line:
            raise UsageError("'--' is only used by 'config add'")
        if args.command == "plugins":  # starts no server, so it works without mcp.json (and notes why)
            return run_plugins(args, path, console)
        found = check_config_path(args, path)
        if not found:
            errors.print(f"[yellow]note:[/yellow] {escape(missing_config_note(path, args.command))}")
        if args.command == "auth":
            return run_auth(args, path, console)
        return anyio.run(_run, args, console, found)
    except (UsageError, ConfigError) as exc:
        errors.print(f"[red]error:[/red] {escape(str(exc))}")
        return EXIT_USAGE
    except McpHostError as exc:
        errors.print(f"[red]error:[/red] {escape(str(exc))}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


def _as_web_chat(args: argparse.Namespace) -> None:
    """`chat --web` is `serve` on 127.0.0.1 with the page opened in the user's browser once it listens.

    Raises `UsageError` for the terminal chat's options, which the page's sessions do not take from here."""
    given = {
        "--python": args.python,
        "--browser": args.browser,
        "--reasoning": args.reasoning,
        "--hide-reasoning": args.hide_reasoning,
        "--max-rounds": args.max_rounds,
        "--max-tokens": args.max_tokens,
        "--record": args.record,
        "--plugins": args.plugins,
    }
    ignored = [flag for flag, value in given.items() if value]
    if ignored:
        raise UsageError(
            f"{', '.join(ignored)}: not with --web (the web chat's sessions take their options from the settings)"
        )
    args.command, args.host, args.allow_remote, args.api_key = "serve", "127.0.0.1", False, None
    args.cors_origin, args.allow_host, args.session_idle, args.open_browser = [], [], 3600.0, True


def _configure_logging(verbosity: int) -> None:
    level = logging.ERROR if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    handler = RichHandler(console=Console(stderr=True), show_path=False, markup=False)
    logging.basicConfig(level=level, handlers=[handler], format="%(message)s", force=True)


async def _run(args: argparse.Namespace, console: Console, config_found: bool) -> int:
    with anyio.open_signal_receiver(*_stop_signals(args.command)) as signals:
        async with _host(args) as host:
            for warning in host.config.warnings if host.config is not None else ():
                print(f"warning: {warning}", file=sys.stderr)
            return await _run_until_stopped(host, args, console, signals, config_found)


def _stop_signals(command: str) -> tuple[signal.Signals, ...]:
    if sys.platform == "win32":  # pragma: no cover - asyncio there has no signal handlers; Ctrl-C interrupts
        return ()
    return _STOP_SIGNALS.get(command, ())


def _host(args: argparse.Namespace) -> Host:
    path = config_path(args)
    only = servers_to_start(args, path)
    if args.command == "call":
        server = _server_of(args.tool, _configured_servers(path))
        only = [server] if server is not None else []  # a plugin's tool (else an error once loaded): no server
    watch = args.command in ("chat", "serve")
    audit = audit_log_path() if args.command in ("chat", "serve") else None
    return Host(
        path,
        settings_path=args.settings,
        only=only,
        watch=watch,
        audit_path=audit,
        plugins=not args.no_plugins,
        defer_known_starts=watch,  # chat and serve start the servers the catalog knows once the model is loaded
    )


async def _run_until_stopped(
    host: Host,
    args: argparse.Namespace,
    console: Console,
    signals: AsyncIterator[signal.Signals],
    config_found: bool,
) -> int:
    """The command, until it ends or a stop signal comes (0 then): serving winds down by itself, ending
    its open streams; starting up and anything else are cancelled at once."""
    stopping = anyio.Event()
    code = 0
    try:
        async with anyio.create_task_group() as tg:
            cancellable = anyio.CancelScope()

            async def stop_on_signal() -> None:
                async for _ in signals:
                    stopping.set()
                    cancellable.cancel()

            tg.start_soon(stop_on_signal)
            with cancellable:
                await settle(host, args)
                if args.command != "serve":
                    code = await _command(host, args, console, config_found)
            if args.command == "serve" and not stopping.is_set():
                code = await serve(host, args, console, stopping)
            tg.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1:  # the command's own error (UsageError...), for `main` to report
            raise group.exceptions[0] from None
        raise
    return code


async def _command(host: Host, args: argparse.Namespace, console: Console, config_found: bool) -> int:
    if args.command == "chat":
        return await run_chat(host, args, console)
    if args.command == "servers":
        return print_servers(console, host.statuses(), args.json, said_none=not config_found)
    if args.command == "tools":
        print_tools(console, host, args.json)
        return 0
    if args.command == "render":
        return render_prompt(console, host, args)
    if args.command in RESOURCE_COMMANDS:
        return await run_feature_command(console, host, args)
    return await _call(console, host, args)


def _configured_servers(path: Path) -> list[str]:
    return sorted(load_config(path).servers)


def _server_of(tool: str, servers: list[str]) -> str | None:
    """The configured server a qualified name belongs to (server names may contain dots: longest wins),
    else None: the name may be a plugin's tool."""
    owners = [name for name in servers if tool.startswith(f"{name}.") and len(tool) > len(name) + 1]
    return max(owners, key=len) if owners else None


async def _call(console: Console, host: Host, args: argparse.Namespace) -> int:
    try:
        arguments = json.loads(args.arguments)
    except json.JSONDecodeError as exc:
        raise UsageError(f"arguments are not valid JSON ({exc.msg} at column {exc.colno}): {args.arguments}") from exc
    if not isinstance(arguments, dict):
        raise UsageError('arguments must be a JSON object, like \'{"name": "value"}\'')
    servers = _configured_servers(host.config_path)
    server = _server_of(args.tool, servers)
    if server is None:
        check_plugin_tool(host, args.tool, servers, plugins_off=args.no_plugins)
    else:
        await host.manager.connection(server).wait_started()  # a lazy server starts for its first use
        status = host.manager.connection(server).status()
        if status.state is not ServerState.READY:
            raise ServerNotReadyError(
                f"server {status.name!r} is {status.state.value}: {status.error}", server=status.name
            )
    result = await host.call_tool(args.tool, arguments, timeout_s=args.timeout)
    _print_result(console, result, args.json)
    return EXIT_FAILED if result.is_error else 0


def _print_result(console: Console, result: ToolResult, as_json: bool) -> None:
    if as_json:
        document: dict[str, Any] = {
            "is_error": result.is_error,
            "content": [block.model_dump(mode="json", by_alias=True, exclude_none=True) for block in result.content],
            "structured": result.structured,
        }
        console.print_json(json.dumps(document))
    elif result.is_error:
        Console(stderr=True, soft_wrap=True).print(f"[red]tool error:[/red] {escape(result.text)}")
    else:
        console.print(escape(result.text), soft_wrap=True, highlight=False)


if __name__ == "__main__":
    sys.exit(main())
