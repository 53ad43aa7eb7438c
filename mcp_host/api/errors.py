"""Errors as OpenAI sends them: `{"error": {"message", "type", "code", "param"}}` with the right status.

    return error_response(ApiError(404, "no such session"))
    raise server_api_error(exc) from exc    # a ServerError: 404 unknown, 503 not ready, 502 failed

`ApiError` itself lives in `mcp_host.errors` (which imports no web framework); this module turns it
into a Starlette response.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ExceptionHandler

from mcp_host.errors import ApiError as ApiError
from mcp_host.errors import (
    BackendError,
    ModelNotFoundError,
    NeedsLoginError,
    ServerError,
    ServerNotReadyError,
    TemplateError,
    UnknownServerError,
    UnsupportedFeatureError,
)


def error_response(error: ApiError) -> JSONResponse:
    """The JSON response for `error`: OpenAI's error object, with the error's HTTP status."""
    return JSONResponse(error.body(), status_code=error.status)


def server_api_error(error: ServerError, *, failed_status: int = 502, param: str | None = None) -> ApiError:
    """What a client is told when a server's feature fails: unknown 404, not ready (or not logged in) 503,
    a failed request `failed_status` (502: the server failed; a caller may say the request named bad input)."""
    if isinstance(error, UnknownServerError):
        return ApiError(404, str(error), param=param, code="unknown_server")
    if isinstance(error, ServerNotReadyError | NeedsLoginError):
        return ApiError(503, str(error), param=param, code="server_not_ready")
    return ApiError(failed_status, str(error), param=param, code="server_request_failed")


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc)


async def _backend_error(request: Request, exc: Exception) -> Response:
    return error_response(ApiError(502, f"the model failed: {exc}"))


async def _model_not_found(request: Request, exc: Exception) -> Response:
    return error_response(ApiError(404, str(exc), param="model", code="model_not_found"))


async def _unsupported(request: Request, exc: Exception) -> Response:
    return error_response(ApiError(400, str(exc), param="model", code="unsupported_by_model"))


async def _template_error(request: Request, exc: Exception) -> Response:
    return error_response(ApiError(400, f"the model's chat template cannot render these messages: {exc}"))


async def _not_found(request: Request, exc: Exception) -> Response:
    return error_response(ApiError(404, f"no such endpoint: {request.method} {request.url.path}"))


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return error_response(ApiError(405, f"{request.method} is not allowed on {request.url.path}"))


EXCEPTION_HANDLERS: Mapping[Any, ExceptionHandler] = {
    ApiError: _api_error,
    BackendError: _backend_error,
    ModelNotFoundError: _model_not_found,
    UnsupportedFeatureError: _unsupported,
    TemplateError: _template_error,
    404: _not_found,
    405: _not_allowed,
}
"""Starlette's `exception_handlers`: every error the routes raise on purpose, answered in OpenAI's shape."""
