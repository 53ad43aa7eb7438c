"""What each MCP server offers beyond tools: resources, prompts, completion, its log, its level and roots.

    GET  /v1/servers/{name}/resources              resources and resource templates
    GET  /v1/servers/{name}/resource?uri=...       one resource read: text contents, binary ones described
    GET  /v1/servers/{name}/prompts                prompts with their arguments
    POST /v1/servers/{name}/prompts/{prompt}       {"arguments": {...}}  -> the prompt's messages
    POST /v1/servers/{name}/completion             {"prompt" | "resource_template", "argument", "value", "context"}
    GET  /v1/servers/{name}/logs                   the server's recent log lines
    PUT  /v1/servers/{name}/log-level              {"level": "debug" ... "emergency"}
    GET  /v1/servers/{name}/roots                  the folders the server may work in
    PUT  /v1/servers/{name}/roots                  {"roots": ["/abs/path", "file:///..."]}

An unknown server is 404, one that is not ready 503, a request the server fails 502 with its message.
The level and the roots are the host's settings for the server: set while it is not ready, they apply
when it connects.
"""

from __future__ import annotations

from typing import Any

import mcp_types
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mcp_host.api.errors import server_api_error
from mcp_host.api.requests import (
    MAX_URI_CHARS,
    BodyReader,
    CompletionBody,
    LogLevelBody,
    PromptArguments,
    RootsBody,
)
from mcp_host.errors import ApiError, ServerError
from mcp_host.host import Host
from mcp_host.servers.connection import Connection
from mcp_host.servers.features import prompt_text, resource_texts


class ServerFeatureRoutes:
    """The routes above, over the host's running servers."""

    def __init__(self, host: Host, reader: BodyReader) -> None:
        self.host = host
        self.reader = reader

    def routes(self) -> list[Route]:
        return [
            Route("/v1/servers/{name}/resources", self.resources, methods=["GET"]),
            Route("/v1/servers/{name}/resource", self.read_resource, methods=["GET"]),
            Route("/v1/servers/{name}/prompts", self.prompts, methods=["GET"]),
            Route("/v1/servers/{name}/prompts/{prompt}", self.get_prompt, methods=["POST"]),
            Route("/v1/servers/{name}/completion", self.complete, methods=["POST"]),
            Route("/v1/servers/{name}/logs", self.logs, methods=["GET"]),
            Route("/v1/servers/{name}/log-level", self.set_log_level, methods=["PUT"]),
            Route("/v1/servers/{name}/roots", self.roots, methods=["GET"]),
            Route("/v1/servers/{name}/roots", self.set_roots, methods=["PUT"]),
        ]

    def _connection(self, request: Request) -> Connection:
        try:
            return self.host.manager.connection(request.path_params["name"])
        except ServerError as exc:
            raise server_api_error(exc) from exc

    async def resources(self, request: Request) -> Response:
        connection = self._connection(request)
        try:
            resources = await connection.list_resources()
            templates = await connection.list_resource_templates()
        except ServerError as exc:
            raise server_api_error(exc) from exc
        return JSONResponse(
            {
                "object": "list",
                "server": connection.name,
                "data": [
                    _fields(uri=r.uri, name=r.name, title=r.title, description=r.description, mime_type=r.mime_type)
                    | _fields(size=r.size)
                    for r in resources
                ],
                "templates": [
                    _fields(
                        uri_template=t.uri_template,
                        name=t.name,
                        title=t.title,
                        description=t.description,
                        mime_type=t.mime_type,
                    )
                    for t in templates
                ],
            }
        )

    async def read_resource(self, request: Request) -> Response:
        uri = request.query_params.get("uri", "")
        if not uri:
            raise ApiError(400, "say which resource to read: ?uri=...", param="uri")
        if len(uri) > MAX_URI_CHARS:
            raise ApiError(400, f"the uri is longer than {MAX_URI_CHARS} characters", param="uri")
        connection = self._connection(request)
        try:
            result = await connection.read_resource(uri)
        except ServerError as exc:
            raise server_api_error(exc) from exc
        contents = [
            _fields(uri=part.uri, mime_type=part.mime_type, text=part.text)
            if not part.binary_bytes
            else _fields(uri=part.uri, mime_type=part.mime_type, binary=True, bytes=part.binary_bytes, text=part.text)
            for part in resource_texts(result)
        ]
        return JSONResponse({"object": "resource", "server": connection.name, "uri": uri, "contents": contents})

    async def prompts(self, request: Request) -> Response:
        connection = self._connection(request)
        try:
            prompts = await connection.list_prompts()
        except ServerError as exc:
            raise server_api_error(exc) from exc
        data = [
            _fields(
                name=p.name,
                title=p.title,
                description=p.description,
                arguments=[
                    _fields(name=a.name, description=a.description, required=bool(a.required))
                    for a in p.arguments or []
                ],
            )
            for p in prompts
        ]
        return JSONResponse({"object": "list", "server": connection.name, "data": data})

    async def get_prompt(self, request: Request) -> Response:
        connection = self._connection(request)
        body = await self.reader.read(request, PromptArguments, empty=PromptArguments())
        name = request.path_params["prompt"]
        try:
            result = await connection.get_prompt(name, body.arguments)
        except ServerError as exc:
            raise server_api_error(exc) from exc
        messages = [{"role": role, "text": text} for role, text in prompt_text(result)]
        return JSONResponse(
            _fields(object="prompt", server=connection.name, name=name, description=result.description)
            | {"messages": messages}
        )

    async def complete(self, request: Request) -> Response:
        connection = self._connection(request)
        body = await self.reader.read(request, CompletionBody)
        ref: mcp_types.PromptReference | mcp_types.ResourceTemplateReference
        if body.prompt is not None:
            ref = mcp_types.PromptReference(name=body.prompt)
        else:
            assert body.resource_template is not None  # the body's validator asks for exactly one
            ref = mcp_types.ResourceTemplateReference(uri=body.resource_template)
        try:
            values = await connection.complete(ref, body.argument, body.value, body.context)
        except ServerError as exc:
            raise server_api_error(exc) from exc
        return JSONResponse({"object": "completion", "server": connection.name, "values": values})

    async def logs(self, request: Request) -> Response:
        connection = self._connection(request)
        data = [{"time": when, "level": level, "text": text} for when, level, text in connection.logs]
        return JSONResponse(
            {"object": "list", "server": connection.name, "log_level": connection.log_level, "data": data}
        )

    async def set_log_level(self, request: Request) -> Response:
        connection = self._connection(request)
        body = await self.reader.read(request, LogLevelBody)
        try:
            await connection.set_log_level(body.level)
        except ServerError as exc:
            raise server_api_error(exc) from exc
        return JSONResponse({"server": connection.name, "log_level": connection.log_level})

    async def roots(self, request: Request) -> Response:
        connection = self._connection(request)
        return JSONResponse({"server": connection.name, "roots": connection.roots})

    async def set_roots(self, request: Request) -> Response:
        connection = self._connection(request)
        body = await self.reader.read(request, RootsBody)
        try:
            await connection.set_roots(body.roots)
        except ServerError as exc:
            raise server_api_error(exc) from exc
        return JSONResponse({"server": connection.name, "roots": connection.roots})


def _fields(**values: Any) -> dict[str, Any]:
    """The fields that have a value: what the server left out is left out here too."""
    return {key: value for key, value in values.items() if value is not None}
