"""Safe edits of mcp.json: validate first, keep what we do not know, replace atomically.

add_server(path, "time", {"command": "uvx", "args": ["mcp-server-time"]})
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mcp_host.config.check import EveryVariableSet
from mcp_host.config.files import write_atomically
from mcp_host.config.mcpjson import parse_config
from mcp_host.errors import ConfigSchemaError


def add_server(path: Path, name: str, entry: dict[str, Any], *, replace: bool = False) -> None:
    """Add (or with `replace`, overwrite) server `name` in the mcp.json at `path`.

    The file is created if missing (0600, in a 0700 folder when new: entries hold secrets).
    Keys the host does not know, at the top level and in every server (a typo the loader warns
    about included), the order of servers and LM Studio's 2-space layout are kept. The result is
    validated before anything is written, and the write is atomic (temporary file + rename), so
    a failure leaves the old file untouched. Raises `ConfigError`.
    """
    document: dict[str, Any]
    if path.exists():
        text = path.read_text(encoding="utf-8")
        parse_config(text, path=path, environ=EveryVariableSet())  # refuses to rewrite a broken file
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
    parse_config(new_text, path=path, environ=EveryVariableSet())
    write_atomically(path, new_text)
