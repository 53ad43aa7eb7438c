"""The terminal chat's slash commands.

    commands = SlashCommands(host, chat, console, ChatState(effort="medium"))
    text = await commands.run("/everything.args-prompt city=Paris")   # a prompt: the text to send as a turn

Server features: `/resources`, `/prompts`, `/attach SERVER:URI` (read now, sent with the next message),
`/detach`, `/SERVER.PROMPT arg=value ...` (the prompt's messages become the next user message),
`/loglevel SERVER LEVEL`, `/roots SERVER PATH...`. A server that cannot answer is reported, never fatal.
Plugins: `/plugins` (each with its state and whether this chat uses it), `/plugin on|off NAME`.
`/call SERVER.TOOL {json}` runs a tool through the approval flow, its call and result going into the conversation
(checked first: the JSON, the tool's name, its schema). A command's arguments are checked, and a wrong one named.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, get_args

import anyio
import mcp_types
from rich.console import Console

from mcp_host.agent import ApprovalAnswer, Attachment, Chat
from mcp_host.agent.calls import Approvals, CallPipeline, ToolCall
from mcp_host.agent.events import Event, TurnStats
from mcp_host.chat_call import CALL_USAGE, UserCall, parse_call
from mcp_host.chat_forms import shown
from mcp_host.config.edit import add_server
from mcp_host.errors import McpHostError, UsageError
from mcp_host.host import Host
from mcp_host.prompt.harmony import Effort
from mcp_host.servers.asks import LOG_LEVELS
from mcp_host.servers.connection import Connection
from mcp_host.servers.features import prompt_text
from mcp_host.servers.state import ServerState

HELP = (
    "/tools  /servers  /resources [SERVER]  /prompts  /SERVER.PROMPT arg=value…  /attach SERVER:URI  /detach\n"
    "/add NAME -- COMMAND [ARGS…]  /add NAME --url URL\n"
    "/call SERVER.TOOL {json}  /loglevel SERVER LEVEL  /roots SERVER PATH…  /plugins  /plugin on|off NAME\n"
    "/reasoning low|medium|high  /reset  /save FILE  /help  /quit"
)
ADD_USAGE = "NAME -- COMMAND [ARGS…]  or  /add NAME --url URL"
USAGE = {  # each command's arguments (an empty string: none)
    "/add": ADD_USAGE,
    "/attach": "[SERVER:URI]",
    "/call": CALL_USAGE,
    "/detach": "",
    "/help": "",
    "/loglevel": "SERVER LEVEL",
    "/plugin": "on|off NAME",
    "/plugins": "",
    "/prompts": "",
    "/quit": "",
    "/reasoning": "low|medium|high",
    "/reset": "",
    "/resources": "[SERVER]",
    "/roots": "SERVER [PATH…]",
    "/save": "FILE",
    "/servers": "",
    "/tools": "",
}
COMMANDS = (
    "/add",
    "/attach",
    "/call",
    "/detach",
    "/help",
    "/loglevel",
    "/plugin",
    "/plugins",
    "/prompts",
    "/quit",
    "/reasoning",
    "/reset",
    "/resources",
    "/roots",
    "/save",
    "/servers",
    "/tools",
)
EFFORTS: tuple[Effort, ...] = get_args(Effort)
SWITCHES = ("on", "off")


@dataclass
class ChatState:
    """What the user set for the turns to come: the reasoning effort, resources for the next message."""

    effort: Effort
    attachments: list[Attachment] = field(default_factory=list)
    calls_made: int = 0  # by `/call`, for their ids

    def take_attachments(self) -> list[Attachment]:
        taken, self.attachments = self.attachments, []
        return taken


def ready_connections(host: Host, server: str | None = None) -> list[Connection]:
    """The connections to ask (all ready ones, or the one named); raises `UnknownServerError`."""
    if server is not None:
        return [host.manager.connection(server)]
    return [c for c in host.manager.connections if c.state is ServerState.READY]


def parse_prompt_command(line: str) -> tuple[str, str, dict[str, str]]:
    """`/server.prompt a=1 b="two words"` → (server, prompt, arguments); raises `UsageError`."""
    head, _, rest = line.partition(" ")
    server, _, prompt = head.removeprefix("/").partition(".")
    if not server or not prompt:
        raise UsageError(f"{head}: write /SERVER.PROMPT arg=value ...")
    try:
        words = shlex.split(rest)
    except ValueError as exc:
        raise UsageError(f"{head}: {exc}") from None
    arguments: dict[str, str] = {}
    for word in words:
        name, equals, value = word.partition("=")
        if not equals or not name:
            raise UsageError(f"{head}: {word!r} is not arg=value")
        arguments[name] = value
    return server, prompt, arguments


class _UserApprovals(Approvals):
    """The answer to a `/call`'s approval, remembering a denial (the call then stays out of the conversation)."""

    denied = False

    def answer(self, key: str, answer: ApprovalAnswer) -> None:
        super().answer(key, answer)
        self.denied = answer.decision == "deny"


def _checked(command: str, rest: str) -> list[str]:
    """The words of a command's arguments; raises `UsageError` (with the usage) when they cannot be right."""
    usage = USAGE.get(command)
    words = [rest] if command == "/save" and rest else rest.split()  # a file name may have spaces
    if usage is None:  # an unknown command: the help says what there is
        return words
    required = [word for word in usage.split() if not word.startswith("[")]
    optional = [word for word in usage.split() if word.startswith("[")]
    wrong = ""
    if len(words) < len(required):
        wrong = f"needs {' '.join(required[len(words) :])}"
    elif len(words) > len(required) + len(optional) and not any("…" in word for word in usage.split()):
        wrong = "takes no arguments" if not usage else f"takes {usage}, not {rest!r}"
    elif command == "/plugin" and words[0] not in SWITCHES:
        wrong = f"{words[0]!r} is not on or off"
    if wrong:
        raise UsageError(f"{command}: {wrong}" + (f" (usage: {command} {usage})" if usage else ""))
    return words


class SlashCommands:
    """Runs one slash command line against the host and the chat."""

    def __init__(self, host: Host, chat: Chat, console: Console, state: ChatState) -> None:
        self.host = host
        self.chat = chat
        self.console = console
        self.state = state

    async def run(self, line: str) -> str | UserCall | None:
        """Run `line`: the text to send as a turn when the command makes one (a prompt), the call to run for
        `/call` (see `run_call`), else None. A mistake is said in red, never raised."""
        command, _, rest = line.partition(" ")
        rest = rest.strip()
        try:
            if command not in COMMANDS and "." in command:
                return await self._prompt(line)
            if command == "/call":
                return self._call(rest)
            if command == "/add":
                await self._add(rest)
                return None
            await self._builtin(command, rest)
        except McpHostError as exc:
            self.console.print(f"[red]{shown(str(exc))}[/red]", soft_wrap=True)
        return None

    async def _builtin(self, command: str, rest: str) -> None:
        out = self.console
        words = _checked(command, rest)
        if command == "/tools":
            for spec in self.host.registry:
                off = " (plugin off in this chat)" if spec.origin == "plugin" and not self._uses(spec.server) else ""
                out.print(f"{shown(spec.name)}  [dim]{shown(spec.summary)}{off}[/dim]", soft_wrap=True)
        elif command == "/servers":
            for status in self.host.statuses():
                out.print(
                    f"{status.name}  {status.state.value}  {status.tools} tools  {shown(status.error or '')}",
                    soft_wrap=True,
                )
        elif command == "/reasoning":
            self._reasoning(rest)
        elif command == "/reset":
            self.chat.reset()
            out.print("[dim]conversation cleared[/dim]")
        elif command == "/save":
            transcript = self.chat.transcript()
            target = await anyio.Path(rest).expanduser()
            await target.write_text(json.dumps(transcript, indent=2, ensure_ascii=False))
            out.print(f"[dim]saved to {shown(rest)} ({len(transcript)} messages)[/dim]")
        elif command == "/attach":
            await self._attach(rest)
        elif command == "/detach":
            dropped = len(self.state.take_attachments())
            out.print(f"[dim]{dropped} attachment(s) dropped[/dim]")
        elif command == "/resources":
            await self._resources(rest or None)
        elif command == "/prompts":
            await self._prompts()
        elif command == "/loglevel":
            await self._log_level(*words)
        elif command == "/roots":
            await self._roots(rest)
        elif command == "/plugins":
            self._plugins()
        elif command == "/plugin":
            switch, name = words
            self._switch_plugin(name, on=switch == "on")
        else:
            if command != "/help":
                out.print(f"[yellow]unknown command or arguments: {shown(command)}[/yellow]")
            out.print(f"[dim]{HELP}[/dim]")

    def _reasoning(self, effort: str) -> None:
        if effort not in EFFORTS:
            raise UsageError(f"/reasoning: {effort!r} is not one of {', '.join(EFFORTS)} (now: {self.state.effort})")
        self.state.effort = effort
        if self.chat.format == "harmony":
            self.console.print(f"[dim]reasoning effort: {effort}[/dim]")
        elif self.chat.format == "chat":
            self.console.print(f"[dim]reasoning effort: {effort} (sent to the server; its model may ignore it)[/dim]")
        else:
            self.console.print(
                f"[yellow]reasoning effort: {effort}, which does nothing for this model: only gpt-oss (Harmony) "
                "has reasoning efforts[/yellow]"
            )

    async def _add(self, rest: str) -> None:
        """`/add NAME -- COMMAND [ARGS…]` or `/add NAME --url URL`: into mcp.json (checked, written atomically, as
        `mcp-host config add` does); the host starts the server."""
        try:
            words = shlex.split(rest)
        except ValueError as exc:
            raise UsageError(f"/add: {exc} (usage: /add {ADD_USAGE})") from None
        entry: dict[str, Any]
        if len(words) == 3 and words[1] == "--url":
            entry = {"url": words[2]}
        elif len(words) >= 3 and words[1] == "--":
            entry = {"command": words[2], "args": words[3:]}
        else:
            raise UsageError(f"/add: usage: /add {ADD_USAGE}")
        path = self.host.config_path
        await anyio.to_thread.run_sync(add_server, path, words[0], entry)
        if not self.host.watch:  # a host that follows mcp.json's edits picks it up by itself
            await self.host.reload()
        self.console.print(f"[dim]added {shown(words[0])} to {shown(str(path))}; it starts now (/servers)[/dim]")

    def _call(self, rest: str) -> UserCall:
        call = parse_call(rest, self.chat.tools)
        if call.spec.origin == "plugin" and not self._uses(call.spec.server):
            raise UsageError(f"/call: plugin {call.spec.server} is off in this chat (/plugin on {call.spec.server})")
        return call

    async def run_call(self, call: UserCall, show: Callable[[Event, Approvals], Awaitable[None]]) -> bool:
        """Run a `/call` as the model's calls run: the policy, the approval (`approval.required` shown, and answered
        in the `Approvals` given with it), the call, truncation, the audit log. Then the call and its result go
        into the conversation, unless the user denied it; whether they did."""
        approvals = _UserApprovals()

        async def emit(event: Event) -> None:
            await show(event, approvals)

        self.state.calls_made += 1
        call_id = f"user_call_{self.state.calls_made}"
        host, chat = self.host, self.chat
        pipeline = CallPipeline(
            call_tool=lambda name, arguments, limit, asks: host.call_tool(name, arguments, timeout_s=limit, asks=asks),
            natives=chat.natives,
            approvals=approvals,
            permissions=chat.permissions,
            audit=chat.audit,
            limits=chat.options.call_limits(),
            next_call_id=lambda: call_id,
        )
        (outcome,) = await pipeline.run([ToolCall(call.function, call.arguments, call.spec)], emit, TurnStats())
        if approvals.denied:
            return False
        arguments = json.dumps(outcome.arguments, ensure_ascii=False)
        chat.load_messages(
            [
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [
                        {"id": call_id, "type": "function", "function": {"name": call.function, "arguments": arguments}}
                    ],
                },
                {"role": "tool", "tool_call_id": call_id, "name": call.function, "content": outcome.text},
            ]
        )
        return True

    def _uses(self, plugin: str) -> bool:
        enabled = self.chat.enabled_plugins
        in_use = self.host.plugins.default_names if enabled is None else enabled  # None: the default set
        return plugin in self.host.plugins.names and plugin in in_use

    def _plugins(self) -> None:
        statuses = self.host.plugins.statuses()
        if not statuses:
            self.console.print("[dim]no plugins[/dim]")
        for status in statuses:
            if status.state != "loaded":
                use = f"[red]{status.state}[/red]" if status.state == "failed" else f"[dim]{status.state}[/dim]"
            elif self._uses(status.name):
                use = "[green]on in this chat[/green]"
            else:
                use = "[yellow]off in this chat[/yellow]"
            tools = ", ".join(status.tools) or "no tools"
            error = f"  [red]{shown(status.error)}[/red]" if status.error else ""
            self.console.print(
                f"{shown(status.name)}  {use}  [dim]{status.origin}: {shown(tools)}[/dim]{error}", soft_wrap=True
            )

    def _switch_plugin(self, name: str, *, on: bool) -> None:
        """`/plugin on|off NAME`: the chat's `enabled_plugins` from the next turn on."""
        loaded = self.host.plugins.names
        if name not in loaded:
            found = next((s for s in self.host.plugins.statuses() if s.name == name), None)
            if found is not None:
                how = "failed" if found.state == "failed" else f"is {found.state}"
                raise UsageError(f"plugin {name} {how}: {found.error or 'see /plugins'}")
            raise UsageError(f"no plugin named {name!r} (plugins: {', '.join(loaded) or 'none'})")
        if self._uses(name) == on:
            self.console.print(f"[dim]plugin {shown(name)} is {'on' if on else 'off'} already[/dim]")
            return
        current = self.chat.enabled_plugins
        enabled = set(self.host.plugins.default_names if current is None else current)
        if on:
            enabled.add(name)
        else:
            enabled.discard(name)
        self.chat.enabled_plugins = enabled
        self.console.print(
            f"[dim]plugin {shown(name)} {'on' if on else 'off'} from the next message "
            f"(this chat: {shown(', '.join(sorted(enabled & set(loaded))) or 'no plugins')})[/dim]",
            soft_wrap=True,
        )

    async def _attach(self, rest: str) -> None:
        if not rest:
            if not self.state.attachments:
                self.console.print("[dim]nothing attached; /attach SERVER:URI[/dim]")
            for attachment in self.state.attachments:
                self.console.print(f"[dim]attached: {shown(attachment.source)} ({len(attachment.text)} chars)[/dim]")
            return
        server, colon, uri = rest.partition(":")
        if not colon or not uri:
            raise UsageError("/attach SERVER:URI, for example /attach everything:demo://resource/static/document/x.md")
        attachment = await self.host.attachment(server, uri)
        self.state.attachments.append(attachment)
        self.console.print(
            f"[dim]attached {shown(attachment.source)} ({len(attachment.text)} chars); "
            "it goes with your next message (/detach drops it)[/dim]",
            soft_wrap=True,
        )

    async def _resources(self, server: str | None) -> None:
        for connection in ready_connections(self.host, server):
            resources = await connection.list_resources()
            templates = await connection.list_resource_templates()
            self.console.print(
                f"[bold]{shown(connection.name)}[/bold]: {len(resources)} resources, {len(templates)} templates"
            )
            for resource in resources:
                mime = f"  {resource.mime_type}" if resource.mime_type else ""
                self.console.print(
                    f"  {shown(resource.uri)}  [dim]{shown(resource.name)}{shown(mime)}[/dim]", soft_wrap=True
                )
            for template in templates:
                self.console.print(
                    f"  {shown(template.uri_template)}  [dim]template: {shown(template.name)}[/dim]", soft_wrap=True
                )

    async def _prompts(self) -> None:
        for connection in ready_connections(self.host):
            for prompt in await connection.list_prompts():
                arguments = " ".join(f"{a.name}=…" + ("" if a.required else "?") for a in prompt.arguments or [])
                description = f"  [dim]{shown(prompt.description)}[/dim]" if prompt.description else ""
                self.console.print(
                    f"/{shown(connection.name)}.{shown(prompt.name)} {shown(arguments)}{description}", soft_wrap=True
                )

    async def _prompt(self, line: str) -> str | None:
        server, name, arguments = parse_prompt_command(line)
        connection = self.host.manager.connection(server)
        prompts = {p.name: p for p in await connection.list_prompts()}
        prompt = prompts.get(name)
        if prompt is None:
            known = ", ".join(sorted(prompts)) or "none"
            raise UsageError(f"{server} has no prompt named {name!r} (prompts: {known})")
        missing = [a.name for a in prompt.arguments or [] if a.required and a.name not in arguments]
        if missing:
            raise UsageError(f"/{server}.{name} needs {', '.join(f'{m}=…' for m in missing)}")
        result: mcp_types.GetPromptResult = await connection.get_prompt(name, arguments)
        text = "\n\n".join(message for _, message in prompt_text(result)).strip()
        if not text:
            raise UsageError(f"/{server}.{name} gave no text to send")
        self.console.print(f"[dim]{shown(server)}.{shown(name)} →[/dim] {shown(text)}", soft_wrap=True)
        return text

    async def _log_level(self, server: str, level: str) -> None:
        if level not in LOG_LEVELS:
            raise UsageError(f"/loglevel: {level!r} is not one of {', '.join(LOG_LEVELS)}")
        await self.host.manager.connection(server).set_log_level(level)
        self.console.print(f"[dim]{shown(server)} logs from {level} up[/dim]")

    async def _roots(self, rest: str) -> None:
        server, *paths = rest.split()
        connection = self.host.manager.connection(server)
        if paths:
            await connection.set_roots(paths)
        roots = ", ".join(connection.roots) or "none"
        self.console.print(f"[dim]{shown(server)} roots: {shown(roots)}[/dim]", soft_wrap=True)
