"""The HTTP chat API: a Starlette app built from its dependencies.

    app = create_app(host, backend, api_key=None)
    uvicorn.run(app, host="127.0.0.1", port=8080)

Endpoints: `GET /v1/models`, `POST /v1/chat/completions` (OpenAI-compatible, streaming and not, with
client tools or the host's own), LM Studio's `/api/v0/models` and `/api/v0/chat/completions` (with
`stats`), the sessions of `mcp_host.api.sessions`, `GET /v1/tools`, `GET /v1/servers`,
`POST /v1/servers/{name}/restart`, and each server's resources, prompts, completion, log and roots
(`mcp_host.api.feature_routes`). Request bodies are the models of `mcp_host.api.requests`; errors
are OpenAI-shaped, answered by the handlers of `mcp_host.api.errors`.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator, Sequence

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from mcp_host.api.auth import ApiKeyMiddleware
from mcp_host.api.errors import EXCEPTION_HANDLERS
from mcp_host.api.feature_routes import ServerFeatureRoutes
from mcp_host.api.guard import BrowserGuard
from mcp_host.api.lmstudio import LMStudioV0Routes
from mcp_host.api.openai_routes import Completer, OpenAIRoutes
from mcp_host.api.requests import BodyReader
from mcp_host.api.sessions import IDLE_EXPIRY_S, Sessions
from mcp_host.api.streaming import PING_S
from mcp_host.api.tool_routes import ToolRoutes
from mcp_host.backends.base import Backend, ChatBackend
from mcp_host.host import Host
from mcp_host.prompt.harmony import HarmonyRenderer

MAX_BODY_BYTES = 8 * 1024 * 1024


def create_app(
    host: Host,
    backend: Backend | ChatBackend,
    *,
    api_key: str | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    renderer: HarmonyRenderer | None = None,
    cors_origins: Sequence[str] | None = None,
    allowed_hosts: Sequence[str] = (),
    sse_ping_s: float = PING_S,
    session_idle_s: float = IDLE_EXPIRY_S,
) -> Starlette:
    """The API over a running `host` and a loaded `backend` (shared by every request, queued fairly).

    Only requests for a loopback `Host` or one of `allowed_hosts` are answered, and only JSON bodies;
    a browser page may change state only from the API's own origin or one of `cors_origins`, which
    also turns CORS on for them (`mcp_host.api.guard`). Every event stream sends a comment each
    `sse_ping_s` seconds, so that proxies keep a waiting stream open. A session nobody used for
    `session_idle_s` seconds is closed.
    """
    reader = BodyReader(max_body_bytes)
    completer = Completer(backend, renderer or HarmonyRenderer(), ping_s=sse_ping_s)
    sessions = Sessions(host, backend, reader, ping_s=sse_ping_s, idle_expiry_s=session_idle_s)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # What exists at start-up (modules, the vocabulary, the model's tables) lives as long as the server:
        # kept out of the collector's full passes, which otherwise stalled the event loop for ~65 ms under load.
        gc.collect()
        gc.freeze()
        try:
            async with sessions:  # at shutdown every session's chat closes (the host stops its servers)
                yield
        finally:
            gc.unfreeze()

    middleware = [Middleware(BrowserGuard, allowed_hosts=allowed_hosts, allowed_origins=cors_origins or ())]
    if cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(cors_origins),
                allow_methods=["GET", "POST", "PUT", "DELETE"],
                allow_headers=["authorization", "content-type"],
            )
        )
    if api_key is not None:
        middleware.append(Middleware(ApiKeyMiddleware, api_key=api_key))
    routes = [
        *OpenAIRoutes(host, backend, reader, completer).routes(),
        *LMStudioV0Routes(backend, reader, completer).routes(),
        *ToolRoutes(host).routes(),
        *ServerFeatureRoutes(host, reader).routes(),
        *sessions.routes(),
    ]
    app = Starlette(
        routes=routes, middleware=middleware, lifespan=lifespan, exception_handlers=dict(EXCEPTION_HANDLERS)
    )
    app.state.sessions = sessions
    return app
