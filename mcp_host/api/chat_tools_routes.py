"""A session's tools switched between turns, and what tools cost in context (as `mcp-host render` counts it).

    GET   /v1/sessions/{id}/tools    {"servers", "plugins", "python", "browser", "budget": {...}}
    PATCH /v1/sessions/{id}/tools    {"servers": [..] | null, "plugins": [..] | null, "python", "browser"}
                                     (only the fields sent change; null: every server, the default plugins)
                                     -> the same answer as GET
    POST  /v1/tools/budget           {"servers"?, "plugins"?, "python"?, "browser"?, "reasoning_effort"?, "model"?}
                                     -> {"tool_tokens", "parts": [{"label", "tokens"}], "context_tokens", "share",
                                         "warning", "tools": [{"name", "server", "tokens", "offered"}], "selection",
                                         "choice": the servers and plugins in effect, as GET shows them}

A server named must be in mcp.json (enabled or not) and a plugin loaded here, else 400 naming it and those that
exist. A PATCH while a turn runs (here or on another server sharing the store) is 409, and so is one that lost a
race with another server's write to the session: it never undoes that write, and the session is read again from the
store. The change holds from the next turn on, for that session alone, and is written to its stored record, so the
session keeps it across a restart. Switching python or the browser on or off builds or closes that tool (python's
working directory goes with it); the conversation stays.
A budget's context is the model's (a session's own; `model`, else the default model, as the registry knows
it), else the settings' `prompt.context_tokens`.
"""

from __future__ import annotations

import functools
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mcp_host.agent.chat_tools import chosen_tools
from mcp_host.agent.prompt_budget import prompt_budget
from mcp_host.api.requests import BodyReader, SessionTools, ToolBudgetBody
from mcp_host.api.session import Session
from mcp_host.api.sessions import Sessions
from mcp_host.api.tool_choice import (
    budget_context,
    choice_json,
    chosen_plugins,
    chosen_servers,
    tool_choice_json,
)
from mcp_host.errors import ApiError, ChatBusyError, ChatClosedError, StoreConflictError
from mcp_host.host import Host
from mcp_host.prompt.harmony import HarmonyOptions, HarmonyRenderer
from mcp_host.tools.registry import ToolRegistry


class ChatToolRoutes:
    """Each session's choice of tools, and the context budget of a choice."""

    def __init__(self, sessions: Sessions, host: Host, reader: BodyReader) -> None:
        self.sessions = sessions
        self.host = host
        self.reader = reader
        self._renderer: HarmonyRenderer | None = None

    def routes(self) -> list[Route]:
        return [
            Route("/v1/sessions/{id}/tools", self.read, methods=["GET"]),
            Route("/v1/sessions/{id}/tools", self.change, methods=["PATCH"]),
            Route("/v1/tools/budget", self.budget, methods=["POST"]),
        ]

    async def read(self, request: Request) -> Response:
        session = await self.sessions.session_of(request)
        return JSONResponse(await self._answer(session))

    async def change(self, request: Request) -> Response:
        session = await self.sessions.session_of(request)
        body = await self.reader.read(request, SessionTools)
        sent, chat = body.model_fields_set, session.chat
        servers = chosen_servers(self.host, body.servers) if "servers" in sent else _sorted(chat.enabled_servers)
        plugins = chosen_plugins(self.host, body.plugins) if "plugins" in sent else _sorted(chat.enabled_plugins)
        harmony = chat.options.harmony
        python = body.python if "python" in sent else harmony.python
        browser = body.browser if "browser" in sent else harmony.browser
        async with session.writing:  # no turn is taken meanwhile: the tools change between turns only
            if session.busy:
                raise ApiError(409, f"session {session.id} is answering a message; change its tools when it ends")
            try:
                await chat.select_tools(servers=servers, plugins=plugins, browser=browser, python=python)
            except ChatBusyError as exc:
                raise ApiError(409, f"session {session.id}: {exc}") from exc
            except ChatClosedError as exc:
                raise ApiError(404, f"session {session.id} was closed meanwhile") from exc
            options = {
                **session.state.options,
                "servers": None if chat.options.servers is None else list(chat.options.servers),
                "plugins": None if chat.options.plugins is None else list(chat.options.plugins),
                "python": python,
                "browser": browser,
            }
            try:  # over the version read: never over a turn another server ran or runs meanwhile
                await self.sessions.ledger.edit(session.state, options=options)
            except StoreConflictError as exc:
                # This server's chat has the new tools, the record not: the next request brings it back as stored.
                self.sessions.drop(session)
                raise ApiError(
                    409, f"the tools of session {session.id} cannot be changed now: {exc}; read it again"
                ) from exc
        return JSONResponse(await self._answer(session))

    async def budget(self, request: Request) -> Response:
        body = await self.reader.read(request, ToolBudgetBody, empty=ToolBudgetBody())
        settings = self.host.settings
        servers = chosen_servers(self.host, body.servers)
        plugins = chosen_plugins(self.host, body.plugins)
        registry = chosen_tools(self.host.registry, self.host.plugins, servers=servers, plugins=plugins)
        options = HarmonyOptions(
            reasoning_effort=body.reasoning_effort or settings.prompt.reasoning_effort,
            browser=body.browser,
            python=body.python,
        )
        context = await budget_context(self.sessions.models, body.model, settings)
        choice = choice_json(self.host, servers, plugins, python=body.python, browser=body.browser)
        return JSONResponse({**await self._budget(registry, options, context), "choice": choice})

    async def _answer(self, session: Session) -> dict[str, Any]:
        chat = session.chat
        context = chat.backend.context_length or self.host.settings.prompt.context_tokens
        budget = await self._budget(chat.tool_registry(), chat.options.harmony, context)
        return {**tool_choice_json(self.host, chat), "budget": budget}

    async def _budget(self, registry: ToolRegistry, options: HarmonyOptions, context: int) -> dict[str, Any]:
        """Counted in a worker thread (a thousand tools take a fifth of a second), on a copy of the registry,
        which the event loop goes on changing as servers come and go."""
        if self._renderer is None:
            self._renderer = HarmonyRenderer()
        count = functools.partial(
            prompt_budget, registry.view(), self.host.settings, options, context_tokens=context, renderer=self._renderer
        )
        return (await anyio.to_thread.run_sync(count)).to_json()


def _sorted(names: set[str] | None) -> list[str] | None:
    return None if names is None else sorted(names)
