"""Searching text in the files under a folder: a glob filter, bounded results, binary and huge files skipped.

    with roots.open_folder(target.root, target.parts) as folder:
        report = search_folder(folder, re.compile("TODO"), glob_matcher("*.py"), max_results=50)

The walk is `os.fwalk` from a descriptor without following symlinks (to folders or files), so it cannot
be led out of the roots; version-control and dependency folders are skipped unless searched directly.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass, field

from ._text import SNIFF_BYTES, decode, is_binary

MAX_FILE_BYTES = 2_000_000
MAX_FILES = 20_000
MAX_TOTAL_BYTES = 200_000_000  # a search stops here, so one left running past its timeout ends soon too
MATCH_CHARS = 300
SKIPPED_FOLDERS = frozenset({".git", ".hg", ".svn", "node_modules", "__pycache__", ".venv", "venv", ".tox"})


def glob_matcher(pattern: str) -> Callable[[str], bool]:
    """A test for `/`-separated relative paths. `*`, `?`, `[...]` stay within a name, `**` spans folders,
    `{a,b}` is either; a pattern without `/` matches the name at any depth (`*.py` is every Python file).
    """
    regex = re.compile(_translate(pattern), re.DOTALL)
    if "/" not in pattern:
        return lambda path: regex.fullmatch(path.rsplit("/", 1)[-1]) is not None
    return lambda path: regex.fullmatch(path) is not None


def _translate(pattern: str) -> str:
    out: list[str] = []
    segments = pattern.strip("/").split("/")
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "**":
            out.append(".*" if last else "(?:.*/)?")
            continue
        out.append(_translate_segment(segment) + ("" if last else "/"))
    return "".join(out)


def _translate_segment(segment: str) -> str:
    out: list[str] = []
    depth = 0
    i = 0
    while i < len(segment):
        char = segment[i]
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[" and "]" in segment[i + 2 :]:
            end = segment.index("]", i + 2)
            body = segment[i + 1 : end]
            negate = body.startswith(("!", "^"))
            body = re.escape(body[1:] if negate else body).replace("\\-", "-")
            out.append(f"[{'^' if negate else ''}{body}]")
            i = end
        elif char == "{":
            depth += 1
            out.append("(?:")
        elif char == "," and depth:
            out.append("|")
        elif char == "}" and depth:
            depth -= 1
            out.append(")")
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out) + ")" * depth


@dataclass
class SearchReport:
    matches: list[str] = field(default_factory=list)  # "path:line: text"
    files_with_matches: int = 0
    scanned: int = 0
    bytes_read: int = 0
    skipped_binary: int = 0
    skipped_large: int = 0
    skipped_linked: int = 0  # files with other hard links, which may be names outside the folders
    truncated: bool = False  # stopped at max_results
    incomplete: bool = False  # stopped at MAX_FILES or MAX_TOTAL_BYTES


def search_folder(
    folder: int, pattern: re.Pattern[str], matches_glob: Callable[[str], bool], *, max_results: int
) -> SearchReport:
    """Every line that `pattern` finds in the files below `folder` whose relative path `matches_glob`."""
    report = SearchReport()
    for top, folders, names, top_fd in os.fwalk(".", dir_fd=folder, follow_symlinks=False):
        folders[:] = sorted(name for name in folders if name not in SKIPPED_FOLDERS)
        for name in sorted(names):
            relative = os.path.normpath(os.path.join(top, name))
            if not matches_glob(relative):
                continue
            if report.scanned >= MAX_FILES or report.bytes_read >= MAX_TOTAL_BYTES:
                report.incomplete = True
                return report
            _search_file(report, top_fd, name, relative, pattern, max_results)
            if report.truncated:
                return report
    return report


def _search_file(
    report: SearchReport, top_fd: int, name: str, relative: str, pattern: re.Pattern[str], max_results: int
) -> None:
    try:  # O_NOFOLLOW: a symlink among the files is skipped; O_NONBLOCK: a pipe cannot stall the search
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=top_fd)
    except OSError:
        return
    with os.fdopen(fd, "rb") as stream:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return
        report.scanned += 1
        if info.st_nlink > 1:
            report.skipped_linked += 1
            return
        if info.st_size > MAX_FILE_BYTES:
            report.skipped_large += 1
            return
        data = stream.read(MAX_FILE_BYTES + 1)
    report.bytes_read += len(data)
    if is_binary(data[:SNIFF_BYTES]):
        report.skipped_binary += 1
        return
    found = False
    for number, line in enumerate(decode(data).splitlines(), start=1):
        if pattern.search(line):
            found = True
            text = line.strip()
            if len(text) > MATCH_CHARS:
                text = text[:MATCH_CHARS] + " …"
            report.matches.append(f"{relative}:{number}: {text}")
            if len(report.matches) >= max_results:
                report.truncated = True
                break
    report.files_with_matches += int(found)
