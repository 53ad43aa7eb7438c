"""Files: read, list, search, write and delete files inside the folders the chat may use.

Tools: `files.read`, `files.list` and `files.search` only read; `files.write` and `files.delete` are
destructive, so the permission policy asks before each. A relative path starts at the chat's first
folder; no path may lead outside the folders, through `..`, an absolute path or a symbolic link
(see `_paths.py` for how the check survives a symlink swapped in after it). POSIX only.

Config, `[plugins.files]` in settings.toml:

    roots = ["~/notes", "/srv/data"]   # these folders instead of the chat's own (absolute, `~` allowed)
    max_read_chars = 100000            # the most characters one `files.read` returns
"""

from __future__ import annotations

import errno
import fnmatch
import os
import re
import stat
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mcp_host.plugins import Plugin, PluginContext

from ._paths import FilesError, Roots, explained
from ._search import MAX_FILE_BYTES, glob_matcher, search_folder
from ._text import SNIFF_BYTES, is_binary, read_window

MAX_ENTRIES = 500
MAX_PATTERN_CHARS = 1000
# A quantified group containing a quantifier or an alternation: the shapes of catastrophic backtracking.
# Python's `re` holds the GIL while it matches, so a runaway match would freeze the whole host.
_NESTED_REPETITION = re.compile(r"\((?:[^()\\]|\\.)*(?:[*+?}|])(?:[^()\\]|\\.)*\)\s*(?:[*+]|\{\d*,)")
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    roots: list[str] | None = Field(default=None, description="Folders to use instead of the chat's own.")
    max_read_chars: int = Field(default=100_000, ge=1_000, le=5_000_000, description="The most one read returns.")

    @field_validator("roots")
    @classmethod
    def _absolute(cls, roots: list[str] | None) -> list[str] | None:
        for root in roots or []:
            if not Path(root).expanduser().is_absolute():
                raise ValueError(f"{root!r} is not an absolute path (write /full/path or ~/path)")
        return roots


# `Plugin.tool` returns `Any`, so mypy calls each tool untyped: hence the ignores on the decorators.
plugin = Plugin(
    "files",
    description="Read, list, search, write and delete files in the folders this chat may use.",
    config=Config,
)


def _config(ctx: PluginContext) -> Config:
    if isinstance(ctx.config, Config):
        return ctx.config
    return Config() if ctx.config is None else Config.model_validate(ctx.config, from_attributes=True)


def _roots(ctx: PluginContext) -> Roots:
    config = _config(ctx)
    return Roots.of([Path(root) for root in config.roots] if config.roots is not None else list(ctx.roots))


@plugin.tool(read_only=True, idempotent=True)
def read(
    path: str,
    ctx: PluginContext,
    offset_lines: Annotated[int, Field(ge=0)] = 0,
    max_lines: Annotated[int, Field(ge=1, le=10_000)] = 500,
) -> str:
    """Read a text file, as numbered lines; a long file comes a window at a time.

    Args:
        path: The file, relative to the chat's folder (or absolute inside it).
        offset_lines: How many lines to skip: 0 starts at the first line.
        max_lines: The most lines to return.
    """
    roots = _roots(ctx)
    target = roots.locate(path)
    if not target.parts:
        raise FilesError(f"{target.shown} is a folder; files.list shows what is in it")
    with explained(target.shown), roots.open_folder(target.root, target.parts[:-1]) as folder:
        fd = os.open(target.name, _READ_FLAGS, dir_fd=folder)
    info = _regular_file(fd, target.shown, "read")
    with os.fdopen(fd, "rb") as stream:
        if is_binary(stream.read(SNIFF_BYTES)):
            raise FilesError(f"{target.shown} is a binary file ({info.st_size:,} bytes); only text files are shown")
        stream.seek(0)
        window = read_window(stream, offset=offset_lines, max_lines=max_lines, max_chars=_config(ctx).max_read_chars)
    if window.total == 0:
        return f"{target.shown} is empty"
    if not window.count:
        raise FilesError(f"{target.shown} has {window.total} lines; offset_lines={offset_lines} is past the end")
    last = window.first + window.count
    if window.more:
        where = f"lines {window.first + 1}-{last}; more follow: read again with offset_lines={last}"
    else:
        where = f"lines {window.first + 1}-{last} of {window.total}"
    return f"{target.shown} ({where})\n{window.text}"


def _regular_file(fd: int, shown: str, verb: str) -> os.stat_result:
    """`fd`'s status when it is a regular file; otherwise it is closed and the error says what it is."""
    info = os.fstat(fd)
    if stat.S_ISREG(info.st_mode) and info.st_nlink == 1:
        return info
    os.close(fd)
    if stat.S_ISREG(info.st_mode):  # the same file under another name, which may be outside the folders
        raise FilesError(f"{shown} has {info.st_nlink - 1} other hard link(s); not {verb} through them")
    if stat.S_ISDIR(info.st_mode):
        raise FilesError(f"{shown} is a folder; files.list shows what is in it")
    raise FilesError(f"{shown} is not a regular file (a pipe, socket or device); not {verb}")


@plugin.tool(name="list", read_only=True, idempotent=True)
def list_entries(ctx: PluginContext, path: str = ".", pattern: str = "*") -> str:
    """List a folder's entries (folders first) with their kind and size.

    Args:
        path: The folder, relative to the chat's folder; "." is the chat's folder itself.
        pattern: Only names matching this shell pattern, e.g. "*.py".
    """
    roots = _roots(ctx)
    target = roots.locate(path)
    hints = {errno.ENOTDIR: "to read a file, use files.read"}
    with explained(target.shown, hints), roots.open_folder(target.root, target.parts) as folder:
        entries = []
        with os.scandir(folder) as scan:
            for entry in scan:
                if not fnmatch.fnmatchcase(entry.name, pattern):
                    continue
                info = entry.stat(follow_symlinks=False)
                if stat.S_ISLNK(info.st_mode):
                    entries.append((1, entry.name, f"{'link':<6} {'':>9}  {entry.name} (symbolic link)"))
                elif stat.S_ISDIR(info.st_mode):
                    entries.append((0, entry.name, f"{'folder':<6} {'':>9}  {entry.name}/"))
                else:
                    entries.append((1, entry.name, f"{'file':<6} {_size(info.st_size):>9}  {entry.name}"))
    entries.sort()
    matching = f" matching {pattern!r}" if pattern != "*" else ""
    if not entries:
        return f"{target.shown} has no entries{matching}"
    lines = [line for _, _, line in entries[:MAX_ENTRIES]]
    header = f"{target.shown}: {len(entries)} entries{matching}"
    if len(entries) > MAX_ENTRIES:
        header += f" (the first {MAX_ENTRIES} shown; narrow the pattern to see the rest)"
    return header + "\n" + "\n".join(lines)


def _size(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024  # type: ignore[assignment]
    raise AssertionError("unreachable")


@plugin.tool(read_only=True, idempotent=True)
def search(
    pattern: str,
    ctx: PluginContext,
    path: str = ".",
    glob: str = "**/*",
    regex: bool = False,
    case_sensitive: bool = False,
    max_results: Annotated[int, Field(ge=1, le=1000)] = 100,
) -> str:
    """Search the text files under a folder for lines containing a string (or matching a regular expression).

    Args:
        pattern: The text to find (a Python regular expression when regex is true).
        path: The folder to search, relative to the chat's folder.
        glob: Only files whose path below that folder matches, e.g. "*.py" (any depth) or "src/**/*.ts".
        regex: Treat pattern as a regular expression instead of literal text.
        case_sensitive: Match upper and lower case exactly.
        max_results: The most matching lines to return.
    """
    if not pattern or len(pattern) > MAX_PATTERN_CHARS:
        raise FilesError(f"the pattern must be 1 to {MAX_PATTERN_CHARS} characters long")
    if regex and _NESTED_REPETITION.search(pattern):
        raise FilesError(
            "the pattern repeats a group that itself repeats or alternates (like (a|aa)* or (a+)+), which can take "
            "hours on one line and cannot be stopped; search for plain text or a simpler pattern"
        )
    try:
        compiled = re.compile(pattern if regex else re.escape(pattern), 0 if case_sensitive else re.IGNORECASE)
    except re.error as exc:
        raise FilesError(f"{pattern!r} is not a valid regular expression: {exc}") from exc
    roots = _roots(ctx)
    target = roots.locate(path)
    with explained(target.shown), roots.open_folder(target.root, target.parts) as folder:
        report = search_folder(folder, compiled, glob_matcher(glob), max_results=max_results)
    prefix = "" if target.shown == "." else target.shown + "/"
    notes = [f"{report.scanned} files searched"]
    if report.skipped_binary:
        notes.append(f"{report.skipped_binary} binary skipped")
    if report.skipped_large:
        notes.append(f"{report.skipped_large} over {MAX_FILE_BYTES // 1_000_000} MB skipped")
    if report.skipped_linked:
        notes.append(f"{report.skipped_linked} with other hard links skipped")
    summary = (
        f"{len(report.matches)} matching lines in {report.files_with_matches} files for {pattern!r} "
        f"under {target.shown} ({', '.join(notes)})"
    )
    if report.truncated:
        summary += f"; stopped at max_results={max_results}: narrow the glob or the pattern to see the rest"
    if report.incomplete:
        summary += f"; stopped after {report.scanned} files ({report.bytes_read:,} bytes): search a smaller folder"
    return "\n".join([summary, *(prefix + match for match in report.matches)])


@plugin.tool(destructive=True)
def write(path: str, content: str, ctx: PluginContext, overwrite: bool = False) -> str:
    """Write a text file (UTF-8), creating the folders on its way; an existing file only with overwrite.

    Args:
        path: The file, relative to the chat's folder.
        content: The whole new content of the file.
        overwrite: Replace the file if it exists (otherwise an existing file is an error).
    """
    roots = _roots(ctx)
    target = roots.locate(path)
    data = content.encode("utf-8")
    hints = {errno.EEXIST: "pass overwrite=true to replace it"}
    with explained(target.shown, hints), roots.open_folder(target.root, target.parts[:-1], create=True) as folder:
        try:
            fd, existed = os.open(target.name, _WRITE_FLAGS | os.O_EXCL, 0o666, dir_fd=folder), False
        except FileExistsError:
            if not overwrite:
                raise
            fd, existed = os.open(target.name, _WRITE_FLAGS, 0o666, dir_fd=folder), True
    info = _regular_file(fd, target.shown, "written")
    with explained(target.shown), os.fdopen(fd, "wb") as stream:
        if info.st_nlink > 1:  # the same file under another name, which may be outside the folders
            raise FilesError(f"{target.shown} has {info.st_nlink - 1} other hard link(s); not written through them")
        os.ftruncate(fd, 0)
        stream.write(data)
    lines = content.count("\n") + (1 if content and not content.endswith("\n") else 0)
    return f"{'replaced' if existed else 'created'} {target.shown} ({lines} lines, {len(data):,} bytes)"


@plugin.tool(destructive=True)
def delete(path: str, ctx: PluginContext) -> str:
    """Delete a file, a symbolic link (not what it points to) or an empty folder.

    Args:
        path: What to delete, relative to the chat's folder.
    """
    roots = _roots(ctx)
    target = roots.locate(path, follow_last=False)
    with explained(target.shown), roots.open_folder(target.root, target.parts[:-1]) as folder:
        info = os.stat(target.name, dir_fd=folder, follow_symlinks=False)
        if stat.S_ISDIR(info.st_mode):  # rmdir and unlink never follow a symlink swapped in meanwhile
            os.rmdir(target.name, dir_fd=folder)
            return f"deleted the empty folder {target.shown}"
        os.unlink(target.name, dir_fd=folder)
    if stat.S_ISLNK(info.st_mode):
        return f"deleted the symbolic link {target.shown} (what it pointed to is untouched)"
    return f"deleted {target.shown}"
