"""The interpreter behind the `python` tool: run as a separate process, one JSON request per line on stdin.

    {"id": "9f…", "code": "x = 2\\nx * 21"}  ->  {"id": "9f…", "output": "42\\n", "error": null, "dropped": 0}
    {"id": "c4…", "fence": true}             ->  {"id": "c4…", "fence": true}

State persists between requests (one globals dict), like a notebook: when the last statement is an
expression its value is printed. Output beyond `MCP_HOST_PYTHON_OUTPUT_LIMIT` characters is dropped
here, inside the process, so a 50 MB print never crosses the pipe; an error is cut to the same size.
Every reply echoes the id of its request: the host checks it, and a fence before each call proves
that nothing else was written to the reply channel since the last reply (see `mcp_host.tools.native.python`).
This file uses only the standard library: it runs in the bare interpreter of the sandbox.
"""

from __future__ import annotations

import ast
import io
import json
import os
import sys
import traceback
from typing import Any

LIMIT = int(os.environ.get("MCP_HOST_PYTHON_OUTPUT_LIMIT", "100000"))


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
    """Cap this process's memory, CPU time and (in the sandbox) process count before any of the model's code runs."""
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


def main() -> None:
    if "MCP_HOST_PYTHON_WORKDIR" in os.environ:
        os.chdir(os.environ["MCP_HOST_PYTHON_WORKDIR"])
    limit_resources()
    namespace: dict[str, Any] = {"__name__": "__main__"}
    # Requests and replies travel on private copies of stdin and stdout; the real fds 0, 1 and 2 go
    # nowhere, so code that reads or writes them (input(), os.write, subprocesses, C extensions) cannot
    # touch the protocol by accident. On purpose it still can: the host's id checks catch that.
    requests = os.fdopen(os.dup(0), "r", encoding="utf-8")
    channel = os.fdopen(os.dup(1), "w", encoding="utf-8")
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    sys.stdin = open(os.devnull, encoding="utf-8")  # noqa: SIM115 - lives as long as the process
    for line in requests:
        request = json.loads(line)
        if request.get("fence"):
            reply = {"fence": True}
        else:
            reply = run(request["code"], namespace)
        channel.write(json.dumps({"id": request["id"], **reply}) + "\n")
        channel.flush()


if __name__ == "__main__":
    main()
