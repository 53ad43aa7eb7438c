"""The browser's state: a stack of pages addressed by cursor, views fitted to a token budget, citations.

    browser = BrowserSession(search_url="http://127.0.0.1:8888")     # a SearXNG instance, or None
    text = await browser.search("model context protocol")           # pushes a results page
    text = await browser.open(id=0)                                  # follows link 0 of the last page
    text = browser.find("transport")                                 # matches in the last page
    browser.citations("as shown 【1†L3-L5】")                         # -> url and title of cursor 1

The display follows gpt-oss's browser: `[cursor] title (url)`, a `viewing lines [a - b] of n` line,
then `L{n}: text` lines; links read `【id†text】`; the model cites `【cursor†Lstart-Lend】`.

Pages the model opens must be on public addresses (`addresses.py`), unless the user allows private ones;
the search engine is the user's own choice, so it may be on this machine (SearXNG on 127.0.0.1).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import httpx2

from mcp_host.errors import BrowserError as BrowserError
from mcp_host.tools.native.browser.addresses import AddressGuard
from mcp_host.tools.native.browser.fetch import Fetcher
from mcp_host.tools.native.browser.page import Page

BRAVE_URL = "https://api.search.brave.com/res/v1/web/search"
CITATION = re.compile(r"【(\d+)†L(\d+)(?:-L(\d+))?】")
NO_SEARCH_ENGINE = (
    "Search is not configured. Set a SearXNG address in the host settings ([browser] search_url = "
    '"http://127.0.0.1:8888"), or search_api = "brave" with a search_api_key, or open a page by its URL with '
    'browser.open(id="https://...").'
)


@dataclass(frozen=True)
class Citation:
    """A `【cursor†Lstart-Lend】` in the model's answer, resolved to the page it cites."""

    start: int
    end: int
    cursor: int
    line_start: int
    line_end: int
    url: str
    title: str


class BrowserSession:
    """One chat's browser. `count_tokens` measures views; the default counts words, a host passes Harmony's.

    Pages are refused unless every address their host resolves to is public (`guard`, by default the
    system resolver and the rules of `addresses.py`), each redirect included; `allow_private_addresses`
    (the user's `[browser] allow_private_addresses`) turns the check off. `client` talks to the search
    engine, and to pages too when private addresses are allowed.
    """

    def __init__(
        self,
        *,
        search_url: str | None = None,
        search_api: str = "searxng",
        search_api_key: str | None = None,
        view_tokens: int = 1024,
        count_tokens: Callable[[str], int] | None = None,
        client: httpx2.AsyncClient | None = None,
        allow_private_addresses: bool = False,
        guard: AddressGuard | None = None,
    ) -> None:
        if search_api == "brave" and not search_url:
            search_url = BRAVE_URL
        self.search_url = search_url.rstrip("/") if search_url else None
        self.search_api = search_api
        self._search_api_key = search_api_key
        self.view_tokens = view_tokens
        self.count_tokens = count_tokens or (lambda text: len(text.split()))
        self.pages: list[Page] = []
        self._search_engine = Fetcher(client=client)
        self._web = self._search_engine if allow_private_addresses else Fetcher(guard=guard or AddressGuard())

    async def aclose(self) -> None:
        await self._search_engine.aclose()
        await self._web.aclose()

    # -- the three functions gpt-oss calls ---------------------------------------------------

    async def search(self, query: str, topn: int = 10) -> str:
        if self.search_url is None:
            raise BrowserError(NO_SEARCH_ENGINE)
        results = (await self._brave(query, topn)) if self.search_api == "brave" else await self._searxng(query)
        results = results[:topn]
        lines: list[str] = []
        links: list[str] = []
        for result in results:
            url = str(result.get("url", ""))
            domain = urlparse(url).netloc
            lines.append(f"【{len(links)}†{result.get('title') or url}†{domain}】")
            links.append(url)
            if result.get("content"):
                lines.append(" ".join(str(result["content"]).split()))
        page = Page(
            url=f"{self.search_url}/search?q={query}",
            title=f"Search results for `{query}`",
            lines=lines or ["No results."],
            links=links,
        )
        return self._push_and_view(page, 0, -1)

    async def open(
        self, id: int | str = -1, cursor: int = -1, loc: int = -1, num_lines: int = -1, view_source: bool = False
    ) -> str:
        if isinstance(id, str):
            return self._push_and_view(await self._fetch(id, view_source), loc, num_lines)
        page = self._page(cursor)
        if id == -1:  # scroll the page at cursor
            return self._view(self.pages.index(page), loc, num_lines)
        if not 0 <= id < len(page.links):
            raise BrowserError(f"page {self.pages.index(page)} has no link {id} (it has {len(page.links)} links)")
        return self._push_and_view(await self._fetch(page.links[id], view_source), loc, num_lines)

    def find(self, pattern: str, cursor: int = -1) -> str:
        page = self._page(cursor)
        needle = pattern.lower()
        matches = [f"L{number}: {line}" for number, line in enumerate(page.lines) if needle in line.lower()]
        result = Page(
            url=f"{page.url}#find={pattern}",
            title=f"Find results for `{pattern}` in `{page.title}`",
            lines=matches or [f"No matches for `{pattern}`."],
        )
        return self._push_and_view(result, 0, -1)

    # -- citations --------------------------------------------------------------------------

    def citations(self, text: str) -> list[Citation]:
        """Every `【cursor†Lstart(-Lend)】` in `text` that names a page of this session."""
        found = []
        for match in CITATION.finditer(text):
            cursor = int(match.group(1))
            if 0 <= cursor < len(self.pages):
                page = self.pages[cursor]
                start = int(match.group(2))
                end = int(match.group(3) or start)
                found.append(Citation(match.start(), match.end(), cursor, start, end, page.url, page.title))
        return found

    # -- internals ------------------------------------------------------------------------

    def _page(self, cursor: int) -> Page:
        if not self.pages:
            raise BrowserError("no page is open yet: search, or open a URL")
        if cursor == -1:
            return self.pages[-1]
        if not 0 <= cursor < len(self.pages):
            raise BrowserError(f"there is no page at cursor {cursor} (cursors 0 to {len(self.pages) - 1})")
        return self.pages[cursor]

    def _push_and_view(self, page: Page, loc: int, num_lines: int) -> str:
        self.pages.append(page)
        return self._view(len(self.pages) - 1, loc, num_lines)

    def _view(self, cursor: int, loc: int, num_lines: int) -> str:
        page = self.pages[cursor]
        total = len(page.lines)
        start = min(max(loc, 0), max(total - 1, 0))
        shown: list[str] = []
        budget = self.view_tokens
        for number in range(start, total):
            if num_lines > 0 and len(shown) >= num_lines:
                break
            line = f"L{number}: {page.lines[number]}"
            cost = self.count_tokens(line) + 1
            if shown and cost > budget:
                break
            shown.append(line)
            budget -= cost
        end = start + max(len(shown) - 1, 0)
        header = f"[{cursor}] {page.title} ({page.url})\n**viewing lines [{start} - {end}] of {max(total - 1, 0)}**\n"
        return header + "\n" + "\n".join(shown)

    async def _searxng(self, query: str) -> list[dict[str, Any]]:
        response = await self._search_engine.get(f"{self.search_url}/search", params={"q": query, "format": "json"})
        try:
            return list(response.json().get("results", []))
        except (ValueError, AttributeError) as exc:
            raise BrowserError(f"the search engine at {self.search_url} did not answer with JSON") from exc

    async def _brave(self, query: str, count: int) -> list[dict[str, Any]]:
        if not self._search_api_key:
            raise BrowserError("Brave Search needs an API key: [browser] search_api_key in the host settings")
        headers = {"X-Subscription-Token": self._search_api_key, "Accept": "application/json"}
        response = await self._search_engine.get(
            str(self.search_url), params={"q": query, "count": str(count)}, headers=headers
        )
        try:
            found = response.json().get("web", {}).get("results", [])
        except (ValueError, AttributeError) as exc:
            raise BrowserError("Brave Search did not answer with JSON") from exc
        return [{"url": r.get("url"), "title": r.get("title"), "content": r.get("description")} for r in found]

    async def _fetch(self, url: str, view_source: bool) -> Page:
        if not url.startswith(("http://", "https://")):
            raise BrowserError(f"{url!r} is not a web address (http:// or https://)")
        response = await self._web.get(url)
        text = response.text
        kind = response.headers.get("content-type", "")
        if view_source or "html" not in kind:
            return Page.from_text(text, url=str(response.url))
        return Page.from_html(text, url=str(response.url))
