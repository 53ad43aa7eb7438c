"""Sessions kept in the state store, so that a restarted server (even one killed with `kill -9`) has them all.

    ledger = SessionLedger(store)              # None: nothing is kept (sessions live in memory)
    await ledger.save(state)                   # a new session
    await ledger.begin_turn(state, text)       # the record is claimed under a lease ...
    tg.start_soon(ledger.keep_claimed, state)  # ... renewed beside the turn
    await ledger.waiting(state)                # a call waits for approval: what a restart resumes
    await ledger.end_turn(state)               # the turn is over
    await ledger.edit(state, title="Trip plans")  # an edit at rest: refused if anything wrote the record since
    state = await ledger.load(session_id)      # after a restart: the record, or None
    page = await ledger.page(limit=50, before=None, search=False)  # the latest active sessions, for a list

One record per session (kind `session`): the options it was made with, its model, its title, the conversation as
`Chat.snapshot()` data, the calls waiting for approval and the answers given to them since a restart,
and the user's words of a turn that was running. A turn claims its record under a lease that a task
renews while the turn runs; when the server dies the lease runs out and the store reports the record
`interrupted` (to every instance sharing the store). Written as each turn ends and when a call starts
waiting for approval, never per token. Every write takes the session's summary with it (`summary_of`: title,
counts, preview, the start of its text), in the same row: what the list reads instead of the conversation.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import anyio
import anyio.to_thread

from mcp_host.api.session_summary import Listing, state_name, summary_of, title_summary
from mcp_host.store import DONE, INTERRUPTED, RUNNING, Record, Store, StoreError, SummaryRecord

logger = logging.getLogger(__name__)

KIND = "session"
LEASE_S = 15.0  # a killed server's turns are reported interrupted this long after its last renewal
# What an edit at rest may change: the rest of a record is the turn's to write (its conversation, its calls).
EDITABLE = ("title", "options")
# A record written before summaries is read whole for the list up to this size, else by these fields alone.
WHOLE_UP_TO = 2 * 1024 * 1024
OLD_FIELDS = ("title", "model", "created")


@dataclass
class SessionState:
    """What a session is, as data: enough to rebuild its chat anywhere."""

    id: str
    model: str
    options: dict[str, Any]  # the creation body (reasoning_effort, instructions, browser, python, plugins)
    created: int = field(default_factory=lambda: int(time.time()))
    snapshot: dict[str, Any] | None = None  # `Chat.snapshot()`; None: nothing said yet
    waiting: list[dict[str, Any]] = field(default_factory=list)  # calls waiting for approval: call_id, tool, arguments
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)  # answers to them given after a restart
    running_text: str | None = None  # the user's words of the turn that ran (kept if it was interrupted)
    interrupted: bool = False
    title: str | None = None  # the user's name for it, or the first message's first line; None before any
    version: int = 0  # the store's version of the record this state was read from or written as
    updated: float = field(default_factory=time.time)  # the record's last write (not stored: the store's clock)

    def to_data(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "options": self.options,
            "created": self.created,
            "snapshot": self.snapshot,
            "waiting": self.waiting,
            "answers": self.answers,
            "running_text": self.running_text,
            "title": self.title,
        }

    @classmethod
    def from_data(
        cls, id: str, data: dict[str, Any], *, status: str, version: int, updated: float | None = None
    ) -> SessionState:
        title = data.get("title")  # absent from records written before sessions had titles
        return cls(
            id=id,
            model=str(data["model"]),
            options=dict(data.get("options") or {}),
            created=int(data.get("created", 0)),
            snapshot=data.get("snapshot"),
            waiting=list(data.get("waiting") or []),
            answers=dict(data.get("answers") or {}),
            running_text=data.get("running_text"),
            interrupted=status == INTERRUPTED,
            title=title if isinstance(title, str) else None,
            version=version,
            updated=time.time() if updated is None else updated,
        )


@dataclass(frozen=True)
class StoredPage:
    """A page of stored sessions as the list shows them (busy: a turn holds it now, on any server)."""

    listings: list[Listing]
    read: int  # records read, the unreadable ones included
    last_updated: float | None  # the oldest record's `updated`: the `before` of the next page; None if none


class SessionLedger:
    """Sessions' records in a `Store`; every method does nothing when there is no store."""

    def __init__(self, store: Store | None, *, lease_s: float = LEASE_S) -> None:
        self.store = store
        self.lease_s = lease_s

    async def load(self, session_id: str) -> SessionState | None:
        if self.store is None:
            return None
        record = await self.store.get(KIND, session_id)
        if record is None:
            return None
        try:
            return SessionState.from_data(
                session_id, record.data, status=record.status, version=record.version, updated=record.updated
            )
        except (KeyError, TypeError, ValueError):
            return None  # a record this version cannot read is not a session it can serve

    async def page(self, *, limit: int, before: float | None, search: bool) -> StoredPage:
        """Up to `limit` records, the most recently written first (`before`: those written strictly earlier),
        as the list shows them, read from their summaries (with the text a search looks in if `search`);
        records this version cannot read are skipped but counted. Needs a store."""
        assert self.store is not None, "without a store the sessions are the open ones"
        records = await self.store.summaries(
            KIND,
            limit=limit,
            before=before,
            leave_out=() if search else ("search",),
            whole_up_to=WHOLE_UP_TO,
            fields=OLD_FIELDS,
        )
        if any(record.whole for record in records):  # older records' conversations, parsed: CPU-bound
            listings, made = await anyio.to_thread.run_sync(_listings, records)
        else:
            listings, made = _listings(records)
        if made:  # older records keep the summaries made of them: the next list reads those instead
            try:
                await self.store.attach_summaries(KIND, made)
            except StoreError as exc:  # the list is right all the same; the next one reads them again
                logger.warning(
                    "store %s: could not keep the summaries of %d older sessions: %s", self.store, len(made), exc
                )
        return StoredPage(listings, len(records), records[-1].updated if records else None)

    async def version(self, session_id: str) -> int | None:
        """The stored record's version (another instance may have moved the session on), or None."""
        if self.store is None:
            return None
        record = await self.store.get(KIND, session_id)
        return None if record is None else record.version

    async def save(self, state: SessionState) -> None:
        """A session at rest: created, or its turn over."""
        if self.store is None:
            state.updated = time.time()
        else:
            _written(
                state, await self.store.put(KIND, state.id, state.to_data(), status=DONE, summary=summary_of(state))
            )

    async def save_interrupted(self, state: SessionState) -> None:
        """An interrupted session, with the answers given to its waiting calls since the restart."""
        if self.store is not None:
            summary = summary_of(state)
            _written(state, await self.store.put(KIND, state.id, state.to_data(), status=INTERRUPTED, summary=summary))

    async def delete(self, session_id: str) -> None:
        if self.store is not None:
            await self.store.delete(KIND, session_id)

    async def begin_turn(self, state: SessionState, text: str | None) -> None:
        """Claim the record for a turn. Raises `StoreConflictError` if another instance runs one."""
        if self.store is None:
            state.updated = time.time()
        else:
            state.running_text = text
            await self._claim(state)

    async def keep_claimed(self, state: SessionState) -> None:
        """Renew the turn's lease until cancelled: run it beside the turn."""
        while self.store is not None:
            await anyio.sleep(self.lease_s / 3)
            await self.store.renew(KIND, state.id)
        await anyio.sleep_forever()

    async def end_turn(self, state: SessionState) -> None:
        """The turn is over (answered, failed or cancelled): write the session at rest. Shielded."""
        state.running_text, state.waiting, state.answers, state.interrupted = None, [], {}, False
        if self.store is None:
            state.updated = time.time()
        else:
            with anyio.CancelScope(shield=True):
                summary = summary_of(state)
                _written(state, await self.store.release(KIND, state.id, state.to_data(), status=DONE, summary=summary))

    async def waiting(self, state: SessionState) -> None:
        """Write what a restart needs to resume the turn: the snapshot and the calls waiting for approval."""
        if self.store is not None:
            await self._claim(state)

    async def _claim(self, state: SessionState) -> None:
        assert self.store is not None
        summary = summary_of(state)
        _written(state, await self.store.claim(KIND, state.id, state.to_data(), lease_s=self.lease_s, summary=summary))

    async def edit(self, state: SessionState, **fields: Any) -> None:
        """Write these fields (of `EDITABLE`) into the session's record at rest, only if the record is still the
        one `state` was read as; its status stays (an interrupted turn stays resumable). The fields are set on
        `state` once written.

            await ledger.edit(state, title="Trip plans")

        Raises `StoreConflictError` if the record was deleted, written since (another server moved the session
        on: read it again), or a turn holds it; `state` is unchanged then. `ValueError` for a field not editable.
        """
        fixed = sorted(set(fields) - set(EDITABLE))
        if fixed:
            raise ValueError(f"{fixed} are not fields an edit may write; it writes {list(EDITABLE)}")
        if self.store is not None:
            edited = replace(state, **fields)
            record = await self.store.update(
                KIND, state.id, edited.to_data(), version=state.version, summary=summary_of(edited)
            )
            _written(state, record)
        else:
            state.updated = time.time()
        for name, value in fields.items():
            setattr(state, name, value)


def _written(state: SessionState, record: Record) -> None:
    """What the store stamped on the state's record: the version a later edit checks, the time lists sort by."""
    state.version, state.updated = record.version, record.updated


def _listings(records: Sequence[SummaryRecord]) -> tuple[list[Listing], list[tuple[str, int, dict[str, Any]]]]:
    """The sessions of `records` as the list shows them, those this version cannot read left out; and the
    summaries made for records written without one, as `(id, version, summary)`."""
    listings: list[Listing] = []
    made: list[tuple[str, int, dict[str, Any]]] = []
    for record in records:
        summary = record.summary
        if summary is None and record.data is not None:
            if record.whole:
                try:
                    session = SessionState.from_data(record.id, record.data, status=record.status, version=0)
                except (KeyError, TypeError, ValueError):
                    continue
                summary = summary_of(session)
            else:
                summary = title_summary(record.data)
            made.append((record.id, record.version, summary))
        if summary is None:
            continue
        state = state_name(busy=record.status == RUNNING, interrupted=record.status == INTERRUPTED)
        listing = Listing.from_summary(record.id, summary, updated=record.updated, state=state)
        if listing is not None:
            listings.append(listing)
    return listings, made
