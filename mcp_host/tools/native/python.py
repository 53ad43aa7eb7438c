"""The `python` tool: a persistent interpreter per chat, sandboxed where the machine allows, with limits.

    tool = PythonTool(workdir=Path("/tmp/chat-1"))
    await tool.call({"code": "x = 21"}); await tool.call({"code": "x * 2"})   # '42'
    if not tool.sandboxed:
        print(tool.isolation.warning)      # and keep asking before every run

- isolation: a bubblewrap sandbox (`mcp_host.tools.native.sandbox` says exactly what it isolates), with
  the chat's working directory at /mnt/data. Where bwrap cannot run, `isolation` says what is left
  (`unshare -rn`, or nothing), `sandboxed` is False, and the description the model reads says so too;
- state: one interpreter per chat, so variables survive between calls. Processes do not: in the
  sandbox, every process the code starts (however detached) is killed before its call returns;
- time: a call that runs past `time_limit_s` kills the interpreter and, in the sandbox, every process
  its code started; a fresh one starts and the model is told its state was lost;
- output: capped inside the interpreter, so a 50 MB print costs nothing to the host;
- memory, CPU, processes: `RLIMIT_AS`, `RLIMIT_CPU` and (in the sandbox) `RLIMIT_NPROC`, which the
  interpreter sets on itself before any code runs.

Replies: the kernel (`python_kernel`) is two processes: a supervisor that alone holds the pipes to the
host and runs none of the code, and a worker that runs the code and holds neither pipe. Each request
carries a fresh random id that its reply must echo, and before each call a fence (a request answered
with nothing but its id) proves that the worker wrote nothing since its last reply. A reply with the
wrong id, an unreadable one, or anything extra restarts the interpreter.

Guaranteed in the sandbox: no process the code leaves behind, and nothing in the worker, can read the
host's requests or write on its reply channel; each call's processes are killed before it returns, so
none can answer a later call. Not guaranteed: the worker is the code's own process, so the code can
fool the call it runs in (by printing what it likes, or forging its own reply), and code that leaves a
thread running or rewrites functions in the worker can make later calls of the same interpreter report
what it likes, as it can change their variables. That ends with the interpreter (a time limit, a
tampered reply, `aclose()`), and never reaches the host. Outside the sandbox the kernel cannot tell the
code's processes from the user's, so it kills none of them between calls.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
from anyio.streams.buffered import BufferedByteReceiveStream

from mcp_host.errors import SandboxStartError
from mcp_host.process_group import close_process, open_process_group, stop_process_group
from mcp_host.tools.native.base import NativeTool
from mcp_host.tools.native.sandbox import (
    DATA_DIR,
    KERNEL_PATH,
    Isolation,
    Sandbox,
    SandboxLayout,
    detect_isolation,
    host_is_root,
    probe_isolation,
    sandbox_uid,
)
from mcp_host.tools.spec import ToolResult, ToolSpec

KERNEL = Path(__file__).with_name("python_kernel.py")
_DIED = (
    anyio.EndOfStream,
    anyio.IncompleteRead,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    OSError,
)

_TAMPERED = (
    "The code wrote to the interpreter's reply channel, so what it returned cannot be trusted and is not shown. "
    "The interpreter was restarted: earlier variables are gone."
)
_NOTE_TAMPERED = (
    "[Earlier code had written to the interpreter's reply channel, so the interpreter was restarted before this "
    "call: earlier variables are gone.]"
)
_NOTE_STOPPED = "[The interpreter had stopped since the last call and was restarted: earlier variables are gone.]"


@dataclass(frozen=True)
class PythonLimits:
    """What one interpreter may use; the defaults are the tool's."""

    time_limit_s: float = 30.0
    output_limit_chars: int = 20_000
    memory_limit_mb: int = 1024  # per process
    cpu_limit_s: int = 600  # per process
    process_limit: int = 128  # processes and threads, in the sandbox only
    tmp_limit_mb: int = 256  # each of /tmp and /dev/shm, in the sandbox only


def describe_python_tool(limits: PythonLimits, isolation: Isolation) -> str:
    """What the model is told about the tool: its real limits, in the words gpt-oss was trained on."""
    if isolation.sandboxed:
        files = (
            f"The drive at '{DATA_DIR}' (the working directory) can be used to save and persist user files for "
            "this chat; the rest of the file system is read-only, apart from a private /tmp. At most "
            f"{limits.process_limit} processes and threads may run. Processes the code starts are stopped when its "
            "call ends, so start and wait for them within one call. Internet access for this session is disabled."
        )
    else:
        internet = "disabled" if isolation is Isolation.NETWORK else "not restricted"
        files = (
            "The working directory can be used to save and persist user files for this chat. "
            f"Internet access for this session is {internet}."
        )
    return (
        "Use this tool to execute Python code in your chain of thought. The code will not be shown to the user. "
        "This tool should be used for internal reasoning, but not for code that is intended to be visible to the "
        "user (e.g. when creating plots, tables, or files).\n\n"
        "When you send a message containing Python code to python, it will be executed in a stateful Python "
        "interpreter, like a notebook: variables persist between calls and the value of the last expression is "
        f"printed. python will respond with the output of the execution or time out after {limits.time_limit_s:g} "
        "seconds, which restarts the interpreter and loses its variables. Memory is limited to "
        f"{limits.memory_limit_mb} MB per process and output to {limits.output_limit_chars} characters. {files}"
    )


def python_tool_description() -> str:
    """The description with the default limits and this machine's isolation, for a prompt built without the tool."""
    return describe_python_tool(PythonLimits(), probe_isolation())


_SCHEMA = {"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]}
# With the default limits, in the sandbox; each tool's own `spec` describes its limits and isolation.
PYTHON_SPEC = ToolSpec(
    server="python",
    tool="python",
    qualified="python",
    origin="native",
    description=describe_python_tool(PythonLimits(), Isolation.SANDBOX),
    input_schema=_SCHEMA,
    original_schema=_SCHEMA,
)


class _Tampered(Exception):
    """A reply that is not the answer to the request just sent."""


class PythonTool(NativeTool):
    """One persistent, limited interpreter. Start is lazy; `aclose()` kills it and all it started.

    `isolation=None` takes the strongest this machine gives; a weaker one may be asked for, never a
    stronger one than exists (starting fails instead).
    """

    def __init__(
        self,
        workdir: Path,
        *,
        time_limit_s: float = PythonLimits.time_limit_s,
        output_limit_chars: int = PythonLimits.output_limit_chars,
        memory_limit_mb: int = PythonLimits.memory_limit_mb,
        cpu_limit_s: int = PythonLimits.cpu_limit_s,
        process_limit: int = PythonLimits.process_limit,
        tmp_limit_mb: int = PythonLimits.tmp_limit_mb,
        isolation: Isolation | None = None,
    ) -> None:
        self.workdir = workdir
        self.limits = PythonLimits(
            time_limit_s, output_limit_chars, memory_limit_mb, cpu_limit_s, process_limit, tmp_limit_mb
        )
        self.time_limit_s = time_limit_s
        self.output_limit_chars = output_limit_chars
        self._isolation = isolation
        self._uid = sandbox_uid() if host_is_root() else None  # kept for the life of the tool: it owns the files
        self._interpreter: _Interpreter | None = None
        self._lock = anyio.Lock()

    @property
    def isolation(self) -> Isolation:
        """How the code is kept from the host; the first read may probe the machine (one short process)."""
        if self._isolation is None:
            self._isolation = probe_isolation()
        return self._isolation

    @property
    def sandboxed(self) -> bool:
        """Whether the code runs in the bubblewrap sandbox; when False, ask before every run."""
        return self.isolation.sandboxed

    @property
    def spec(self) -> ToolSpec:  # type: ignore[override]  # per tool: its own limits and isolation
        isolation = self.isolation
        return replace(
            PYTHON_SPEC,
            description=describe_python_tool(self.limits, isolation),
            unsandboxed_code=not isolation.sandboxed,
        )

    async def _call(self, arguments: dict[str, Any]) -> ToolResult:
        code = arguments.get("code")
        if not isinstance(code, str):
            return ToolResult.error("python takes the code to run as text")
        async with self._lock:
            try:
                interpreter, note = await self._ready()
                reply = await interpreter.exchange({"code": code})
            except SandboxStartError as exc:
                await self._kill()
                return ToolResult.error(f"The python interpreter could not start: {exc}.")
            except _Tampered:
                await self._kill()
                return ToolResult.error(_TAMPERED)
            except _DIED:
                await self._kill()
                return ToolResult.error(
                    "The interpreter died (most likely it ran out of memory or CPU time; the limits are "
                    f"{self.limits.memory_limit_mb} MB and {self.limits.cpu_limit_s} s). It was restarted: earlier "
                    "variables are gone."
                )
            except BaseException:  # cancelled mid-run: the code must not go on, nor its reply reach the next call
                await self._kill()
                raise
        text = reply["output"]
        if reply["dropped"]:
            text += f"\n[… output truncated: {reply['dropped']} more characters were printed]"
        if note is not None:
            text = f"{note}\n{text}"
        if reply["error"]:
            return ToolResult.text_result(f"{text}{reply['error']}", is_error=True)
        return ToolResult.text_result(text)

    async def _ready(self) -> tuple[_Interpreter, str | None]:
        """The interpreter, with its reply channel proved clean; a fresh one (and why) when it is not."""
        if self._interpreter is None:
            return await self._start(), None
        try:
            await self._interpreter.exchange({"fence": True})
            return self._interpreter, None
        except _Tampered:
            note = _NOTE_TAMPERED
        except _DIED:
            note = _NOTE_STOPPED
        await self._kill()
        return await self._start(), note

    async def _timed_out(self) -> ToolResult:
        await self._kill()
        return ToolResult.error(
            f"The code ran longer than {self.time_limit_s:g}s and was stopped. The interpreter was restarted: "
            "earlier variables are gone."
        )

    async def _start(self) -> _Interpreter:
        available = await detect_isolation()
        if self._isolation is None:
            self._isolation = available
        if _STRENGTH[self._isolation] > _STRENGTH[available]:
            raise SandboxStartError(
                f"{self._isolation.value} was asked for, but this machine gives {available.summary}"
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        limits = self.limits
        env = {
            "PYTHONIOENCODING": "utf-8",
            # Room is left for the truncation note, so the tool's own limit never cuts it again.
            "MCP_HOST_PYTHON_OUTPUT_LIMIT": str(max(limits.output_limit_chars - 200, 0)),
            "MCP_HOST_PYTHON_MEMORY_MB": str(limits.memory_limit_mb),
            "MCP_HOST_PYTHON_CPU_S": str(limits.cpu_limit_s),
        }
        # JSON may spell one character in 12 bytes (a surrogate pair); output and error are each capped.
        reply_limit = 24 * limits.output_limit_chars + 64 * 1024
        if self._isolation.sandboxed:
            env |= {
                "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
                "HOME": str(DATA_DIR),
                "MCP_HOST_PYTHON_WORKDIR": str(DATA_DIR),
                "TMPDIR": "/tmp",
                "LANG": "C.UTF-8",
                "MCP_HOST_PYTHON_PROCESSES": str(limits.process_limit),
            }
            layout = SandboxLayout(self.workdir, KERNEL, tmp_limit_mb=limits.tmp_limit_mb, uid=self._uid)
            sandbox = await Sandbox.open(layout, [sys.executable, "-I", "-u", str(KERNEL_PATH)], env=env)
            self._interpreter = _Interpreter(sandbox.process, reply_limit, sandbox)
        else:
            env |= {"PATH": os.environ.get("PATH", ""), "HOME": str(self.workdir)}
            command = [sys.executable, "-I", "-u", str(KERNEL)]
            if self._isolation is Isolation.NETWORK:
                command = ["unshare", "-rn", *command]
            # Its own process group, so a kill reaches whatever the model's code started (unless it left the group).
            process = await open_process_group(command, cwd=self.workdir, env=env, stderr=subprocess.DEVNULL)
            self._interpreter = _Interpreter(process, reply_limit, None)
        try:
            await self._interpreter.exchange({"fence": True})  # the first reply: it runs
        except _DIED as exc:
            raise SandboxStartError("it exited before its first reply") from exc
        return self._interpreter

    async def _kill(self) -> None:
        interpreter, self._interpreter = self._interpreter, None
        if interpreter is not None:
            await interpreter.kill()

    async def aclose(self) -> None:
        await self._kill()


_STRENGTH = {Isolation.NONE: 0, Isolation.NETWORK: 1, Isolation.SANDBOX: 2}


class _Interpreter:
    """One running kernel: its process and reply stream, and the sandbox it runs in, if any."""

    def __init__(self, process: anyio.abc.Process, reply_limit: int, sandbox: Sandbox | None) -> None:
        assert process.stdout is not None and process.stdin is not None
        self.process = process
        self._reader = BufferedByteReceiveStream(process.stdout)
        self._reply_limit = reply_limit
        self._sandbox = sandbox

    async def exchange(self, request: dict[str, Any]) -> dict[str, Any]:
        """Send `request` under a fresh id; its reply, or `_Tampered` when what comes back is not that."""
        request_id = secrets.token_hex(16)
        assert self.process.stdin is not None
        await self.process.stdin.send((json.dumps({"id": request_id, **request}) + "\n").encode())
        try:
            line = await self._reader.receive_until(b"\n", self._reply_limit)
            reply = json.loads(line)
        except (anyio.DelimiterNotFound, ValueError) as exc:
            raise _Tampered from exc
        if not isinstance(reply, dict) or reply.get("id") != request_id or not _well_formed(request, reply):
            raise _Tampered
        return reply

    async def kill(self) -> None:
        """Kill the interpreter and what it started: in the sandbox every process, however detached."""
        if self._sandbox is not None:
            await self._sandbox.kill()
            return
        # Straight to SIGKILL: the interpreter's state is being thrown away, and code that traps SIGTERM
        # must not buy itself time.
        await stop_process_group(self.process, exit_grace_s=0, terminate_grace_s=0)
        await close_process(self.process)


def _well_formed(request: dict[str, Any], reply: dict[str, Any]) -> bool:
    # The kernel's own `{"id": ..., "tampered": true}` is neither: the worker wrote what it should not have.
    if request.get("fence"):
        return reply.get("fence") is True
    return (
        isinstance(reply.get("output"), str)
        and isinstance(reply.get("dropped"), int)
        and isinstance(reply.get("error"), str | None)
    )
