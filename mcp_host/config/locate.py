"""Where a server or key of mcp.json is in its text: the line and column an editor points at.

    places = Locator(text)
    line, column = places.locate("time", "env.TZ") or (None, None)

`ConfigSchemaError` names a server and a dotted key (`args.0`, `env.TZ`, `auth.client_id`), not a
place in the text; this finds the place again. The text must be valid JSON (a schema error comes only
after it parsed). Duplicate keys resolve as `json.loads` does, to the last one. A key that is not in
the text (a missing required key) points at the deepest part that is: its server, or `mcpServers`.

A `Locator` reads each object or array it looks into once and keeps what it found, so that placing
every problem of a file costs one pass over the text, not one per problem: a file of thousands of
servers each with a problem would otherwise be read thousands of times.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator

_WHITESPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()
_FEW_DOTS = 16


class Locator:
    """The places of servers and keys in one text."""

    def __init__(self, text: str) -> None:
        self.text = text
        # Offset of an object -> its members' (where named, where the value is); of an array -> its elements.
        self._objects: dict[int, dict[str, tuple[int, int]]] = {}
        self._arrays: dict[int, list[int]] = {}

    def locate(self, server: str | None, key: str | None) -> tuple[int, int] | None:
        """The 1-based line and column of `key` in `server` (either may be None), or None for an empty text."""
        text = self.text
        start = _skip(text, 0)
        if start >= len(text):
            return None
        found = value = start  # the top level itself: a problem with no server and no key is about the document
        if server is not None:  # a key outside any server is a top-level one (`mcpServers` itself)
            for name in ("mcpServers", server):
                member = self._members(value).get(name)
                if member is None:
                    return position(text, found)
                found, value = member
        at = 0  # how much of `key` the steps so far used
        while key and at <= len(key):
            step = self._step(value, key, at)
            if step is None:
                break
            found, value, at = step
        return position(text, found)

    def _step(self, value: int, key: str, at: int) -> tuple[int, int, int] | None:
        """One step down from the value at `value` along `key[at:]`: (where named, where its value is, new `at`)."""
        end = key.find(".", at)
        end = len(key) if end < 0 else end
        if self.text.startswith("[", value):
            part = key[at:end]
            elements = self._elements(value)
            if not part.isdigit() or len(part) > len(str(len(elements))):
                return None
            index = int(part)
            return (elements[index], elements[index], end + 1) if index < len(elements) else None
        # A key may itself hold dots (a header name): the longest member name that the rest of `key` starts
        # with, up to a dot or its end, wins. Never a prefix of `key` for each of its dots: a header name of
        # half a million dots made that quadratic. With few dots each prefix is looked up; else the object's
        # names are compared with `key` in place.
        members = self._members(value)
        if key.count(".", at) <= _FEW_DOTS:
            stops = [len(key)]
            while (dot := key.rfind(".", at, stops[-1])) >= 0:
                stops.append(dot)
            for stop in stops:  # the longest first
                if (member := members.get(key[at:stop])) is not None:
                    return (*member, stop + 1)
            return None
        best: tuple[int, int, int] | None = None
        for name, (name_at, value_at) in members.items():
            stop = at + len(name)
            if (best is None or stop + 1 > best[2]) and key.startswith(name, at) and key.startswith(".", stop):
                best = (name_at, value_at, stop + 1)
        if (whole := members.get(key[at:])) is not None:  # the rest of `key` is one name: the longest there is
            best = (*whole, len(key) + 1)
        return best

    def _members(self, value: int) -> dict[str, tuple[int, int]]:
        """Each member of the object at `value` by name: (where the name starts, where its value starts)."""
        members = self._objects.get(value)
        if members is None:
            members = self._objects[value] = {}
            with _read_as_far_as_it_goes():
                for name, place in _members(self.text, value):
                    members[name] = place  # the last of a name wins, as in `json.loads`
        return members

    def _elements(self, value: int) -> list[int]:
        elements = self._arrays.get(value)
        if elements is None:
            elements = self._arrays[value] = []
            with _read_as_far_as_it_goes():
                elements.extend(_elements(self.text, value))
        return elements


@contextlib.contextmanager
def _read_as_far_as_it_goes() -> Iterator[None]:
    """Stop reading where `json` refuses the text after all (a number of too many digits, nesting past the
    stack): what was read before stays, so a problem is placed as deep as the text allows."""
    try:
        yield
    except (ValueError, RecursionError):
        pass


def locate(text: str, server: str | None, key: str | None) -> tuple[int, int] | None:
    """The 1-based line and column of `key` in `server` (either may be None), or None for an empty text.

    For one question; a `Locator` answers many of the same text in one pass.
    """
    return Locator(text).locate(server, key)


def position(text: str, offset: int) -> tuple[int, int]:
    """The 1-based line and column of `offset`, counted as `json` counts them (characters)."""
    return text.count("\n", 0, offset) + 1, offset - text.rfind("\n", 0, offset)


def _members(text: str, value: int) -> Iterator[tuple[str, tuple[int, int]]]:
    """(name, (where the name starts, where its value starts)) of each member of the object at `value`."""
    if not text.startswith("{", value):
        return
    at = _skip(text, value + 1)
    while at < len(text) and text[at] == '"':
        name, end = _DECODER.raw_decode(text, at)
        value_at = _skip(text, _skip(text, end) + 1)  # past the ':'
        yield name, (at, value_at)
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
