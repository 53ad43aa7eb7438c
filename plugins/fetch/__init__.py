"""Fetch: one web page as readable text, for models that do not use the native browser.

Tool: `fetch.fetch(url, max_chars, start)`. HTML becomes text with its links listed (`【n†text】` in the
text, the addresses below it), plain text and JSON come as they are, other media are refused; a long
page comes a window of `max_chars` characters at a time. It only reads, but from the open web.

It obeys the native browser's address rules with the browser's own code (`Fetcher`, `AddressGuard`):
only public addresses, each redirect checked before it is followed, the connection made to the address
checked (no second DNS answer), the body capped at 5 MB.

Config, `[plugins.fetch]` in settings.toml:

    allow_private_addresses = false   # true: loopback, link-local and LAN addresses may be fetched too
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from mcp_host.errors import BrowserError
from mcp_host.plugins import Plugin, PluginContext
from mcp_host.tools.native.browser import AddressGuard, Page
from mcp_host.tools.native.browser.fetch import Fetcher

ALLOW_PRIVATE_HINT = (
    "fetch only opens public addresses, so that a page cannot steer it to this machine's or the local "
    "network's services; the user can allow private addresses with `[plugins.fetch] allow_private_addresses = "
    "true` in settings.toml."
)
_TEXT_MEDIA = re.compile(r"^(text/.*|application/(json|xml|javascript|ecmascript|x-ndjson|[\w.+-]*\+(json|xml)))$")
_LINK_MARK = re.compile(r"【(\d+)†")


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    allow_private_addresses: bool = Field(
        default=False, description="Let fetch reach loopback, link-local and private addresses."
    )


class FetchError(Exception):
    """A page that cannot be fetched or shown; the message is for the model."""


plugin = Plugin("fetch", description="Fetch a web page as readable text.", config=Config)


def fetcher_for(config: Config) -> Fetcher:
    """The native browser's fetcher: every address checked, unless the config allows private ones."""
    return Fetcher() if config.allow_private_addresses else Fetcher(guard=AddressGuard(hint=ALLOW_PRIVATE_HINT))


async def read_url(fetcher: Fetcher, url: str, *, max_chars: int = 20_000, start: int = 0) -> str:
    """`url` as text: a header (title, address, which characters), the window, and the links within it.

    Raises `FetchError` for an address that is refused or fails, an HTTP error, or a body that is not text.
    """
    if not url.startswith(("http://", "https://")):
        raise FetchError(f"{url!r} is not a web address (http:// or https://)")
    try:
        response = await fetcher.get(url)
    except BrowserError as exc:
        raise FetchError(str(exc)) from exc
    address = str(response.url)
    media = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if media and not _TEXT_MEDIA.match(media):
        raise FetchError(f"{address} is {media}, not text; it is not shown")
    if "html" in media:
        page = Page.from_html(response.text, url=address)
        title, text, links = page.title, "\n".join(page.lines), page.links
    else:
        title, text, links = address, response.text, []
    if text and start >= len(text):
        raise FetchError(f"{address} has {len(text)} characters; start={start} is past the end")
    end = min(start + max_chars, len(text))
    window = text[start:end]
    where = f"Characters {start}-{end} of {len(text)}"
    if end < len(text):
        where += f"; more: fetch again with start={end}"
    parts = [f"Title: {title}", f"URL: {address}", where, "", window or "(empty)"]
    shown = sorted({int(number) for number in _LINK_MARK.findall(window) if int(number) < len(links)})
    if shown:
        parts += ["", "Links:", *(f"【{number}】 {links[number]}" for number in shown)]
    return "\n".join(parts)


def _config(ctx: PluginContext) -> Config:
    if isinstance(ctx.config, Config):
        return ctx.config
    return Config() if ctx.config is None else Config.model_validate(ctx.config, from_attributes=True)


@plugin.tool(read_only=True, open_world=True)
async def fetch(
    url: str,
    ctx: PluginContext,
    max_chars: Annotated[int, Field(ge=100, le=100_000)] = 20_000,
    start: Annotated[int, Field(ge=0)] = 0,
) -> str:
    """Fetch a web page (or a text or JSON file) by its URL and return it as readable text.

    Args:
        url: The address, starting with http:// or https://.
        max_chars: The most characters of the page's text to return.
        start: Where in the page's text to begin: 0, or the number a previous fetch said to continue from.
    """
    async with fetcher_for(_config(ctx)) as fetcher:
        return await read_url(fetcher, url, max_chars=max_chars, start=start)
