"""The stored-chats list, `GET /v1/sessions`, and how a session is summarised for it.

    GET /v1/sessions?q=paris&limit=50&before=1718000000.25
    -> {"object": "list", "data": [{"id", "object": "session", "title", "created", "updated", "model",
        "state": "idle"|"busy"|"interrupted", "messages", "preview"}], "has_more", "next_before",
        "searched", "truncated"}

Newest activity first (`updated`, the record's last write). `q` keeps the sessions whose title or user and
assistant text holds it (case-insensitive); `before` pages on (send the last answer's `next_before`).
With a store every stored session is listed, whichever server made it; without one, the open ones. The
work is bounded: one request reads at most `MAX_SEARCHED` records, a few at a time; a search that stopped
there says `truncated` (and `next_before` goes on from where it stopped). A session's title is the one it
was given, else its first message's first line.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mcp_host.api.session_ledger import SessionLedger, SessionState
from mcp_host.errors import ApiError

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_QUERY_CHARS = 200
MAX_SEARCHED = 2000  # records one request reads at most
PAGE = 25  # records read at once: a record may hold megabytes of conversation
TITLE_CHARS = 60
PREVIEW_CHARS = 120
PARAMS = ("q", "limit", "before")

Message = tuple[str, str]  # (role, text): "user" or "assistant"


class LiveSession(Protocol):
    """An open session, as the list sees it (`mcp_host.api.sessions.Session`)."""

    @property
    def state(self) -> SessionState: ...

    @property
    def busy(self) -> bool: ...


def _text(content: Any) -> str:
    """A message's text: a string, or the text parts of a list (Harmony's and OpenAI's shapes)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part["text"] for part in content if isinstance(part, dict) and isinstance(part.get("text"), str))
    return ""


def shown_messages(state: SessionState) -> list[Message]:
    """The user's messages and the assistant's answers, as the web chat shows them (no reasoning, no calls),
    from the stored conversation (a `Chat.snapshot()` of either prompt format), which may be of any shape."""
    snapshot = state.snapshot if isinstance(state.snapshot, dict) else {}
    turn = snapshot.get("turn")
    entries = (turn.get("history") or turn.get("messages")) if isinstance(turn, dict) else None
    shown: list[Message] = []
    for entry in entries if isinstance(entries, list) else ():
        if not isinstance(entry, dict):
            continue
        role, text = entry.get("role"), _text(entry.get("content"))
        if role == "user":
            shown.append(("user", text))
        elif role == "assistant" and text.strip():
            calling = entry.get("recipient") not in (None, "assistant") or bool(entry.get("tool_calls"))
            if not calling and entry.get("channel") != "analysis":
                shown.append(("assistant", text))
    running = state.running_text  # a turn runs, or was cut off: its words may not be in the conversation yet
    if isinstance(running, str) and running and not _last_user(shown).startswith(running):
        shown.append(("user", running))
    return shown


def _last_user(shown: Sequence[Message]) -> str:
    return next((text for role, text in reversed(shown) if role == "user"), "")


def _cut(text: str, chars: int) -> str:
    """`text` on one line, whitespace collapsed, at most `chars` characters (cut with an ellipsis)."""
    line = " ".join(text[: chars * 8].split())  # a long message is not collapsed whole for a few words
    return line if len(line) <= chars else line[: chars - 1].rstrip() + "…"


def default_title(text: str) -> str | None:
    """The first non-blank line of a user's message, cut to `TITLE_CHARS`; None for a blank one."""
    first = next((line for line in text[:4096].splitlines() if line.strip()), "")
    return _cut(first, TITLE_CHARS) or None


def title_of(state: SessionState, shown: Sequence[Message] | None = None) -> str | None:
    """The session's title: the one it was given, else its first message's first line; None before any."""
    if state.title is not None:
        return state.title
    shown = shown_messages(state) if shown is None else shown
    return default_title(next((text for role, text in shown if role == "user"), ""))


def summarise(state: SessionState, *, busy: bool, shown: Sequence[Message] | None = None) -> dict[str, Any]:
    """A session as the list shows it."""
    shown = shown_messages(state) if shown is None else shown
    return {
        "id": state.id,
        "object": "session",
        "title": title_of(state, shown),
        "created": state.created,
        "updated": state.updated,
        "model": state.model,
        "state": "busy" if busy else "interrupted" if state.interrupted else "idle",
        "messages": len(shown),
        "preview": _cut(shown[-1][1], PREVIEW_CHARS) if shown else None,
    }


def _select(sessions: Sequence[tuple[SessionState, bool]], needle: str | None) -> list[dict[str, Any]]:
    """The summaries of the sessions whose title or text holds `needle` (casefolded; None: all of them)."""
    selected: list[dict[str, Any]] = []
    for state, busy in sessions:
        shown = shown_messages(state)
        summary = summarise(state, busy=busy, shown=shown)
        texts = [summary["title"] or "", *(text for _, text in shown)]
        if needle is None or any(needle in text.casefold() for text in texts):
            selected.append(summary)
    return selected


def _query(request: Request) -> tuple[str | None, int, float | None]:
    """`q` (casefolded; None when absent or blank), `limit` and `before`; `ApiError` 400 naming the parameter."""
    params = request.query_params
    unknown = sorted(name[:40] for name in set(params) - set(PARAMS))
    if unknown:
        raise ApiError(400, f"unknown query parameters {unknown}; this list takes {list(PARAMS)}", param=unknown[0])
    q = params.get("q", "")
    if len(q) > MAX_QUERY_CHARS:
        raise ApiError(400, f"q is {len(q)} characters; a search is at most {MAX_QUERY_CHARS}", param="q")
    raw_limit = params.get("limit", str(DEFAULT_LIMIT))
    try:
        limit = int(raw_limit)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        raise ApiError(
            400, f"limit must be a whole number from 1 to {MAX_LIMIT}, not {raw_limit[:40]!r}", param="limit"
        )
    before: float | None = None
    if "before" in params:
        try:
            before = float(params["before"])
        except ValueError:
            before = math.nan
        if not math.isfinite(before):
            raise ApiError(
                400, f"before must be a time (a session's `updated`), not {params['before'][:40]!r}", param="before"
            )
    return (q.casefold() if q.strip() else None), limit, before


class SessionIndex:
    """`GET /v1/sessions`: the sessions of the ledger's store, or (without one) the `live` open sessions."""

    def __init__(self, ledger: SessionLedger, live: Mapping[str, LiveSession]) -> None:
        self.ledger = ledger
        self.live = live

    def routes(self) -> list[Route]:
        return [Route("/v1/sessions", self.index, methods=["GET"])]

    async def index(self, request: Request) -> Response:
        needle, limit, before = _query(request)
        found: list[dict[str, Any]] = []
        searched, cursor, exhausted = 0, before, False
        while len(found) <= limit and searched < MAX_SEARCHED:
            size = min(PAGE, MAX_SEARCHED - searched, limit + 1 - len(found) if needle is None else PAGE)
            sessions, read, cursor = await self._page(size, cursor)
            searched += read
            found += await anyio.to_thread.run_sync(_select, sessions, needle)  # CPU-bound: long histories
            if read < size or cursor is None:
                exhausted = True
                break
        data = found[:limit]
        truncated = len(found) <= limit and not exhausted  # stopped at MAX_SEARCHED, older records unread
        next_before = data[-1]["updated"] if len(found) > limit else cursor if truncated else None
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "has_more": next_before is not None,
                "next_before": next_before,
                "searched": searched,
                "truncated": truncated,
            }
        )

    async def _page(self, size: int, before: float | None) -> tuple[list[tuple[SessionState, bool]], int, float | None]:
        """Up to `size` sessions updated before `before`, newest first; how many records were read; the
        `updated` of the last one read (None when none was)."""
        if self.ledger.store is not None:
            page = await self.ledger.page(limit=size, before=before)
            return page.sessions, page.read, page.last_updated
        live = sorted(
            ((session.state, session.busy) for session in list(self.live.values())),
            key=lambda item: (item[0].updated, item[0].id),
            reverse=True,
        )
        sessions = [item for item in live if before is None or item[0].updated < before][:size]
        return sessions, len(sessions), sessions[-1][0].updated if sessions else None
