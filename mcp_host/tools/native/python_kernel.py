"""The interpreter behind the `python` tool: run as a separate process, one JSON request per line on stdin.

    {"id": "9f…", "code": "x = 2\\nx * 21"}  ->  {"id": "9f…", "output": "42\\n", "error": null, "dropped": 0}
    {"id": "c4…", "fence": true}             ->  {"id": "c4…", "fence": true}    (or {"id": "c4…", "tampered": true})

Two processes. The supervisor (this process) holds the protocol pipes (stdin, stdout) and never runs the
model's code; the worker, which it forks at start, runs the code and holds none of them: only a private
pair of pipes to the supervisor, in the same JSON lines. So no thread, rewritten function or child of the
code can ever read the host's requests or write on its reply channel.

State persists between requests (the worker's one globals dict), like a notebook: when the last statement
is an expression its value is printed. Output beyond `MCP_HOST_PYTHON_OUTPUT_LIMIT` characters is dropped
in the worker, so a 50 MB print never crosses a pipe; an error is cut to the same size.

In the sandbox the supervisor is pid 1 of the sandbox's own PID namespace, and there:
- after each call, before it replies, it SIGKILLs every other process of the namespace but the worker
  and waits until none of them can run: whatever the code started (setsid, double fork, a fork of the
  worker itself) does not outlive the call that started it;
- it is not dumpable, so the code (same uid) can neither ptrace it nor open /proc/1/fd; signals from
  inside the namespace cannot reach it (the kernel spares its pid 1); it dies with bwrap (PDEATHSIG)
  and leaves, ending the sandbox, as soon as the host closes its end of the request pipe, mid-call too.
  It needs ctypes for that (prctl): without it, it exits before its first reply and the sandbox does not start.

Every reply echoes the id of its request: the host checks it. The supervisor forwards only the worker's
first line after a request, re-encoded, and only when it carries that id and the right fields; anything
else, or anything left on the worker's pipe when a fence comes, is reported as `tampered`, which makes
the host restart the interpreter (see `mcp_host.tools.native.python`). Not guaranteed: the worker is the
code's own process, so the code (its threads, or functions it rewrote there) can make later calls of the
same interpreter print what it likes, until a restart ends that interpreter.
This file uses only the standard library: it runs in the bare interpreter of the sandbox.
"""

from __future__ import annotations

import ast
import io
import json
import os
import select
import signal
import sys
import time
import traceback
from typing import Any, BinaryIO, TextIO

LIMIT = int(os.environ.get("MCP_HOST_PYTHON_OUTPUT_LIMIT", "100000"))
# One worker reply: JSON may spell one character in 12 bytes (a surrogate pair); output and error are each capped.
REPLY_LIMIT = 24 * LIMIT + 64 * 1024
TAMPERED = {"tampered": True}
# A SIGKILLed process stops within microseconds; one that has not after this long ends the interpreter instead.
STRAYS_S = 5.0
TICK_S = 0.05  # how often a supervisor waiting for the worker reaps orphans and checks that the host is there
PR_SET_PDEATHSIG, PR_SET_DUMPABLE = 1, 4


class CappedWriter(io.TextIOBase):
    """Keeps the first LIMIT characters written, counts the rest."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.kept = 0
        self.dropped = 0

    def write(self, text: str) -> int:
        room = LIMIT - self.kept
        if room > 0:
            self.parts.append(text[:room])
            self.kept += min(len(text), room)
        self.dropped += max(len(text) - max(room, 0), 0)
        return len(text)

    def getvalue(self) -> str:
        return "".join(self.parts)


def run(code: str, namespace: dict[str, Any]) -> dict[str, Any]:
    writer = CappedWriter()
    stdout, stderr = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = writer
    error = None
    try:
        tree = ast.parse(code, "<python>", "exec")
        last = tree.body[-1] if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        if last is not None:
            tree.body.pop()
        exec(compile(tree, "<python>", "exec"), namespace)  # noqa: S102 - running the model's code is the tool
        if last is not None:
            value = eval(compile(ast.Expression(last.value), "<python>", "eval"), namespace)  # noqa: S307
            if value is not None:
                print(repr(value))
    except MemoryError:
        error = "MemoryError: the code used more memory than the sandbox allows"
    except BaseException as exc:  # noqa: BLE001 - the model's exceptions (SystemExit included) are its to read
        error = format_error(exc)
    finally:
        sys.stdout, sys.stderr = stdout, stderr
    if error is not None and len(error) > LIMIT:  # a huge message: its start and its end (the exception's name)
        head, tail = error[: LIMIT // 2], error[len(error) - LIMIT // 2 :]
        error = f"{head}\n[… {len(error) - len(head) - len(tail)} characters of the error cut …]\n{tail}"
    return {"output": writer.getvalue(), "error": error, "dropped": writer.dropped}


def limit_resources() -> None:
    """Cap the worker's memory, CPU time and (in the sandbox) process count before any of the model's code runs."""
    import resource

    memory = int(os.environ.get("MCP_HOST_PYTHON_MEMORY_MB", "1024")) * 1024 * 1024
    cpu = int(os.environ.get("MCP_HOST_PYTHON_CPU_S", "600"))
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    processes = os.environ.get("MCP_HOST_PYTHON_PROCESSES")
    if processes is not None:  # counted per sandbox there; outside one it would count all of the user's processes
        resource.setrlimit(resource.RLIMIT_NPROC, (int(processes), int(processes)))


def format_error(error: BaseException) -> str:
    """The traceback of the model's code only, without this kernel's frames."""
    frames = [frame for frame in traceback.extract_tb(error.__traceback__) if frame.filename == "<python>"]
    lines = ["Traceback (most recent call last):\n", *traceback.format_list(frames)] if frames else []
    return "".join([*lines, *traceback.format_exception_only(error)])


def serve(requests: TextIO, replies: TextIO, namespace: dict[str, Any]) -> None:
    """The worker's loop: run each request's code, reply with its result."""
    for line in requests:
        request = json.loads(line)
        reply = run(request["code"], namespace)
        replies.write(json.dumps({"id": request["id"], **reply}) + "\n")
        replies.flush()


def prctl(option: int, value: int) -> None:
    import ctypes

    if ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option}, {value}) failed")


class Worker:
    """The supervisor's side of the worker: its pid and its two pipes."""

    def __init__(self, *, init: bool) -> None:
        requests_read, requests_write = os.pipe()
        replies_read, replies_write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the worker: it must never return into the supervisor's code
            try:
                become_worker(requests_read, replies_write, init=init)
            finally:
                os._exit(1)
        os.close(requests_read)
        os.close(replies_write)
        self.pid = pid
        self.init = init
        self.requests: BinaryIO = os.fdopen(requests_write, "wb")
        self.replies = replies_read
        self.pending = bytearray()  # what the worker wrote beyond the line just read

    def call(self, request: dict[str, Any]) -> dict[str, Any]:
        """Run one request's code in the worker; the checked reply, once nothing else of the code runs."""
        try:
            self.requests.write((json.dumps({"id": request["id"], "code": request["code"]}) + "\n").encode())
            self.requests.flush()
        except BrokenPipeError:
            self.lost()
        line = self.read_line()
        if self.init:
            end_strays(self.pid)
        return TAMPERED if line is None else checked(line, request["id"])

    def clean(self) -> bool:
        """Whether the worker has written nothing since its last reply (it exits when the worker has died)."""
        reap(self.pid)
        return not self.pending and not select.select([self.replies], [], [], 0)[0]

    def read_line(self) -> bytes | None:
        """The worker's next line; None when it is too long to be a reply. Ends the supervisor if the host leaves."""
        while b"\n" not in self.pending:
            if len(self.pending) > REPLY_LIMIT:
                return None
            readable = select.select([self.replies, 0], [], [], TICK_S)[0]
            reap(self.pid)
            if 0 in readable:  # the host writes nothing during a call: it has closed the pipe, it is gone
                os._exit(1)
            if self.replies in readable:
                chunk = os.read(self.replies, 1 << 16)
                if not chunk:
                    self.lost()
                self.pending += chunk
        line, _, rest = bytes(self.pending).partition(b"\n")
        self.pending = bytearray(rest)
        return line

    def lost(self) -> None:
        """The worker's pipe broke, so it is dying: end this interpreter, and the host starts a fresh one."""
        os._exit(1)


def become_worker(requests: int, replies: int, *, init: bool) -> None:
    """In the forked child: keep only the worker's own pipes, at 3 and 4, with 0-2 on /dev/null; serve forever."""
    import fcntl

    requests, replies = (fcntl.fcntl(fd, fcntl.F_DUPFD, 5) for fd in (requests, replies))
    os.dup2(requests, 3)
    os.dup2(replies, 4)
    # Above 4: the originals and every other inherited descriptor; 0 and 1 are the host's pipes, replaced next.
    os.closerange(5, max(os.sysconf("SC_OPEN_MAX"), 1024))
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    if init:
        prctl(PR_SET_DUMPABLE, 1)  # the supervisor's guard is not the code's: its own /proc files stay its own
    limit_resources()
    sys.stdin = open(os.devnull, encoding="utf-8")  # noqa: SIM115 - lives as long as the process
    sys.stdout = sys.stderr = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115
    serve(os.fdopen(3, "r", encoding="utf-8"), os.fdopen(4, "w", encoding="utf-8"), {"__name__": "__main__"})
    os._exit(0)


def checked(line: bytes, request_id: str) -> dict[str, Any]:
    """The reply to forward to the host: the worker's, re-encoded, if it answers `request_id` and is well formed."""
    try:
        reply = json.loads(line)
    except ValueError:
        return TAMPERED
    if not isinstance(reply, dict) or reply.get("id") != request_id:
        return TAMPERED
    output, error, dropped = reply.get("output"), reply.get("error"), reply.get("dropped")
    if not isinstance(output, str) or not isinstance(dropped, int) or not isinstance(error, str | None):
        return TAMPERED
    return {"output": output, "error": error, "dropped": dropped}


def reap(worker: int) -> None:
    """Reap exited children (as pid 1, every orphan of the namespace); end the supervisor if the worker is one."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        if pid == worker:  # it died (os._exit, a signal, the CPU limit): the host sees the end and restarts
            os._exit(1)


def end_strays(worker: int) -> None:
    """As pid 1: SIGKILL every process of the namespace but this one and the worker; return once none can run."""
    deadline = time.monotonic() + STRAYS_S
    while True:
        reap(worker)
        strays = [pid for pid in map(int, filter(str.isdigit, os.listdir("/proc"))) if pid not in (1, worker)]
        for pid in strays:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:  # gone already, or one we may not signal: `running` tells which
                pass
        if not any(running(pid) for pid in strays):
            return
        if time.monotonic() > deadline:  # unkillable: give up this interpreter rather than leave the process
            os._exit(1)
        time.sleep(0.001)


def running(pid: int) -> bool:
    """Whether any thread of `pid` has yet to exit (a zombie has closed its descriptors and runs nothing)."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return False
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/stat") as stat:
                if stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X"):
                    return True
        except (OSError, IndexError):
            continue
    return False


def main() -> None:
    if "MCP_HOST_PYTHON_WORKDIR" in os.environ:
        os.chdir(os.environ["MCP_HOST_PYTHON_WORKDIR"])
    init = os.getpid() == 1  # pid 1 of a PID namespace of its own: the sandbox's, and everything in it is the code's
    if init:
        prctl(PR_SET_DUMPABLE, 0)
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    worker = Worker(init=init)
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # no Python handler: as pid 1, signals from the code are ignored
    requests = os.fdopen(0, "r", encoding="utf-8")
    channel = os.fdopen(1, "w", encoding="utf-8")
    for line in requests:
        request = json.loads(line)
        if request.get("fence"):
            reply = {"fence": True} if worker.clean() else TAMPERED
        else:
            reply = worker.call(request)
        channel.write(json.dumps({"id": request["id"], **reply}) + "\n")
        channel.flush()


if __name__ == "__main__":
    main()
