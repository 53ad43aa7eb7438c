"""The python tool's sandbox, attacked from inside: the host's files, writes, signals, detached processes,
fork bombs, forged replies, the network. Every attack must fail and leave the host (this pytest process) healthy.

Skipped only where bubblewrap is not installed; where it is, the sandbox must start (CI has it).
"""

from __future__ import annotations

import ast
import json
import os
import pwd
import shutil
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

from mcp_host.tools.native import PythonTool
from mcp_host.tools.native import sandbox as sandbox_module
from mcp_host.tools.native.sandbox import KERNEL_PATH, Isolation, Sandbox, SandboxLayout, bwrap_command, sandbox_uid

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(
        shutil.which("bwrap") is None, reason="bubblewrap is not installed (apt-get install bubblewrap)"
    ),
]


@pytest.fixture
async def python(tmp_path: Path) -> AsyncIterator[PythonTool]:
    tool = PythonTool(tmp_path / "work", time_limit_s=5, output_limit_chars=5000, memory_limit_mb=512)
    assert tool.isolation is Isolation.SANDBOX, "bwrap is installed, but the sandbox cannot start here"
    yield tool
    await tool.aclose()


async def value(tool: PythonTool, code: str) -> Any:
    """The value of the code's last expression (a literal), failing the test on an error."""
    result = await tool.call({"code": code})
    assert not result.is_error, result.text
    return ast.literal_eval(result.text)


def processes_with(marker: str) -> list[int]:
    """Host pids of live processes with `marker` in their command line (pids inside the sandbox are its own)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            alive = entry.joinpath("stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
            if alive and marker in entry.joinpath("cmdline").read_text():
                found.append(int(entry.name))
        except (FileNotFoundError, ProcessLookupError, NotADirectoryError):
            continue
    return found


TRY = """
import os
def read(path):
    try:
        with open(path) as file:
            return file.read()
    except OSError as exc:
        return type(exc).__name__
def write(path):
    try:
        with open(path, "w") as file:
            file.write("x")
        return "written"
    except OSError as exc:
        return type(exc).__name__
"""


async def test_the_hosts_secrets_and_home_are_not_there(
    python: PythonTool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_home = Path(pwd.getpwuid(os.getuid()).pw_dir)
    key = tmp_path / "home" / ".ssh" / "test_key"
    key.parent.mkdir(parents=True)
    key.write_text("PRIVATE KEY")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # the sandbox must not care what the host's HOME is
    reads = await value(
        python,
        TRY + f"[read({str(key)!r}), read(os.path.expanduser('~/.ssh/test_key')), read('/etc/shadow'), "
        f"read('/etc/passwd'), os.path.expanduser('~'), os.listdir('/etc')]",
    )
    assert reads[:4] == ["FileNotFoundError"] * 4
    assert reads[4] == "/mnt/data"
    assert {"shadow", "passwd", "group", "hosts", "ssh"}.isdisjoint(reads[5])
    # The real home holds nothing but the way to the interpreter, when Python lives under it (pyenv, uv).
    prefixes = {Path(p).resolve() for p in (sys.prefix, sys.base_prefix)} | {Path(sys.prefix), Path(sys.base_prefix)}
    allowed = {p.relative_to(real_home).parts[0] for p in prefixes if real_home in p.parents}
    listing = await value(
        python, f"import os\nos.listdir({str(real_home)!r}) if os.path.isdir({str(real_home)!r}) else []"
    )
    assert set(listing) <= allowed


async def test_of_the_interpreters_prefixes_only_its_own_files_are_there(python: PythonTool) -> None:
    # pyenv here: /root/.pyenv/versions/3.11.7 is the base prefix, inside the home; its siblings (other
    # versions, shims, plugins) and the rest of each prefix (bin's other scripts, include, share) stay out.
    prefixes = {p for p in map(Path, (sys.prefix, sys.base_prefix)) for p in (p, p.resolve())}
    prefixes = {p for p in prefixes if not any(p.is_relative_to(d) for d in ("/usr", "/bin", "/lib"))}
    on_the_way: dict[str, set[str]] = {}
    for prefix in prefixes:
        for path in (prefix, *prefix.parents):
            on_the_way.setdefault(str(path.parent), set()).add(path.name)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    seen = await value(
        python,
        "import os\n"
        "ls = lambda p: sorted(os.listdir(p)) if os.path.isdir(p) else []\n"
        f"prefixes = {sorted(map(str, prefixes))!r}\n"
        "{p: [ls(os.path.dirname(p)), ls(p), ls(p + '/bin'), ls(p + '/lib')] for p in prefixes}",
    )
    for prefix, (siblings, top, bin_, lib) in seen.items():
        assert set(siblings) <= on_the_way[str(Path(prefix).parent)], siblings
        assert set(top) <= {"bin", "lib", "pyvenv.cfg"} and bin_ and all(n.startswith("python") for n in bin_), top
        assert all(name == version or ".so" in name for name in lib), lib


async def test_a_python_whose_prefix_is_the_home_does_not_show_the_home(tmp_path: Path) -> None:
    # A venv made in the home directory itself (`python -m venv ~`; the same holds for `--prefix=$HOME`).
    home = tmp_path / "home"
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    (home / "bin").mkdir(parents=True)
    (home / "lib" / version / "site-packages").mkdir(parents=True)
    (home / "bin" / "python").symlink_to(Path(sys.executable).resolve())
    (home / "bin" / "backup-script").write_text("#!/bin/sh\nexport TOKEN=secret\n")
    (home / "pyvenv.cfg").write_text(f"home = {Path(sys.base_prefix) / 'bin'}\n")
    (home / ".ssh").mkdir()
    (home / ".ssh" / "id_ed25519").write_text("PRIVATE KEY")
    (home / "notes.txt").write_text("private")
    layout = SandboxLayout(tmp_path / "work", Path(__file__), uid=sandbox_uid() if os.geteuid() == 0 else None)
    layout.workdir.mkdir()
    code = (
        "import json, os, sys\n"
        f"print(json.dumps([sys.prefix, sorted(os.listdir({str(home)!r})), os.listdir({str(home / 'bin')!r})]))"
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "prefix", str(home))
        command = bwrap_command(layout, [str(home / "bin" / "python"), "-I", "-c", code])
    mounted = {command[i + 1] for i, arg in enumerate(command) if arg.endswith("bind")}
    assert {path for path in mounted if path.startswith(str(home))} == {
        str(home / "bin" / "python"),
        str(home / "pyvenv.cfg"),
        str(home / "lib" / version),
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "prefix", str(home))
        sandbox = await Sandbox.open(layout, [str(home / "bin" / "python"), "-I", "-c", code], env={"PATH": "/usr/bin"})
    try:
        assert sandbox.process.stdout is not None
        with anyio.fail_after(10):
            output = b"".join([chunk async for chunk in sandbox.process.stdout])
    finally:
        await sandbox.kill()
    prefix, listing, bin_ = json.loads(output)
    assert prefix == str(home)  # it ran as the venv in the home
    assert listing == ["bin", "lib", "pyvenv.cfg"] and bin_ == ["python"]


def test_an_old_bwrap_that_cannot_disable_user_namespaces_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox_module, "host_is_root", lambda: False)
    monkeypatch.setattr(sandbox_module, "_probe", lambda: sandbox_module._Probe(Isolation.SANDBOX, False))
    assert "older than 0.8" in Isolation.SANDBOX.summary
    warning = Isolation.SANDBOX.warning
    assert warning is not None and "user namespaces" in warning and "NOT sandboxed" not in warning
    monkeypatch.setattr(sandbox_module, "_probe", lambda: sandbox_module._Probe(Isolation.SANDBOX, True))
    assert Isolation.SANDBOX.warning is None and "0.8" not in Isolation.SANDBOX.summary


async def test_bwrap_dies_with_the_host_only_where_the_forking_thread_outlives_it(tmp_path: Path) -> None:
    assert sandbox_module._forks_in_this_thread()  # asyncio forks in the event loop's thread: --die-with-parent
    assert not await anyio.to_thread.run_sync(sandbox_module._forks_in_this_thread)  # as trio's worker threads
    layout = SandboxLayout(tmp_path, Path(__file__), uid=sandbox_uid())
    assert "--die-with-parent" not in bwrap_command(layout, ["true"])
    assert "--die-with-parent" in bwrap_command(layout, ["true"], die_with_parent=True)
    assert "--as-pid-1" in bwrap_command(layout, ["true"])  # no bwrap process inside that holds the pipes


async def test_the_code_has_no_privileges(python: PythonTool) -> None:
    uid, status = await value(python, "import os\nos.getuid(), open('/proc/self/status').read()")
    capabilities = dict(line.split(":\t") for line in status.splitlines() if line.startswith("Cap"))
    assert int(capabilities["CapEff"], 16) == int(capabilities["CapPrm"], 16) == 0
    if os.geteuid() == 0:  # root's sandbox runs as an unprivileged uid of its own, with nothing to regain
        assert uid != 0 and (python.workdir.stat().st_uid, python.workdir.stat().st_gid) == (uid, uid)
        assert int(capabilities["CapBnd"], 16) == int(capabilities["CapInh"], 16) == 0


async def test_writes_land_only_in_the_working_directory(python: PythonTool, tmp_path: Path) -> None:
    name = f"mcp-sandbox-test-{time.time_ns()}"  # unique, so that a broken sandbox's writes can be found and removed
    private = Path("/tmp", name)  # the sandbox's /tmp is its own
    outside = [Path("/usr", name), Path("/", name), Path("/etc", name), Path(sys.prefix, name), tmp_path / name]
    targets = ["/mnt/data/inside.txt", "relative.txt", str(private), str(KERNEL_PATH), *map(str, outside)]
    try:
        results = await value(python, TRY + f"[write(path) for path in {targets!r}]")
        assert results[:3] == ["written"] * 3, results
        assert "written" not in results[3:], results
        assert (python.workdir / "inside.txt").read_text() == "x" and (python.workdir / "relative.txt").exists()
        assert not [path for path in [private, *outside] if path.exists()]
    finally:
        for path in [private, *outside]:
            path.unlink(missing_ok=True)


async def test_the_code_cannot_signal_the_host(python: PythonTool) -> None:
    received: list[int] = []
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: received.append(signum))
    try:
        sent = await value(
            python,
            "import os, signal\n"
            "def send(pid, signum):\n"
            "    try:\n"
            "        os.kill(pid, signum)\n"
            "        return 'sent'\n"
            "    except OSError as exc:\n"
            "        return type(exc).__name__\n"
            f"[os.getppid(), send(os.getppid(), signal.SIGKILL), send(1, signal.SIGKILL), "
            f"send({os.getpid()}, signal.SIGUSR1)]",
        )
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert sent[0] == 1  # its parent is the sandbox's first process (the kernel's supervisor), not the host
    assert sent[3] == "ProcessLookupError" and not received  # the host's pid does not exist in there
    assert (await python.call({"code": "'alive'"})).text == "'alive'\n"  # and the interpreter carries on


SPAWN = """
import os, subprocess, time
subprocess.Popen(["sleep", "{first}"], start_new_session=True)
if os.fork() == 0:  # a double fork: the grandchild is orphaned, in a session of its own
    os.setsid()
    if os.fork() == 0:
        os.execvp("sleep", ["sleep", "{second}"])
    os._exit(0)
os.wait()
def running(marker):
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if marker in open(f"/proc/{{pid}}/cmdline").read():
                return True
        except OSError:
            pass
    return False
while not (running("{first}") and running("{second}")):
    time.sleep(0.01)
"""


async def test_detached_processes_end_with_the_call_that_started_them(tmp_path: Path) -> None:
    tool = PythonTool(tmp_path / "work", time_limit_s=5)
    first, second = f"1000.{time.time_ns()}", f"1001.{time.time_ns()}"  # `sleep 1000.<unique>`, findable from here
    try:
        assert (await tool.call({"code": SPAWN.format(first=first, second=second) + "'kept'"})).text == "'kept'\n"
        assert not processes_with(first) and not processes_with(second)  # gone when the call returns, no waiting
        alive = "[p for p in os.listdir('/proc') if p.isdigit() and open(f'/proc/{p}/stat').read().split()[2] != 'Z']"
        assert await value(tool, f"import os\nsorted({alive})") == ["1", "2"]  # the kernel's supervisor and worker
    finally:
        await tool.aclose()


async def test_detached_processes_die_with_the_sandbox_at_the_time_limit(tmp_path: Path) -> None:
    tool = PythonTool(tmp_path / "work", time_limit_s=3)
    first, second = f"1000.{time.time_ns()}", f"1001.{time.time_ns()}"
    code = SPAWN.format(first=first, second=second) + "while True: pass"
    try:
        async with anyio.create_task_group() as tg:
            results: list[str] = []

            async def run() -> None:
                results.append((await tool.call({"code": code})).text)

            tg.start_soon(run)
            with anyio.fail_after(3):
                while not (processes_with(first) and processes_with(second)):  # noqa: ASYNC110 - polling /proc
                    await anyio.sleep(0.01)
        assert "ran longer than 3s" in results[0]
        assert not processes_with(first) and not processes_with(second)  # gone when the kill returns
    finally:
        await tool.aclose()


FORK_LINEARLY = """
import os, signal, time
children, stopped = [], None
try:
    for _ in range(64):  # bounded, so that a broken limit cannot hurt the machine
        pid = os.fork()
        if pid == 0:
            time.sleep(30)
            os._exit(0)
        children.append(pid)
except BlockingIOError as exc:
    stopped = str(exc)
for pid in children:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
len(children), stopped
"""


async def test_a_fork_bomb_stops_at_the_process_limit(tmp_path: Path) -> None:
    tool = PythonTool(tmp_path / "work", time_limit_s=3, process_limit=16)
    try:
        # First a bounded one, which proves the limit holds before the real bomb runs.
        forked, stopped = await value(tool, FORK_LINEARLY)
        assert 0 < forked < 16 and stopped == "[Errno 11] Resource temporarily unavailable"
        bomb = await tool.call({"code": "import os\nwhile True:\n    os.fork()"})
        assert bomb.is_error and ("BlockingIOError" in bomb.text or "ran longer than 3s" in bomb.text), bomb.text
        # Every copy of the interpreter answered; the extra replies restart it before the next call runs.
        assert (await tool.call({"code": "'alive'"})).text.endswith("'alive'\n")
        await anyio.run_process(["true"])  # the host can still start processes
    finally:
        await tool.aclose()


FORGE = """
import json, os, sys
def forge(request_id):
    line = json.dumps({"id": request_id, "output": "forged", "error": None, "dropped": 0, "fence": True})
    for fd in range(21):
        try:
            os.write(fd, (line + "\\n").encode())
        except OSError:
            pass
"""


async def test_a_forged_reply_cannot_change_what_the_next_call_returns(python: PythonTool) -> None:
    await python.call({"code": "kept = 1"})
    forged = await python.call({"code": FORGE + "forge('a guess')\n'previous'"})
    assert forged.is_error and "reply channel" in forged.text and "previous" not in forged.text
    assert (await python.call({"code": "'fresh'"})).text == "'fresh'\n"


async def test_a_reply_forged_with_the_right_id_still_cannot_reach_the_next_call(python: PythonTool) -> None:
    # The code runs in the kernel's process, so it can find the request's id; it fools only its own call.
    request = "sys._getframe().f_back.f_back.f_locals['request']['id']"
    forged = await python.call({"code": FORGE + f"forge({request})\n'previous'"})
    assert forged.text == "forged"
    fresh = await python.call({"code": "'fresh'"})
    assert fresh.text.endswith("'fresh'\n") and "previous" not in fresh.text and "forged" not in fresh.text
    assert "restarted before this call" in fresh.text  # the model is told its variables are gone


# The reviewer's attack: a child outlives its call, reads the next request to learn its id and answers it first.
FORK_AND_FORGE = """
import fcntl, json, os, re, select
if os.fork() == 0:
    os.setsid()
    readable = [fd for fd in range(64) if is_readable_pipe(fd)]
    while True:
        ready = select.select(readable, [], [])[0]
        found = re.search(r'"id": "([0-9a-f]+)"', os.read(ready[0], 1 << 16).decode(errors="replace"))
        if found:
            line = json.dumps({"id": found[1], "output": "FORGED\\n", "error": None, "dropped": 0, "fence": True})
            for fd in range(64):
                try:
                    os.write(fd, (line + "\\n").encode())
                except OSError:
                    pass
'started'
"""
IS_READABLE_PIPE = """
import fcntl, os, stat
def is_readable_pipe(fd):
    try:
        return stat.S_ISFIFO(os.fstat(fd).st_mode) and fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE != os.O_WRONLY
    except OSError:
        return False
"""


async def test_a_child_left_running_cannot_answer_a_later_call(python: PythonTool) -> None:
    await python.call({"code": "kept = 'real'"})
    assert (await python.call({"code": IS_READABLE_PIPE + FORK_AND_FORGE})).text == "'started'\n"
    for _ in range(3):  # the child was killed before the call returned: it never saw these requests
        assert (await python.call({"code": "kept"})).text == "'real'\n"


async def test_the_codes_process_holds_no_pipe_to_the_host(python: PythonTool) -> None:
    # Threads and rewritten functions act as the code's own process: its only pipes are the worker's.
    pipes = await value(python, IS_READABLE_PIPE + "[fd for fd in range(1024) if is_readable_pipe(fd)]")
    assert pipes == [3]
    assert (
        await value(python, TRY + "read('/proc/1/fd/0')") == "PermissionError"
    )  # the supervisor is not dumpable: no way to its descriptors


async def test_there_is_no_network_even_to_the_hosts_loopback(python: PythonTool) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        result = await python.call(
            {"code": f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)"}
        )
    assert result.is_error and "ConnectionRefusedError" in result.text
    assert await value(python, "import socket\nsorted(n for _, n in socket.if_nameindex())") == ["lo"]


async def test_the_tool_says_how_isolated_it_is(tmp_path: Path) -> None:
    sandboxed = PythonTool(tmp_path / "a")
    assert sandboxed.sandboxed and sandboxed.isolation.warning is None
    assert "'/mnt/data'" in sandboxed.spec.description
    weaker = PythonTool(tmp_path / "b", isolation=Isolation.NONE)  # what a machine without bwrap gets
    try:
        assert not weaker.sandboxed and weaker.isolation.warning and "NOT sandboxed" in weaker.isolation.warning
        assert "/mnt/data" not in weaker.spec.description and "not restricted" in weaker.spec.description
        assert await value(weaker, "import os\nos.getcwd()") == str(tmp_path / "b")  # as before the sandbox
    finally:
        await weaker.aclose()
