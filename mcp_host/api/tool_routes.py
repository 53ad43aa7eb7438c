"""The host's tools, servers and plugins: `GET /v1/tools`, `GET /v1/servers`, `POST /v1/servers/{name}/restart`,
`GET /v1/plugins`."""

from __future__ import annotations

from dataclasses import asdict

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mcp_host.errors import ApiError, UnknownServerError
from mcp_host.host import Host


class ToolRoutes:
    """What the host offers, and a restart for a server that misbehaves."""

    def __init__(self, host: Host) -> None:
        self.host = host

    def routes(self) -> list[Route]:
        return [
            Route("/v1/tools", self.tools, methods=["GET"]),
            Route("/v1/servers", self.servers, methods=["GET"]),
            Route("/v1/servers/{name}/restart", self.restart, methods=["POST"]),
            Route("/v1/plugins", self.plugins, methods=["GET"]),
        ]

    async def tools(self, request: Request) -> Response:
        registry = self.host.registry
        names = registry.names
        data = [
            {
                "name": spec.name,
                "identifier": names.to_identifier[spec.name],
                "server": spec.server,
                "origin": spec.origin,
                "description": spec.description,
                "input_schema": spec.input_schema,
                "annotations": spec.annotations,
            }
            for spec in registry
        ]
        return JSONResponse({"object": "list", "data": data})

    async def servers(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [status.to_json() for status in self.host.statuses()]})

    async def plugins(self, request: Request) -> Response:
        """Every plugin found, loaded or not: name, origin, where, state, tools, error, description."""
        data = [{**asdict(status), "tools": list(status.tools)} for status in self.host.plugins.statuses()]
        return JSONResponse({"object": "list", "data": data})

    async def restart(self, request: Request) -> Response:
        try:
            connection = await self.host.manager.restart(request.path_params["name"])
        except UnknownServerError as exc:
            raise ApiError(404, str(exc)) from exc
        await connection.wait_started()
        return JSONResponse(connection.status().to_json())
