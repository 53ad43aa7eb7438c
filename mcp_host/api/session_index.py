"""The stored-chats list, `GET /v1/sessions`.

    GET /v1/sessions?q=paris&limit=50&before=1718000000.25
    -> {"object": "list", "data": [{"id", "object": "session", "title", "created", "updated", "model",
        "state": "idle"|"busy"|"interrupted", "messages", "preview"}], "has_more", "next_before",
        "searched", "truncated"}

Newest activity first (`updated`, the record's last write). `q` keeps the sessions whose title or user and
assistant text holds it (case-insensitive; of a chat's text, its first 64 KiB are searched); `before` pages on
(send the last answer's `next_before`). With a store every stored session is listed, whichever server made
it; without one, the open ones. A session's title is the one it was given, else its first message's first line
(`session_summary`).

The work is bounded, whatever the chats hold: the list reads each record's summary, never its conversation
(`SessionLedger.page`), and one request reads at most `MAX_SEARCHED` records, a page at a time. `searched`
says how many it read; a search that stopped there says `truncated` (and `next_before` goes on from where it
stopped). A record written before summaries is read whole when it is small, else listed by its title alone
(`messages` and `preview` null, and a search looks in its title only) until its next write.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mcp_host.api.session_ledger import SessionLedger, SessionState
from mcp_host.api.session_summary import Listing
from mcp_host.errors import ApiError

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_QUERY_CHARS = 200
MAX_SEARCHED = 2000  # records one request reads at most
PAGE = 50  # records read at once
PARAMS = ("q", "limit", "before")


class LiveSession(Protocol):
    """An open session, as the list sees it (`mcp_host.api.sessions.Session`)."""

    @property
    def state(self) -> SessionState: ...

    @property
    def busy(self) -> bool: ...


def _select(listings: Sequence[Listing], needle: str | None) -> list[Listing]:
    """The sessions whose title or text holds `needle` (casefolded; None: all of them)."""
    return [listing for listing in listings if needle is None or listing.holds(needle)]


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
        found: list[Listing] = []
        searched, cursor, exhausted = 0, before, False
        while len(found) <= limit and searched < MAX_SEARCHED:
            size = min(PAGE, MAX_SEARCHED - searched, limit + 1 - len(found) if needle is None else PAGE)
            listings, read, cursor = await self._page(size, cursor, search=needle is not None)
            searched += read
            found += _select(listings, needle)
            if read < size or cursor is None:
                exhausted = True
                break
        data = found[:limit]
        truncated = len(found) <= limit and not exhausted  # stopped at MAX_SEARCHED, older records unread
        next_before = data[-1].updated if len(found) > limit else cursor if truncated else None
        return JSONResponse(
            {
                "object": "list",
                "data": [listing.item() for listing in data],
                "has_more": next_before is not None,
                "next_before": next_before,
                "searched": searched,
                "truncated": truncated,
            }
        )

    async def _page(self, size: int, before: float | None, *, search: bool) -> tuple[list[Listing], int, float | None]:
        """Up to `size` sessions updated before `before`, newest first (with the text a search looks in if
        `search`); how many records were read; the `updated` of the last one read (None when none was)."""
        if self.ledger.store is not None:
            page = await self.ledger.page(limit=size, before=before, search=search)
            return page.listings, page.read, page.last_updated
        live = sorted(
            (session for session in list(self.live.values()) if before is None or session.state.updated < before),
            key=lambda session: (session.state.updated, session.state.id),
            reverse=True,
        )[:size]
        listings = [Listing.of(session.state, busy=session.busy) for session in live]
        return listings, len(listings), listings[-1].updated if listings else None
