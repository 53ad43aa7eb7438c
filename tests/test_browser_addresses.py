"""The browser refuses loopback, link-local and private addresses: by name, by number, after a redirect, after DNS.

Real servers on 127.0.0.1 play the services a page must not reach. Where a test needs a "public" site, a name
like `public.test` resolves (through an injected resolver) to a server on 127.0.0.2 that the injected rules
treat as public, while 127.0.0.1 stays loopback: Linux routes all of 127.0.0.0/8 to this machine.
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path

import anyio
import httpx2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mcp_host.tools.native.browser import AddressGuard, BrowserError, BrowserSession, browser_tools
from mcp_host.tools.native.browser.addresses import refusal_reason
from mcp_host.tools.native.browser.fetch import Fetcher

pytestmark = pytest.mark.anyio

HINT = "`[browser] allow_private_addresses = true` in settings.toml"
PUBLIC_FOR_TESTS = IPv4Address("127.0.0.2")


@dataclass
class Site:
    """A real HTTP server; `seen` is every (Host header, path) it was asked for."""

    host: str
    port: int
    routes: dict[str, tuple[int, dict[str, str], str]]
    seen: list[tuple[str, str]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@contextmanager
def serve(
    host: str, routes: dict[str, tuple[int, dict[str, str], str]], port: int = 0, tls: ssl.SSLContext | None = None
) -> Iterator[Site]:
    site = Site(host, port, routes)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # connections may be kept alive, and so reused by a careless client

        def do_GET(self) -> None:  # noqa: N802 - the standard library's name
            site.seen.append((self.headers.get("Host", ""), self.path))
            status, headers, body = site.routes.get(self.path.split("?")[0], (404, {}, "not here"))
            self.send_response(status)
            for name, value in {"Content-Type": "text/html; charset=utf-8", **headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body.encode())))
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args: object) -> None:
            return None

    try:
        server = ThreadingHTTPServer((host, port), Handler)
    except OSError as exc:  # macOS routes only 127.0.0.1 unless 127.0.0.2 is aliased
        pytest.skip(f"cannot serve on {host}:{port}: {exc}")
    site.port = server.server_address[1]
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield site
    finally:
        server.shutdown()
        server.server_close()


def page(title: str) -> tuple[int, dict[str, str], str]:
    return 200, {}, f"<html><head><title>{title}</title></head><body><p>{title} text.</p></body></html>"


def redirect(location: str) -> tuple[int, dict[str, str], str]:
    return 302, {"Location": location}, ""


class Resolver:
    """Answers from a table (a list of answers is used one per call); records every question."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.asked.append(host)
        queue = self.answers.get(host)
        if not queue:
            raise OSError(f"no such name: {host}")
        return queue.pop(0) if len(queue) > 1 else queue[0]


def treat_test_address_as_public(address: IPv4Address | IPv6Address) -> str | None:
    return None if address == PUBLIC_FOR_TESTS else refusal_reason(address)


def self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    """A certificate for `name` that is its own authority, and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def recording_client(requests: list[httpx2.Request]) -> httpx2.AsyncClient:
    def handler(request: httpx2.Request) -> httpx2.Response:
        requests.append(request)
        return httpx2.Response(200, headers={"Content-Type": "text/plain"}, text="reached")

    return httpx2.AsyncClient(transport=httpx2.MockTransport(handler))


async def test_a_local_server_is_refused_by_default_and_sees_no_request() -> None:
    with serve("127.0.0.1", {"/": page("Admin")}) as local:
        tools = browser_tools(BrowserSession())
        result = await tools["browser.open"].call({"id": f"{local.url}/"})
        for tool in tools.values():
            await tool.aclose()
    assert result.is_error
    assert f"refused to open {local.url}/: 127.0.0.1 is a loopback address" in result.text and HINT in result.text
    assert local.seen == []


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://localhost:8321/", "loopback"),
        ("http://localhost./", "loopback"),
        ("http://api.localhost/", "loopback"),
        ("http://[::1]:8321/", "loopback"),
        ("http://0x7f000001/", "loopback"),
        ("http://2130706433/", "loopback"),
        ("http://0x7f.1/", "loopback"),
        ("http://127.1/", "loopback"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[fe80::1]/", "link-local"),
        ("http://10.0.0.1/", "private"),
        ("https://192.168.1.1/", "private"),
        ("http://[fd00::1]/", "private"),
        ("http://0.0.0.0:8321/", "unspecified"),
        ("http://100.64.0.1/", "shared"),
    ],
)
async def test_local_addresses_are_refused_without_resolving_or_connecting(url: str, reason: str) -> None:
    resolver = Resolver({})
    sent: list[httpx2.Request] = []
    async with Fetcher(guard=AddressGuard(resolver), client=recording_client(sent)) as fetcher:
        with anyio.fail_after(2), pytest.raises(BrowserError) as refused:
            await fetcher.get(url)
    assert reason in str(refused.value) and HINT in str(refused.value)
    assert resolver.asked == [] and sent == []


async def test_a_name_is_refused_when_any_of_its_addresses_is_private() -> None:
    resolver = Resolver({"mixed.test": [["93.184.215.14", "10.0.0.5"]]})
    sent: list[httpx2.Request] = []
    async with Fetcher(guard=AddressGuard(resolver), client=recording_client(sent)) as fetcher:
        with pytest.raises(BrowserError, match=r"mixed\.test resolves to 10\.0\.0\.5, a private address"):
            await fetcher.get("http://mixed.test/")
        with pytest.raises(BrowserError, match=r"could not resolve nowhere\.test"):
            await fetcher.get("http://nowhere.test/")
    assert resolver.asked == ["mixed.test", "nowhere.test"] and sent == []


async def test_a_public_name_is_sent_to_the_checked_address_with_its_name_in_host_and_tls() -> None:
    resolver = Resolver({"example.test": [["93.184.215.14"]]})
    sent: list[httpx2.Request] = []
    async with Fetcher(guard=AddressGuard(resolver), client=recording_client(sent)) as fetcher:
        response = await fetcher.get("https://example.test:8443/a?b=1")
    (request,) = sent
    assert (request.url.host, request.url.port, request.url.raw_path) == ("93.184.215.14", 8443, b"/a?b=1")
    assert request.headers["Host"] == "example.test:8443"
    assert request.extensions["sni_hostname"] == "example.test"
    assert str(response.url) == "https://example.test:8443/a?b=1" and response.text == "reached"


async def test_https_goes_to_the_checked_address_with_the_name_in_sni_and_the_certificate_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = self_signed(tmp_path, "public.test")
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the browser's own client trusts it, as it would a real CA
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    names: list[str | None] = []
    server_tls.sni_callback = lambda connection, name, context: names.append(name)
    with serve(str(PUBLIC_FOR_TESTS), {"/": page("Secure")}, tls=server_tls) as public:
        # Another name on the same address must not ride on the connection verified for public.test.
        answers = {"public.test": [[public.host]], "impostor.test": [[public.host]]}
        session = BrowserSession(guard=AddressGuard(Resolver(answers), treat_test_address_as_public))
        view = await session.open(id=f"https://public.test:{public.port}/")
        with pytest.raises(BrowserError, match="certificate verify failed"):
            await session.open(id=f"https://impostor.test:{public.port}/")
        await session.aclose()
    assert view.startswith(f"[0] Secure (https://public.test:{public.port}/)")
    assert names == ["public.test", "impostor.test"]
    assert public.seen == [(f"public.test:{public.port}", "/")]


async def test_a_redirect_to_loopback_is_refused_at_the_redirect() -> None:
    with serve("127.0.0.1", {"/secret": page("Secret")}) as secret:
        with serve(str(PUBLIC_FOR_TESTS), {"/go": redirect(f"{secret.url}/secret")}) as public:
            guard = AddressGuard(Resolver({"public.test": [[public.host]]}), treat_test_address_as_public)
            tools = browser_tools(BrowserSession(guard=guard))
            result = await tools["browser.open"].call({"id": f"http://public.test:{public.port}/go"})
            for tool in tools.values():
                await tool.aclose()
    assert result.is_error
    assert f"redirected to {secret.url}/secret, which was not followed" in result.text
    assert "127.0.0.1 is a loopback address" in result.text and HINT in result.text
    assert public.seen == [(f"public.test:{public.port}", "/go")]
    assert secret.seen == []


async def test_redirects_between_public_pages_are_followed_up_to_a_limit() -> None:
    routes = {"/hop": redirect("/page"), "/page": page("Landed"), "/loop": redirect("/loop")}
    with serve(str(PUBLIC_FOR_TESTS), routes) as public:
        guard = AddressGuard(Resolver({"public.test": [[public.host]]}), treat_test_address_as_public)
        session = BrowserSession(guard=guard)
        view = await session.open(id=f"http://public.test:{public.port}/hop")
        with pytest.raises(BrowserError, match="redirected more than 10 times"):
            await session.open(id=f"http://public.test:{public.port}/loop")
        await session.aclose()
    assert view.startswith(f"[0] Landed (http://public.test:{public.port}/page)")
    assert [path for _, path in public.seen] == ["/hop", "/page"] + ["/loop"] * 11


async def test_dns_rebinding_cannot_move_the_connection_to_loopback() -> None:
    # The name answers the public address first, then loopback: the connection must go to the answer checked.
    with serve(str(PUBLIC_FOR_TESTS), {"/": page("Public")}) as public:
        with serve("127.0.0.1", {"/": page("Secret")}, port=public.port) as secret:
            resolver = Resolver({"rebind.test": [[public.host], ["127.0.0.1"]]})
            session = BrowserSession(guard=AddressGuard(resolver, treat_test_address_as_public))
            view = await session.open(id=f"http://rebind.test:{public.port}/")
            await session.aclose()
    assert view.startswith(f"[0] Public (http://rebind.test:{public.port}/)")
    assert public.seen == [(f"rebind.test:{public.port}", "/")]
    assert secret.seen == [] and resolver.asked == ["rebind.test"]


async def test_allowing_private_addresses_fetches_the_local_page() -> None:
    with serve("127.0.0.1", {"/": page("Admin")}) as local:
        session = BrowserSession(allow_private_addresses=True)
        view = await session.open(id=f"{local.url}/")
        await session.aclose()
    assert view.startswith(f"[0] Admin ({local.url}/)")
    assert [path for _, path in local.seen] == ["/"]


async def test_the_configured_search_engine_may_be_local_but_its_results_are_checked() -> None:
    engine: dict[str, tuple[int, dict[str, str], str]] = {}
    with serve("127.0.0.1", engine) as local:
        results = [{"url": f"{local.url}/admin", "title": "Admin panel", "content": "A local page."}]
        engine["/search"] = (200, {"Content-Type": "application/json"}, json.dumps({"results": results}))
        engine["/admin"] = page("Admin")
        session = BrowserSession(search_url=local.url)
        found = await session.search("admin")
        with pytest.raises(BrowserError, match="127.0.0.1 is a loopback address"):
            await session.open(id=0)
        await session.aclose()
    assert "【0†Admin panel†127.0.0.1:" in found
    assert [path.split("?")[0] for _, path in local.seen] == ["/search"]


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("8.8.8.8", None),
        ("2606:4700::1111", None),
        ("::ffff:8.8.8.8", None),
        ("64:ff9b::808:808", None),  # NAT64 of 8.8.8.8
        ("64:ff9b::7f00:1", "loopback"),  # NAT64 of 127.0.0.1
        ("2002:7f00:1::1", "loopback"),  # 6to4 of 127.0.0.1
        ("::ffff:169.254.169.254", "link-local"),
        ("fec0::1", "site-local"),
        ("224.0.0.251", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "private"),
        ("::", "unspecified"),
    ],
)
def test_refusal_reasons(address: str, reason: str | None) -> None:
    assert refusal_reason(ip_address(address)) == reason
