"""Progress bars for the tool calls in flight, redrawn in place in the terminal chat.

    bars = ProgressBars(console)
    bars.update(event)        # a `tool_call.progress`: the call's bar appears or moves, with its message
    bars.finish(call_id)      # its result arrived: the bar goes away
    bars.stop()               # before anything else is printed or asked: every bar goes away

Refreshed on each update rather than by rich's refresh thread: the chat runs on one event loop.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from mcp_host.agent import ToolCallProgress
from mcp_host.chat_forms import shown


class ProgressBars:
    """One bar per call that reported progress; shown while calls run, gone once they end."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._progress: Progress | None = None
        self._bars: dict[str, TaskID] = {}

    @property
    def active(self) -> bool:
        return self._progress is not None

    def update(self, event: ToolCallProgress) -> None:
        if self._progress is None:
            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[amount]}"),
                TimeElapsedColumn(),
                console=self._console,
                transient=True,
                auto_refresh=False,
            )
            self._progress.start()
        total = event.total if event.total and event.total > 0 else None
        amount = f"{event.progress:g}/{total:g}" if total else f"{event.progress:g}"
        description = f"{shown(event.server)} {shown(event.call_id)}"
        if event.message:
            description += f": {shown(event.message)}"
        bar = self._bars.get(event.call_id)
        if bar is None:
            bar = self._progress.add_task(description, total=total, amount=amount)
            self._bars[event.call_id] = bar
        self._progress.update(bar, completed=event.progress, total=total, description=description, amount=amount)
        self._progress.refresh()

    def finish(self, call_id: str) -> None:
        bar = self._bars.pop(call_id, None)
        if bar is not None and self._progress is not None:
            self._progress.remove_task(bar)
            self._progress.refresh()
        if not self._bars:
            self.stop()

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
        self._progress = None
        self._bars.clear()
