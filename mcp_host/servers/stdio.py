"""The stdio transport: a server process, its pipes, and everything needed to explain its failures.

The SDK's `stdio_client` sends the server's stderr to a file and gives no signal when the
process dies. The host needs both: the last stderr lines in the `failed` reason, the exit
as an event, and the command resolved on `PATH` before anything is spawned.

    transport = StdioTransport(launch)
    async with mcp.Client(transport) as client: ...
    transport.exited.is_set(), transport.stderr_tail
"""

from __future__ import annotations

import collections
import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
import anyio.abc
import mcp_types
from anyio.streams.buffered import BufferedByteReceiveStream
from mcp.client._transport import TransportStreams
from mcp.shared.message import SessionMessage
from pydantic import ValidationError

from mcp_host.errors import CommandNotFoundError as CommandNotFoundError
from mcp_host.process_group import close_process, open_process_group, stop_process_group, wait_exit

logger = logging.getLogger(__name__)

# One JSON-RPC message per line; a line longer than this is not something a server means to send.
MAX_LINE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class StdioLaunch:
    """What to run. `env` is merged over the host's own environment."""

    command: str
    args: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None

    def __repr__(self) -> str:
        hidden = {key: "***" for key in self.env}
        return f"StdioLaunch(command={self.command!r}, args={list(self.args)!r}, env={hidden!r})"

    def environment(self) -> dict[str, str]:
        return {**os.environ, **self.env}

    def resolve(self) -> tuple[str, Path | None]:
        """The executable's full path and the working directory. Raises `CommandNotFoundError`."""
        cwd = Path(self.cwd).expanduser() if self.cwd else None
        if cwd is not None and not cwd.is_dir():
            raise CommandNotFoundError(f"working directory {cwd} does not exist")
        search_path = self.environment().get("PATH", os.defpath)
        if os.sep in self.command:
            candidate = Path(self.command).expanduser()
            if not candidate.is_absolute() and cwd is not None:
                candidate = cwd / candidate
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate), cwd
            raise CommandNotFoundError(f"{candidate} does not exist or is not executable")
        found = shutil.which(self.command, path=search_path)
        if found is None:
            raise CommandNotFoundError(f"command {self.command!r} not found on PATH (searched: {search_path})")
        return found, cwd


class StdioTransport:
    """A `mcp.client` Transport over a subprocess, entered once.

    Non-JSON-RPC lines on stdout are counted and kept (`noise_tail`) instead of being
    handed to the session: many servers print banners there, and the useful error is
    "it printed X and never answered", which the connection builds from this.
    """

    def __init__(self, launch: StdioLaunch, *, stderr_lines: int = 50) -> None:
        self.launch = launch
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=stderr_lines)
        self.noise_tail: collections.deque[str] = collections.deque(maxlen=5)
        self.noise_lines = 0
        self.exited = anyio.Event()
        self.pid: int | None = None
        self._process: anyio.abc.Process | None = None
        self._task_group: anyio.abc.TaskGroup | None = None
        self._streams: list[Any] = []

    @property
    def returncode(self) -> int | None:
        return None if self._process is None else self._process.returncode

    async def __aenter__(self) -> TransportStreams:
        executable, cwd = self.launch.resolve()
        # Its own process group, so stopping reaches the processes it starts too (npx → node).
        self._process = await open_process_group(
            [executable, *self.launch.args], env=self.launch.environment(), cwd=cwd
        )
        self.pid = self._process.pid
        read_writer, read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](16)
        write_stream, write_reader = anyio.create_memory_object_stream[SessionMessage](16)
        self._streams = [read_writer, read_stream, write_stream, write_reader]
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        self._task_group.start_soon(self._read_stdout, read_writer)
        self._task_group.start_soon(self._read_stderr)
        self._task_group.start_soon(self._write_stdin, write_reader)
        return read_stream, write_stream

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        assert self._task_group is not None and self._process is not None
        with anyio.CancelScope(shield=True):
            await stop_process_group(self._process)
            self.exited.set()
            for stream in self._streams:
                await stream.aclose()
        self._task_group.cancel_scope.cancel()
        await self._task_group.__aexit__(None, None, None)
        await close_process(self._process)
        return None

    async def _read_stdout(self, sink: anyio.abc.ObjectSendStream[SessionMessage | Exception]) -> None:
        assert self._process is not None and self._process.stdout is not None
        reader = BufferedByteReceiveStream(self._process.stdout)
        try:
            while True:
                line = await reader.receive_until(b"\n", MAX_LINE_BYTES)
                message = self._parse(line)
                if message is not None:
                    await sink.send(message)
        except (anyio.EndOfStream, anyio.IncompleteRead, anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass
        except anyio.DelimiterNotFound:
            self._note_noise(f"<a line longer than {MAX_LINE_BYTES} bytes>")
        finally:
            # stdout closed: the server is gone or going, and nothing more can be said to it.
            await wait_exit(self._process, 0.5)
            self.exited.set()
            await sink.aclose()

    def _parse(self, line: bytes) -> SessionMessage | None:
        stripped = line.strip()
        if not stripped:
            return None
        try:
            return SessionMessage(mcp_types.jsonrpc_message_adapter.validate_json(stripped, by_name=False))
        except (ValidationError, ValueError):
            self._note_noise(stripped.decode("utf-8", "replace"))
            return None

    def _note_noise(self, text: str) -> None:
        self.noise_lines += 1
        self.noise_tail.append(text[:200])
        logger.debug("server %s printed a non-JSON-RPC line on stdout: %.200s", self.launch.command, text)

    async def _read_stderr(self) -> None:
        assert self._process is not None and self._process.stderr is not None
        reader = BufferedByteReceiveStream(self._process.stderr)
        try:
            while True:
                try:
                    line = await reader.receive_until(b"\n", 64 * 1024)
                except anyio.DelimiterNotFound:
                    line = await reader.receive(64 * 1024)
                text = line.decode("utf-8", "replace").rstrip()
                if text:
                    self.stderr_tail.append(text)
        except (anyio.EndOfStream, anyio.IncompleteRead, anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass

    async def _write_stdin(self, source: anyio.abc.ObjectReceiveStream[SessionMessage]) -> None:
        assert self._process is not None and self._process.stdin is not None
        try:
            async for session_message in source:
                data = session_message.message.model_dump_json(by_alias=True, exclude_unset=True)
                await self._process.stdin.send(data.encode() + b"\n")
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
            pass
