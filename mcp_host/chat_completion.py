"""Tab completion for the terminal chat's slash commands: commands, servers, plugins, prompts, their arguments' values.

    session = PromptSession(completer=SlashCompleter(host))

Prompt and resource lists are fetched on the first Tab and kept for `CACHE_S`; an argument's values
come from the server (`completion/complete`); `/call` completes the tools' names. Every server request is
bounded by `timeout_s`, and a server that fails or is slow gives no suggestions: completion never gets in the
way of typing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from typing import TypeVar

import anyio
import mcp_types
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document

from mcp_host.chat_commands import COMMANDS, EFFORTS, SWITCHES
from mcp_host.errors import McpHostError
from mcp_host.host import Host
from mcp_host.servers.asks import LOG_LEVELS
from mcp_host.servers.state import ServerState

logger = logging.getLogger(__name__)

COMPLETION_TIMEOUT_S = 1.0
CACHE_S = 30.0
_SERVER_FIRST = ("/resources", "/loglevel", "/roots")
_T = TypeVar("_T")


class SlashCompleter(Completer):
    """Completes what follows a `/` on the chat's input line; anything else gets no suggestions."""

    def __init__(self, host: Host, *, timeout_s: float = COMPLETION_TIMEOUT_S) -> None:
        self.host = host
        self.timeout_s = timeout_s
        self._prompts_seen: dict[str, tuple[float, list[mcp_types.Prompt]]] = {}
        self._uris_seen: dict[str, tuple[float, list[str]]] = {}

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterable[Completion]:
        return ()  # prompt_toolkit asks `get_completions_async`; the answers need the servers

    async def get_completions_async(
        self, document: Document, complete_event: CompleteEvent
    ) -> AsyncGenerator[Completion, None]:
        text = document.text_before_cursor
        if not text.startswith("/"):
            return
        for completion in await self._suggest(text):
            yield completion

    async def _suggest(self, text: str) -> list[Completion]:
        words = text.split(" ")
        current = words[-1]
        if len(words) == 1:
            return _matching(current, [*COMMANDS, *await self._prompt_commands()])
        command, position = words[0], len(words) - 1
        if command in _SERVER_FIRST and position == 1:
            return _matching(current, self._servers())
        if command == "/loglevel" and position == 2:
            return _matching(current, LOG_LEVELS)
        if command == "/reasoning" and position == 1:
            return _matching(current, EFFORTS)
        if command == "/plugin" and position == 1:
            return _matching(current, SWITCHES)
        if command == "/plugin" and position == 2:
            return _matching(current, self.host.plugins.names)
        if command == "/attach" and position == 1:
            return await self._attachable(current)
        if command == "/call" and position == 1:
            return _matching(current, [spec.name for spec in self.host.registry if spec.origin != "native"])
        if command not in COMMANDS and "." in command:
            return await self._prompt_argument(command, words[1:-1], current)
        return []

    def _servers(self) -> list[str]:
        return [c.name for c in self.host.manager.connections]

    def _ready(self) -> list[str]:
        return [c.name for c in self.host.manager.connections if c.state is ServerState.READY]

    async def _bounded(self, fetch: Callable[[], Awaitable[_T]], fallback: _T) -> _T:
        """`fetch()` within the timeout; the fallback when the server is slow, gone, or fails."""
        with anyio.move_on_after(self.timeout_s):
            try:
                return await fetch()
            except McpHostError as exc:
                logger.debug("no completions: %s", exc)
            except Exception:  # noqa: BLE001 - a server's malformed answer must not break the user's typing
                logger.debug("no completions: the request failed", exc_info=True)
        return fallback

    async def _cached(
        self, seen: dict[str, tuple[float, list[_T]]], server: str, fetch: Callable[[], Awaitable[list[_T]]]
    ) -> list[_T]:
        """A list the server gave less than `CACHE_S` ago, or a fresh one ([] and not kept when it fails)."""
        kept = seen.get(server)
        if kept is not None and time.monotonic() - kept[0] < CACHE_S:
            return kept[1]
        fetched = await self._bounded(fetch, None)
        if fetched is None:
            return []
        seen[server] = (time.monotonic(), fetched)
        return fetched

    async def _prompts(self, server: str) -> list[mcp_types.Prompt]:
        return await self._cached(
            self._prompts_seen, server, lambda: self.host.manager.connection(server).list_prompts()
        )

    async def _prompt_commands(self) -> list[str]:
        found: dict[str, list[mcp_types.Prompt]] = {}

        async def fetch(server: str) -> None:
            found[server] = await self._prompts(server)

        async with anyio.create_task_group() as tg:
            for server in self._ready():
                tg.start_soon(fetch, server)
        return [f"/{server}.{p.name}" for server in sorted(found) for p in found[server]]

    async def _attachable(self, current: str) -> list[Completion]:
        server, colon, _ = current.partition(":")
        if not colon:
            return _matching(current, [f"{name}:" for name in self._servers()])

        async def fetch() -> list[str]:
            return [r.uri for r in await self.host.manager.connection(server).list_resources()]

        uris = await self._cached(self._uris_seen, server, fetch)
        return _matching(current, [f"{server}:{uri}" for uri in uris])

    async def _prompt_argument(self, command: str, given: list[str], current: str) -> list[Completion]:
        server, _, name = command.removeprefix("/").partition(".")
        if server not in self._ready():
            return []
        prompt = next((p for p in await self._prompts(server) if p.name == name), None)
        if prompt is None:
            return []
        context = dict(word.split("=", 1) for word in given if "=" in word)
        argument, equals, value = current.partition("=")
        if not equals:
            names = [f"{a.name}=" for a in prompt.arguments or [] if a.name not in context]
            return _matching(current, names)
        ref = mcp_types.PromptReference(name=name)
        connection = self.host.manager.connection(server)
        no_values: list[str] = []
        values = await self._bounded(lambda: connection.complete(ref, argument, value, context or None), no_values)
        return [Completion(f"{argument}={v}", start_position=-len(current), display=v) for v in values]


def _matching(current: str, candidates: Iterable[str]) -> list[Completion]:
    return [Completion(c, start_position=-len(current)) for c in candidates if c.startswith(current)]
