"""The client's answers to what a session's turn asked: approvals of calls and elicitations, by id.

    POST /v1/sessions/{id}/approvals/{call_id}          {"decision": "allow"|"always"|"deny", "reason", "arguments"}
    POST /v1/sessions/{id}/elicitations/{elicitation_id} {"action": "accept"|"decline"|"cancel", "content": {...}}

An answer to something no longer pending (answered already, its call or turn ended) is 409; to something never
asked, 404. An approval given while the session's turn is interrupted (a restart) is kept in its record for the
resumed turn. See `mcp_host.api.sessions` for the whole API.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mcp_host.agent import ApprovalAnswer, ElicitationAnswer
from mcp_host.api.requests import ApprovalBody, BodyReader, ElicitationBody
from mcp_host.api.session import FindSession
from mcp_host.api.session_ledger import SessionLedger
from mcp_host.errors import ApiError, ElicitationInputError, UnknownApprovalError


def _not_pending(was_asked: bool, gone: str, never: str) -> ApiError:
    """An answer to nothing open: 409 when it was asked once (answered, or its turn ended), else 404."""
    return ApiError(409, gone) if was_asked else ApiError(404, never)


class SessionAnswers:
    """Hands the client's answers to the sessions' chats (or, for an interrupted turn, to its record)."""

    def __init__(self, find: FindSession, ledger: SessionLedger, reader: BodyReader) -> None:
        self.find = find
        self.ledger = ledger
        self.reader = reader

    def routes(self) -> list[Route]:
        return [
            Route("/v1/sessions/{id}/approvals/{call_id}", self.approve, methods=["POST"]),
            Route("/v1/sessions/{id}/elicitations/{elicitation_id}", self.answer_elicitation, methods=["POST"]),
        ]

    async def answer_elicitation(self, request: Request) -> Response:
        session = await self.find(request)
        elicitation_id = request.path_params["elicitation_id"]
        body = await self.reader.read(request, ElicitationBody)
        if elicitation_id not in session.questions:
            raise _not_pending(
                elicitation_id in session.asked,
                f"the elicitation {elicitation_id!r} in session {session.id} is no longer pending "
                "(it was answered, or its call or turn ended)",
                f"no elicitation {elicitation_id!r} was asked in session {session.id}",
            )
        try:
            session.chat.answer_elicitation(elicitation_id, ElicitationAnswer(body.action, body.content))
        except ElicitationInputError as exc:  # the question stays open: the client may answer again
            raise ApiError(400, f"the answer does not fit the server's form: {exc}", param="content") from exc
        except UnknownApprovalError as exc:  # the call ended between the check and the answer
            session.questions.pop(elicitation_id, None)
            raise ApiError(409, f"{exc} in session {session.id}") from exc
        session.questions.pop(elicitation_id, None)
        return JSONResponse({"elicitation_id": elicitation_id, "action": body.action})

    async def approve(self, request: Request) -> Response:
        session = await self.find(request)
        call_id = request.path_params["call_id"]
        body = await self.reader.read(request, ApprovalBody)
        if call_id not in session.pending:
            raise _not_pending(
                call_id in session.announced,
                f"the approval for {call_id!r} in session {session.id} is no longer pending "
                "(it was answered, or its turn ended): nothing was run",
                f"no approval was asked for {call_id!r} in session {session.id}",
            )
        session.pending.discard(call_id)
        if not session.busy and session.state.interrupted:  # kept for the resumed turn (POST .../resume)
            session.state.answers[call_id] = {
                "decision": body.decision,
                "reason": body.reason,
                "arguments": body.arguments,
            }
            async with session.writing:  # not between a rename's check and its write
                await self.ledger.save_interrupted(session.state)
            return JSONResponse(
                {"call_id": call_id, "decision": body.decision, "resume": f"/v1/sessions/{session.id}/resume"}
            )
        try:
            session.chat.answer(call_id, ApprovalAnswer(body.decision, reason=body.reason, arguments=body.arguments))
        except UnknownApprovalError as exc:  # the turn ended between the check and the answer
            raise ApiError(409, f"{exc} in session {session.id}: nothing was run") from exc
        return JSONResponse({"call_id": call_id, "decision": body.decision})
