"""GET one web resource: redirects followed a hop at a time, each hop's address checked, the body capped.

    async with Fetcher(guard=AddressGuard()) as fetcher:
        response = await fetcher.get("https://example.com/")   # `response.url`: the last hop, as named

With a guard, every hop's host is resolved and checked before anything connects, and the request is
sent to the checked address itself: the name stays in the Host header and in TLS (SNI, and the
certificate is checked against it), so nothing resolves the name a second time and a DNS answer that
changes between the check and the connection (rebinding) cannot redirect it. Without a guard (the
search engine the user configured, or when the user allows private addresses) requests go out as
httpx2 sends them.
"""

from __future__ import annotations

import contextlib
from http.cookiejar import CookieJar, DefaultCookiePolicy

import httpx2
from anyio.abc import AsyncResource

from mcp_host.errors import BrowserError
from mcp_host.tools.native.browser.addresses import AddressGuard, IPAddress, numeric_address

MAX_PAGE_BYTES = 5_000_000
MAX_REDIRECTS = 10
USER_AGENT = "mcp-host-browser/0.1"
# The body handed on is already decoded: these headers would make httpx2 decode it again.
_ENCODING_HEADERS = ("content-encoding", "content-length", "transfer-encoding")


class Fetcher(AsyncResource):
    """An HTTP client for the browser; `get` raises `BrowserError` with text for the model, never httpx2's errors.

    Without `client`, one is made to fit: with a guard it keeps no connection alive and no cookie (see
    `_new_client`). A client passed in is used as it is.
    """

    def __init__(
        self,
        *,
        guard: AddressGuard | None = None,
        client: httpx2.AsyncClient | None = None,
        max_redirects: int = MAX_REDIRECTS,
        max_bytes: int = MAX_PAGE_BYTES,
    ) -> None:
        self._guard = guard
        self._client = client or _new_client(pinned=guard is not None)
        self.max_redirects = max_redirects
        self.max_bytes = max_bytes

    async def aclose(self) -> None:
        await self._client.aclose()  # idempotent

    async def get(
        self, url: str, *, params: dict[str, str] | None = None, headers: dict[str, str] | None = None
    ) -> httpx2.Response:
        """The response to GET `url` once redirects are followed; `headers` go to `url`'s origin, no further."""
        try:
            request = self._client.build_request("GET", url, params=params, headers=headers)
        except httpx2.InvalidURL as exc:
            raise BrowserError(f"{url!r} is not a valid web address ({exc})") from exc
        origin = request.url
        for hop in range(self.max_redirects + 1):
            try:
                streamed = await self._send(request)
            except BrowserError as exc:
                if not hop:
                    raise
                raise BrowserError(f"{origin} redirected to {request.url}, which was not followed: {exc}") from exc
            except httpx2.HTTPError as exc:
                raise BrowserError(f"could not fetch {request.url}: {type(exc).__name__}: {exc}") from exc
            try:
                if not streamed.has_redirect_location:
                    return await self._read(request, streamed)
                location = streamed.headers["Location"]
            finally:
                await streamed.aclose()
            request = self._next_request(request, location)
            if headers and _same_origin(request.url, origin):
                request.headers.update(headers)
        raise BrowserError(f"{origin} redirected more than {self.max_redirects} times; not followed")

    async def _send(self, request: httpx2.Request) -> httpx2.Response:
        if self._guard is None:
            return await self._client.send(request, stream=True)
        *others, last = await self._guard.check(request.url)
        for address in others:  # the resolver's order; the next one only when this one refuses the connection
            with contextlib.suppress(httpx2.ConnectError):
                return await self._client.send(_pinned(request, address), stream=True)
        return await self._client.send(_pinned(request, last), stream=True)

    async def _read(self, request: httpx2.Request, streamed: httpx2.Response) -> httpx2.Response:
        body = bytearray()
        try:  # capped, so a huge response cannot exhaust the host
            async for chunk in streamed.aiter_bytes():
                body += chunk
                if len(body) > self.max_bytes:
                    raise BrowserError(f"{request.url} is larger than {self.max_bytes // 1_000_000} MB; not loaded")
        except httpx2.HTTPError as exc:
            raise BrowserError(f"could not fetch {request.url}: {type(exc).__name__}: {exc}") from exc
        if streamed.status_code >= 400:
            raise BrowserError(f"{request.url} answered HTTP {streamed.status_code}")
        kept = {k: v for k, v in streamed.headers.items() if k.lower() not in _ENCODING_HEADERS}
        # `request` is the one as named (not the pinned one), so the page's URL is the name, not an address.
        return httpx2.Response(streamed.status_code, headers=kept, content=bytes(body), request=request)

    def _next_request(self, request: httpx2.Request, location: str) -> httpx2.Request:
        try:
            url = request.url.join(location)
        except httpx2.InvalidURL as exc:
            raise BrowserError(f"{request.url} redirected to {location!r}, not a valid web address") from exc
        if url.scheme not in ("http", "https"):
            raise BrowserError(f"{request.url} redirected to {url}, not a web address (http:// or https://)")
        return self._client.build_request("GET", url)


def _pinned(request: httpx2.Request, address: IPAddress) -> httpx2.Request:
    """`request` sent to `address`, keeping the Host header it was built with (the name)."""
    extensions = dict(request.extensions)
    if numeric_address(request.url.host) is None:  # TLS names the host (SNI) and checks the certificate against it
        extensions["sni_hostname"] = request.url.raw_host.decode("ascii")
    return httpx2.Request(
        request.method, request.url.copy_with(host=str(address)), headers=request.headers, extensions=extensions
    )


def _same_origin(url: httpx2.URL, other: httpx2.URL) -> bool:
    return (url.scheme, url.host, url.port) == (other.scheme, other.host, other.port)


def _new_client(*, pinned: bool) -> httpx2.AsyncClient:
    if not pinned:
        return httpx2.AsyncClient(timeout=httpx2.Timeout(15.0), headers={"User-Agent": USER_AGENT})
    # Pinned requests are made to addresses, not names: a kept-alive connection (verified for one name) or
    # a cookie (stored under the address) would be shared by every site behind that address.
    return httpx2.AsyncClient(
        timeout=httpx2.Timeout(15.0),
        headers={"User-Agent": USER_AGENT},
        limits=httpx2.Limits(max_keepalive_connections=0),
        cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
    )
