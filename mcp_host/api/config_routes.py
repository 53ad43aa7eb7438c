"""The mcp.json editor's endpoints: read the file, check a text, replace the file and apply it live.

    GET  /v1/config/mcp.json           -> {"path", "text", "version", "exists"}
    POST /v1/config/mcp.json/validate  {"text"} -> {"ok", "errors", "warnings"}
    PUT  /v1/config/mcp.json           {"text", "version"} -> {"version", "applied", "errors", "warnings"}

`version` is the SHA-256 (hex) of the file's bytes, "" while there is no file. Each problem is
`{"message", "line", "column", "server", "key"}` with the loader's own message, the one `mcp-host servers`
prints for the same file (`mcp_host.config.check`); unknown keys and `${VAR}`s this host's environment lacks
are warnings. A PUT writes nothing unless the text is valid (422, with the check's body beside the error) and
`version` is the file's current one (409: the edit was made on an older copy, and is never saved over a
newer file); it then replaces the file atomically (mode 0600, the folder's mode kept) and applies it
(`Host.reload`). `applied` is what changed on the host, `{"added", "removed", "changed", "unchanged"}` (a
changed server restarted, or told its new roots when only they changed); it is null, with `errors`, when the
saved file cannot be applied yet (a variable unset). The watcher of mcp.json then sees the same file and
finds nothing left to change. A text over `max_text_bytes` (1 MiB) is a 413; `[api] config_editor = false`
turns all three endpoints off (403).

Whoever writes mcp.json chooses the commands the host runs, and the file holds secrets (`env`, `headers`):
these endpoints are for the user's own page on a loopback or API-key protected server, behind the browser
guard (`mcp_host.api.guard`), which answers them for no other page, not even one `--cors-origin` allows (403,
`cross_origin_refused`). The text is never logged nor quoted in an error; problems name keys only, and
at most 50 unknown keys are named (the rest counted). A PUT's 409 says why in its `code`:
`stale_version` (read the file again), or `symlinked_config` (mcp.json is a link: edit the file it points to).
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

import anyio
import anyio.to_thread
from pydantic import Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mcp_host.api.requests import BodyReader, ClosedShape
from mcp_host.config.check import ConfigCheck, check_config_text, problem_of
from mcp_host.config.files import PRIVATE_FILE_MODE, write_atomically
from mcp_host.errors import ApiError, ConfigError, ConfigWriteError
from mcp_host.host import Host
from mcp_host.servers.manager import ConfigDiff

logger = logging.getLogger(__name__)

MAX_TEXT_BYTES = 1024 * 1024  # LM Studio's files are a few kilobytes; a megabyte is a generous ceiling
_VERSION = r"^([0-9a-f]{64})?$"


class ConfigText(ClosedShape):
    """`POST /v1/config/mcp.json/validate`."""

    text: str


class ConfigWrite(ClosedShape):
    """`PUT /v1/config/mcp.json`: the new text, and the `version` of the file it was edited from ("": none)."""

    text: str
    version: str = Field(pattern=_VERSION)


class ConfigRoutes:
    """The editor's API over `host`'s mcp.json (`host.config_path`)."""

    # For the browser guard: no page but the server's own reaches these, whatever `--cors-origin` allows.
    OWN_ORIGIN_ONLY: ClassVar[Mapping[str, str]] = MappingProxyType(
        {"/v1/config/": "mcp.json holds secrets and chooses the commands the host runs"}
    )

    def __init__(self, host: Host, reader: BodyReader, *, max_text_bytes: int = MAX_TEXT_BYTES) -> None:
        self.host = host
        self.reader = reader
        self.max_text_bytes = max_text_bytes
        # One write and its apply at a time, so that each PUT's version check sees the previous PUT's file.
        self._writing = anyio.Lock()

    def routes(self) -> list[Route]:
        return [
            Route("/v1/config/mcp.json", self.read, methods=["GET"]),
            Route("/v1/config/mcp.json", self.replace, methods=["PUT"]),
            Route("/v1/config/mcp.json/validate", self.validate, methods=["POST"]),
        ]

    @property
    def path(self) -> Path:
        return self.host.config_path

    async def read(self, request: Request) -> Response:
        self._check_enabled()
        raw = await anyio.to_thread.run_sync(_read_file, self.path, self.max_text_bytes)
        if raw is None:
            return JSONResponse({"path": str(self.path), "text": "", "version": "", "exists": False})
        if len(raw) > self.max_text_bytes:
            raise ApiError(413, f"{self.path}: is larger than the editor's {self.max_text_bytes} bytes")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            # Shown with replacement characters, it would be saved changed: the user fixes it in a text editor.
            raise ApiError(422, f"{self.path}: is not UTF-8 text (byte {exc.start}); fix it in a text editor") from exc
        content = {"path": str(self.path), "text": text, "version": _version(raw), "exists": True}
        return JSONResponse(content, headers={"Cache-Control": "no-store"})  # env values and headers: secrets

    async def validate(self, request: Request) -> Response:
        self._check_enabled()
        body = await self.reader.read(request, ConfigText)
        check = await self._check(body.text)
        return JSONResponse(check.to_json())

    async def replace(self, request: Request) -> Response:
        self._check_enabled()
        body = await self.reader.read(request, ConfigWrite)
        check = await self._check(body.text)
        if not check.ok:
            error = ApiError(422, check.errors[0].message, param="text", code="invalid_config")
            content = error.body()
            content["error"]["type"] = "invalid_request_error"
            return JSONResponse({**content, **check.to_json()}, status_code=422)
        async with self._writing:
            before = dict(self.host.manager.configs)
            await anyio.to_thread.run_sync(self._write, body.text, body.version)
            try:
                await self.host.reload()
            except ConfigError as exc:
                logger.warning("mcp.json was saved through the API but not applied: %s", exc)
                unapplied = problem_of(exc, body.text)
                return JSONResponse(
                    {
                        "version": _version(_encoded(body.text)),
                        "applied": None,
                        "errors": [unapplied.to_json()],
                        # The check warned of the variable this host lacks: now it is the error, said once.
                        "warnings": [problem.to_json() for problem in check.warnings if problem != unapplied],
                    }
                )
            # What changed on the host since before the write, whichever of this request and the watcher of
            # mcp.json applied it first (the second finds nothing to do).
            diff = ConfigDiff.between(before, self.host.manager.configs)
        logger.info(
            "mcp.json saved through the API: added %s, removed %s, changed %s", diff.added, diff.removed, diff.changed
        )
        return JSONResponse(
            {
                "version": _version(_encoded(body.text)),
                "applied": _applied(diff),
                "errors": [],
                "warnings": [problem.to_json() for problem in check.warnings],
            }
        )

    def _check_enabled(self) -> None:
        if not self.host.settings.api.config_editor:
            raise ApiError(
                403,
                "the mcp.json editor is off: set [api] config_editor = true in the host's settings to use it",
                code="config_editor_off",
            )

    async def _check(self, text: str) -> ConfigCheck:
        # Characters first: a text longer in characters is longer in bytes, and is refused without encoding it.
        if len(text) > self.max_text_bytes or len(_encoded(text)) > self.max_text_bytes:
            raise ApiError(413, f"the text is larger than the editor's {self.max_text_bytes} bytes", param="text")
        return await anyio.to_thread.run_sync(lambda: check_config_text(text, path=self.path))

    def _write(self, text: str, version: str) -> None:
        """Replace the file with `text` if it is still at `version` (in a worker thread). Raises `ApiError`."""
        path = self.path
        if path.is_symlink():
            # `write_atomically` would replace the link with a file, leaving what it points to behind.
            target = os.path.realpath(path)
            raise ApiError(
                409,
                f"{path}: is a symbolic link, which the editor does not replace (nothing was saved); edit the file "
                f"it points to, {target}, in a text editor, or start the host with --config {target}",
                code="symlinked_config",
            )
        current = _read_file(path, None)
        if _version(current) != version:
            raise ApiError(
                409,
                f"{path}: changed since this copy of it was read; read it again and redo the edit (nothing was saved)",
                param="version",
                code="stale_version",
            )
        try:
            write_atomically(path, text, mode=PRIVATE_FILE_MODE)  # env values and headers are secrets
        except ConfigWriteError as exc:
            raise ApiError(500, str(exc), code="config_not_written") from exc


def _read_file(path: Path, limit: int | None) -> bytes | None:
    """The bytes of `path` (following links, as the loader does; at most `limit` + 1), or None when there is none.

    Raises `ApiError` when it is not a regular file (a FIFO is never waited on) or cannot be read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ApiError(500, f"{path}: cannot be read: {exc.strerror}", code="config_not_read") from exc
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ApiError(409, f"{path}: is not a regular file", code="config_not_read")
        try:
            return handle.read() if limit is None else handle.read(limit + 1)
        except OSError as exc:
            raise ApiError(500, f"{path}: cannot be read: {exc.strerror}", code="config_not_read") from exc


def _version(raw: bytes | None) -> str:
    return "" if raw is None else hashlib.sha256(raw).hexdigest()


def _encoded(text: str) -> bytes:
    # A lone surrogate (an escape in the request's JSON) is counted here and refused by the check.
    return text.encode("utf-8", "surrogatepass")


def _applied(diff: ConfigDiff) -> dict[str, Any]:
    return {
        "added": list(diff.added),
        "removed": list(diff.removed),
        "changed": list(diff.changed),
        "unchanged": list(diff.unchanged),
    }
