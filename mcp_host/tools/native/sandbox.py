"""Where the python tool's code runs: a bubblewrap (`bwrap`) sandbox, or, where none can be had, less.

    isolation = await detect_isolation()         # Isolation.SANDBOX where bwrap works here
    if not isolation.sandboxed:
        print(isolation.warning)                 # never silently weaker: say so
    sandbox = await Sandbox.open(SandboxLayout(workdir, kernel), [python, "-I", "-u", KERNEL_PATH], env=env)
    ...                                          # sandbox.process: its stdin and stdout are the command's
    await sandbox.kill()                         # returns once every process in it is gone

Inside the sandbox (`Isolation.SANDBOX`):
- files: a fresh root, read-only: /usr (with /bin, /lib* as on the host), a few files of /etc
  (`ETC_FILES`: no passwd, no shadow), the kernel, and of the interpreter's prefixes (a venv, the Python
  it was made from) only what it runs on: `bin/python*`, `pyvenv.cfg`, `lib/pythonX.Y` and the shared
  libraries directly in `lib/`; never a whole prefix, which may be (or hold) a home directory. The chat's
  working directory is the only host directory that can be written: it is mounted at `/mnt/data`,
  the current directory and HOME. /tmp and /dev/shm are private tmpfs of `tmp_limit_mb` each.
  The host's home, /root, /tmp, /etc and everything else are not there at all;
- processes: its own PID namespace (the code sees only its own processes and can signal none of
  the host's), whose pid 1 is the command itself (`--as-pid-1`: no bwrap process inside, so the
  command reaps orphans, and signals sent from inside cannot kill it). When it dies, Linux kills
  every process in the sandbox, however it was started (setsid, double fork).
  On asyncio, `--die-with-parent` ties that to the host; not on trio, which forks in worker threads
  whose exit would fire it (see `mcp_host.process_group`): there the command must notice the host's
  end of its stdin closing (the python kernel does);
- network, IPC, hostname: their own namespaces, with only a loopback interface;
- privileges: no capabilities, `no_new_privs`, a new session (no terminal to inject keys into).
  Run by a normal user, it is a user namespace mapping that user, in which creating further user
  namespaces is disabled (bwrap 0.8 and later; older ones cannot, and `Isolation.summary` and
  `warning` say so). Run by root, a user namespace would keep the code root to the kernel, so none
  is made: the code runs as a random unprivileged uid (`sandbox_uid()`) instead, which owns the
  working directory, with empty bounding and inheritable capability sets;
- limits: the interpreter sets RLIMIT_NPROC, which counts this sandbox's processes only (per user
  namespace, or per the uid of its own), so a fork bomb fails with EAGAIN at the limit.

Not isolated: the kernel's system calls (no seccomp filter), CPU time across processes (each has its
own RLIMIT_CPU; the time limit kills them all), memory across processes (RLIMIT_AS is per process, so
up to the process limit times the memory limit), disk use in the working directory (no quota).
Run by root, or with bwrap older than 0.8, the code may create user namespaces of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import json
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import anyio
import anyio.abc
import anyio.to_thread

from mcp_host.errors import SandboxStartError
from mcp_host.process_group import close_process, stop_process_group

DATA_DIR = PurePosixPath("/mnt/data")  # where gpt-oss was trained to save files
KERNEL_PATH = PurePosixPath("/opt/mcp-host/python_kernel.py")
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# What a Python program may look for in /etc: the dynamic linker's cache, the time zone, symlinks of
# alternatives, fonts and MIME types. Nothing that names users or holds secrets.
ETC_FILES = ("alternatives", "fonts", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "mime.types")
# Where a root host picks the sandbox's uid: far above human users, system users and the usual subuid ranges.
SANDBOX_UID_BASE = 1_800_000_000
_PROBE_TIMEOUT_S = 10.0
# bwrap reports its sandbox's first process within milliseconds; that process's exit ends every other one.
_START_S = 10.0
_EXIT_S = 5.0
_POLL_S = 0.005


class Isolation(enum.Enum):
    """How far the python tool's code is kept from the host."""

    SANDBOX = "sandbox"  # bubblewrap: everything in the module docstring
    NETWORK = "network"  # `unshare -rn`: no network; the host's files and processes are as reachable as to the host
    NONE = "none"  # a plain child process, with rlimits only

    @property
    def sandboxed(self) -> bool:
        return self is Isolation.SANDBOX

    @property
    def summary(self) -> str:
        if self.sandboxed and not _nested_userns_disabled():
            return f"{_SUMMARIES[self]}; {_NESTED_USERNS}"
        return _SUMMARIES[self]

    @property
    def warning(self) -> str | None:
        """One line for the user when the code is not sandboxed, or less than usual (None when fully)."""
        if self.sandboxed:
            if _nested_userns_disabled():
                return None
            return f"python tool's sandbox is weaker than usual: {_NESTED_USERNS}. Upgrade bubblewrap."
        return (
            f"python tool is NOT sandboxed ({self.summary}): code runs as you, with your files and processes in "
            "reach. Install bubblewrap (`bwrap`) and allow user namespaces for a sandbox."
        )


_SUMMARIES = {
    Isolation.SANDBOX: "bubblewrap sandbox: read-only system, writes only in its working directory, no network",
    Isolation.NETWORK: "no network (unshare -rn) but no file system or process isolation",
    Isolation.NONE: "no isolation: no sandbox and no network namespace",
}
_NESTED_USERNS = "the code can create user namespaces (bwrap older than 0.8 cannot disable them)"


@dataclass(frozen=True)
class SandboxLayout:
    """What one sandbox mounts and how big its tmpfs are."""

    workdir: Path  # read-write at DATA_DIR
    kernel: Path  # read-only at KERNEL_PATH
    tmp_limit_mb: int = 256
    uid: int | None = None  # a root host's sandbox runs as this uid; None for a normal user


@dataclass(frozen=True)
class _Probe:
    isolation: Isolation
    disable_userns: bool  # whether this bwrap can forbid nested user namespaces (0.8 and later)


class Sandbox:
    """One running sandbox: bwrap's process, and a pidfd of the sandbox's first process, whose death ends it."""

    def __init__(self, process: anyio.abc.Process) -> None:
        self.process = process
        self._first: int | None = None

    @classmethod
    async def open(cls, layout: SandboxLayout, command: Sequence[str], *, env: Mapping[str, str]) -> Sandbox:
        """Start `command` in a sandbox laid out as `layout`, with pipes for stdin and stdout; stderr is dropped."""
        if layout.uid is not None:
            _give_workdir(layout.workdir, layout.uid)
        info_read, info_write = os.pipe()
        try:
            process = await anyio.open_process(
                bwrap_command(layout, command, info_fd=info_write, die_with_parent=_forks_in_this_thread()),
                env=env,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # bwrap leads its own group, as `open_process_group` would make it
                pass_fds=(info_write,),
            )
        except OSError as exc:
            os.close(info_read)
            raise SandboxStartError(f"bwrap did not run: {exc}") from exc
        except BaseException:
            os.close(info_read)
            raise
        finally:
            os.close(info_write)
        sandbox = cls(process)
        try:
            sandbox._first = await _hold_first_process(info_read, process.pid)
        except BaseException:
            await sandbox.kill()
            raise
        return sandbox

    async def kill(self) -> None:
        """SIGKILL the sandbox; return once every process in it is gone (bounded, even when cancelled)."""
        with anyio.CancelScope(shield=True):
            pidfd, self._first = self._first, None
            if pidfd is not None:
                with contextlib.suppress(ProcessLookupError):
                    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            await stop_process_group(self.process, exit_grace_s=0, terminate_grace_s=0)
            if pidfd is not None:
                # The first process of a PID namespace exits only once the kernel has reaped every other one.
                await _wait_exited(pidfd, _EXIT_S)
                os.close(pidfd)
            await close_process(self.process)


def bwrap_command(
    layout: SandboxLayout, command: Sequence[str], *, info_fd: int | None = None, die_with_parent: bool = False
) -> list[str]:
    """The bwrap command line that runs `command` as pid 1 of the sandbox (see the module docstring).

    `die_with_parent` sets PR_SET_PDEATHSIG on bwrap, which fires when the thread that forked it exits:
    only for a thread that outlives the sandbox (asyncio's event loop thread, not trio's workers).
    """
    return _bwrap_command(
        layout, command, info_fd=info_fd, disable_userns=_probe().disable_userns, die_with_parent=die_with_parent
    )


def sandbox_uid() -> int:
    """A fresh uid for one root-run sandbox: its processes are counted (RLIMIT_NPROC) apart from any other."""
    return SANDBOX_UID_BASE + secrets.randbelow(1 << 24)


def host_is_root() -> bool:
    return os.geteuid() == 0


def probe_isolation() -> Isolation:
    """The strongest isolation this machine gives: probed once per process (it starts `bwrap true`)."""
    return _probe().isolation


async def detect_isolation() -> Isolation:
    """`probe_isolation()` off the event loop: the first call starts a process."""
    return await anyio.to_thread.run_sync(probe_isolation)


@functools.cache
def _probe() -> _Probe:
    if sys.platform != "linux":
        return _Probe(Isolation.NONE, False)
    if shutil.which("bwrap") is not None:
        true = shutil.which("true") or "/usr/bin/true"
        layout = SandboxLayout(workdir=Path("/"), kernel=Path(true), uid=sandbox_uid() if host_is_root() else None)
        for disable_userns in (True, False):
            command = _bwrap_command(layout, [true], info_fd=None, disable_userns=disable_userns, bind=False)
            if _succeeds(command):
                return _Probe(Isolation.SANDBOX, disable_userns)
    if shutil.which("unshare") is not None and _succeeds(["unshare", "-rn", "true"]):
        return _Probe(Isolation.NETWORK, False)
    return _Probe(Isolation.NONE, False)


def _nested_userns_disabled() -> bool:
    """False only where a normal user's sandbox runs on a bwrap that cannot disable nested user namespaces."""
    probe = _probe()
    return host_is_root() or probe.isolation is not Isolation.SANDBOX or probe.disable_userns


def _forks_in_this_thread() -> bool:
    """Whether anyio forks in the calling thread, which outlives the child (asyncio); trio forks in worker threads."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _succeeds(command: Sequence[str]) -> bool:
    try:
        result = subprocess.run(command, capture_output=True, check=False, timeout=_PROBE_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def _bwrap_command(
    layout: SandboxLayout,
    command: Sequence[str],
    *,
    info_fd: int | None,
    disable_userns: bool,
    die_with_parent: bool = False,
    bind: bool = True,
) -> list[str]:
    args = ["bwrap", "--unshare-pid", "--as-pid-1", "--unshare-net", "--unshare-ipc", "--unshare-uts"]
    args += ["--unshare-cgroup-try"]
    if layout.uid is None:
        args += ["--unshare-user", *(["--disable-userns"] if disable_userns else []), "--cap-drop", "ALL"]
    else:  # root: setpriv needs these to empty the bounding set and become `uid`, which clears every capability
        args += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_SETPCAP"]
    if die_with_parent:
        args += ["--die-with-parent"]
    args += ["--new-session", "--hostname", "sandbox"]
    size = str(layout.tmp_limit_mb * 1024 * 1024)
    args += ["--proc", "/proc", "--dev", "/dev"]
    args += ["--perms", "1777", "--size", size, "--tmpfs", "/tmp", "--perms", "1777", "--size", size, "--tmpfs"]
    args += ["/dev/shm"]
    # After the tmpfs, so that an interpreter installed under /tmp (a CI's venv) is mounted on top, not hidden.
    mounts = _Mounts()
    mounts.system()
    if bind:
        mounts.add("--ro-bind", str(layout.kernel), KERNEL_PATH)
        mounts.add("--bind", str(layout.workdir), DATA_DIR)
    args += [*mounts.args, "--remount-ro", "/dev", "--remount-ro", "/"]
    # The kernel enters DATA_DIR itself: run by root, bwrap has no capability left to enter a 0700 directory of `uid`.
    args += ["--chdir", "/"]
    if info_fd is not None:
        args += ["--info-fd", str(info_fd)]
    if layout.uid is not None:
        uid = str(layout.uid)
        args += ["--", "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
        args += ["--bounding-set", "-all", "--inh-caps", "-all"]
    return [*args, "--", *command]


def _give_workdir(workdir: Path, uid: int) -> None:
    """A root host's sandbox runs as `uid`: it gets the working directory, if that is still empty."""
    if workdir.stat().st_uid != uid and not any(workdir.iterdir()):
        os.chown(workdir, uid, uid)


async def _hold_first_process(info_fd: int, bwrap_pid: int) -> int:
    """A pidfd of the sandbox's first process, from what bwrap writes on `info_fd` (which this closes)."""
    try:
        pid = await _read_child_pid(info_fd)
    finally:
        os.close(info_fd)
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError as exc:
        raise SandboxStartError("the sandbox exited at once") from exc
    except OSError as exc:  # Linux before 5.3
        raise SandboxStartError(f"cannot hold the sandbox's first process: {exc}") from exc
    if _parent_of(pid) != bwrap_pid:  # it exited and the pid was reused before we held it: not ours to kill
        os.close(pidfd)
        raise SandboxStartError("the sandbox exited at once")
    return pidfd


async def _read_child_pid(fd: int) -> int:
    os.set_blocking(fd, False)
    data = b""
    with anyio.move_on_after(_START_S):
        while True:
            try:
                chunk = os.read(fd, 4096)
            except BlockingIOError:
                await anyio.sleep(_POLL_S)
                continue
            data += chunk
            with contextlib.suppress(ValueError, KeyError, TypeError):
                return int(json.loads(data)["child-pid"])
            if not chunk:
                break
    raise SandboxStartError("bwrap exited before starting the sandbox")


def _parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


async def _wait_exited(pidfd: int, limit_s: float) -> None:
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    with anyio.move_on_after(limit_s):
        while not poller.poll(0):  # noqa: ASYNC110 - no event exists for another process's exit
            await anyio.sleep(_POLL_S)


class _Mounts:
    """Mount arguments, with every directory bwrap creates on the way made world-readable (it defaults to 0700)."""

    def __init__(self) -> None:
        self.args: list[str] = []
        self._dirs: set[PurePosixPath] = {PurePosixPath("/"), PurePosixPath("/tmp"), PurePosixPath("/dev")}

    def add(self, kind: str, source: str, destination: PurePosixPath) -> None:
        for parent in reversed(destination.parents):
            if parent not in self._dirs:
                self._dirs.add(parent)
                self.args += ["--perms", "0755", "--dir", str(parent)]
        self.args += [kind, source, str(destination)]

    def system(self) -> None:
        for name in SYSTEM_DIRS:
            path = Path(name)
            if path.is_symlink():  # merged /usr: /bin -> usr/bin
                self.args += ["--symlink", os.readlink(path), name]
            elif path.is_dir():
                self.add("--ro-bind", name, PurePosixPath(name))
        for name in ETC_FILES:
            self.add("--ro-bind-try", f"/etc/{name}", PurePosixPath("/etc", name))
        for path in _interpreter_files():
            self.add("--ro-bind", str(path), PurePosixPath(path))


def _interpreter_files() -> Iterator[Path]:
    """What `sys.executable -I` needs beyond /usr, from a venv and the Python it was made from.

    Only the interpreter's own files, never a whole prefix: Python may be installed with the home
    directory as its prefix (or a venv may be the home), and then the rest of the home must stay out.
    """
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    seen: set[Path] = set()
    for prefix in (Path(sys.prefix), Path(sys.base_prefix)):
        for root in (prefix, prefix.resolve()):
            if root in seen or root == Path("/") or _under_system_dir(root):
                continue
            seen.add(root)
            found = [*root.glob("bin/python*"), root / "pyvenv.cfg", root / "lib" / version, *root.glob("lib/*.so*")]
            yield from (path for path in found if path.exists())


def _under_system_dir(path: Path) -> bool:
    return any(path == Path(name) or Path(name) in path.parents for name in SYSTEM_DIRS)
