"""What keeps a web page from driving the API: the `Host`, `Origin` and `Content-Type` checks.

    middleware = [Middleware(BrowserGuard, allowed_hosts=["chat.internal"], allowed_origins=[])]

A page the user visits can send requests to 127.0.0.1 (a "simple" cross-origin POST needs no CORS
preflight when its body is `text/plain`), and through DNS rebinding it can even read the answers,
with a `Host` header naming the attacker's domain. So, with or without an API key:

- `Host` must be a loopback name (`localhost`, `*.localhost`, `127.x.x.x`, `[::1]`) or one the user
  allowed; any other is 421 Misdirected Request (a rebound name never reaches a route);
- a request that can change state (anything but GET, HEAD, OPTIONS) carrying an `Origin` must come
  from the same origin as its `Host` or from an origin the user allowed (`--cors-origin`): 403;
- a body must be `application/json` (or `application/*+json`): 415. A form or `text/plain` body is
  what a page can send without asking the browser first;
- a path under one of `own_origin_only` (the mcp.json editor's: it reads secrets and chooses the commands
  the host runs) answers no request with an `Origin` but the server's own, whatever the method and whatever
  `--cors-origin` allows: 403, before CORS adds any header (a web app trusted to chat is not trusted with that).

Clients that are not browsers (curl, the `openai` client, LM Studio's SDKs) send no `Origin` and pass.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_host.api.errors import error_response
from mcp_host.errors import ApiError

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class BrowserGuard:
    """A pure ASGI middleware (streamed responses pass through untouched) that refuses what browsers can forge."""

    def __init__(
        self,
        app: ASGIApp,
        allowed_hosts: Iterable[str] = (),
        allowed_origins: Iterable[str] = (),
        own_origin_only: Mapping[str, str] | None = None,
    ) -> None:
        """`own_origin_only`: path prefix -> why only the server's own pages may reach it (said in the 403)."""
        self.app = app
        self.allowed_hosts = frozenset(_host_name(host) for host in allowed_hosts)
        self.allowed_origins = frozenset(origin.rstrip("/").lower() for origin in allowed_origins)
        self.own_origin_only = dict(own_origin_only or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            refusal = self.refusal(scope)
            if refusal is not None:
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                    return
                await error_response(refusal)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def refusal(self, scope: Scope) -> ApiError | None:
        """Why this request is refused, or None."""
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        if not self.host_allowed(host):
            shown = host[:100] or "(none)"
            return ApiError(
                421,
                f"requests for host {shown!r} are refused: this server answers loopback names only "
                "(start it with --allow-host NAME to accept another)",
                code="host_not_allowed",
            )
        method = scope.get("method", "GET")
        origin = headers.get("origin")
        if origin is not None and not self.same_origin(origin, scope, host):
            path = scope.get("path", "")
            for prefix, why in self.own_origin_only.items():
                if path.startswith(prefix):
                    return ApiError(
                        403,
                        f"{prefix}… answers only the pages of this server and clients that send no Origin, not the "
                        f"web page at {origin[:100]!r}, even with --cors-origin: {why}",
                        code="cross_origin_refused",
                    )
        if method not in SAFE_METHODS and origin is not None and not self.origin_allowed(origin, scope, host):
            return ApiError(
                403,
                f"requests from the web page at {origin[:100]!r} are refused "
                "(start the server with --cors-origin ORIGIN to allow a web app)",
                code="origin_not_allowed",
            )
        if scope["type"] == "http" and method not in SAFE_METHODS and not _json_or_empty(headers):
            return ApiError(
                415,
                f"request bodies must be JSON (Content-Type: application/json), not {headers.get('content-type')!r}",
                code="unsupported_media_type",
            )
        return None

    def host_allowed(self, host: str) -> bool:
        name = _host_name(host)
        return bool(name) and (name in self.allowed_hosts or _is_loopback_name(name))

    def origin_allowed(self, origin: str, scope: Scope, host: str) -> bool:
        return origin.rstrip("/").lower() in self.allowed_origins or self.same_origin(origin, scope, host)

    def same_origin(self, origin: str, scope: Scope, host: str) -> bool:
        """Whether the page was served by this server."""
        scheme = "https" if scope.get("scheme") in ("https", "wss") else "http"
        return origin.rstrip("/").lower() == f"{scheme}://{host.lower()}"


def _host_name(host: str) -> str:
    """The name in a `Host` header, lower-cased, without the port or IPv6 brackets, or a trailing dot."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[1:end] if end > 0 else ""
    return host.rsplit(":", 1)[0].rstrip(".") if host.count(":") <= 1 else host


def _is_loopback_name(name: str) -> bool:
    if name == "localhost" or name.endswith(".localhost"):  # RFC 6761: always this machine
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _json_or_empty(headers: Headers) -> bool:
    """Whether the body is declared JSON, or there is no body and no type at all."""
    content_type = headers.get("content-type")
    if content_type is None:
        has_body = headers.get("content-length", "0") not in ("", "0") or "transfer-encoding" in headers
        return not has_body
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))
