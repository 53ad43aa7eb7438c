"""What a server asks of the host while it works: elicitation, sampling, progress, log messages.

A server's requests arrive on its connection, not on the call that caused them. The connection
hands each to the `ServerAsks` of its most recent call in flight (the chat turn that made it), else
to the host's own (`ServerManager(asks=...)`), else to `NoOneToAsk`, which declines: nobody is there
to answer. A 2025-11-25 server may send its sampling or elicitation as a task (`client_tasks`): the same
answerer answers it, in the background, and cancelling the task cancels the question.

    class MyAsks(NoOneToAsk):
        async def elicit(self, server, params):
            return mcp_types.ElicitResult(action="accept", content={"name": "Ada"})

    async with ServerManager(settings, asks=MyAsks()) as manager: ...
"""

from __future__ import annotations

import logging
from typing import Protocol

import mcp_types

logger = logging.getLogger(__name__)

# How permissions (and the approval events) name a server's sampling: `<server>.sampling/createMessage`.
SAMPLING_TOOL = "sampling/createMessage"
SamplingReply = mcp_types.CreateMessageResult | mcp_types.CreateMessageResultWithTools | mcp_types.ErrorData

# The syslog levels MCP uses, in order; `logging` gets the nearest of its own.
LOG_LEVELS: tuple[mcp_types.LoggingLevel, ...] = (
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
)
PYTHON_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "notice": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
    "alert": logging.CRITICAL,
    "emergency": logging.CRITICAL,
}


def log_text(params: mcp_types.LoggingMessageNotificationParams) -> str:
    """A server's log message as one line: `[logger] data`."""
    data = params.data if isinstance(params.data, str) else repr(params.data)
    return f"[{params.logger}] {data}" if params.logger else data


def owner_of(asks: object) -> object:
    """Whose answers these are (a chat's calls share one owner); an answerer without `owner` is its own."""
    return getattr(asks, "owner", None) or asks


class ServerAsks(Protocol):
    """Answers a server's requests during a call; implemented by a chat turn and by library users."""

    async def elicit(self, server: str, params: mcp_types.ElicitRequestParams) -> mcp_types.ElicitResult:
        """Ask the user for input (a form, or a URL to open); decline or cancel when they will not."""
        ...

    async def sample(self, server: str, params: mcp_types.CreateMessageRequestParams) -> SamplingReply:
        """Have the model write a message for the server, after the user agreed."""
        ...

    async def progress(self, server: str, progress: float, total: float | None, message: str | None) -> None:
        """A call in flight reported how far it got."""
        ...

    async def log(self, server: str, params: mcp_types.LoggingMessageNotificationParams) -> None:
        """The server logged a message at or above the level asked for."""
        ...


class NoOneToAsk:
    """The answers when nobody is there: elicitation declined, sampling refused, progress and logs dropped.

    Subclass it and override what you can answer.
    """

    async def elicit(self, server: str, params: mcp_types.ElicitRequestParams) -> mcp_types.ElicitResult:
        logger.info("server %r asked for input with no one to answer: declined", server)
        return mcp_types.ElicitResult(action="decline")

    async def sample(self, server: str, params: mcp_types.CreateMessageRequestParams) -> SamplingReply:
        return mcp_types.ErrorData(
            code=mcp_types.INVALID_REQUEST,
            message="sampling refused: no chat is running on the host to approve and answer it",
        )

    async def progress(self, server: str, progress: float, total: float | None, message: str | None) -> None:
        return None

    async def log(self, server: str, params: mcp_types.LoggingMessageNotificationParams) -> None:
        return None
