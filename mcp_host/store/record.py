"""`Record`: one stored thing (a session, a chat thread, a response, an approval), as the store returns it.

    rec = await store.get("session", session_id)
    if rec is not None and rec.status == INTERRUPTED:
        ...                                   # its turn died with its server: tell the client

A record's `status` is free text, except for two the store itself gives meaning to: `running` (a turn
holds it under a lease, see `Store.claim`) and `interrupted` (the lease ran out: its owner died).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mcp_host.store.errors import StoreError

RUNNING = "running"  # only `Store.claim` writes it, always with a lease
INTERRUPTED = "interrupted"  # a running record whose lease ran out, or whose owner closed without releasing it
DONE = "done"

MAX_KEY_CHARS = 200  # a kind or an id
MAX_STATUS_CHARS = 64
MAX_DATA_BYTES = 64 * 1024 * 1024  # the record's JSON, UTF-8
MAX_SUMMARY_BYTES = 1024 * 1024  # a record's summary, UTF-8 JSON: what a list reads instead of the data

# A `\u0000` escape in JSON text that is not itself an escaped backslash followed by `u0000`.
_NUL_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


@dataclass(frozen=True)
class Record:
    """A stored record. Times are epoch seconds, from the database's clock (PostgreSQL) or this machine's.

    `version` counts the writes of data or status (1 when created); renewing a lease is not one.
    `owner` and `lease_until` name the store instance that claimed the record, and kept after the claim
    ends so that a reader can see who ran the last turn.
    """

    kind: str
    id: str
    data: dict[str, Any] = field(repr=False)
    status: str
    created: float
    updated: float
    version: int
    owner: str | None = None
    lease_until: float | None = None


@dataclass(frozen=True)
class SummaryRecord:
    """A record as `Store.summaries` lists it: the small `summary` written with its data, not the data.

    A record written without a summary (by older code) has `summary` None; `data` then holds what of its data
    the list asked for: all of it when it is small enough (`whole`), else a few of its top-level fields.
    """

    kind: str
    id: str
    status: str
    created: float
    updated: float
    version: int
    owner: str | None
    lease_until: float | None
    summary: dict[str, Any] | None
    data: dict[str, Any] | None = field(default=None, repr=False)
    whole: bool = False


def valid_key(value: str) -> bool:
    """A kind or an id the store accepts: 1 to 200 characters, no NUL (PostgreSQL text cannot hold one)."""
    return 0 < len(value) <= MAX_KEY_CHARS and "\x00" not in value


def record_from_row(row: tuple[Any, ...], where: str) -> Record:
    """A `Record` from the columns `kind, id, data (JSON text), status, created, updated, version, owner,
    lease_until`; raises `StoreError` naming `where` (the database) if the data is not a JSON object."""
    kind, id, data, status, created, updated, version, owner, lease_until = row
    return Record(kind, id, _object(data, kind, id, where), status, created, updated, version, owner, lease_until)


def summary_record_from_row(row: tuple[Any, ...], where: str, fields: Sequence[str]) -> SummaryRecord:
    """A `SummaryRecord` from the columns `kind, id, status, created, updated, version, owner, lease_until`, then
    the summary, the whole data and the data's picked `fields` (JSON text, each NULL but at most one; the fields
    an object, or an array of their values in order); raises `StoreError` as `record_from_row` does."""
    kind, id, status, created, updated, version, owner, lease_until, summary, whole, picked = row
    head = (kind, id, status, created, updated, version, owner, lease_until)
    if summary is not None:
        return SummaryRecord(*head, summary=_object(summary, kind, id, where))
    if whole is not None:
        return SummaryRecord(*head, summary=None, data=_object(whole, kind, id, where), whole=True)
    values = None if picked is None else json.loads(picked)
    if isinstance(values, list):
        values = dict(zip(fields, values, strict=True))
    return SummaryRecord(*head, summary=None, data=values if isinstance(values, dict) else None)


def _object(text: str, kind: str, id: str, where: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise StoreError(f"{where}: record {kind}/{id} holds data that is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise StoreError(f"{where}: record {kind}/{id} holds JSON that is not an object")
    return value


def encode(
    kind: str, id: str, data: dict[str, Any], *, limit: int = MAX_DATA_BYTES, what: str = "data"
) -> tuple[str, dict[str, Any]]:
    """`data` as the JSON text to store (NULs as U+FFFD) and as it will read back; `StoreError` naming `what` if
    it is not JSON or is over `limit` bytes."""
    if not isinstance(data, dict):
        raise StoreError(f"{kind}/{id}: {what} must be a JSON object, not {type(data).__name__}")
    try:
        text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        if "\\u0000" in text:
            text = _NUL_ESCAPE.sub(r"\1\\ufffd", text)
        size = len(text.encode())
    except (TypeError, ValueError) as exc:  # a set, a NaN, a lone surrogate (UnicodeEncodeError)
        raise StoreError(f"{kind}/{id}: {what} is not storable JSON: {exc}") from exc
    if size > limit:
        raise StoreError(f"{kind}/{id}: {what} is {size} bytes of JSON, over the limit of {limit} ({limit >> 20} MiB)")
    return text, json.loads(text)


def check_status(status: str) -> None:
    if not (0 < len(status) <= MAX_STATUS_CHARS and "\x00" not in status):
        raise ValueError(f"a status is 1 to {MAX_STATUS_CHARS} characters without NUL, not {status[:80]!r}")
