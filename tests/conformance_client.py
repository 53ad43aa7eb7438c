"""The client under test for the official MCP conformance suite (client mode).

The suite runs `<command> <server-url>` with `MCP_CONFORMANCE_SCENARIO` set (and, for some auth
scenarios, credentials in `MCP_CONFORMANCE_CONTEXT`), and judges what the client sends. This
adapter goes through the host's public API only (`ServerManager`, `RemoteServerConfig` and its
`auth` block, `mcp_host.servers.oauth`), exactly as `mcp-host` reaches a remote server; where a
person would act (a browser, an enterprise identity provider) it acts in their place.

A scenario is one entry of `SCENARIOS`: a coroutine taking the server URL and the context.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx2
import mcp_types

from mcp_host import (
    McpConfig,
    NoOneToAsk,
    RemoteServerConfig,
    ServerAsks,
    ServerManager,
    ServerSettings,
    ServerState,
)
from mcp_host.servers.elicitation import apply_defaults, validate_content
from mcp_host.servers.oauth import AuthConfig, AuthorizationCodeResult, LoginHandlers

SERVER = "conformance"
CIMD_URL = "https://conformance-test.local/client-metadata.json"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"

Scenario = Callable[[str, dict[str, Any]], Awaitable[int]]


class AcceptsDefaults(NoOneToAsk):
    """A person who accepts every form as it is offered: the server's defaults fill it."""

    async def elicit(self, server: str, params: mcp_types.ElicitRequestParams) -> mcp_types.ElicitResult:
        if not isinstance(params, mcp_types.ElicitRequestFormParams):
            return mcp_types.ElicitResult(action="accept")
        schema = dict(params.requested_schema)
        return mcp_types.ElicitResult(action="accept", content=validate_content(schema, apply_defaults(schema, {})))


async def connect(
    config: RemoteServerConfig,
    *,
    tool: str | None = None,
    arguments: dict[str, Any] | None = None,
    asks: ServerAsks | None = None,
) -> int:
    """Connect as the host does, report the state, then call `tool` (default: the server's first tool)."""
    async with ServerManager(ServerSettings(restart_attempts=0, connect_timeout_s=20), asks=asks) as manager:
        await manager.apply(McpConfig(servers={SERVER: config}))
        await manager.wait_settled()
        status = manager.connection(SERVER).status()
        print(f"state={status.state.value} protocol={status.protocol_version} error={status.error}")
        if status.state is not ServerState.READY:
            return 1
        tools = manager.registry.server_tools(SERVER)
        name = tool or (tools[0].tool if tools else None)
        if name is None:
            return 0
        result = await manager.call_tool(f"{SERVER}.{name}", arguments or {})
        print(f"result={result.text!r} is_error={result.is_error}")
        return 1 if result.is_error and tool is not None else 0


def scripted_login(identity_assertion: Callable[[str, str], Awaitable[str]] | None = None) -> LoginHandlers:
    """A person who approves every authorization request: fetch it, read the code off the redirect."""
    answers: list[AuthorizationCodeResult] = []

    async def redirect(authorization_url: str) -> None:
        async with httpx2.AsyncClient() as http:
            response = await http.get(authorization_url)
        location = response.headers.get("location")
        if response.status_code not in (301, 302, 303, 307, 308) or not location:
            raise RuntimeError(f"expected a redirect from the authorization endpoint, got {response.status_code}")
        params = {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}
        answers.append(AuthorizationCodeResult(code=params["code"], state=params.get("state"), iss=params.get("iss")))

    async def callback() -> AuthorizationCodeResult:
        return answers.pop()

    return LoginHandlers(
        redirect_uri="http://localhost:3000/callback",
        redirect=redirect,
        callback=callback,
        identity_assertion=identity_assertion,
    )


async def discover_issuer(url: str) -> str:
    """The authorization server a protected resource names: what a user would write as `issuer`."""
    async with httpx2.AsyncClient() as http:
        challenge = await http.post(url, json={})
        found = re.search(r'resource_metadata="([^"]+)"', challenge.headers.get("www-authenticate", ""))
        parts = urlsplit(url)
        metadata_url = (
            found.group(1) if found else f"{parts.scheme}://{parts.netloc}/.well-known/oauth-protected-resource"
        )
        metadata = (await http.get(metadata_url)).json()
    return str(metadata["authorization_servers"][0])


async def run_plain(url: str, context: dict[str, Any]) -> int:
    return await connect(RemoteServerConfig(url=url))


async def run_tools_call(url: str, context: dict[str, Any]) -> int:
    return await connect(RemoteServerConfig(url=url), tool="add_numbers", arguments={"a": 5, "b": 3})


async def run_elicitation_defaults(url: str, context: dict[str, Any]) -> int:
    return await connect(RemoteServerConfig(url=url), tool="test_client_elicitation_defaults", asks=AcceptsDefaults())


async def run_sse_retry(url: str, context: dict[str, Any]) -> int:
    """The server closes the call's stream at once; the answer comes on the resumed GET stream."""
    return await connect(RemoteServerConfig(url=url), tool="test_reconnection")


async def run_authorization_code(url: str, context: dict[str, Any]) -> int:
    """Every auth/* scenario not named below: the browser flow, with pre-registered credentials if given."""
    auth = AuthConfig(
        client_id=context.get("client_id"), client_secret=context.get("client_secret"), client_metadata_url=CIMD_URL
    )
    return await connect(RemoteServerConfig(url=url, auth=auth).with_login(scripted_login()))


async def run_client_credentials_basic(url: str, context: dict[str, Any]) -> int:
    auth = AuthConfig(
        grant_type="client_credentials",
        client_id=context["client_id"],
        client_secret=context["client_secret"],
        token_endpoint_auth_method="client_secret_basic",
        issuer=await discover_issuer(url),
    )
    return await connect(RemoteServerConfig(url=url, auth=auth))


async def run_client_credentials_jwt(url: str, context: dict[str, Any]) -> int:
    key = Path(tempfile.mkdtemp()) / "client.pem"
    key.write_text(context["private_key_pem"])
    key.chmod(0o600)
    auth = AuthConfig(
        grant_type="client_credentials",
        client_id=context["client_id"],
        token_endpoint_auth_method="private_key_jwt",
        private_key_path=str(key),
        signing_algorithm=context.get("signing_algorithm", "ES256"),
        issuer=await discover_issuer(url),
    )
    return await connect(RemoteServerConfig(url=url, auth=auth))


async def run_cross_app_access(url: str, context: dict[str, Any]) -> int:
    """SEP-990: the enterprise IdP trades the user's ID token for an ID-JAG, which the host presents."""

    async def identity_assertion(audience: str, resource: str) -> str:
        async with httpx2.AsyncClient() as http:
            response = await http.post(
                context["idp_token_endpoint"],
                data={
                    "grant_type": TOKEN_EXCHANGE,
                    "subject_token": context["idp_id_token"],
                    "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
                    "requested_token_type": "urn:ietf:params:oauth:token-type:id-jag",
                    "audience": audience,
                    "resource": resource,
                    "client_id": context["idp_client_id"],
                },
            )
        response.raise_for_status()
        return str(response.json()["access_token"])

    auth = AuthConfig(
        grant_type="jwt_bearer",
        client_id=context["client_id"],
        client_secret=context["client_secret"],
        token_endpoint_auth_method="client_secret_basic",
        issuer=await discover_issuer(url),
    )
    return await connect(RemoteServerConfig(url=url, auth=auth).with_login(scripted_login(identity_assertion)))


SCENARIOS: dict[str, Scenario] = {
    "initialize": run_plain,
    "tools_call": run_tools_call,
    "elicitation-sep1034-client-defaults": run_elicitation_defaults,
    "sse-retry": run_sse_retry,
    "auth/client-credentials-basic": run_client_credentials_basic,
    "auth/client-credentials-jwt": run_client_credentials_jwt,
    "auth/cross-app-access-complete-flow": run_cross_app_access,
}


def scenario_for(name: str) -> Scenario | None:
    return SCENARIOS.get(name) or (run_authorization_code if name.startswith("auth/") else None)


def main() -> int:
    name = os.environ.get("MCP_CONFORMANCE_SCENARIO", "")
    scenario = scenario_for(name)
    if scenario is None:
        print(f"unsupported scenario {name!r}", file=sys.stderr)
        return 2
    context: dict[str, Any] = json.loads(os.environ.get("MCP_CONFORMANCE_CONTEXT") or "{}")
    # Each run logs in afresh: tokens go to a store of its own, never the user's.
    os.environ["XDG_STATE_HOME"] = tempfile.mkdtemp(prefix="mcp-host-conformance-")
    return anyio.run(scenario, sys.argv[-1], context)


if __name__ == "__main__":
    sys.exit(main())
