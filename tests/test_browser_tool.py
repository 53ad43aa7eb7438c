"""The browser tool against real pages served on 127.0.0.1, and a local search endpoint in SearXNG's format.

The pages are on a loopback address, which the browser refuses by default (tests/test_browser_addresses.py):
these tests allow private addresses explicitly, as a user would in settings.toml.
"""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from mcp_host.agent import ApprovalRequired, ChatOptions, ToolCallResult, TurnCompleted
from mcp_host.backends import RecordedGeneration, ReplayBackend
from mcp_host.config.settings import load_settings
from mcp_host.host import Host
from mcp_host.prompt import HarmonyOptions, harmony_encoding
from mcp_host.tools.native.browser import BrowserSession, browser_tools
from tests.conftest import write_config

pytestmark = pytest.mark.anyio

LONG = "".join(f"<p>Paragraph {i} talks about topic {i % 7}.</p>" for i in range(400))
PAGES = {
    "/index.html": "<html><head><title>Home</title><script>var x = 1;</script></head><body><h1>Welcome</h1>"
    "<p>Read the <a href='/long.html'>long page</a> or the <a href='/faq.html'>FAQ</a>.</p></body></html>",
    "/long.html": f"<html><head><title>Long</title></head><body>{LONG}</body></html>",
    "/faq.html": "<html><head><title>FAQ</title></head><body><p>Q: Is MCP open? A: Yes, an open protocol.</p>"
    "<p>Harmony ends a message with &lt;|end|&gt; and a turn with &lt;|return|&gt;.</p></body></html>",
}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the standard library's name
        url = urlparse(self.path)
        if url.path == "/search":
            query = parse_qs(url.query)["q"][0]
            host = f"http://127.0.0.1:{self.server.server_address[1]}"
            body = json.dumps(
                {
                    "results": [
                        {"url": f"{host}/faq.html", "title": "FAQ about MCP", "content": f"Answers about {query}."},
                        {"url": f"{host}/long.html", "title": "A long page", "content": "Many paragraphs."},
                    ]
                }
            ).encode()
            kind = "application/json"
        elif url.path in PAGES:
            body, kind = PAGES[url.path].encode(), "text/html; charset=utf-8"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
async def browser(site: str) -> AsyncIterator[BrowserSession]:
    session = BrowserSession(search_url=site, view_tokens=200, allow_private_addresses=True)
    yield session
    await session.aclose()


async def test_open_shows_line_numbered_text_with_links_and_follows_them(browser: BrowserSession, site: str) -> None:
    view = await browser.open(id=f"{site}/index.html")
    assert view.startswith(f"[0] Home ({site}/index.html)\n**viewing lines [0 - 1] of 1**")
    assert "L0: Welcome" in view and "L1: Read the 【0†long page】 or the 【1†FAQ】." in view
    assert "var x" not in view  # scripts are not text
    faq = await browser.open(id=1)  # link 1 of the last page
    assert faq.startswith(f"[1] FAQ ({site}/faq.html)") and "an open protocol" in faq


async def test_long_pages_are_viewed_within_the_token_budget_and_scrolled(browser: BrowserSession, site: str) -> None:
    first = await browser.open(id=f"{site}/long.html")
    shown = [line for line in first.splitlines() if line.startswith("L")]
    assert 10 < len(shown) < 100 and sum(len(line.split()) + 1 for line in shown) <= 200
    assert "**viewing lines [0 - " in first and "of 399**" in first
    later = await browser.open(cursor=0, loc=350, num_lines=5)
    assert [line.split(":")[0] for line in later.splitlines() if line.startswith("L")] == [
        "L350",
        "L351",
        "L352",
        "L353",
        "L354",
    ]


async def test_find_and_citations(browser: BrowserSession, site: str) -> None:
    await browser.open(id=f"{site}/long.html")
    found = browser.find("topic 3")
    assert found.startswith("[1] Find results for `topic 3` in `Long`")
    assert "L3: Paragraph 3 talks about topic 3." in found and "L10: Paragraph 10" in found
    assert "No matches" in browser.find("nonexistent words")
    (citation,) = browser.citations("Paragraph three is about topic three 【0†L3-L4】.")
    assert (citation.cursor, citation.line_start, citation.line_end) == (0, 3, 4)
    assert (citation.url, citation.title) == (f"{site}/long.html", "Long")
    assert browser.citations("【9†L1】") == []  # no such page: not an annotation


async def test_search_goes_to_the_configured_engine(browser: BrowserSession, site: str) -> None:
    results = await browser.search("mcp", topn=5)
    assert results.startswith("[0] Search results for `mcp`")
    assert "【0†FAQ about MCP†127.0.0.1:" in results and "Answers about mcp." in results
    assert "an open protocol" in await browser.open(id=0)


async def test_errors_are_text_for_the_model(site: str) -> None:
    tools = browser_tools(BrowserSession(search_url=None, allow_private_addresses=True))
    unconfigured = await tools["browser.search"].call({"query": "x"})
    assert unconfigured.is_error and "Search is not configured" in unconfigured.text and "SearXNG" in unconfigured.text
    nothing_open = await tools["browser.find"].call({"pattern": "x"})
    assert nothing_open.is_error and "no page is open yet" in nothing_open.text
    missing = await tools["browser.open"].call({"id": f"{site}/missing.html"})
    assert missing.is_error and "answered HTTP 404" in missing.text
    assert (await tools["browser.open"].call({"id": "file:///etc/passwd"})).is_error
    for tool in tools.values():
        await tool.aclose()


async def test_the_loop_browses_and_the_answer_carries_citations(site: str, tmp_path: Path) -> None:
    config = write_config(tmp_path / "mcp.json", {})
    settings = tmp_path / "settings.toml"
    settings.write_text(
        f'[browser]\nsearch_url = "{site}"\nallow_private_addresses = true\n\n'
        '[permissions.tools]\n"browser.open" = "allow"\n'
    )
    encoding = harmony_encoding()
    outputs = [
        f'<|channel|>analysis to=browser.open<|message|>{{"id": "{site}/faq.html"}}<|call|>',
        "<|channel|>final<|message|>Yes, MCP is open 【0†L0】.<|return|>",
    ]
    backend = ReplayBackend(
        [RecordedGeneration([], list(encoding.encode(o, allowed_special="all")), "stop") for o in outputs]
    )
    async with Host(config, settings_path=settings) as host:
        chat = host.chat(backend, ChatOptions(harmony=HarmonyOptions(browser=True)))
        events = [event async for event in chat.send("Is MCP open?")]
        await chat.aclose()
    assert not [e for e in events if isinstance(e, ApprovalRequired)]  # allowed by the policy
    (result,) = [e for e in events if isinstance(e, ToolCallResult)]
    assert result.tool == "browser.open" and "an open protocol" in result.text
    rendered = encoding.decode(backend.prompts[1])
    assert "namespace browser {" in rendered
    assert f"<|start|>browser.open to=assistant<|channel|>analysis<|message|>[0] FAQ ({site}/faq.html)" in rendered
    (done,) = [e for e in events if isinstance(e, TurnCompleted)]
    assert done.answer == "Yes, MCP is open 【0†L0】."
    (annotation,) = done.annotations
    assert (annotation.url, annotation.title, annotation.line_start) == (f"{site}/faq.html", "FAQ", 0)
    assert done.answer[annotation.start : annotation.end] == "【0†L0】"


async def test_a_hosted_search_api_with_a_key_that_stays_secret(tmp_path: Path) -> None:
    seen: dict[str, str] = {}

    class Brave(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            seen["key"] = self.headers.get("X-Subscription-Token", "")
            body = json.dumps(
                {
                    "web": {
                        "results": [
                            {
                                "title": "MCP spec",
                                "url": "https://modelcontextprotocol.io",
                                "description": "The protocol.",
                            }
                        ]
                    }
                }
            )
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Brave)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        settings = tmp_path / "settings.toml"
        settings.write_text(
            f'[browser]\nsearch_api = "brave"\nsearch_url = "http://127.0.0.1:{server.server_address[1]}"\n'
            'search_api_key = "bsk-secret"\n'
        )
        loaded = load_settings(settings)
        assert "bsk-secret" not in repr(loaded) and "bsk-secret" not in str(loaded.browser)
        key = loaded.browser.search_api_key
        assert key is not None
        # The search engine is the user's choice: it is reached on loopback with private addresses refused.
        session = BrowserSession(
            search_url=loaded.browser.search_url, search_api="brave", search_api_key=key.get_secret_value()
        )
        results = await session.search("mcp")
        await session.aclose()
    finally:
        server.shutdown()
        server.server_close()
    assert seen["key"] == "bsk-secret"
    assert "【0†MCP spec†modelcontextprotocol.io】" in results and "The protocol." in results
