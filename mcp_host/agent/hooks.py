"""What a chat needs of the host's plugins (implemented by `mcp_host.plugins.PluginManager`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from mcp_host.agent.attachments import Attachment
from mcp_host.tools.spec import ToolResult, ToolSpec


class TurnPlugins(Protocol):
    @property
    def names(self) -> list[str]:
        """The plugins in use, sorted."""
        ...

    def specs(self, names: Iterable[str]) -> list[ToolSpec]:
        """The tools of these plugins, for a chat that uses plugins that are off by default."""
        ...

    async def call(
        self, qualified: str, arguments: dict[str, Any], *, timeout_s: float, roots: Sequence[Path]
    ) -> ToolResult: ...

    async def preprocess(
        self, text: str, attachments: Sequence[Attachment], enabled: Iterable[str] | None
    ) -> tuple[str, tuple[Attachment, ...], list[str]]: ...

    async def postprocess(
        self, tool: str, arguments: dict[str, Any], result: ToolResult, enabled: Iterable[str] | None
    ) -> ToolResult: ...
