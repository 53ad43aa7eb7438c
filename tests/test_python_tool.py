"""The native python tool: state, time limit, output limit, memory limit, no network; the host stays healthy.

The sandbox itself (what the code can see, write and signal) is tested in `test_python_sandbox.py`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from mcp_host.agent import ApprovalAnswer, ApprovalRequired, ChatOptions, ToolCallResult, TurnCompleted
from mcp_host.backends import RecordedGeneration, ReplayBackend
from mcp_host.host import Host
from mcp_host.prompt import HarmonyOptions, HarmonyRenderer, harmony_encoding
from mcp_host.tools.native import PythonTool
from mcp_host.tools.native.python import PYTHON_SPEC, describe_python_tool
from mcp_host.tools.native.sandbox import Isolation, detect_isolation
from tests.conftest import fixture_entry, write_config

pytestmark = pytest.mark.anyio


@pytest.fixture
async def python(tmp_path: Path) -> AsyncIterator[PythonTool]:
    tool = PythonTool(tmp_path / "work", time_limit_s=3, output_limit_chars=5000, memory_limit_mb=512)
    yield tool
    await tool.aclose()


async def test_state_survives_between_calls_and_the_workdir_is_the_chats(python: PythonTool, tmp_path: Path) -> None:
    assert (await python.call({"code": "x = 21\nopen('note.txt', 'w').write('hi')"})).text == "2\n"  # like a notebook
    assert (await python.call({"code": "x * 2"})).text == "42\n"
    assert (tmp_path / "work" / "note.txt").read_text() == "hi"
    error = await python.call({"code": "1 / 0"})
    assert error.is_error and error.text.endswith("ZeroDivisionError: division by zero\n")
    assert "python_kernel" not in error.text  # only the model's own frames


async def test_an_endless_loop_is_stopped_and_the_model_is_told(python: PythonTool) -> None:
    await python.call({"code": "kept = 1"})
    started = time.perf_counter()
    result = await python.call({"code": "while True: pass"})
    assert time.perf_counter() - started < 5
    assert result.is_error and "ran longer than 3s" in result.text and "variables are gone" in result.text
    after = await python.call({"code": "kept"})
    assert after.is_error and "NameError" in after.text  # a fresh interpreter
    assert (await python.call({"code": "2 + 2"})).text == "4\n"


async def test_a_50_mb_print_is_cut_inside_the_sandbox(python: PythonTool) -> None:
    started = time.perf_counter()
    result = await python.call({"code": "print('a' * 50_000_000)"})
    assert time.perf_counter() - started < 2
    assert len(result.text) <= 5000
    assert result.text.endswith("more characters were printed]")


async def test_a_huge_error_is_cut_inside_the_interpreter_too(python: PythonTool) -> None:
    result = await python.call({"code": "raise ValueError('x' * 10_000_000 + ' the end')"})
    assert result.is_error and len(result.text) <= 5000
    assert result.text.startswith("Traceback") and "characters of the error cut" in result.text
    assert result.text.endswith(" the end\n")


async def test_a_memory_bomb_fails_inside_the_limit(python: PythonTool) -> None:
    result = await python.call({"code": "hog = bytearray(2 * 1024 ** 3)"})
    assert result.is_error and "MemoryError" in result.text
    assert (await python.call({"code": "'alive'"})).text == "'alive'\n"


async def test_there_is_no_network(python: PythonTool) -> None:
    if await detect_isolation() is Isolation.NONE:
        pytest.skip("no network namespaces on this machine")
    result = await python.call({"code": "import socket\nsocket.create_connection(('127.0.0.1', 9), timeout=2)"})
    assert result.is_error and ("Network is unreachable" in result.text or "Connection refused" in result.text)
    interfaces = await python.call({"code": "import socket\nsorted(n for _, n in socket.if_nameindex())"})
    assert interfaces.text == "['lo']\n"


async def test_the_loop_asks_before_running_python_and_the_host_stays_healthy(tmp_path: Path) -> None:
    config = write_config(tmp_path / "mcp.json", {"fx": fixture_entry()})
    encoding = harmony_encoding()
    outputs = [
        "<|channel|>analysis to=python code<|message|>while True: pass<|call|>",
        "<|channel|>analysis to=python code<|message|>print('a' * 50_000_000)<|call|>",
        "<|channel|>final<|message|>Done.<|return|>",
    ]
    backend = ReplayBackend(
        [RecordedGeneration([], list(encoding.encode(o, allowed_special="all")), "stop") for o in outputs]
    )
    async with Host(config, settings_path=tmp_path / "settings.toml") as host:
        await host.wait_settled()
        chat = host.chat(backend, ChatOptions(harmony=HarmonyOptions(python=True), call_timeout_s=2))
        events = []
        async for event in chat.send("Run some python"):
            events.append(event)
            if isinstance(event, ApprovalRequired):
                assert (event.tool, event.reason) == ("python", "it runs code")
                chat.answer(event.call_id, ApprovalAnswer("allow"))
        await chat.aclose()
        results = [e for e in events if isinstance(e, ToolCallResult)]
        assert [r.is_error for r in results] == [True, False], [r.text[:500] for r in results]
        assert "ran longer than 2s" in results[0].text and len(results[1].text) < 21_000
        assert [e for e in events if isinstance(e, TurnCompleted)][0].stop_reason == "answered"
        assert "<|start|>python to=assistant<|channel|>analysis<|message|>" in encoding.decode(backend.prompts[1])
        assert (await host.call_tool("fx.add", {"a": 1, "b": 1})).text == "2"  # the host is healthy


async def test_writing_to_the_real_stdout_cannot_break_the_interpreter(python: PythonTool) -> None:
    await python.call({"code": "import os, subprocess\nos.write(1, b'raw bytes\\n')\nsubprocess.run(['echo', 'hi'])"})
    assert (await python.call({"code": "x = 1"})).text == ""
    assert (await python.call({"code": "1 + 1"})).text == "2\n"


async def test_a_cancelled_call_stops_and_its_result_never_reaches_the_next_call(python: PythonTool) -> None:
    with anyio.move_on_after(1):
        await python.call({"code": "import time\ntime.sleep(2)\n'old result'"})
    assert (await python.call({"code": "'new result'"})).text == "'new result'\n"


def _processes_with(marker: str) -> list[int]:
    """Host pids of running processes with `marker` in their command line (pids inside a sandbox are its own)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if marker in entry.joinpath("cmdline").read_text() and _running(entry / "stat"):
                found.append(int(entry.name))
        except (FileNotFoundError, ProcessLookupError, NotADirectoryError, ValueError):
            continue
    return found


def _running(stat: Path) -> bool:
    return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited; only reaping is left


WAIT_UNTIL_RUNNING = """
import os, subprocess, time
subprocess.Popen(['sleep', '{marker}'])
def running():
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            if '{marker}' in open(f'/proc/{{pid}}/cmdline').read():
                return True
        except OSError:
            pass
while not running():
    time.sleep(0.01)
"""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
async def test_the_processes_the_code_started_end_with_its_call_or_the_tool(python: PythonTool) -> None:
    marker = f"60.{time.time_ns()}"  # `sleep 60.<unique>`: the same sleep, findable from the host
    await python.call({"code": WAIT_UNTIL_RUNNING.format(marker=marker)})
    if python.sandboxed:
        assert not _processes_with(marker)  # killed before the call returned
    await python.aclose()
    with anyio.fail_after(2):
        while _processes_with(marker):  # noqa: ASYNC110 - no event exists for another process's exit
            await anyio.sleep(0.01)


async def test_the_description_states_the_real_limits(tmp_path: Path) -> None:
    tool = PythonTool(tmp_path, time_limit_s=7, memory_limit_mb=300, output_limit_chars=900)
    description = tool.spec.description
    assert "time out after 7 seconds" in description and "300 MB" in description and "900 characters" in description
    assert tool.spec.name == "python" and tool.spec.input_schema == PYTHON_SPEC.input_schema
    assert "120" not in description and "UNKNOWN" not in description  # openai_harmony's stock text is gone
    if tool.sandboxed:
        assert "'/mnt/data'" in description and "Internet access for this session is disabled." in description
        assert "Processes the code starts are stopped when its call ends" in description
    assert PYTHON_SPEC.description == describe_python_tool(PythonTool(tmp_path).limits, Isolation.SANDBOX)


def test_the_harmony_system_message_carries_the_tools_description() -> None:
    renderer = HarmonyRenderer()
    text = renderer.encoding.decode(renderer.render_message(renderer.system_message(HarmonyOptions(python=True))))
    assert "## python\n\n" in text and PythonTool(Path("/nonexistent")).spec.description in text
