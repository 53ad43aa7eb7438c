"""Where a server or key of mcp.json is in its text: the line and column an editor points at.

    line, column = locate(text, "time", "env.TZ") or (None, None)

`ConfigSchemaError` names a server and a dotted key (`args.0`, `env.TZ`, `auth.client_id`), not a
place in the text; this finds the place again. The text must be valid JSON (a schema error comes only
after it parsed). Duplicate keys resolve as `json.loads` does, to the last one. A key that is not in
the text (a missing required key) points at the deepest part that is: its server, or `mcpServers`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

_WHITESPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


def locate(text: str, server: str | None, key: str | None) -> tuple[int, int] | None:
    """The 1-based line and column of `key` in `server` (either may be None), or None for an empty text."""
    start = _skip(text, 0)
    if start >= len(text):
        return None
    found = value = start  # the top level itself: a problem with no server and no key is about the document
    if server is not None:  # a key outside any server is a top-level one (`mcpServers` itself)
        for name in ("mcpServers", server):
            member = _last_member(text, value, name)
            if member is None:
                return position(text, found)
            found, value = member
    parts = key.split(".") if key else []
    while parts:
        step = _step(text, value, parts)
        if step is None:
            break
        found, value, used = step
        parts = parts[used:]
    return position(text, found)


def position(text: str, offset: int) -> tuple[int, int]:
    """The 1-based line and column of `offset`, counted as `json` counts them (characters)."""
    return text.count("\n", 0, offset) + 1, offset - text.rfind("\n", 0, offset)


def _step(text: str, value: int, parts: list[str]) -> tuple[int, int, int] | None:
    """One step down from the value at `value`: (where it is named, where its value is, parts used)."""
    if text.startswith("[", value):
        if not parts[0].isdigit():
            return None
        for index, element in enumerate(_elements(text, value)):
            if index == int(parts[0]):
                return element, element, 1
        return None
    # A key may itself hold dots (a header name): the longest dotted prefix that is a member wins.
    prefixes = {".".join(parts[:count]): count for count in range(1, len(parts) + 1)}
    best: tuple[int, int, int] | None = None
    for name, name_at, value_at in _members(text, value):
        used = prefixes.get(name)
        if used is not None and (best is None or used >= best[2]):
            best = (name_at, value_at, used)
    return best


def _last_member(text: str, value: int, wanted: str) -> tuple[int, int] | None:
    """Where member `wanted` of the object at `value` is named and where its value is (the last one, as
    `json.loads` keeps it)."""
    last = None
    for name, name_at, value_at in _members(text, value):
        if name == wanted:
            last = (name_at, value_at)
    return last


def _members(text: str, value: int) -> Iterator[tuple[str, int, int]]:
    """(name, where the name starts, where its value starts) of each member of the object at `value`."""
    if not text.startswith("{", value):
        return
    at = _skip(text, value + 1)
    while at < len(text) and text[at] == '"':
        name, end = _DECODER.raw_decode(text, at)
        value_at = _skip(text, _skip(text, end) + 1)  # past the ':'
        yield name, at, value_at
        _, end = _DECODER.raw_decode(text, value_at)
        at = _skip(text, end)
        if not text.startswith(",", at):
            return
        at = _skip(text, at + 1)


def _elements(text: str, value: int) -> Iterator[int]:
    """Where each element of the array at `value` starts."""
    at = _skip(text, value + 1)
    while at < len(text) and text[at] != "]":
        yield at
        _, end = _DECODER.raw_decode(text, at)
        at = _skip(text, end)
        if not text.startswith(",", at):
            return
        at = _skip(text, at + 1)


def _skip(text: str, at: int) -> int:
    match = _WHITESPACE.match(text, at)
    return match.end() if match else at
