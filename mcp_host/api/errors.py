"""Errors as OpenAI sends them: `{"error": {"message", "type", "code", "param"}}` with the right status."""

from __future__ import annotations

from starlette.responses import JSONResponse

from mcp_host.errors import McpHostError

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "invalid_request_error",
    500: "server_error",
    502: "server_error",
    503: "server_error",
}


class ApiError(McpHostError):
    """An error answered to the client; `status` is the HTTP status."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.param = param
        self.code = code

    def response(self) -> JSONResponse:
        body = {
            "error": {
                "message": str(self),
                "type": _TYPES.get(self.status, "server_error"),
                "param": self.param,
                "code": self.code,
            }
        }
        return JSONResponse(body, status_code=self.status)
