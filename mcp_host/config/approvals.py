"""The user's "always allow" answers, kept in a file of their own beside the settings.

    store = ApprovalStore(approvals_path(settings_path))  # ~/.config/mcp-host/settings.approvals.json
    store.add(AlwaysAllowed(server="fs", tool="write_file", fingerprint="0123456789abcdef"))
    store.contains(entry)                                 # sees answers other hosts added meanwhile

Where, and why there: `settings.toml` is the user's file, which the host reads and never writes, so
a rule or a comment added while a host runs is never lost. The answers sit beside it, named after it
(`settings.toml` -> `settings.approvals.json`): a profile chosen with `--settings` or
`$MCP_HOST_SETTINGS` keeps its answers to itself, and settings in a test's temporary folder never
touch the user's home. (One file under the XDG state folder would mix every profile's answers.)

    {"always": [{"server": "fs", "tool": "write_file", "fingerprint": "0123456789abcdef"}]}

How: a change re-reads the file under an exclusive lock (the sidecar `<name>.lock`), merges, and
replaces the file atomically, so hosts sharing it never lose each other's answers. The file, its
temporary copy and the lock are 0600 from creation; a new folder is 0700. A lookup reads the file
(a few hundred bytes a tool) and parses it again only when its bytes changed, so a host sees what
another host answered at its next permission check.

A file that cannot be read or parsed is reported in the log and counts as empty for lookups, and is
never overwritten: `add` raises instead, so a hand edit gone wrong is not replaced by the host's copy.
The same holds for a file that is not to be trusted, because anyone who can change it can plant
"always" answers: on POSIX one that is a symbolic link, not a regular file, owned by another user,
or writable by its group or others (see `mcp_host.config.files.read_private`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from mcp_host.config.files import PRIVATE_FILE_MODE, exclusive_lock, read_private, write_atomically
from mcp_host.errors import ConfigError, ConfigSchemaError, ConfigSyntaxError

logger = logging.getLogger(__name__)


class AlwaysAllowed(BaseModel):
    """An "always allow" answer, bound to the tool as it was when the user answered."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    server: str
    tool: str
    fingerprint: str = Field(
        description="Of the tool's description, schema and annotations: a changed tool asks again."
    )


_ENTRIES = TypeAdapter(list[AlwaysAllowed])


def approvals_path(settings_path: Path) -> Path:
    """Where the answers of the settings file `settings_path` live: `settings.toml` -> `settings.approvals.json`."""
    return settings_path.with_name(f"{settings_path.stem}.approvals.json")


class ApprovalStore:
    """The "always allow" answers in the JSON file `path`, shared safely by every host that uses it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._raw: bytes | None = None
        self._entries: tuple[AlwaysAllowed, ...] = ()
        self._problem: str | None = None

    def __repr__(self) -> str:
        return f"<ApprovalStore {str(self.path)!r}>"

    def entries(self) -> tuple[AlwaysAllowed, ...]:
        """The answers in the file now, in the order they were given; empty while the file is broken."""
        try:
            raw = read_private(self.path)
        except ConfigError as exc:
            self._raw, self._entries = None, ()  # parsed afresh once the file can be read and trusted again
            self._report(f"{exc}; its approvals are ignored until this is fixed")
            return ()
        if raw != self._raw:
            try:
                _document, self._entries = self._parse(raw)
            except ConfigError as exc:
                self._report(f"{exc}; its approvals are ignored until it is fixed")
                self._entries = ()
            else:
                self._problem = None
            self._raw = raw
        return self._entries

    def contains(self, entry: AlwaysAllowed) -> bool:
        return entry in self.entries()

    def add(self, entry: AlwaysAllowed) -> None:
        """Record `entry`, replacing an earlier answer for the same server and tool.

        Holds the file's lock while it re-reads, merges and writes, so answers that other hosts
        wrote meanwhile are kept. Blocks while another host writes (milliseconds). Raises
        `ConfigError` when the file is broken or not to be trusted (it is left as it is) or cannot be written.
        """
        with exclusive_lock(self.path):
            raw = read_private(self.path)
            document, current = self._parse(raw)
            if entry in current:
                return
            kept = [a for a in current if (a.server, a.tool) != (entry.server, entry.tool)]
            entries = (*kept, entry)
            document["always"] = [a.model_dump() for a in entries]
            text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
            write_atomically(self.path, text, mode=PRIVATE_FILE_MODE)
            self._raw, self._entries, self._problem = text.encode(), entries, None

    def _parse(self, raw: bytes | None) -> tuple[dict[str, Any], tuple[AlwaysAllowed, ...]]:
        """The whole document (keys this version does not know are written back) and its answers."""
        if raw is None:
            return {}, ()
        path = self.path
        try:
            document = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise ConfigSchemaError(f"{path}: is not UTF-8 text", path=path, server=None, key=None) from exc
        except json.JSONDecodeError as exc:
            raise ConfigSyntaxError(
                f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}",
                path=path,
                line=exc.lineno,
                column=exc.colno,
            ) from exc
        if not isinstance(document, dict):
            raise ConfigSchemaError(f"{path}: the top level must be a JSON object", path=path, server=None, key=None)
        try:
            entries = _ENTRIES.validate_python(document.get("always", []), strict=True)
        except ValidationError as exc:
            first = exc.errors()[0]
            key = ".".join(str(part) for part in ("always", *first["loc"]))
            raise ConfigSchemaError(f"{path}: key '{key}': {first['msg']}", path=path, server=None, key=key) from exc
        return document, tuple(entries)

    def _report(self, problem: str) -> None:
        """Log a problem once, not at every permission check."""
        if problem != self._problem:
            self._problem = problem
            logger.warning("%s", problem)
