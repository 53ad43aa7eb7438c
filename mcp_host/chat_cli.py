"""`mcp-host chat`: a terminal chat with the model and every tool of the host.

Streams the answer as it comes, shows reasoning dimmed (unless `--hide-reasoning`), shows each tool
call and a one-line result, asks `[y]es once / [a]lways / [n]o / [e]dit` where the policy says so;
Ctrl-C cancels the turn, not the program; Ctrl-D (or /quit) leaves. Input history is kept.
SIGTERM cancels `run_chat` wherever it is (the caller does it, see `mcp_host.cli`): the chat and the
model close on the way out, and the host stops every server.
"""

from __future__ import annotations

import argparse
import json
import signal
from pathlib import Path
from typing import Any

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
    ErrorEvent,
    MessageDelta,
    ReasoningDelta,
    ToolCallCreated,
    ToolCallResult,
    TurnCompleted,
)
from mcp_host.backends.base import Backend
from mcp_host.backends.replay import RecordingBackend
from mcp_host.config.paths import cache_dir
from mcp_host.errors import UsageError
from mcp_host.host import Host
from mcp_host.model_pick import pick_model
from mcp_host.prompt.harmony import HarmonyOptions
from mcp_host.tools.native.sandbox import detect_isolation

HELP = "/tools  /servers  /reasoning low|medium|high  /reset  /save FILE  /quit"


async def run_chat(host: Host, args: argparse.Namespace, console: Console) -> int:
    console.print("[dim]loading the model…[/dim]")
    pick = await anyio.to_thread.run_sync(
        lambda: pick_model(args.model, replay=args.replay, replay_speed=args.replay_speed)
    )
    backend = pick.backend
    if args.record:
        if not isinstance(backend, Backend):
            raise UsageError("--record needs a model that the host prompts itself, not a server in chat mode")
        backend = RecordingBackend(backend, args.record)
    if pick.notice:
        style = "bold yellow" if pick.notice.startswith("DEMO") else "dim"
        console.print(f"[{style}]{escape(pick.notice)}[/{style}]")
    harmony = HarmonyOptions(
        reasoning_effort=args.reasoning or host.settings.prompt.reasoning_effort,
        browser=args.browser,
        python=args.python,
    )
    if args.python:
        isolation = await detect_isolation()
        if isolation.warning:  # never silently weaker: the user reads it before the first run
            console.print(f"[bold yellow]{escape(isolation.warning)}[/bold yellow]")
    failed = [s for s in host.statuses() if s.state.value == "failed"]
    console.print(
        f"[dim]{len(host.registry)} tools from {len(host.statuses()) - len(failed)} servers"
        + (f"; failed: {', '.join(s.name for s in failed)}" if failed else "")
        + f". {HELP}[/dim]"
    )
    history = FileHistory(str(_history_path())) if not args.no_history else InMemoryHistory()
    session: PromptSession[str] = PromptSession(history=history)
    view = TurnView(console, hide_reasoning=args.hide_reasoning, session=session)
    effort = harmony.reasoning_effort
    try:
        async with host.chat(backend, ChatOptions(harmony=harmony, format=pick.format)) as chat:
            await _loop(host, chat, session, view, console, effort)
            return 0
    finally:
        with anyio.CancelScope(shield=True):  # also when the chat is cancelled (SIGTERM)
            await pick.backend.aclose()


async def _loop(
    host: Host, chat: Chat, session: PromptSession[str], view: TurnView, console: Console, effort: Any
) -> None:
    while True:
        try:
            line = (await session.prompt_async("> ")).strip()
        except KeyboardInterrupt:
            continue
        except EOFError:
            return
        if not line:
            continue
        if line.startswith("/"):
            if line in ("/quit", "/exit"):
                return
            effort = _slash_command(line, host, chat, console, effort)
            continue
        await _turn(chat, line, effort, view, console)


async def _turn(chat: Chat, text: str, effort: Any, view: TurnView, console: Console) -> None:
    """One turn; Ctrl-C cancels it (generation, tool calls) and returns to the prompt."""
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:

            async def cancel_on_ctrl_c() -> None:
                with anyio.open_signal_receiver(signal.SIGINT) as signals:
                    async for _ in signals:
                        scope.cancel()
                        return

            tg.start_soon(cancel_on_ctrl_c)
            async with chat.turn(text, reasoning=effort) as events:
                async for event in events:
                    await view.show(event, chat)
            tg.cancel_scope.cancel()
    if scope.cancelled_caught:
        console.print("\n[yellow]cancelled[/yellow]")
    view.end_line()


class TurnView:
    """How events look in the terminal."""

    def __init__(self, console: Console, *, hide_reasoning: bool, session: PromptSession[str]) -> None:
        self.console = console
        self.hide_reasoning = hide_reasoning
        self.session = session
        self._mode = ""

    def end_line(self) -> None:
        if self._mode:
            self.console.print()
        self._mode = ""

    def _switch(self, mode: str) -> None:
        if self._mode != mode:
            self.end_line()
            self._mode = mode

    async def show(self, event: Any, chat: Chat) -> None:
        out = self.console
        if isinstance(event, ReasoningDelta):
            if not self.hide_reasoning:
                self._switch("reasoning")
                out.print(escape(event.text), style="dim", end="", highlight=False, soft_wrap=True)
        elif isinstance(event, MessageDelta):
            self._switch("message")
            out.print(escape(event.text), end="", highlight=False, soft_wrap=True)
        elif isinstance(event, ToolCallCreated):
            self.end_line()
            out.print(f"[cyan]→ {escape(event.tool)}[/cyan] {escape(_short(event.arguments, 200))}", soft_wrap=True)
        elif isinstance(event, ApprovalRequired):
            self.end_line()
            chat.answer(event.call_id, await self._ask(event))
        elif isinstance(event, ToolCallResult):
            style = "red" if event.is_error else "green"
            out.print(f"[{style}]← {escape(_short(event.text, 160))}[/{style}]", soft_wrap=True)
        elif isinstance(event, ErrorEvent):
            self.end_line()
            out.print(f"[yellow]! {escape(event.message)}[/yellow]", soft_wrap=True)
        elif isinstance(event, TurnCompleted):
            self.end_line()
            stats = event.stats
            out.print(
                f"[dim]{stats.rounds} round(s), {stats.tool_calls} tool call(s), "
                f"{stats.prompt_tokens_evaluated} prompt tokens evaluated / {stats.prompt_tokens_reused} "
                f"reused, {stats.tokens_per_second:.1f} tok/s ({event.stop_reason})[/dim]"
            )

    async def _ask(self, event: ApprovalRequired) -> ApprovalAnswer:
        self.console.print(
            f"[bold]{escape(event.tool)}[/bold] wants to run ({escape(event.reason)}):\n"
            f"  {escape(_full(event.arguments))}",
            soft_wrap=True,
        )
        while True:
            answer = (await self.session.prompt_async("[y]es once / [a]lways / [n]o / [e]dit? ")).strip().lower()
            if answer in ("y", "yes"):
                return ApprovalAnswer("allow")
            if answer in ("a", "always"):
                return ApprovalAnswer("always")
            if answer in ("n", "no"):
                reason = (await self.session.prompt_async("reason for the model (optional): ")).strip()
                return ApprovalAnswer("deny", reason=reason or None)
            if answer in ("e", "edit"):
                current = json.dumps(event.arguments) if isinstance(event.arguments, dict) else event.arguments
                edited = await self.session.prompt_async("arguments (JSON): ", default=str(current))
                try:
                    arguments = json.loads(edited)
                except json.JSONDecodeError as exc:
                    self.console.print(f"[red]not JSON: {escape(exc.msg)}[/red]")
                    continue
                if isinstance(arguments, dict):
                    return ApprovalAnswer("allow", arguments=arguments)
                self.console.print("[red]the arguments must be a JSON object[/red]")


def _slash_command(line: str, host: Host, chat: Chat, console: Console, effort: Any) -> Any:
    command, _, rest = line.partition(" ")
    rest = rest.strip()
    if command == "/tools":
        for spec in host.registry:
            console.print(f"{escape(spec.name)}  [dim]{escape(spec.summary)}[/dim]", soft_wrap=True)
    elif command == "/servers":
        for status in host.statuses():
            console.print(
                f"{status.name}  {status.state.value}  {status.tools} tools  {escape(status.error or '')}",
                soft_wrap=True,
            )
    elif command == "/reasoning" and rest in ("low", "medium", "high"):
        console.print(f"[dim]reasoning effort: {rest}[/dim]")
        return rest
    elif command == "/reset":
        chat.reset()
        console.print("[dim]conversation cleared[/dim]")
    elif command == "/save" and rest:
        transcript = chat.transcript()
        Path(rest).expanduser().write_text(json.dumps(transcript, indent=2, ensure_ascii=False))
        console.print(f"[dim]saved to {escape(rest)}[/dim]")
    else:
        console.print(f"[dim]{HELP}[/dim]")
    return effort


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
