"""Web pages as gpt-oss's browser shows them: wrapped text lines, links as `【id†text】`.

page = Page.from_html(html, url="http://127.0.0.1:8000/a.html")
page.lines[0], page.links[0]    # 'Welcome 【0†Next page】', 'http://127.0.0.1:8000/b.html'
"""

from __future__ import annotations

import html
import re
import textwrap
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin

WRAP = 100
_BLOCKS = frozenset(
    {
        "p",
        "div",
        "br",
        "li",
        "ul",
        "ol",
        "tr",
        "table",
        "section",
        "article",
        "header",
        "footer",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "pre",
        "blockquote",
        "hr",
        "dt",
        "dd",
        "main",
        "nav",
    }
)
_SKIPPED = frozenset({"script", "style", "noscript", "template", "svg", "head"})


@dataclass
class Page:
    """A fetched (or synthesised) page: its title, address, text lines and link targets by id."""

    url: str
    title: str
    lines: list[str]
    links: list[str] = field(default_factory=list)

    @classmethod
    def from_html(cls, markup: str, *, url: str) -> Page:
        parser = _TextExtractor(url)
        parser.feed(markup)
        parser.close()
        return cls(url=url, title=parser.title.strip() or url, lines=_wrap(parser.text()), links=parser.links)

    @classmethod
    def from_text(cls, text: str, *, url: str, title: str | None = None) -> Page:
        return cls(url=url, title=title or url, lines=_wrap(text))


class _TextExtractor(HTMLParser):
    def __init__(self, base: str) -> None:
        super().__init__(convert_charrefs=True)
        self.base = base
        self.parts: list[str] = []
        self.links: list[str] = []
        self.title = ""
        self._skip = 0
        self._in_title = False
        self._href: str | None = None
        self._anchor: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED:
            self._skip += 1
        elif tag == "title":
            self._in_title = True
        elif tag == "a":
            href = dict(attrs).get("href")
            if href and not href.startswith(("javascript:", "#")):
                self._href, self._anchor = urljoin(self.base, href), []
        if tag in _BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            self._skip = max(self._skip - 1, 0)
        elif tag == "title":
            self._in_title = False
        elif tag == "a" and self._href is not None:
            text = " ".join("".join(self._anchor).split()) or self._href
            self.parts.append(f"【{len(self.links)}†{text}】")
            self.links.append(self._href)
            self._href = None
        if tag in _BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif self._skip:
            return
        elif self._href is not None:
            self._anchor.append(data)
        else:
            self.parts.append(data)

    def text(self) -> str:
        return html.unescape("".join(self.parts))


def _wrap(text: str) -> list[str]:
    lines: list[str] = []
    for paragraph in re.split(r"\n\s*\n|\n", text):
        collapsed = " ".join(paragraph.split())
        if collapsed:
            lines.extend(textwrap.wrap(collapsed, WRAP, break_long_words=False, break_on_hyphens=False) or [""])
    return lines
