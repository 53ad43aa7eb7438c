"""The tool catalog: each server's tools as it last listed them, so the host is ready at once next time.

    catalog = ToolCatalog(cache_dir() / "tools")
    entry = catalog.get(config)        # None: this server was never seen with this configuration
    catalog.remember(config, tools, server_name="time", server_version="1.2")

An entry is keyed by what makes a server what it is: its transport, command or URL, arguments, working
folder, and a hash of its environment and headers (their values are never written). The server's name in
mcp.json is not part of the key: renaming a server keeps its entry. An entry also remembers a first
start that failed (`failed`), so the next start does not wait for a server known not to come up.

One private JSON file per key (0600 in a 0700 folder), replaced atomically: several hosts may share the
folder, and the worst a race does is one cold start. An entry that cannot be read (damaged, too large, not
the user's) is treated as absent. The catalog is a cache: the live listing always wins, and replaces it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcp_types import Tool

from mcp_host.config.files import read_private, write_atomically
from mcp_host.config.mcpjson import RemoteServerConfig, ServerConfig, StdioServerConfig
from mcp_host.errors import ConfigWriteError

logger = logging.getLogger(__name__)

FORMAT = 1
MAX_ENTRY_BYTES = 8 * 1024 * 1024  # a server listing more than this is listed live each time, never cached


def catalog_key(config: ServerConfig) -> str:
    """A hex digest of what identifies the server; secrets (env values, headers) enter only hashed."""
    if isinstance(config, RemoteServerConfig):
        identity: dict[str, Any] = {
            "transport": config.transport,
            "url": config.url,
            "headers": sorted(config.headers.items()),
            "auth": config.auth.model_dump(mode="json") if config.auth is not None else None,
        }
    else:
        identity = {
            "transport": "stdio",
            "command": config.command,
            "args": config.args,
            "cwd": config.cwd if config.cwd is not None or not _names_relative_path(config) else os.getcwd(),
            "env": sorted(config.env.items()),
        }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def _names_relative_path(config: StdioServerConfig) -> bool:
    """Whether the command or an argument is a relative path (`node build/index.js`, not `@scope/package`): then
    the working folder the host runs in decides which server it is, and enters the key."""
    return any(
        not os.path.isabs(part) and (part.startswith(("./", "../")) or ("/" in part and os.path.exists(part)))
        for part in (config.command, *config.args)
    )


@dataclass(frozen=True)
class CatalogEntry:
    """What the catalog knows of one server: its tools and version, or that its first start failed."""

    tools: tuple[Tool, ...]
    server_name: str | None = None
    server_version: str | None = None
    failed: bool = False  # its last start failed (with tools: it listed them before); no reason is kept
    saved_at: float = 0.0


class ToolCatalog:
    """The entries under `folder`; `None` folder: a catalog that knows nothing and keeps nothing."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder

    def __repr__(self) -> str:
        return f"ToolCatalog({self.folder})"

    def _path(self, config: ServerConfig) -> Path | None:
        return None if self.folder is None else self.folder / f"{catalog_key(config)}.json"

    def get(self, config: ServerConfig) -> CatalogEntry | None:
        """The entry for `config`, or None when there is none that can be used."""
        path = self._path(config)
        if path is None:
            return None
        try:
            if path.is_file() and path.lstat().st_size > MAX_ENTRY_BYTES:
                raise ValueError(f"larger than {MAX_ENTRY_BYTES} bytes")
            raw = read_private(path)
            if raw is None:
                return None
            data = json.loads(raw)
            if not isinstance(data, dict) or data.get("format") != FORMAT:
                raise ValueError("not an entry of this version")
            if data.get("key") != catalog_key(config):
                raise ValueError("it is another server's entry")
            tools = tuple(Tool.model_validate(tool) for tool in data.get("tools", []))
            return CatalogEntry(
                tools=tools,
                server_name=_text(data.get("server_name")),
                server_version=_text(data.get("server_version")),
                failed=data.get("failed") is True,
                saved_at=float(data.get("saved_at", 0.0)),
            )
        except Exception as exc:  # noqa: BLE001 - a damaged entry (bad JSON, too deep, a number too large) is none
            logger.info("tool catalog entry %s not used: %s", path, exc)
            return None

    def remember(
        self, config: ServerConfig, tools: list[Tool], *, server_name: str | None, server_version: str | None
    ) -> None:
        """Keep the tools `config`'s server listed (written only when they differ from the entry)."""
        known = self.get(config)
        if (
            known is not None
            and not known.failed
            and known.tools == tuple(tools)
            and (known.server_name, known.server_version) == (server_name, server_version)
        ):
            return
        self._write(
            config,
            {
                "tools": _dumped(tools),
                "server_name": server_name,
                "server_version": server_version,
            },
        )

    def remember_failure(self, config: ServerConfig) -> None:
        """Note that `config`'s server did not come up (its tools, if it listed them before, are kept). What it
        said is not written: a server's error output may hold a secret."""
        known = self.get(config)
        if known is not None and known.failed:
            return
        tools = _dumped(known.tools) if known else []
        names = {"server_name": known.server_name, "server_version": known.server_version} if known else {}
        self._write(config, {"tools": tools, "failed": True, **names})

    def forget(self, config: ServerConfig) -> None:
        path = self._path(config)
        if path is not None:
            path.unlink(missing_ok=True)

    def _write(self, config: ServerConfig, fields: dict[str, Any]) -> None:
        path = self._path(config)
        if path is None:
            return
        entry = {"format": FORMAT, "key": catalog_key(config), "saved_at": time.time(), **fields}
        text = json.dumps(entry, ensure_ascii=False)
        if len(text.encode()) > MAX_ENTRY_BYTES:
            logger.info("tool catalog: %s lists more than %d bytes of tools; not kept", path.name, MAX_ENTRY_BYTES)
            return
        try:
            write_atomically(path, text)
        except ConfigWriteError as exc:  # a cache that cannot be written costs a cold start, nothing more
            logger.info("tool catalog not written: %s", exc)


def _dumped(tools: Iterable[Tool]) -> list[dict[str, Any]]:
    return [tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in tools]


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
