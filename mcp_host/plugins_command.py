"""`mcp-host plugins`: which plugins the host finds, and a skeleton to start a new one.

    mcp-host plugins [--json]             every plugin: name, state, origin, tools, where, and why it failed
    mcp-host plugins new NAME [--dir DIR]  write a working plugin folder (default: the user plugin folder)

Listing starts no server: it loads the plugins as the host does (mcp.json's server names are refused
as plugin names, `[plugins] disabled` is honoured) and always exits 0; a failed plugin is a line in red.
`mcp-host call PLUGIN.TOOL '{...}'` runs one plugin tool (see `check_plugin_tool`).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from mcp_host.config.mcpjson import load_config
from mcp_host.config.paths import default_settings_path
from mcp_host.config.settings import load_settings
from mcp_host.errors import ConfigError, UsageError
from mcp_host.host import Host
from mcp_host.plugins import Plugin, ToolDefinitionError
from mcp_host.plugins.manager import NATIVE_NAMES, PluginManager, PluginStatus
from mcp_host.tools.registry import ToolRegistry

_STATE_STYLE = {"loaded": "green", "failed": "red", "disabled": "dim", "shadowed": "yellow"}

SKELETON = '''\
"""{name}: say here what this plugin is for.

Written by `mcp-host plugins new {name}`. Save a change while `mcp-host chat` or `serve` runs and the
host reloads this plugin alone. Tools, config, permissions and hooks: the "Plugins" section of the
mcp-host README.
"""

from __future__ import annotations

from pydantic import BaseModel

from mcp_host.plugins import Plugin, PluginContext


class Config(BaseModel):
    """Read from `[plugins.{name}]` in the settings TOML, e.g. `greeting = "Hi"`; a bad value fails the plugin."""

    greeting: str = "Hello"


plugin = Plugin("{name}", description="A plugin made from the skeleton.", config=Config)


# The model sees `{name}.hello` with a JSON schema from the type hints and the docstring below.
# read_only=True lets the permission policy run it without asking where the settings allow that.
@plugin.tool(read_only=True)
def hello(name: str, ctx: PluginContext, excited: bool = False) -> str:
    """Greet someone by name.

    Args:
        name: Who to greet, e.g. "Ada".
        excited: End with "!" instead of ".".
    """
    config: Config = ctx.config
    return f"{{config.greeting}}, {{name}}{{'!' if excited else '.'}}"
'''


def add_plugins_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `plugins` (and `plugins new`) on `mcp-host`'s subparsers."""
    plugins = commands.add_parser(
        "plugins",
        help="list the plugins (bundled, yours, installed) and their tools",
        usage="mcp-host plugins [--json]\n       mcp-host plugins new NAME [--dir DIR]",
    )
    plugins.add_argument("--json", action="store_true", help="machine-readable output")
    actions = plugins.add_subparsers(dest="plugins_command", metavar="ACTION")
    new = actions.add_parser("new", help="write a skeleton plugin: NAME [--dir DIR]")
    new.add_argument("name", help="lowercase letters, digits, '-' or '_', starting with a letter")
    new.add_argument("--dir", type=Path, help="where to write it (default: the user plugin folder)")


def parse_plugin_names(text: str) -> tuple[str, ...]:
    """`--plugins a,b` as a tuple (an empty string: none)."""
    return tuple(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))


def run_plugins(args: argparse.Namespace, config_path: Path, console: Console) -> int:
    """`mcp-host plugins [new]`; raises `UsageError` / `ConfigError` for `main` to print."""
    settings_path = Path(args.settings).expanduser() if args.settings else default_settings_path()
    settings = load_settings(settings_path)
    manager = PluginManager(ToolRegistry(), settings.plugins, reserved=lambda: _server_names(config_path))
    if args.plugins_command == "new":
        return _new(console, manager, args.name, args.dir)
    if args.no_plugins:
        if args.json:
            console.print_json("[]")
        else:
            console.print("no plugins: --no-plugins")
        return 0
    manager.load_all()
    _print_plugins(console, manager.statuses(), args.json)
    return 0


def _server_names(config_path: Path) -> set[str]:
    try:
        return set(load_config(config_path).servers)
    except ConfigError as exc:  # plugins work without mcp.json; only the name clash check is lost
        Console(stderr=True, soft_wrap=True).print(
            f"[yellow]note:[/yellow] {escape(str(exc))} (plugin names not checked against server names)"
        )
        return set()


def _plugin_json(status: PluginStatus) -> dict[str, object]:
    """One plugin as `--json` gives it (the same fields as `GET /v1/plugins`)."""
    document = asdict(status)
    document["tools"] = list(status.tools)
    return document


def _print_plugins(console: Console, statuses: list[PluginStatus], as_json: bool) -> None:
    if as_json:
        console.print_json(json.dumps([_plugin_json(status) for status in statuses]))
        return
    if not statuses:
        console.print("no plugins found")
        return
    width = max(len(status.name) for status in statuses)
    for status in statuses:
        style = _STATE_STYLE[status.state]
        name = escape(status.name.ljust(width))
        if status.state == "failed":
            name = f"[red]{name}[/red]"
        tools = ", ".join(status.tools) if status.tools else "no tools"
        # Whole lines (soft wrap): a path or a FILE:LINE is never cut, the terminal wraps it.
        console.print(
            f"{name}  [{style}]{status.state:<8}[/{style}]  {status.origin:<9}  {escape(tools)}",
            soft_wrap=True,
            highlight=False,
        )
        indent = " " * (width + 2)
        if status.description:
            console.print(f"{indent}[dim]{escape(status.description)}[/dim]", soft_wrap=True, highlight=False)
        console.print(f"{indent}{escape(status.where)}", soft_wrap=True, highlight=False)
        if status.error:
            console.print(f"{indent}[{style}]{escape(status.error)}[/{style}]", soft_wrap=True, highlight=False)
        elif status.state == "loaded" and not status.on_by_default:
            hint = f'off by default: enable it with [plugins] enabled = ["{status.name}"] or chat --plugins'
            console.print(f"{indent}[dim]{escape(hint)}[/dim]", soft_wrap=True, highlight=False)


def _new(console: Console, manager: PluginManager, name: str, folder: Path | None) -> int:
    try:
        Plugin(name)
    except ToolDefinitionError as exc:
        raise UsageError(str(exc)) from exc
    if name in NATIVE_NAMES:
        raise UsageError(f"{name!r} is the name of a native tool; choose another")
    target_dir = (folder.expanduser() if folder is not None else manager.user_folder).resolve()
    target = target_dir / name
    for existing in (target, target_dir / f"{name}.py"):
        if existing.exists():
            raise UsageError(f"{existing} exists already; choose another name or remove it")
    try:
        target.mkdir(parents=True)
        (target / "__init__.py").write_text(SKELETON.format(name=name), encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {target}: {exc.strerror or exc}") from exc
    console.print(f"wrote plugin [bold]{escape(name)}[/bold] to {escape(str(target / '__init__.py'))}", soft_wrap=True)
    if folder is not None and target_dir != manager.user_folder.resolve():
        console.print(
            f"[yellow]note:[/yellow] the host loads plugins from {escape(str(manager.user_folder))}; "
            f'set [plugins] folder = "{escape(str(target_dir))}" in the settings, or move it there',
            soft_wrap=True,
        )
    console.print(
        f'try it:\n  mcp-host plugins\n  mcp-host tools\n  mcp-host call {escape(name)}.hello \'{{"name": "Ada"}}\'',
        soft_wrap=True,
        highlight=False,
    )
    return 0


def check_plugin_tool(host: Host, tool: str, servers: list[str], *, plugins_off: bool = False) -> None:
    """For `mcp-host call`: raises `UsageError` unless `tool` (owned by no server) is a loaded plugin's tool."""
    if host.plugins.tool(tool) is not None:  # on by default or not: `call` runs any loaded plugin's tool
        return
    plugin, _, name = tool.partition(".")
    # The one in use first: a name can also have shadowed copies.
    found = sorted((s for s in host.plugins.statuses() if s.name == plugin), key=lambda s: s.state != "loaded")
    if found and found[0].state == "loaded":
        tools = ", ".join(f"{plugin}.{t}" for t in found[0].tools) or "none"
        raise UsageError(f"plugin {plugin!r} has no tool {name!r} (its tools: {tools})")
    if found:
        state, error = found[0].state, found[0].error
        reason = error or ("it is in [plugins] disabled" if state == "disabled" else "see mcp-host plugins")
        raise UsageError(f"plugin {plugin!r} {'failed' if state == 'failed' else f'is {state}'}: {reason}")
    known_servers = ", ".join(sorted(servers)) or "none"
    known_plugins = "none: --no-plugins" if plugins_off else ", ".join(host.plugins.names) or "none"
    raise UsageError(
        f"{tool!r} names no configured server or loaded plugin; write SERVER.TOOL or PLUGIN.TOOL "
        f"(servers: {known_servers}; plugins: {known_plugins})"
    )
