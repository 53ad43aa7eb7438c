"""The `python` tool: a persistent interpreter per chat, in its own process, with limits.

    tool = PythonTool(workdir=Path("/tmp/chat-1"))
    await tool.call({"code": "x = 21"}); await tool.call({"code": "x * 2"})   # '42'

- state: one interpreter process per chat, so variables survive between calls;
- time: a call that runs past `time_limit_s` kills the process (and its children) and starts a
  fresh one, and the model is told its state was lost;
- output: capped inside the interpreter, so a 50 MB print costs nothing to the host;
- memory and CPU: `RLIMIT_AS` and `RLIMIT_CPU`, which the interpreter sets on itself before any code runs;
- files: a working directory per chat;
- network: none, in a new network namespace (`unshare -rn`) where the OS allows it (probed once, off the
  event loop, at the first start).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import anyio.to_thread
from anyio.streams.buffered import BufferedByteReceiveStream

from mcp_host.process_group import close_process, open_process_group, stop_process_group
from mcp_host.tools.native.base import NativeTool
from mcp_host.tools.spec import ToolResult, ToolSpec

KERNEL = Path(__file__).with_name("python_kernel.py")
PYTHON_SPEC = ToolSpec(
    server="python",
    tool="python",
    qualified="python",
    origin="native",
    description="Run Python code in a stateful interpreter; the value of the last expression is printed.",
    input_schema={"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]},
    original_schema={"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]},
)


_isolation_available: bool | None = None


async def network_isolation_available() -> bool:
    """Whether `unshare -rn` works here (Linux with unprivileged user namespaces, or root).

    Probed once per process, in a worker thread: it spawns a process, which must not block the event loop.
    """
    global _isolation_available
    if _isolation_available is None:
        _isolation_available = await anyio.to_thread.run_sync(_probe_unshare)
    return _isolation_available


def _probe_unshare() -> bool:
    if sys.platform != "linux" or shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-rn", "true"], capture_output=True, check=False).returncode == 0


class PythonTool(NativeTool):
    """One persistent, limited interpreter. Start is lazy; `aclose()` kills it."""

    spec = PYTHON_SPEC

    def __init__(
        self,
        workdir: Path,
        *,
        time_limit_s: float = 30.0,
        output_limit_chars: int = 20_000,
        memory_limit_mb: int = 1024,
        cpu_limit_s: int = 600,
        isolate_network: bool = True,
    ) -> None:
        self.workdir = workdir
        self.time_limit_s = time_limit_s
        self.output_limit_chars = output_limit_chars
        self.memory_limit_mb = memory_limit_mb
        self.cpu_limit_s = cpu_limit_s
        self.isolate_network = isolate_network  # where the OS allows it: see `network_isolation_available`
        self._process: anyio.abc.Process | None = None
        self._reader: BufferedByteReceiveStream | None = None
        self._lock = anyio.Lock()

    async def _call(self, arguments: dict[str, Any]) -> ToolResult:
        code = arguments.get("code")
        if not isinstance(code, str):
            return ToolResult.error("python takes the code to run as text")
        async with self._lock:
            try:
                reply = await self._run(code)
            except (ValueError, KeyError):  # a reply that is not ours: the interpreter cannot be trusted now
                await self._kill()
                return ToolResult.error(
                    "The interpreter's reply was unreadable; it was restarted and earlier variables are gone."
                )
            except (
                anyio.EndOfStream,
                anyio.IncompleteRead,
                anyio.BrokenResourceError,
                anyio.ClosedResourceError,
                OSError,
            ):
                await self._kill()
                return ToolResult.error(
                    "The interpreter died (most likely it ran out of memory or CPU time; the limits are "
                    f"{self.memory_limit_mb} MB and {self.cpu_limit_s} s). It was restarted: earlier variables "
                    "are gone."
                )
            except BaseException:  # cancelled mid-run: the code must not go on, nor its reply reach the next call
                await self._kill()
                raise
        text = reply["output"]
        if reply.get("dropped"):
            text += f"\n[… output truncated: {reply['dropped']} more characters were printed]"
        if reply.get("error"):
            return ToolResult.text_result(f"{text}{reply['error']}", is_error=True)
        return ToolResult.text_result(text)

    async def _run(self, code: str) -> dict[str, Any]:
        process, reader = await self._ensure_started()
        assert process.stdin is not None
        await process.stdin.send((json.dumps({"code": code}) + "\n").encode())
        line = await reader.receive_until(b"\n", 64 * 1024 * 1024)
        reply: dict[str, Any] = json.loads(line)
        return reply

    async def _timed_out(self) -> ToolResult:
        await self._kill()
        return ToolResult.error(
            f"The code ran longer than {self.time_limit_s:g}s and was stopped. The interpreter was restarted: "
            "earlier variables are gone."
        )

    async def _ensure_started(self) -> tuple[anyio.abc.Process, BufferedByteReceiveStream]:
        if self._process is not None and self._process.returncode is None and self._reader is not None:
            return self._process, self._reader
        self.workdir.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-I", "-u", str(KERNEL)]
        if self.isolate_network and await network_isolation_available():
            command = ["unshare", "-rn", *command]
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(self.workdir),
            "PYTHONIOENCODING": "utf-8",
            # Room is left for the truncation note, so the tool's own limit never cuts it again.
            "MCP_HOST_PYTHON_OUTPUT_LIMIT": str(max(self.output_limit_chars - 200, 0)),
            "MCP_HOST_PYTHON_MEMORY_MB": str(self.memory_limit_mb),
            "MCP_HOST_PYTHON_CPU_S": str(self.cpu_limit_s),
        }
        # Its own process group, so a kill reaches whatever the model's code started too.
        self._process = await open_process_group(command, cwd=self.workdir, env=env, stderr=subprocess.DEVNULL)
        assert self._process.stdout is not None
        self._reader = BufferedByteReceiveStream(self._process.stdout)
        return self._process, self._reader

    async def _kill(self) -> None:
        process, self._process, self._reader = self._process, None, None
        if process is None:
            return
        # Straight to SIGKILL: the interpreter's state is being thrown away, and code that traps SIGTERM
        # must not buy itself time.
        await stop_process_group(process, exit_grace_s=0, terminate_grace_s=0)
        await close_process(process)

    async def aclose(self) -> None:
        await self._kill()
