"""`mcp-host chat`: a terminal chat with the model and every tool of the host.

Streams the answer as it comes, shows reasoning dimmed (unless `--hide-reasoning`), shows each tool
call and a one-line result, asks `[y]es once / [a]lways / [n]o / [e]dit` where the policy says so;
Ctrl-C cancels the turn, not the program; Ctrl-D (or /quit) leaves. Input history is kept.
What servers ask during a call is answered here too: forms and URLs (`chat_forms`), sampling shown
before its approval, progress as bars that update in place (`chat_progress`), error logs as dim lines.
What takes time shows at the bottom line while it lasts: loading the model, reading a long prompt (a percentage),
each running call (its elapsed time). A cancelled answer stays in the conversation as far as it got.
Slash commands (`chat_commands`) reach resources, prompts, log levels, roots and plugins, with Tab completion
(`chat_completion`); `/call SERVER.TOOL {json}` runs a tool as if the model had called it.
SIGTERM cancels `run_chat` wherever it is (the caller does it, see `mcp_host.cli`): the chat and the
model close on the way out, and the host stops every server.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
from collections.abc import Awaitable, Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import anyio
from prompt_toolkit import PromptSession
from prompt_toolkit.history import FileHistory, InMemoryHistory
from rich.console import Console
from rich.markup import escape

from mcp_host.agent import (
    ApprovalAnswer,
    ApprovalRequired,
    Chat,
    ChatOptions,
    ElicitationRequired,
    ErrorEvent,
    MessageDelta,
    ReasoningDelta,
    ServerLog,
    ToolCallCreated,
    ToolCallProgress,
    ToolCallResult,
    TurnCompleted,
)
from mcp_host.agent.calls import Approvals
from mcp_host.agent.events import Event, PromptProgress
from mcp_host.backends.base import Backend
from mcp_host.backends.replay import RecordingBackend
from mcp_host.chat_call import UserCall, example_call
from mcp_host.chat_commands import HELP, ChatState, SlashCommands
from mcp_host.chat_completion import SlashCompleter
from mcp_host.chat_forms import fill_elicitation, sampling_lines, shown
from mcp_host.chat_progress import ProgressBars
from mcp_host.config.paths import cache_dir
from mcp_host.errors import ElicitationInputError, UnknownApprovalError, UsageError
from mcp_host.host import Host
from mcp_host.model_pick import Pick, pick_model
from mcp_host.prompt.harmony import HarmonyOptions
from mcp_host.servers.asks import SAMPLING_TOOL
from mcp_host.servers.connection import Connection
from mcp_host.servers.state import ServerState
from mcp_host.tools.native.sandbox import detect_isolation

RESOURCE_LINK = re.compile(r"\[resource link (\S+?)\]")
CANCELLED_NOTE = "[cancelled by the user before the answer began]"
_T = TypeVar("_T")


async def run_chat(host: Host, args: argparse.Namespace, console: Console) -> int:
    _check_plugins(host, args.plugins)
    console.print("[dim]loading the model…[/dim]")
    loading = ProgressBars(console)
    loading.waiting("loading the model")

    def on_load(fraction: float) -> None:  # in the loading thread
        anyio.from_thread.run_sync(loading.loaded, fraction)

    load = partial(pick_model, args.model, replay=args.replay, replay_speed=args.replay_speed, progress=on_load)
    pick = await loading.while_drawing(partial(_load_while_servers_start, host, loading, load))
    backend = pick.backend
    if args.record:
        if not isinstance(backend, Backend):
            raise UsageError("--record needs a model that the host prompts itself, not a server in chat mode")
        backend = RecordingBackend(backend, args.record)
    if pick.notice:
        style = "bold yellow" if pick.notice.startswith("DEMO") else "dim"
        console.print(f"[{style}]{escape(pick.notice)}[/{style}]")
    if pick.notice.startswith("DEMO"):
        example = example_call(host.registry)
        console.print(
            "[yellow]It never calls a tool by itself. To see the tool flow (approval, call, result), run one "
            + (f"yourself, for example:[/yellow]\n  {escape(example)}" if example else "with /call once a server is up")
            + "\n[yellow]The model reads the call and its result with your next message.[/yellow]",
            soft_wrap=True,
            highlight=False,
        )
    harmony = HarmonyOptions(
        reasoning_effort=args.reasoning or host.settings.prompt.reasoning_effort,
        browser=args.browser,
        python=args.python,
    )
    if args.python:
        isolation = await detect_isolation()
        if isolation.warning:  # never silently weaker: the user reads it before the first run
            console.print(f"[bold yellow]{escape(isolation.warning)}[/bold yellow]")
    news = ServerNews(host)
    statuses = host.statuses()
    failed = [s.name for s in statuses if s.state is ServerState.FAILED]
    starting = [s.name for s in statuses if s.state is ServerState.STARTING]
    servers = len(statuses) - len(failed)
    failed += [f"plugin {p.name}" for p in host.plugins.statuses() if p.state == "failed"]
    console.print(
        escape(
            f"{len(host.registry)} tools from {servers} servers and {len(host.plugins.names)} plugins"
            + (f"; failed: {', '.join(failed)}" if failed else "")
            + (f"; still starting: {', '.join(starting)} (a call waits for its server)" if starting else "")
            + f". {HELP}"
        ),
        style="dim",
        soft_wrap=True,
        highlight=False,
    )
    history = FileHistory(str(_history_path())) if not args.no_history else InMemoryHistory()
    session: PromptSession[str] = PromptSession(
        history=history, completer=SlashCompleter(host), complete_while_typing=False
    )
    # Answers to approvals and forms have their own session: a form's email or birth date stays out of the
    # input history file.
    answers: PromptSession[str] = PromptSession()
    view = TurnView(
        console,
        hide_reasoning=args.hide_reasoning,
        answers=answers,
        is_server=lambda name: name in host.manager.configs,
    )
    state = ChatState(effort=harmony.reasoning_effort)
    try:
        options = ChatOptions(harmony=harmony, format=pick.format, plugins=args.plugins)
        if args.max_rounds is not None:
            options = replace(options, max_rounds=args.max_rounds)
        if args.max_tokens is not None:
            options = replace(options, max_tokens_per_round=args.max_tokens)
        async with host.chat(backend, options) as chat:
            if args.reasoning and chat.format == "template":
                console.print("[yellow]--reasoning does nothing for this model: only gpt-oss (Harmony) has it[/yellow]")
            await _loop(SlashCommands(host, chat, console, state), session, view, news)
            return 0
    finally:
        with anyio.CancelScope(shield=True):  # also when the chat is cancelled (SIGTERM)
            await pick.backend.aclose()


async def _load_while_servers_start(host: Host, loading: ProgressBars, load: Callable[[], Pick]) -> Pick:
    """The model loads (in a thread) while the servers start; done when both the model is loaded and every
    server's tools are known (from the tool catalog at once; a server it does not know has a line until then)."""

    async def tools_of(connection: Connection) -> None:
        line = f"\0server {connection.name}"
        loading.running(line, f"starting server {connection.name}")
        await connection.wait_tools_known()
        loading.finish(line)

    async with anyio.create_task_group() as tg:
        for connection in host.manager.connections:
            if not connection.known_at_start:
                tg.start_soon(tools_of, connection)
        pick = await anyio.to_thread.run_sync(load)
        host.start_deferred()
    return pick


class ServerNews:
    """Servers that came up, failed or changed their tools since the chat last said so (a server still
    starting when the chat began, a restart, a list change): the next turn offers their tools as they are now."""

    def __init__(self, host: Host) -> None:
        self._host = host
        self._seen = self._now()

    def _now(self) -> dict[str, tuple[ServerState, int]]:
        return {status.name: (status.state, status.tools) for status in self._host.statuses()}

    def lines(self) -> list[str]:
        now = self._now()
        said = []
        for status in self._host.statuses():
            before = self._seen.get(status.name)
            if before == (status.state, status.tools) or status.state not in (ServerState.READY, ServerState.FAILED):
                continue
            if status.state is ServerState.FAILED:
                if before is None or before[0] is not ServerState.FAILED:
                    said.append(f"server {status.name} failed: {status.error}")
            elif before is not None and before[0] is ServerState.READY:
                said.append(f"server {status.name} now has {status.tools} tools")
            else:
                said.append(f"server {status.name} is ready: {status.tools} tools")
        self._seen = now
        return said


def _check_plugins(host: Host, chosen: tuple[str, ...] | None) -> None:
    """`--plugins a,b`: each must be loaded; raises `UsageError` naming the loaded ones."""
    unknown = [name for name in chosen or () if name not in host.plugins.names]
    if unknown:
        loaded = ", ".join(host.plugins.names) or "none"
        raise UsageError(f"--plugins: not loaded here: {', '.join(unknown)} (loaded plugins: {loaded})")


async def _loop(commands: SlashCommands, session: PromptSession[str], view: TurnView, news: ServerNews) -> None:
    console, chat, state = commands.console, commands.chat, commands.state
    while True:
        for line in news.lines():  # said between turns: nothing is printed under the line being typed
            console.print(escape(line), style="dim", soft_wrap=True, highlight=False)
        try:
            line = (await session.prompt_async("> ")).strip()
        except KeyboardInterrupt:
            continue
        except EOFError:
            return
        if not line:
            continue
        text: str | UserCall | None = line
        if line.startswith("/"):
            if line in ("/quit", "/exit"):
                return
            text = await _interruptible(partial(commands.run, line), console)
        if isinstance(text, UserCall):
            await _interruptible(partial(_user_call, commands, text, view), console)
            view.end_line()
        elif text:
            await _interruptible(partial(run_turn, chat, text, state, view), console)
            view.end_line()


async def _interruptible(work: Callable[[], Awaitable[_T]], console: Console) -> _T | None:
    """`work()`, or None when Ctrl-C cancelled it (generation, tool calls, a slow server): the program goes on."""
    result: _T | None = None
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:

            async def cancel_on_ctrl_c() -> None:
                with anyio.open_signal_receiver(signal.SIGINT) as signals:
                    async for _ in signals:
                        scope.cancel()
                        return

            tg.start_soon(cancel_on_ctrl_c)
            result = await work()
            tg.cancel_scope.cancel()
    if scope.cancelled_caught:
        console.print("\n[yellow]cancelled[/yellow]")
    return result


async def run_turn(chat: Chat, text: str, state: ChatState, view: TurnView) -> None:
    """One turn shown in `view`; cancelled (Ctrl-C), what the model had said stays in the conversation."""
    attachments = state.take_attachments()
    if attachments:
        view.console.print(f"[dim]with {', '.join(shown(a.source) for a in attachments)}[/dim]", soft_wrap=True)
    completed = False

    async def run() -> None:
        nonlocal completed
        async with chat.turn(text, reasoning=state.effort, attachments=attachments) as events:
            async for event in events:
                await view.show(event, chat)
                completed = completed or isinstance(event, TurnCompleted)

    view.begin_turn()
    try:
        await view.bars.while_drawing(run)
    finally:
        view.end_turn()
        if not completed:
            _keep_unfinished_answer(chat, view.said)


def _keep_unfinished_answer(chat: Chat, said: str) -> None:
    """After a cancelled turn: the answer so far goes into the conversation (the model and `/save` see it), and a
    note where the model had said nothing yet, so that the user's next message does not follow their last one."""
    transcript = chat.transcript()
    last = transcript[-1].get("role") if transcript else None
    if said.strip() or last == "user":
        chat.load_messages([{"role": "assistant", "content": said if said.strip() else CANCELLED_NOTE}])


async def _user_call(commands: SlashCommands, call: UserCall, view: TurnView) -> None:
    """`/call`: the call's events shown as a turn's are, its approval asked the same way."""

    async def show(event: Event, approvals: Approvals) -> None:
        await view.show(event, commands.chat, approvals=approvals)

    recorded = await view.bars.while_drawing(partial(commands.run_call, call, show))
    view.end_line()
    if recorded:
        view.say("[dim]the call and its result are in the conversation: the model reads them next turn[/dim]")


class TurnView:
    """How events look in the terminal."""

    def __init__(
        self,
        console: Console,
        *,
        hide_reasoning: bool,
        answers: PromptSession[str],
        is_server: Callable[[str], bool] = lambda name: False,
    ) -> None:
        self.console = console
        self.hide_reasoning = hide_reasoning
        self.answers = answers
        self.is_server = is_server  # a tool's prefix must name a server for its resource links to be hinted
        self.bars = ProgressBars(console)
        self.said = ""  # the answer of the turn's current round, as far as it got
        self._mode = ""
        self._in_turn = False

    def begin_turn(self) -> None:
        self.said = ""
        self._in_turn = True
        self.bars.waiting()

    def end_turn(self) -> None:
        self._in_turn = False
        self.bars.stop()

    def end_line(self) -> None:
        if self._mode:
            self.console.print()
        self._mode = ""

    def _switch(self, mode: str) -> None:
        if self._mode != mode:
            self.end_line()
            self._mode = mode

    def say(self, markup: str) -> None:
        self.console.print(markup, soft_wrap=True, highlight=False)

    async def ask(self, prompt: str) -> str:
        return await self.answers.prompt_async(prompt)

    async def show(self, event: Any, chat: Chat, *, approvals: Approvals | None = None) -> None:
        """Show `event`; a question is asked here and answered to `chat` (to `approvals` for a `/call`)."""
        out = self.console
        if isinstance(event, PromptProgress):
            self.bars.prompt(event.done, event.total)
        elif isinstance(event, ReasoningDelta):
            if self.hide_reasoning:
                self.bars.waiting("the model is thinking (reasoning hidden)")
            else:
                self._streaming("reasoning")
                out.print(escape(event.text), style="dim", end="", highlight=False, soft_wrap=True)
        elif isinstance(event, MessageDelta):
            self._streaming("message")
            self.said += event.text
            out.print(escape(event.text), end="", highlight=False, soft_wrap=True)
        elif isinstance(event, ToolCallCreated):
            self.end_line()
            self.bars.model_done()
            out.print(f"[cyan]→ {escape(event.tool)}[/cyan] {escape(_short(event.arguments, 200))}", soft_wrap=True)
            self.bars.running(event.call_id, event.tool)
        elif isinstance(event, ApprovalRequired):
            self.end_line()
            self.bars.hide()  # a question needs the bottom line
            answer = await self._ask(event)
            (approvals or chat).answer(event.call_id, answer)
            if answer.decision == "deny":
                self.bars.finish(event.call_id)
                self.bars.show()
            else:
                self.bars.running(event.call_id, event.tool)  # its clock starts now
        elif isinstance(event, ElicitationRequired):
            self.end_line()
            self.bars.hide()
            await self._elicit(event, chat)
            self.bars.show()
        elif isinstance(event, ToolCallProgress):
            self.bars.update(event)
        elif isinstance(event, ServerLog):
            self.end_line()
            self.say(f"[dim]\\[{shown(event.server)}] {shown(event.level)}: {shown(event.text)}[/dim]")
        elif isinstance(event, ToolCallResult):
            self.bars.finish(event.call_id)
            self.said = ""  # the round is in the conversation
            style = "red" if event.is_error else "green"
            out.print(f"[{style}]← {escape(_short(event.text, 160))}[/{style}]", soft_wrap=True)
            self._hint_links(event)
            if self._in_turn:
                self.bars.waiting()  # the model goes on with the results
        elif isinstance(event, ErrorEvent):
            self.end_line()
            out.print(f"[yellow]! {escape(event.message)}[/yellow]", soft_wrap=True)
        elif isinstance(event, TurnCompleted):
            self.end_line()
            self.end_turn()
            stats = event.stats
            out.print(
                f"[dim]{stats.rounds} round(s), {stats.tool_calls} tool call(s), "
                f"{stats.prompt_tokens_evaluated} prompt tokens evaluated / {stats.prompt_tokens_reused} "
                f"reused, {stats.tokens_per_second:.1f} tok/s ({event.stop_reason})[/dim]"
            )

    def _streaming(self, mode: str) -> None:
        """Text is streamed from here on: the bottom line is the text's own."""
        self.bars.model_done()
        self.bars.hide()
        self._switch(mode)

    def _hint_links(self, event: ToolCallResult) -> None:
        server = event.tool.partition(".")[0]
        if not self.is_server(server):
            return
        for uri in dict.fromkeys(RESOURCE_LINK.findall(event.text)):
            self.say(f"[dim]  /attach {shown(server)}:{shown(uri)}[/dim]")

    async def _elicit(self, event: ElicitationRequired, chat: Chat) -> None:
        while True:
            answer = await fill_elicitation(event, self.ask, self.say)
            try:
                chat.answer_elicitation(event.elicitation_id, answer)
            except ElicitationInputError as exc:
                self.say(f"[red]{shown(str(exc))}; once more[/red]")
                continue
            except UnknownApprovalError:
                self.say("[yellow]the server stopped waiting for this answer[/yellow]")
            return

    async def _ask(self, event: ApprovalRequired) -> ApprovalAnswer:
        server, _, tool = event.tool.partition(".")
        if tool == SAMPLING_TOOL:
            for line in sampling_lines(server, event.arguments):
                self.say(line)
            self.say(f"[dim]({shown(event.reason)})[/dim]")
        else:
            self.console.print(
                f"[bold]{escape(event.tool)}[/bold] wants to run ({escape(event.reason)}):\n"
                f"  {escape(_full(event.arguments))}",
                soft_wrap=True,
            )
        try:
            return await self._decide(event)
        except (KeyboardInterrupt, EOFError):
            self.say("[yellow]denied[/yellow]")
            return ApprovalAnswer("deny", reason="the user dismissed the question")

    async def _decide(self, event: ApprovalRequired) -> ApprovalAnswer:
        while True:
            answer = (await self.ask("[y]es once / [a]lways / [n]o / [e]dit? ")).strip().lower()
            if answer in ("y", "yes"):
                return ApprovalAnswer("allow")
            if answer in ("a", "always"):
                return ApprovalAnswer("always")
            if answer in ("n", "no"):
                reason = (await self.ask("reason for the model (optional): ")).strip()
                return ApprovalAnswer("deny", reason=reason or None)
            if answer in ("e", "edit"):
                current = json.dumps(event.arguments) if isinstance(event.arguments, dict) else event.arguments
                edited = await self.answers.prompt_async("arguments (JSON): ", default=str(current))
                try:
                    arguments = json.loads(edited)
                except json.JSONDecodeError as exc:
                    self.console.print(f"[red]not JSON: {escape(exc.msg)}[/red]")
                    continue
                if isinstance(arguments, dict):
                    return ApprovalAnswer("allow", arguments=arguments)
                self.console.print("[red]the arguments must be a JSON object[/red]")


def _full(value: Any) -> str:
    """Everything the user approves, never shortened: code as written, JSON indented."""
    if isinstance(value, dict) and set(value) == {"code"} and isinstance(value["code"], str):
        return value["code"]
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, indent=2)


def _short(value: Any, limit: int) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


def _history_path() -> Path:
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "chat-history"
