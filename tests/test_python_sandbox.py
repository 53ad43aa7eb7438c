"""The python tool's sandbox, attacked from inside: the host's files, writes, signals, detached processes,
fork bombs, forged replies, the network. Every attack must fail and leave the host (this pytest process) healthy.

Skipped only where bubblewrap is not installed; where it is, the sandbox must start (CI has it).
"""

from __future__ import annotations

import ast
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
import pytest

from mcp_host.tools.native import PythonTool
from mcp_host.tools.native.sandbox import KERNEL_PATH, Isolation

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


async def test_the_code_has_no_privileges(python: PythonTool) -> None:
    uid, capabilities = await value(
        python, "import os\nos.getuid(), open('/proc/self/status').read().split('CapEff:')[1].split()[0]"
    )
    assert int(capabilities, 16) == 0
    if os.geteuid() == 0:  # root's sandbox runs as an unprivileged uid of its own
        assert uid != 0 and (python.workdir.stat().st_uid, python.workdir.stat().st_gid) == (uid, uid)


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
    assert sent[0] == 1  # its parent is the sandbox's first process, not the host
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


@pytest.mark.parametrize("ending", ["time limit", "aclose"])
async def test_detached_processes_die_with_the_sandbox(tmp_path: Path, ending: str) -> None:
    tool = PythonTool(tmp_path / "work", time_limit_s=3)
    first, second = f"1000.{time.time_ns()}", f"1001.{time.time_ns()}"  # `sleep 1000.<unique>`, findable from here
    try:
        assert not (await tool.call({"code": SPAWN.format(first=first, second=second)})).is_error
        assert processes_with(first) and processes_with(second)
        if ending == "time limit":
            assert "ran longer than 3s" in (await tool.call({"code": "while True: pass"})).text
        else:
            await tool.aclose()
        assert not processes_with(first) and not processes_with(second)  # gone when the kill returns, no waiting
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
