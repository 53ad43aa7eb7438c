"""The API key check: a pure ASGI middleware, so streamed responses pass through untouched."""

from __future__ import annotations

import hmac
from collections.abc import Callable

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_host.api.errors import error_response
from mcp_host.errors import ApiError


class ApiKeyMiddleware:
    """Answers 401 to every HTTP request without `Authorization: Bearer <api_key>` (compared in constant time).

    A GET or HEAD of a path `public` accepts passes without it: the web chat's static files, which hold no
    data (the page asks for the key, and sends it with each API request).
    """

    def __init__(self, app: ASGIApp, api_key: str, public: Callable[[str], bool] = lambda path: False) -> None:
        self.app = app
        self._key = api_key.encode()
        self._public = public

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self._open(scope) and not self._authorised(Headers(scope=scope)):
            refusal = ApiError(401, "a valid API key is required (Authorization: Bearer ...)", code="invalid_api_key")
            await error_response(refusal)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _open(self, scope: Scope) -> bool:
        return scope.get("method") in ("GET", "HEAD") and self._public(scope["path"])

    def _authorised(self, headers: Headers) -> bool:
        given = headers.get("authorization", "").removeprefix("Bearer ").strip()
        return hmac.compare_digest(given.encode(), self._key)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(app={self.app!r}, api_key='**********')"
