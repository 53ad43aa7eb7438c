"""Resources a user attaches to a turn: read from a server, put in the user's message as text.

    attachment = await host.attachment("everything", "demo://resource/static/document/architecture.md")
    async with chat.turn("Summarise this.", attachments=[attachment]) as events: ...

The model reads each attachment after the user's words, labelled with where it came from. Binary
contents are named, not inlined; text longer than `MAX_ATTACHMENT_CHARS` is cut with a note.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

MAX_ATTACHMENT_CHARS = 100_000


@dataclass(frozen=True)
class Attachment:
    """One resource's text, as the model will read it; `source` says where it came from (`server:uri`)."""

    source: str
    text: str
    mime_type: str | None = None

    def __repr__(self) -> str:
        return f"Attachment({self.source!r}, {len(self.text)} chars)"


def with_attachments(text: str, attachments: Sequence[Attachment]) -> str:
    """The user's message followed by each attachment, delimited and labelled."""
    if not attachments:
        return text
    parts = [text]
    for attachment in attachments:
        body = attachment.text
        if len(body) > MAX_ATTACHMENT_CHARS:
            cut = len(body) - MAX_ATTACHMENT_CHARS
            body = f"{body[:MAX_ATTACHMENT_CHARS]}\n[… {cut} of {len(attachment.text)} characters cut]"
        kind = f" ({attachment.mime_type})" if attachment.mime_type else ""
        parts.append(f"--- attached: {attachment.source}{kind} ---\n{body}\n--- end of {attachment.source} ---")
    return "\n\n".join(parts)
