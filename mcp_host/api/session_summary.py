"""A session as the stored-chats list shows it, and the summary kept for that beside its record.

    summary = summary_of(state)           # {"title", "created", "model", "messages", "preview", "search"}
    listing = Listing.of(state, busy=False)
    listing.item()                        # the list's JSON for it
    listing.holds("paris")                # a casefolded search in its title and text

`SessionLedger` writes `summary_of(state)` with every write of a session's record (the store keeps it beside the
data, `Store.summaries` reads it without the data), so the list costs the same for a chat of a few words and
one of megabytes. A search looks in the title and in `search`: the user's and the assistant's words as the chat
shows them, casefolded, their first `SEARCH_CHARS` characters.

What the list shows never holds a control character or a bidirectional control: one would let a title pass
for another chat's, or break the line it is shown on. They are taken out of the titles and previews made from
messages (and of titles stored before renames refused them, `requests.SessionRename`).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mcp_host.api.session_ledger import SessionState

TITLE_CHARS = 60
PREVIEW_CHARS = 120
SEARCH_CHARS = 64 * 1024  # of a chat's text, searched: the start of a chat of megabytes, all of any other
# Bidirectional controls (embeddings, overrides, isolates, marks): invisible, they reorder what follows them.
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Shown as a space: every control character (C0, DEL, C1) and the line and paragraph separators; dropped: bidi.
_SHOWN = {code: " " for code in (*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029)} | {
    ord(char): None for char in BIDI_CONTROLS
}

_UNSAFE = ("Cc", "Zl", "Zp")  # control characters, line and paragraph separators

Message = tuple[str, str]  # (role, text): "user" or "assistant"


def unsafe_char(text: str) -> str | None:
    """The first character of `text` a title may not hold (a control character, a line or paragraph separator,
    a bidirectional control), or None."""
    return next((char for char in text if char in BIDI_CONTROLS or unicodedata.category(char) in _UNSAFE), None)


def visible(text: str) -> str:
    """`text` without bidirectional controls, its other control characters and line breaks as spaces."""
    return text.translate(_SHOWN)


def _cut(text: str, chars: int) -> str:
    """`text` on one line, whitespace collapsed, at most `chars` characters (cut with an ellipsis)."""
    line = " ".join(visible(text[: chars * 8]).split())  # a long message is not collapsed whole for a few words
    return line if len(line) <= chars else line[: chars - 1].rstrip() + "…"


def default_title(text: str) -> str | None:
    """The first line of a user's message with something to show, cut to `TITLE_CHARS`; None for none."""
    return next((title for line in text[:4096].splitlines() if (title := _cut(line, TITLE_CHARS))), None)


def _text(content: Any) -> str:
    """A message's text: a string, or the text parts of a list (Harmony's and OpenAI's shapes)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part["text"] for part in content if isinstance(part, dict) and isinstance(part.get("text"), str))
    return ""


def shown_messages(state: SessionState) -> list[Message]:
    """The user's messages and the assistant's answers, as the web chat shows them (no reasoning, no calls),
    from the stored conversation (a `Chat.snapshot()` of either prompt format), which may be of any shape."""
    snapshot = state.snapshot if isinstance(state.snapshot, dict) else {}
    turn = snapshot.get("turn")
    entries = (turn.get("history") or turn.get("messages")) if isinstance(turn, dict) else None
    shown: list[Message] = []
    for entry in entries if isinstance(entries, list) else ():
        if not isinstance(entry, dict):
            continue
        role, text = entry.get("role"), _text(entry.get("content"))
        if role == "user":
            shown.append(("user", text))
        elif role == "assistant" and text.strip():
            calling = entry.get("recipient") not in (None, "assistant") or bool(entry.get("tool_calls"))
            if not calling and entry.get("channel") != "analysis":
                shown.append(("assistant", text))
    running = state.running_text  # a turn runs, or was cut off: its words may not be in the conversation yet
    if isinstance(running, str) and running and not _last_user(shown).startswith(running):
        shown.append(("user", running))
    return shown


def _last_user(shown: Sequence[Message]) -> str:
    return next((text for role, text in reversed(shown) if role == "user"), "")


def title_of(state: SessionState, shown: Sequence[Message] | None = None) -> str | None:
    """The session's title: the one it was given, else its first message's first line; None before any."""
    if state.title is not None:
        return visible(state.title)
    shown = shown_messages(state) if shown is None else shown
    return default_title(next((text for role, text in shown if role == "user"), ""))


def _search_text(shown: Sequence[Message]) -> str:
    """The messages' text, casefolded, one a line, cut at `SEARCH_CHARS`."""
    parts: list[str] = []
    left = SEARCH_CHARS
    for _, text in shown:
        if left <= 0:
            break
        parts.append(text[:left].casefold())
        left -= len(parts[-1]) + 1
    return "\n".join(parts)[:SEARCH_CHARS]


def summary_of(state: SessionState) -> dict[str, Any]:
    """What the list reads of a session instead of its conversation: written beside its record."""
    shown = shown_messages(state)
    return {
        "title": title_of(state, shown),
        "created": state.created,
        "model": state.model,
        "messages": len(shown),
        "preview": _cut(shown[-1][1], PREVIEW_CHARS) if shown else None,
        "search": _search_text(shown),
    }


def title_summary(data: dict[str, Any]) -> dict[str, Any]:
    """The summary of a session stored before summaries, too large to read for a list, from a few fields of its
    record: its title, model and time; no count, preview or text."""
    title, created, model = data.get("title"), data.get("created"), data.get("model")
    return {
        "title": title if isinstance(title, str) else None,
        "created": created if isinstance(created, int) else 0,
        "model": model if isinstance(model, str) else "",
        "messages": None,
        "preview": None,
        "search": "",
    }


def state_name(*, busy: bool, interrupted: bool) -> str:
    return "busy" if busy else "interrupted" if interrupted else "idle"


@dataclass(frozen=True)
class Listing:
    """A session as the list shows it; `messages` and `preview` None when unknown (an old record too large to
    read for a list), `search` "" when not read (a list without a search)."""

    id: str
    title: str | None
    created: int
    updated: float
    model: str
    state: str  # idle, busy, interrupted
    messages: int | None
    preview: str | None
    search: str = ""

    @classmethod
    def of(cls, state: SessionState, *, busy: bool) -> Listing:
        """An open session, from its state as it is now."""
        shown = state_name(busy=busy, interrupted=state.interrupted)
        listing = cls.from_summary(state.id, summary_of(state), updated=state.updated, state=shown)
        assert listing is not None, "summary_of makes a summary from_summary reads"
        return listing

    @classmethod
    def from_summary(cls, id: str, summary: dict[str, Any], *, updated: float, state: str) -> Listing | None:
        """A stored session, from the summary kept with its record; None for one of a shape this version cannot
        read (no field is trusted: the store may be shared with other versions)."""
        title, created, model = summary.get("title"), summary.get("created"), summary.get("model")
        messages, preview, search = summary.get("messages"), summary.get("preview"), summary.get("search", "")
        if not (
            isinstance(title, str | None)
            and isinstance(created, int)
            and isinstance(model, str)
            and isinstance(messages, int | None)
            and isinstance(preview, str | None)
            and isinstance(search, str)
        ):
            return None
        shown = None if title is None else visible(title)
        return cls(id, shown, created, updated, model, state, messages, preview and visible(preview), search)

    def holds(self, needle: str) -> bool:
        """Whether the casefolded `needle` is in the title or the searched text."""
        return needle in (self.title or "").casefold() or needle in self.search

    def item(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "session",
            "title": self.title,
            "created": self.created,
            "updated": self.updated,
            "model": self.model,
            "state": self.state,
            "messages": self.messages,
            "preview": self.preview,
        }
