"""The client under test for the official MCP conformance suite (client mode).

The suite runs `<command> <server-url>` with `MCP_CONFORMANCE_SCENARIO` set, and judges
what the client sends. This adapter goes through the host's own connection code
(`ServerManager` and `Connection`), exactly as `mcp-host` reaches a remote server.
"""

from __future__ import annotations

import os
import sys

import anyio

from mcp_host.config.mcpjson import McpConfig, RemoteServerConfig
from mcp_host.config.settings import ServerSettings
from mcp_host.servers import ServerManager, ServerState


async def run(url: str, scenario: str) -> int:
    config = McpConfig(servers={"conformance": RemoteServerConfig(url=url)})
    async with ServerManager(ServerSettings(restart_attempts=0, connect_timeout_s=20)) as manager:
        await manager.apply(config)
        await manager.wait_settled()
        status = manager.connection("conformance").status()
        print(f"state={status.state.value} protocol={status.protocol_version} error={status.error}")
        if status.state is not ServerState.READY:
            return 1
        if scenario == "tools_call":
            result = await manager.call_tool("conformance.add_numbers", {"a": 5, "b": 3})
            print(f"result={result.text!r} is_error={result.is_error}")
            return 1 if result.is_error else 0
        return 0


def main() -> int:
    scenario = os.environ.get("MCP_CONFORMANCE_SCENARIO", "")
    if scenario not in ("initialize", "tools_call"):
        print(f"unsupported scenario {scenario!r}", file=sys.stderr)
        return 2
    return anyio.run(run, sys.argv[-1], scenario)


if __name__ == "__main__":
    sys.exit(main())
