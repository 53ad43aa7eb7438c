"""The web chat page: `GET /` and `GET /web/{name}`, from the same origin as the API it talks to.

    routes = WebChatRoutes().routes()

Only the files named in `ASSETS` are served (the page, its scripts and style sheets, read once from the
`mcp_host.web` package), each with a strict Content-Security-Policy: scripts and styles from this origin only,
no inline code, requests to this origin only, never framed. They are public (no API key): they hold no data,
and the page asks for the key itself.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mcp_host.errors import ApiError

PAGE = "index.html"
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
# The page's own files: index.html, its ES modules (app.js imports the others) and style sheets.
ASSETS = {
    entry.name: _TYPES[Path(entry.name).suffix]
    for entry in resources.files("mcp_host.web").iterdir()
    if Path(entry.name).suffix in _TYPES and entry.is_file()
} | {PAGE: "text/html; charset=utf-8"}
PUBLIC_PATHS = frozenset({"/", *(f"/web/{name}" for name in ASSETS if name != PAGE)})  # no API key needed
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-cache",
}


class WebChatRoutes:
    """The page and its assets, held in memory."""

    def __init__(self) -> None:
        folder = resources.files("mcp_host.web")
        self.files = {name: folder.joinpath(name).read_bytes() for name in ASSETS}

    def routes(self) -> list[Route]:
        return [
            Route("/", self.page, methods=["GET", "HEAD"]),
            Route("/web/{name}", self.asset, methods=["GET", "HEAD"]),
        ]

    @staticmethod
    def public(path: str) -> bool:
        """Whether `path` is one of the page's files, which need no API key."""
        return path in PUBLIC_PATHS

    async def page(self, request: Request) -> Response:
        return self._file(PAGE)

    async def asset(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in ASSETS or name == PAGE:
            raise ApiError(404, f"no web asset {name[:100]!r}")
        return self._file(name)

    def _file(self, name: str) -> Response:
        return Response(self.files[name], media_type=ASSETS[name], headers=SECURITY_HEADERS)
