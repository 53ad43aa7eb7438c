"""The web chat under test: `mcp-host serve` started as a user would, and pictures of the page.

The browser fixtures (`browser`, `page`: Debian's chromium driven by Playwright) are in tests/conftest.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
from playwright.sync_api import Page

from mcp_host.backends.registry import ModelRegistry
from tests.conftest import ROOT, fixture_entry, free_port, wait_for_port, write_config
from tests.test_api_lmstudio_v1 import v1_server
from tests.test_chat_terminal import write_recording


@contextmanager
def served(
    tmp_path: Path,
    script: list[str] | None,
    *,
    speed: float = 40,
    api_key: str | None = None,
    servers: dict[str, Any] | None = None,
    serve_args: tuple[str, ...] = (),
    settings: str = "",
    port: int | None = None,
    started: list[subprocess.Popen[bytes]] | None = None,
) -> Iterator[str]:
    """`mcp-host serve` on 127.0.0.1 over `servers` (default: the fixture server `fx`), replaying `script` (None:
    the model `serve_args` names); `settings`: the host settings' TOML; `port` (default: a free one); the process is
    appended to `started`. Yields its base URL."""
    config = write_config(tmp_path / "mcp.json", {"fx": fixture_entry()} if servers is None else servers)
    settings_path = tmp_path / "s.toml"
    settings_path.write_text(settings, encoding="utf-8")
    port = port or free_port()
    command = [sys.executable, "-m", "mcp_host.cli", "--config", str(config), "--settings", str(settings_path)]
    command += ["serve", "--port", str(port), *serve_args]
    if script is not None:
        recording = tmp_path / "chat.jsonl"
        write_recording(recording, script)
        command += ["--replay", str(recording), "--replay-speed", str(speed)]
    if api_key is not None:
        command += ["--api-key", api_key]
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    env.pop("MCP_HOST_API_KEY", None)
    output = (tmp_path / "serve.txt").open("ab")  # a restart on the same folder adds to it
    process = subprocess.Popen(command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT, env=env)
    if started is not None:
        started.append(process)
    try:
        wait_for_port(port, process, limit_s=60)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
        finally:
            output.close()


SCREENSHOTS = ROOT / "docs" / "screenshots"


def screenshot(page: Page, name: str) -> None:
    """Write the page as the README shows it, and check that it is not blank (many distinct pixel bytes)."""
    path = SCREENSHOTS / name
    path.parent.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": 900, "height": 640})
    page.screenshot(path=str(path))
    assert len(set(png_pixels(path.read_bytes()))) > 32, f"{path} looks blank"


def png_pixels(data: bytes) -> bytes:
    """The decompressed image data of a PNG (filter bytes included: enough to tell a blank image)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, at = [], 8
    while at < len(data):
        length = int.from_bytes(data[at : at + 4], "big")
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        if kind == b"IDAT":
            chunks.append(body)
        at += 12 + length
    return zlib.decompress(b"".join(chunks))


@contextmanager
def served_in_thread(tmp_path: Path, models: ModelRegistry, *, servers: dict[str, Any] | None = None) -> Iterator[str]:
    """The API over `models` (the test keeps a hand on its loads) on 127.0.0.1, run by uvicorn in a thread of its
    own, so that the synchronous Playwright of a test can drive a page against it. Yields the base URL."""
    ready = threading.Event()
    stop = threading.Event()
    found: dict[str, Any] = {}

    async def serve() -> None:
        async with v1_server(tmp_path, models, servers=servers) as api:
            found["url"] = api.url
            ready.set()
            while not stop.is_set():  # noqa: ASYNC110 - a threading.Event set by the test's thread
                await anyio.sleep(0.05)

    def run() -> None:
        try:
            anyio.run(serve)
        except BaseException as exc:  # handed to the test's thread
            found["error"] = exc
        finally:
            ready.set()

    thread = threading.Thread(target=run, name="web-test-server", daemon=True)
    thread.start()
    ready.wait(120)
    if "url" not in found:
        stop.set()
        raise AssertionError(f"the server did not start: {found.get('error')!r}")
    try:
        yield found["url"]
    finally:
        stop.set()
        thread.join(60)
        if "error" in found:
            raise found["error"]
