"""Identifier-safe names for qualified tool names, reversible and collision-free.

Harmony renders function tools inside the `functions` namespace, where a name must be
an identifier. `<server>.<tool>` becomes `server__tool` with every other character
replaced by `_`. Two different qualified names can map to the same identifier
(`my-srv.x` and `my_srv.x`); the one that sorts first keeps it and the others get
`_2`, `_3`, ..., so the outcome depends only on the set of names, and every such
rename is reported.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

_NOT_IDENTIFIER = re.compile(r"[^A-Za-z0-9_]")
SEPARATOR = "__"


def identifier_for(server: str, tool: str) -> str:
    """The preferred identifier for `server.tool`, before collision handling."""
    name = f"{_NOT_IDENTIFIER.sub('_', server)}{SEPARATOR}{_NOT_IDENTIFIER.sub('_', tool)}"
    return f"_{name}" if name[0].isdigit() else name


@dataclass(frozen=True)
class NameCollision:
    """`qualified` wanted `wanted` but `winner` had it; it was given `given`."""

    qualified: str
    wanted: str
    given: str
    winner: str

    def __str__(self) -> str:
        return f"{self.qualified} renders as {self.given} ({self.wanted} is taken by {self.winner})"


@dataclass(frozen=True)
class NameMap:
    """Both directions between qualified names and identifiers, plus the collisions resolved."""

    to_identifier: dict[str, str] = field(default_factory=dict)
    to_qualified: dict[str, str] = field(default_factory=dict)
    collisions: tuple[NameCollision, ...] = ()

    @classmethod
    def build(cls, names: Iterable[tuple[str, str]]) -> NameMap:
        """Map every `(server, tool)` pair; deterministic for a given set of pairs."""
        to_identifier: dict[str, str] = {}
        to_qualified: dict[str, str] = {}
        collisions: list[NameCollision] = []
        for server, tool in sorted(set(names)):
            qualified = f"{server}.{tool}"
            wanted = identifier_for(server, tool)
            given, suffix = wanted, 1
            while given in to_qualified:
                suffix += 1
                given = f"{wanted}_{suffix}"
            if given != wanted:
                collisions.append(NameCollision(qualified, wanted, given, to_qualified[wanted]))
            to_identifier[qualified] = given
            to_qualified[given] = qualified
        return cls(to_identifier, to_qualified, tuple(collisions))
