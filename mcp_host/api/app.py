"""The HTTP chat API: a Starlette app built from its dependencies.

    app = create_app(host, registry_or_backend, api_key=None, store=store)
    uvicorn.run(app, host="127.0.0.1", port=8080)

Endpoints: `GET /v1/models`, `POST /v1/chat/completions` (OpenAI-compatible, streaming and not, with
client tools or the host's own), OpenAI's Responses API (`POST /v1/responses`, `GET`/`DELETE /v1/responses/{id}`:
`mcp_host.api.responses`), LM Studio 0.4's `POST /api/v1/chat` with its integrations, `GET /api/v1/models`,
`POST /api/v1/models/load|unload` (`mcp_host.api.lmstudio_v1`), LM Studio's `/api/v0/models` and
`/api/v0/chat/completions` (with `stats`), text completions and embeddings (`POST /v1/completions`,
`POST /v1/embeddings`, LM Studio's `/api/v0/completions` and `/api/v0/embeddings`: `mcp_host.api.text_routes`),
the sessions of `mcp_host.api.sessions` (`POST /v1/sessions/{id}/resume` goes on with a turn a restart
interrupted), `GET /v1/tools`, `GET /v1/servers`, `POST /v1/servers/{name}/restart`, and each server's
resources, prompts, completion, log and roots (`mcp_host.api.feature_routes`), the mcp.json editor's
`GET`/`PUT /v1/config/mcp.json` and `POST /v1/config/mcp.json/validate` (`mcp_host.api.config_routes`), and the
web chat page at `GET /` (`mcp_host.api.web_routes`). Request bodies are the models
of `mcp_host.api.requests`; errors are OpenAI-shaped, answered by the handlers of `mcp_host.api.errors`.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator, Sequence

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from mcp_host.api.auth import ApiKeyMiddleware
from mcp_host.api.chat_tools_routes import ChatToolRoutes
from mcp_host.api.config_routes import ConfigRoutes
from mcp_host.api.errors import EXCEPTION_HANDLERS
from mcp_host.api.feature_routes import ServerFeatureRoutes
from mcp_host.api.guard import BrowserGuard
from mcp_host.api.lmstudio import LMStudioV0Routes
from mcp_host.api.lmstudio_v1 import LMStudioV1Routes
from mcp_host.api.openai_routes import Completer, OpenAIRoutes
from mcp_host.api.requests import BodyReader
from mcp_host.api.responses import ResponsesRoutes
from mcp_host.api.session_ledger import LEASE_S as SESSION_LEASE_S
from mcp_host.api.session_ledger import SessionLedger
from mcp_host.api.sessions import IDLE_EXPIRY_S, Sessions
from mcp_host.api.streaming import PING_S
from mcp_host.api.text_routes import TextRoutes
from mcp_host.api.tool_routes import ToolRoutes
from mcp_host.api.web_routes import WebChatRoutes
from mcp_host.backends.base import Backend, ChatBackend
from mcp_host.backends.registry import ModelRegistry
from mcp_host.host import Host
from mcp_host.prompt.harmony import HarmonyRenderer
from mcp_host.store import Store
from mcp_host.store.records import KindRecords

MAX_BODY_BYTES = 8 * 1024 * 1024


def create_app(
    host: Host,
    models: ModelRegistry | Backend | ChatBackend,
    *,
    api_key: str | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    renderer: HarmonyRenderer | None = None,
    cors_origins: Sequence[str] | None = None,
    allowed_hosts: Sequence[str] = (),
    sse_ping_s: float = PING_S,
    session_idle_s: float = IDLE_EXPIRY_S,
    unattended_calls: bool = False,
    store: Store | None = None,
    session_lease_s: float = SESSION_LEASE_S,
) -> Starlette:
    """The API over a running `host` and its `models` (a registry, or one loaded backend: shared by every
    request, generations queued fairly). The app's lifespan enters the registry.

    Only requests for a loopback `Host` or one of `allowed_hosts` are answered, and only JSON bodies;
    a browser page may change state only from the API's own origin or one of `cors_origins`, which
    also turns CORS on for them, except the mcp.json editor's, which answers its own origin only
    (`mcp_host.api.guard`). Every event stream sends a comment each
    `sse_ping_s` seconds, so that proxies keep a waiting stream open. A session nobody used for
    `session_idle_s` seconds is closed (its chat; with a `store` its record stays, and using it again
    brings it back). With a `store`, sessions survive a restart: a turn that was running when the server
    died is reported interrupted after `session_lease_s`, and can be resumed; the threads of `/api/v1/chat` and the
    stored responses of `/v1/responses` are kept there too (without one, in memory).
    """
    if not isinstance(models, ModelRegistry):  # one backend, owned by the caller
        models = ModelRegistry(discover=list, preloaded=models)
    registry = models
    reader = BodyReader(max_body_bytes)
    completer = Completer(registry, renderer or HarmonyRenderer(), ping_s=sse_ping_s)
    ledger = SessionLedger(store, lease_s=session_lease_s)
    sessions = Sessions(host, registry, reader, ping_s=sse_ping_s, idle_expiry_s=session_idle_s, ledger=ledger)
    responses = ResponsesRoutes(
        host,
        registry,
        reader,
        completer.renderer,
        ping_s=sse_ping_s,
        unattended=unattended_calls,
        store=KindRecords(store, "response") if store is not None else None,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # What exists at start-up (modules, the vocabulary, the model's tables) lives as long as the server:
        # kept out of the collector's full passes, which otherwise stalled the event loop for ~65 ms under load.
        gc.collect()
        gc.freeze()
        try:
            # At shutdown every session's chat and live response turn closes (the host stops its servers).
            async with registry, sessions, responses:
                yield
        finally:
            gc.unfreeze()

    middleware = [
        Middleware(
            BrowserGuard,
            allowed_hosts=allowed_hosts,
            allowed_origins=cors_origins or (),
            own_origin_only=ConfigRoutes.OWN_ORIGIN_ONLY,
        )
    ]
    if cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(cors_origins),
                allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                allow_headers=["authorization", "content-type"],
            )
        )
    if api_key is not None:
        middleware.append(Middleware(ApiKeyMiddleware, api_key=api_key, public=WebChatRoutes.public))
    routes = [
        *OpenAIRoutes(host, registry, reader, completer, unattended=unattended_calls).routes(),
        *LMStudioV0Routes(registry, reader, completer).routes(),
        *LMStudioV1Routes(
            host,
            registry,
            reader,
            completer.renderer,
            unattended=unattended_calls,
            ping_s=sse_ping_s,
            threads=KindRecords(store, "thread") if store is not None else None,
        ).routes(),
        *TextRoutes(registry, reader, completer.renderer, ping_s=sse_ping_s).routes(),
        *ToolRoutes(host).routes(),
        *ServerFeatureRoutes(host, reader).routes(),
        *ConfigRoutes(host, reader).routes(),
        *sessions.routes(),
        *ChatToolRoutes(sessions, host, reader).routes(),
        *responses.routes(),
        *WebChatRoutes().routes(),
    ]
    app = Starlette(
        routes=routes, middleware=middleware, lifespan=lifespan, exception_handlers=dict(EXCEPTION_HANDLERS)
    )
    app.state.sessions = sessions
    app.state.models = registry
    return app
