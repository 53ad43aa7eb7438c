"""Watching mcp.json for edits.

Editors save by writing a temporary file and renaming it over the original, so the folder
is watched and changes are filtered to the file's name.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
from watchfiles import Change, awatch

from mcp_host.config.mcpjson import McpConfig, load_config
from mcp_host.errors import ConfigError


async def watch_config(
    path: Path, *, stop_event: anyio.Event | None = None, debounce_ms: int = 300
) -> AsyncIterator[McpConfig | ConfigError]:
    """Yield the newly loaded config after each edit of `path`, or the error that loading it raised.

    async for update in watch_config(path):
        if isinstance(update, ConfigError): report(update)
        else: await manager.apply(update)
    """
    target = _prepare(path)

    def concerns_target(_change: Change, changed: str) -> bool:
        return Path(changed).name == target.name and Path(changed).parent == target.parent

    async for _changes in awatch(
        target.parent, watch_filter=concerns_target, stop_event=stop_event, debounce=debounce_ms, recursive=False
    ):
        try:
            # A file that vanished is an error here even at LM Studio's path: an editor replacing it, or a
            # deletion, keeps the last good config running rather than stopping every server.
            yield load_config(path, missing_ok=False)
        except ConfigError as exc:
            # Whatever the file holds, the loader raises a `ConfigError` for it (a number `json` cannot convert,
            # nesting past the stack included: tests/test_hot_reload.py); anything else is a bug, and propagates.
            yield exc


def _prepare(path: Path) -> Path:
    """The absolute path to watch; its folder must exist for the watcher to start."""
    target = path.absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    return target
