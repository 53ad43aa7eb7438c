"""What is in flight in a chat turn, drawn in place at the bottom of the terminal chat.

    bars = ProgressBars(console)
    await bars.while_drawing(work)    # spinners turn and clocks tick while `work()` runs
    bars.waiting("loading the model") # a spinner with its elapsed time (shown after a moment: quick work stays quiet)
    bars.loaded(0.4)                  # a model loading: its line becomes a bar
    bars.prompt(done, total)          # a `prompt.progress`: reading the prompt 40% (1024/2578 tokens)
    bars.running(call_id, tool)       # a call runs: a spinner with its elapsed time
    bars.update(event)                # a `tool_call.progress`: the call's line gets the server's bar and message
    bars.finish(call_id)              # its result arrived: the line goes away
    bars.hide()                       # before text is streamed or a question asked: drawn again at the next change
    bars.stop()                       # the turn ended: every line goes away

Redrawn at each change and a few times a second by `while_drawing`, never by rich's refresh thread: the chat
runs on one event loop, and nothing may be drawn under a question being asked.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import anyio
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn

from mcp_host.agent import ToolCallProgress
from mcp_host.chat_forms import shown

MODEL = "\0model"  # the model's line (loading, waiting, reading the prompt); never a call id
QUIET_S = 0.3  # a wait shorter than this draws nothing
TICK_S = 0.1
_T = TypeVar("_T")


@dataclass
class _Line:
    description: str
    started: float = field(default_factory=time.monotonic)
    completed: float | None = None  # with a total: a bar
    total: float | None = None
    amount: str = ""
    quiet_until: float = 0.0

    def elapsed(self, now: float) -> str:
        seconds = int(now - self.started)
        return f"{seconds // 60}:{seconds % 60:02d}"


class ProgressBars:
    """The model's line and one line per running call; shown while they last, gone once they end."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._progress: Progress | None = None
        self._tasks: dict[str, tuple[_Line, TaskID]] = {}  # what each drawn line shows
        self._lines: dict[str, _Line] = {}
        self._hidden = False

    @property
    def active(self) -> bool:
        """Whether lines are drawn now."""
        return self._progress is not None

    async def while_drawing(self, work: Callable[[], Awaitable[_T]]) -> _T:
        """`work()`, redrawing meanwhile; its exceptions propagate as they are, and every line goes at the end."""
        failure: Exception | None = None
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._keep_drawing)
            try:
                result = await work()
            except Exception as exc:  # noqa: BLE001 - re-raised below, not wrapped in the task group's
                failure = exc
            finally:
                tg.cancel_scope.cancel()
                self.stop()
        if failure is not None:
            raise failure
        return result

    def waiting(self, what: str = "waiting for the model") -> None:
        self._lines[MODEL] = _Line(what, quiet_until=time.monotonic() + QUIET_S)
        self._changed()

    def loaded(self, fraction: float) -> None:
        """How much of the model's file is loaded (0.0 … 1.0): the model's line becomes a bar."""
        line = self._lines.get(MODEL)
        if line is None or line.description != "loading the model" or line.total is None:
            quiet = line.quiet_until if line is not None else time.monotonic() + QUIET_S
            started = line.started if line is not None else time.monotonic()
            line = self._lines[MODEL] = _Line("loading the model", started=started, total=100, quiet_until=quiet)
        line.completed, line.amount = round(100 * fraction), f"{fraction:.0%}"
        self._changed()

    def prompt(self, done: int, total: int) -> None:
        line = self._lines.get(MODEL)
        if line is None or line.total is None:
            line = self._lines[MODEL] = _Line("reading the prompt")
        percent = 100 * done // max(total, 1)
        line.completed, line.total, line.amount = done, total, f"{percent}% ({done}/{total} tokens)"
        self._changed()

    def model_done(self) -> None:
        """The model said something: its line goes."""
        if self._lines.pop(MODEL, None) is not None:
            self._changed()

    def running(self, call_id: str, tool: str) -> None:
        self._lines[call_id] = _Line(shown(tool))
        self._changed()

    def update(self, event: ToolCallProgress) -> None:
        total = event.total if event.total and event.total > 0 else None
        line = self._lines.setdefault(event.call_id, _Line(""))
        line.description = f"{shown(event.server)} {shown(event.call_id)}"
        if event.message:
            line.description += f": {shown(event.message)}"
        line.completed, line.total = event.progress, total
        line.amount = f"{event.progress:g}/{total:g}" if total else f"{event.progress:g}"
        self._changed()

    def finish(self, call_id: str) -> None:
        if self._lines.pop(call_id, None) is not None:
            self._changed()

    def hide(self) -> None:
        """Draw nothing until the next change (streamed text or a question needs the bottom line)."""
        self._hidden = True
        self._close()

    def show(self) -> None:
        """Draw again what is in flight (after a question)."""
        self._changed()

    def stop(self) -> None:
        self._lines.clear()
        self._hidden = False
        self._close()

    async def _keep_drawing(self) -> None:
        while True:
            await anyio.sleep(TICK_S)
            if not self._hidden:
                self._draw()

    def _changed(self) -> None:
        self._hidden = False
        self._draw()

    def _draw(self) -> None:
        now = time.monotonic()
        lines = {key: line for key, line in self._lines.items() if line.quiet_until <= now}
        if not lines:
            self._close()
            return
        if self._progress is None:
            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[amount]}"),
                TextColumn("[progress.elapsed]{task.fields[elapsed]}"),
                console=self._console,
                transient=True,
                auto_refresh=False,
            )
            self._progress.start()
        for key, (drawn, task) in list(self._tasks.items()):
            if lines.get(key) is not drawn:  # gone, or a new line under the same key (a bar cannot become a spinner)
                self._progress.remove_task(task)
                del self._tasks[key]
        for key, line in lines.items():
            if key not in self._tasks:
                self._tasks[key] = (
                    line,
                    self._progress.add_task(line.description, total=line.total, amount="", elapsed=""),
                )
            self._progress.update(
                self._tasks[key][1],
                description=line.description,
                completed=line.completed or 0,
                total=line.total,
                amount=line.amount,
                elapsed=line.elapsed(now),
            )
        self._progress.refresh()

    def _close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
        self._progress = None
        self._tasks.clear()
