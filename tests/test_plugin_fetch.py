"""The bundled `fetch` plugin against a real Starlette site on 127.0.0.1, under the native browser's address rules.

Loopback is not public, so the site is refused by default and fetched where the config allows private
addresses. For a redirect from a "public" site, a name (`public.test`) resolves through an injected
resolver to the site, whose address the injected rules treat as public; the redirect's target is judged
by the real rules.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv6Address
from typing import Any

import jsonschema
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from mcp_host.plugins import PluginContext
from mcp_host.tools.native.browser import AddressGuard
from mcp_host.tools.native.browser.addresses import refusal_reason
from mcp_host.tools.native.browser.fetch import Fetcher
from mcp_host.tools.spec import ToolResult
from tests.conftest import serve_app
from tests.test_plugin_files import load_plugin, plugin_tool

pytestmark = pytest.mark.anyio

fetch_plugin = load_plugin("fetch")
HOME = (
    "<html><head><title>Home</title><script>var secret = 1;</script></head><body><h1>Welcome</h1>"
    "<p>Read the <a href='/faq'>FAQ</a> or <a href='https://example.org/about'>about us</a>.</p></body></html>"
)


def site(seen: list[str]) -> Starlette:
    """Pages, data, a binary, a long text, and redirects; `seen` records every path asked for."""

    async def endpoint(request: Request) -> Response:
        path = request.url.path
        seen.append(path)
        if path == "/":
            return HTMLResponse(HOME)
        if path == "/data.json":
            return JSONResponse({"name": "mcp-host", "tools": [1, 2]})
        if path == "/logo.png":
            return Response(b"\x89PNG\r\n\x1a\n" + bytes(100), media_type="image/png")
        if path == "/long.txt":
            return PlainTextResponse("".join(f"{n:05d}\n" for n in range(10_000)))
        if path == "/hop":
            return RedirectResponse("/data.json")
        if path == "/go":
            return RedirectResponse(request.query_params["to"])
        return PlainTextResponse("not here", status_code=404)

    return Starlette(routes=[Route("/{path:path}", endpoint)])


async def call(arguments: dict[str, Any], config: Any = None) -> ToolResult:
    context = PluginContext(plugin="fetch", config=config)
    return await plugin_tool(fetch_plugin, "fetch").call(arguments, timeout_s=20, context=context)


ALLOW = {"allow_private_addresses": True}


async def test_a_local_site_is_refused_by_default_and_sees_no_request() -> None:
    seen: list[str] = []
    async with serve_app(site(seen)) as base:
        result = await call({"url": f"{base}/"})
    assert result.is_error
    assert "127.0.0.1 is a loopback address" in result.text
    assert "`[plugins.fetch] allow_private_addresses = true`" in result.text and "[browser]" not in result.text
    assert seen == []


async def test_html_becomes_text_with_its_links_listed_when_private_addresses_are_allowed() -> None:
    seen: list[str] = []
    async with serve_app(site(seen)) as base:
        result = await call({"url": f"{base}/"}, config=ALLOW)
    assert not result.is_error, result.text
    assert result.text.splitlines() == [
        "Title: Home",
        f"URL: {base}/",
        "Characters 0-41 of 41",
        "",
        "Welcome",
        "Read the 【0†FAQ】 or 【1†about us】.",
        "",
        "Links:",
        f"【0】 {base}/faq",
        "【1】 https://example.org/about",
    ]
    assert seen == ["/"]


async def test_json_comes_as_is_and_redirects_between_allowed_pages_are_followed() -> None:
    async with serve_app(site([])) as base:
        data = await call({"url": f"{base}/data.json"}, config=ALLOW)
        hopped = await call({"url": f"{base}/hop"}, config=ALLOW)
    body = data.text.split("\n\n", 1)[1]
    assert json.loads(body) == {"name": "mcp-host", "tools": [1, 2]}
    assert data.text.startswith(f"Title: {base}/data.json\nURL: {base}/data.json\n")
    assert hopped.text.startswith(f"Title: {base}/data.json\nURL: {base}/data.json\n")


async def test_long_text_comes_a_window_at_a_time() -> None:
    async with serve_app(site([])) as base:
        first = await call({"url": f"{base}/long.txt", "max_chars": 600}, config=ALLOW)
        later = await call({"url": f"{base}/long.txt", "max_chars": 600, "start": 59_700}, config=ALLOW)
        past = await call({"url": f"{base}/long.txt", "start": 60_000}, config=ALLOW)
    assert first.text.splitlines()[2] == "Characters 0-600 of 60000; more: fetch again with start=600"
    assert first.text.splitlines()[4:6] == ["00000", "00001"]
    assert later.text.splitlines()[2] == "Characters 59700-60000 of 60000"
    assert later.text.splitlines()[-1] == "09999"
    assert past.is_error and "start=60000 is past the end" in past.text


async def test_errors_binaries_and_other_schemes_are_error_results() -> None:
    async with serve_app(site([])) as base:
        missing = await call({"url": f"{base}/missing"}, config=ALLOW)
        image = await call({"url": f"{base}/logo.png"}, config=ALLOW)
    assert missing.is_error and f"{base}/missing answered HTTP 404" in missing.text
    assert image.is_error and "is image/png, not text" in image.text
    for url in ("file:///etc/passwd", "ftp://example.com/x", "example.com"):
        result = await call({"url": url}, config=ALLOW)
        assert result.is_error and "is not a web address" in result.text


class Resolver:
    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        if host not in self.answers:
            raise OSError(f"no such name: {host}")
        return [self.answers[host]]


def treat_ipv4_loopback_as_public(address: IPv4Address | IPv6Address) -> str | None:
    return None if address == IPv4Address("127.0.0.1") else refusal_reason(address)


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("http://localhost:{port}/data.json", "names this machine (loopback)"),
        ("http://[::ffff:127.0.0.1]:{port}/data.json", "::ffff:7f00:1, a loopback address"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
        ("http://10.0.0.1/admin", "10.0.0.1 is a private address"),
    ],
)
async def test_a_redirect_to_a_private_address_is_refused(target: str, reason: str) -> None:
    seen: list[str] = []
    async with serve_app(site(seen)) as base:
        port = base.rsplit(":", 1)[1]
        guard = AddressGuard(Resolver({"public.test": "127.0.0.1"}), treat_ipv4_loopback_as_public)
        url = f"http://public.test:{port}/go?to={target.format(port=port)}"
        async with Fetcher(guard=guard) as fetcher:
            landed = await fetch_plugin.read_url(fetcher, f"http://public.test:{port}/hop")
            with pytest.raises(fetch_plugin.FetchError) as refused:
                await fetch_plugin.read_url(fetcher, url)
    assert landed.startswith(f"Title: http://public.test:{port}/data.json")
    assert "which was not followed" in str(refused.value) and reason in str(refused.value)
    assert seen == ["/hop", "/data.json", "/go"]  # the private target was never asked


def test_the_tool_reads_only_from_the_open_world_and_its_schema_validates() -> None:
    tool = plugin_tool(fetch_plugin, "fetch")
    assert tool.spec.name == "fetch.fetch"
    assert tool.spec.annotations == {
        "readOnlyHint": True,
        "destructiveHint": False,
        "idempotentHint": False,
        "openWorldHint": True,
    }
    schema = tool.spec.original_schema
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate({"url": "https://example.com/", "max_chars": 5000, "start": 100}, schema)
    for invalid in ({}, {"url": "https://example.com/", "max_chars": 10}, {"url": "x", "start": -1}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(invalid, schema)
    assert fetch_plugin.Config().allow_private_addresses is False
