"""Sessions: the host's full loop over HTTP, its events as Server-Sent Events, approvals answered by id.

    POST   /v1/sessions                              {"reasoning_effort", "instructions", "browser", "python"}
    POST   /v1/sessions/{id}/messages                {"content": "..."}  -> text/event-stream of loop events
    POST   /v1/sessions/{id}/approvals/{call_id}     {"decision": "allow"|"always"|"deny", "reason", "arguments"}
    GET    /v1/sessions/{id}                         history and state
    DELETE /v1/sessions/{id}

A second message while a turn runs is 409; a client that disconnects cancels its turn (generation and
tool calls, with the MCP cancellation).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from mcp_host.agent import ApprovalAnswer, ApprovalRequired, Chat, ChatOptions
from mcp_host.agent.events import TurnCompleted
from mcp_host.api.completions import EFFORTS, json_dumps
from mcp_host.api.errors import ApiError
from mcp_host.backends.base import Backend
from mcp_host.host import Host
from mcp_host.prompt.harmony import HarmonyOptions

Reader = Any  # async (request) -> object: the JSON body reader of the app


@dataclass
class Session:
    id: str
    chat: Chat
    created: int = field(default_factory=lambda: int(time.time()))
    pending: set[str] = field(default_factory=set)


class Sessions:
    """Every open session; their chats share the host's tools and the one backend."""

    def __init__(self, host: Host, backend: Backend, read_json: Reader) -> None:
        self.host = host
        self.backend = backend
        self.read_json = read_json
        self.sessions: dict[str, Session] = {}

    def routes(self) -> list[Route]:
        return [
            Route("/v1/sessions", self.create, methods=["POST"]),
            Route("/v1/sessions/{id}", self.read, methods=["GET"]),
            Route("/v1/sessions/{id}", self.delete, methods=["DELETE"]),
            Route("/v1/sessions/{id}/messages", self.message, methods=["POST"]),
            Route("/v1/sessions/{id}/approvals/{call_id}", self.approve, methods=["POST"]),
        ]

    def _get(self, request: Request) -> Session:
        session = self.sessions.get(request.path_params["id"])
        if session is None:
            raise ApiError(404, f"no session {request.path_params['id']!r}")
        return session

    async def create(self, request: Request) -> Response:
        raw = await request.body()
        body = await self.read_json(request) if raw else {}
        if not isinstance(body, dict):
            raise ApiError(400, "the request body must be a JSON object")
        effort = body.get("reasoning_effort", self.host.settings.prompt.reasoning_effort)
        if effort not in EFFORTS:
            raise ApiError(400, f"'reasoning_effort' must be one of {', '.join(EFFORTS)}", param="reasoning_effort")
        for flag in ("browser", "python"):
            if not isinstance(body.get(flag, False), bool):
                raise ApiError(400, f"'{flag}' must be true or false", param=flag)
        instructions = body.get("instructions")
        if instructions is not None and not isinstance(instructions, str):
            raise ApiError(400, "'instructions' must be a string", param="instructions")
        options = ChatOptions(
            harmony=HarmonyOptions(
                reasoning_effort=effort,
                instructions=instructions,
                browser=body.get("browser", False),
                python=body.get("python", False),
            )
        )
        session = Session(f"sess_{uuid.uuid4().hex[:20]}", self.host.chat(self.backend, options))
        self.sessions[session.id] = session
        return JSONResponse({"id": session.id, "object": "session", "created": session.created}, status_code=201)

    async def read(self, request: Request) -> Response:
        session = self._get(request)
        history = [message.to_dict() for message in session.chat.history] or session.chat.messages
        return JSONResponse(
            {
                "id": session.id,
                "object": "session",
                "created": session.created,
                "busy": session.chat.busy,
                "pending_approvals": sorted(session.pending),
                "history": history,
            }
        )

    async def delete(self, request: Request) -> Response:
        session = self._get(request)
        del self.sessions[session.id]
        await session.chat.aclose()
        return JSONResponse({"id": session.id, "object": "session", "deleted": True})

    async def message(self, request: Request) -> Response:
        session = self._get(request)
        body = await self.read_json(request)
        content = body.get("content") if isinstance(body, dict) else None
        if not isinstance(content, str) or not content:
            raise ApiError(400, "'content' must be a non-empty string", param="content")
        if session.chat.busy:
            raise ApiError(409, f"session {session.id} is answering a message; wait for turn.completed")
        session.chat.busy = True  # taken now, so a second request cannot slip in before the stream starts
        return StreamingResponse(
            self._events(session, content), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    async def _events(self, session: Session, content: str) -> AsyncIterator[str]:
        session.chat.busy = False  # send() takes it again, for the whole turn
        async for event in session.chat.send(content):
            if isinstance(event, ApprovalRequired):
                session.pending.add(event.call_id)
            yield f"event: {event.type}\ndata: {json_dumps(event.model_dump(mode='json'))}\n\n"
            if isinstance(event, TurnCompleted):
                session.pending.clear()

    async def approve(self, request: Request) -> Response:
        session = self._get(request)
        call_id = request.path_params["call_id"]
        if call_id not in session.pending:
            raise ApiError(404, f"no approval is pending for {call_id!r} in session {session.id}")
        body = await self.read_json(request)
        if not isinstance(body, dict) or body.get("decision") not in ("allow", "always", "deny"):
            raise ApiError(400, "'decision' must be allow, always or deny", param="decision")
        arguments = body.get("arguments")
        if arguments is not None and not isinstance(arguments, dict):
            raise ApiError(400, "'arguments' must be a JSON object", param="arguments")
        reason = body.get("reason")
        session.pending.discard(call_id)
        session.chat.answer(
            call_id,
            ApprovalAnswer(body["decision"], reason=reason if isinstance(reason, str) else None, arguments=arguments),
        )
        return JSONResponse({"call_id": call_id, "decision": body["decision"]})

    async def aclose(self) -> None:
        for session in list(self.sessions.values()):
            await session.chat.aclose()
        self.sessions.clear()
