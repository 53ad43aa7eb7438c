"""Text out of files: telling binary from text, and a window of numbered lines within a character budget.

with os.fdopen(fd, "rb") as stream:
    if is_binary(stream.read(SNIFF_BYTES)): ...
    stream.seek(0)
    window = read_window(stream, offset=0, max_lines=400, max_chars=100_000)
    window.text        # "     1\tfirst line\n     2\t..."
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO

SNIFF_BYTES = 8192
LINE_CHARS = 2000  # longer lines (minified code, data) are cut: one could fill the whole budget


def is_binary(head: bytes) -> bool:
    """Whether the first bytes of a file look binary: text files hold no NUL byte."""
    return b"\x00" in head


def decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class Window:
    text: str
    first: int  # the 0-based number of the first line shown
    count: int  # how many lines are shown
    more: bool  # whether lines follow the last one shown
    total: int | None  # how many lines the file has, when the window reached its end


def _next_line(stream: BinaryIO) -> tuple[bytes, bool] | None:
    """The next line (at most LINE_CHARS * 4 bytes of it) and whether it was cut; None at the end."""
    line = stream.readline(LINE_CHARS * 4)
    if not line:
        return None
    if line.endswith(b"\n") or len(line) < LINE_CHARS * 4:
        return line, False
    while True:  # skip the rest of a very long line without holding it
        rest = stream.readline(1 << 16)
        if not rest or rest.endswith(b"\n"):
            return line, True


def read_window(stream: BinaryIO, *, offset: int, max_lines: int, max_chars: int) -> Window:
    """Lines `offset`, `offset + 1`, ... numbered from 1, up to `max_lines` lines or `max_chars` characters."""
    shown: list[str] = []
    used = 0
    number = 0
    while True:
        found = _next_line(stream)
        if found is None:
            return Window("\n".join(shown), offset, len(shown), more=False, total=number)
        if number >= offset:
            line, cut = found
            text = decode(line).rstrip("\r\n")
            if cut or len(text) > LINE_CHARS:
                text = text[:LINE_CHARS] + f" … [line cut at {LINE_CHARS} characters]"
            entry = f"{number + 1:>6}\t{text}"
            if len(shown) >= max_lines or (shown and used + len(entry) > max_chars):
                return Window("\n".join(shown), offset, len(shown), more=True, total=None)
            shown.append(entry[: max_chars - used] if used + len(entry) > max_chars else entry)
            used += len(entry) + 1
        number += 1
