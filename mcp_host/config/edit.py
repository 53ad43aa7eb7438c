"""Safe edits of mcp.json: validate first, keep what we do not know, replace atomically.

add_server(path, "time", {"command": "uvx", "args": ["mcp-server-time"]})
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from mcp_host.config.mcpjson import parse_config
from mcp_host.errors import ConfigSchemaError, ConfigWriteError


def add_server(path: Path, name: str, entry: dict[str, Any], *, replace: bool = False) -> None:
    """Add (or with `replace`, overwrite) server `name` in the mcp.json at `path`.

    The file is created if missing. Unknown keys, the order of servers and LM Studio's
    2-space layout are kept. The result is validated before anything is written, and the
    write is atomic (temporary file + rename), so a failure leaves the old file untouched.
    Raises `ConfigError`.
    """
    document: dict[str, Any]
    if path.exists():
        text = path.read_text(encoding="utf-8")
        parse_config(text, path=path, environ=_EveryVariableSet())  # refuses to rewrite a broken file
        document = json.loads(text)
    else:
        document = {"mcpServers": {}}
    servers = document.setdefault("mcpServers", {})
    if name in servers and not replace:
        raise ConfigSchemaError(
            f"{path}: server '{name}' already exists (use --replace to overwrite it)", path=path, server=name, key=None
        )
    servers[name] = entry
    new_text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    parse_config(new_text, path=path, environ=_EveryVariableSet())
    write_atomically(path, new_text)


def write_atomically(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file in the same folder and `os.replace`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp_name, mode)
        os.replace(temp_name, path)
    except OSError as exc:
        Path(temp_name).unlink(missing_ok=True)
        raise ConfigWriteError(f"{path}: cannot be written: {exc}", path=path) from exc


class _EveryVariableSet(Mapping[str, str]):
    """An environment where every variable is set: the editor checks shape, not whether secrets are present."""

    def __getitem__(self, key: str) -> str:
        return os.environ.get(key) or "set"

    def __iter__(self) -> Iterator[str]:
        return iter(os.environ)

    def __len__(self) -> int:
        return len(os.environ)
