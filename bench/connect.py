"""Time to all-ready for N stdio servers: the host vs sequential and concurrent raw-SDK connections.

    python bench/connect.py [--sizes 1 4 8 16] [--repeat 3] [--server python|everything]

All three are measured in one run on the same server: the Python fixture (tests/fixtures/server.py), or with
`--server everything` the published node server-everything from node_modules (`npm ci`):
- host:       `ServerManager.apply()` + `wait_settled()` (the host's own path, tools listed);
- sequential: `mcp.Client` over stdio, one server after another (what fast-agent, mcp-use and mcphost do);
- concurrent: `mcp.Client` over stdio, all at once in one task group (the raw SDK's best case).
Each figure is the median of `--repeat` runs; the ratios are what the README quotes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from contextlib import AsyncExitStack
from pathlib import Path

import anyio
from mcp import Client, StdioServerParameters, stdio_client

from mcp_host.config.mcpjson import McpConfig, StdioServerConfig
from mcp_host.config.settings import ServerSettings
from mcp_host.servers import ServerManager, ServerState

# The raw SDK sends servers' stderr to a file; the host keeps it in memory. Neither prints it.
DEVNULL = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the benchmark
ROOT = Path(__file__).resolve().parent.parent
SERVERS = {
    "python": (sys.executable, [str(ROOT / "tests" / "fixtures" / "server.py")]),
    "everything": (
        str(ROOT / "node_modules" / ".bin" / "node"),
        [str(ROOT / "node_modules" / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"), "stdio"],
    ),
}
SERVER = SERVERS["python"]


async def host_all_ready(n: int) -> float:
    config = McpConfig(servers={f"s{i}": StdioServerConfig(command=SERVER[0], args=SERVER[1]) for i in range(n)})
    async with ServerManager(ServerSettings(restart_attempts=0)) as manager:
        started = time.perf_counter()
        await manager.apply(config)
        await manager.wait_settled()
        elapsed = time.perf_counter() - started
        assert all(status.state is ServerState.READY for status in manager.statuses())
    return elapsed


async def _connect(stack: AsyncExitStack) -> None:
    params = StdioServerParameters(command=SERVER[0], args=SERVER[1])
    client = await stack.enter_async_context(Client(stdio_client(params, errlog=DEVNULL)))
    await client.list_tools()


async def sdk_sequential(n: int) -> float:
    async with AsyncExitStack() as stack:
        started = time.perf_counter()
        for _ in range(n):
            await _connect(stack)
        return time.perf_counter() - started


async def sdk_concurrent(n: int) -> float:
    # Each client lives in its own task (its task groups must close where they opened).
    ready = 0
    all_ready = anyio.Event()
    release = anyio.Event()

    async def one() -> None:
        nonlocal ready
        async with AsyncExitStack() as stack:
            await _connect(stack)
            ready += 1
            if ready == n:
                all_ready.set()
            await release.wait()

    async with anyio.create_task_group() as tg:
        started = time.perf_counter()
        for _ in range(n):
            tg.start_soon(one)
        await all_ready.wait()
        elapsed = time.perf_counter() - started
        release.set()
    return elapsed


async def main(sizes: list[int], repeat: int) -> None:
    print(
        f"{'N':>3} {'host s':>8} {'sequential s':>13} {'raw SDK concurrent s':>21} "
        f"{'host / concurrent':>18} {'sequential / host':>18}"
    )
    for n in sizes:
        figures = {"host": [], "sequential": [], "concurrent": []}  # type: dict[str, list[float]]
        for _ in range(repeat):  # interleaved, so drift in machine load hits all three alike
            figures["host"].append(await host_all_ready(n))
            figures["sequential"].append(await sdk_sequential(n))
            figures["concurrent"].append(await sdk_concurrent(n))
        host, sequential, concurrent = (statistics.median(figures[k]) for k in ("host", "sequential", "concurrent"))
        print(
            f"{n:>3} {host:>8.2f} {sequential:>13.2f} {concurrent:>21.2f} "
            f"{host / concurrent:>18.2f} {sequential / host:>18.2f}",
            flush=True,
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--server", choices=sorted(SERVERS), default="python")
    options = parser.parse_args()
    SERVER = SERVERS[options.server]
    anyio.run(main, options.sizes, options.repeat)
