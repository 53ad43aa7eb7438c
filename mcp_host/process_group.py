"""Child processes that lead their own process group, and are stopped as a whole group.

The stdio transport runs MCP servers (`npx` starts `node`, `uvx` starts python) and the python tool
runs the model's code (which may start processes of its own). Stopping only the child we started would
leave its children running, so each child starts a new session, which makes it the leader of a new
process group, and stopping signals the group:

    process = await open_process_group([executable, *args], env=env, cwd=cwd)
    ...
    await stop_process_group(process)      # close stdin, wait; SIGTERM the group, wait; SIGKILL it
    await close_process(process)           # reap it and release its pipes

A new session also keeps the terminal's Ctrl-C away from the children: the host decides when they stop.
Every wait here is bounded, and stopping is shielded from cancellation, so a cancelled caller never
leaves a child behind. POSIX only for groups; on Windows the child itself is killed.

A host that dies without stopping its children (SIGKILL, a crash, an uncaught SIGHUP) cannot stop them,
so on Linux the kernel does: each child is started with `PR_SET_PDEATHSIG` = SIGKILL, through
`setpriv --pdeathsig KILL -- COMMAND` (util-linux; it sets the flag and execs COMMAND, so the pid stays
the child's own and costs about a millisecond), or where setpriv is missing through this interpreter
(`python -I -S -c`, which sets it with `prctl` and execs, about 15 ms). The flag survives `exec` (except
of a set-user-id binary) and fires when the thread that forked the child exits: asyncio forks in the
event loop's thread, which outlives every child, so it is set on asyncio only (trio forks in worker
threads that exit when idle, which would kill the child). It reaches the child alone: a grandchild
(node under npx) is left to notice its closed stdin.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import anyio
import anyio.abc

# After stdin closes, a well-behaved child exits on its own within this grace period.
EXIT_GRACE_S = 2.0
# Between SIGTERM and SIGKILL to the child's process group.
TERMINATE_GRACE_S = 2.0
# For a SIGKILL to take effect and the leader to be reaped.
KILL_SETTLE_S = 0.5
_POLL_S = 0.01


async def open_process_group(
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path | None = None,
    stderr: int = subprocess.PIPE,
) -> anyio.abc.Process:
    """Start `command` with pipes, as the leader of a new session and process group (`pgid == pid`).

    On Linux the child is SIGKILLed by the kernel if the host dies first (see the module's docstring).
    """
    command = await _killed_with_host(command)
    return await anyio.open_process(command, env=env, cwd=cwd, stderr=stderr, start_new_session=True)


# Run as `python -I -S -c _PDEATHSIG_EXEC HOST_PID COMMAND...`: PR_SET_PDEATHSIG (1) = SIGKILL (9), then exec.
_PDEATHSIG_EXEC = """\
import ctypes, os, sys
ctypes.CDLL(None, use_errno=True).prctl(1, 9, 0, 0, 0)
if os.getppid() != int(sys.argv[1]):
    os._exit(1)  # the host died before the flag was set
os.execvp(sys.argv[2], sys.argv[2:])
"""


async def _killed_with_host(command: Sequence[str]) -> list[str]:
    """`command`, prefixed so that the kernel SIGKILLs it when the host dies (Linux, asyncio)."""
    if sys.platform != "linux" or not _on_asyncio():
        return list(command)
    setpriv = await anyio.to_thread.run_sync(_setpriv)
    if setpriv is not None:
        return [setpriv, "--pdeathsig", "KILL", "--", *command]
    return [sys.executable, "-I", "-S", "-c", _PDEATHSIG_EXEC, str(os.getpid()), *command]


def _on_asyncio() -> bool:
    """Whether the child is forked by asyncio, in the event loop's own thread (trio forks in a worker thread)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@functools.cache
def _setpriv() -> str | None:
    """setpriv, if it has --pdeathsig (util-linux 2.33, from 2018: RHEL 8's has not)."""
    path = shutil.which("setpriv")
    if path is None:
        return None
    try:
        usage = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=5, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return path if "--pdeathsig" in usage else None


async def wait_exit(process: anyio.abc.Process, limit_s: float) -> bool:
    """Wait up to `limit_s` for the leader to exit; whether it has."""
    # Not process.wait(): on asyncio it can also wait for the pipes' EOF, which a child holding them delays.
    with anyio.move_on_after(limit_s):
        while process.returncode is None:  # noqa: ASYNC110 - no event exists for a child's exit
            await anyio.sleep(_POLL_S)
    return process.returncode is not None


async def stop_process_group(
    process: anyio.abc.Process,
    *,
    exit_grace_s: float = EXIT_GRACE_S,
    terminate_grace_s: float = TERMINATE_GRACE_S,
) -> None:
    """Stop the child and everything in its group, within bounded time, even when cancelled.

    Close stdin and give the child `exit_grace_s` to exit on its own; SIGTERM the group and give it
    `terminate_grace_s`; SIGKILL whatever is left. The group is signalled even when the leader has
    already exited: the children it left behind must not outlive it. A grace of 0 skips that step
    (the python sandbox is killed at once: code that ignores SIGTERM must not buy itself time).
    """
    with anyio.CancelScope(shield=True):
        if process.stdin is not None:
            with contextlib.suppress(OSError, anyio.ClosedResourceError, anyio.BrokenResourceError):
                await process.stdin.aclose()
        exited = exit_grace_s > 0 and await wait_exit(process, exit_grace_s)
        if sys.platform == "win32":  # pragma: no cover - the host targets POSIX first
            if not exited:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
        else:
            # The leader's pid is the group's id; getpgid() would fail once the leader is reaped.
            alive = True
            if terminate_grace_s > 0:
                alive = _signal_group(process.pid, signal.SIGTERM) and not await _wait_group_gone(
                    process, terminate_grace_s
                )
            if alive and _signal_group(process.pid, signal.SIGKILL):
                await _wait_group_gone(process, KILL_SETTLE_S)
        await wait_exit(process, KILL_SETTLE_S)


async def close_process(process: anyio.abc.Process) -> None:
    """Reap the child and close its pipes, within `KILL_SETTLE_S`, even when cancelled.

    On asyncio, `Process.aclose()` also closes the subprocess transport (the pipes' transports first,
    and the transport itself if the wait is cut short), so nothing is left for garbage collection,
    which may run after the event loop is gone, even when a process that escaped the group still
    holds a pipe.
    """
    with anyio.CancelScope(shield=True), anyio.move_on_after(KILL_SETTLE_S):
        await process.aclose()


def _signal_group(pgid: int, signum: int) -> bool:
    """Signal every process in the group; False when the group is already gone."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # an unreaped zombie or a member we may not signal: the group is not known to be gone
    return True


async def _wait_group_gone(process: anyio.abc.Process, limit_s: float) -> bool:
    """Wait up to `limit_s` until no process is left in the group (an unreaped zombie counts); whether none is."""
    with anyio.move_on_after(limit_s):
        while _signal_group(process.pid, 0):
            _ = process.returncode  # reaps the leader on trio; a zombie leader keeps the group alive
            await anyio.sleep(_POLL_S)
        return True
    return False
