"""Native tools: the ones gpt-oss was trained on (`browser`, `python`), run by the host itself.

A native tool implements `_call()`; the public `call()` enforces what every call must respect:
a time limit and an output limit, with failures turned into results the model can read.
"""

from __future__ import annotations

import abc
from typing import Any

import anyio

from mcp_host.tools.spec import ToolResult, ToolSpec


class NativeTool(abc.ABC):
    """A tool the host runs in-process or in its own sandbox; an async resource (`aclose()`)."""

    spec: ToolSpec
    time_limit_s: float = 60.0
    output_limit_chars: int = 100_000

    async def call(self, arguments: dict[str, Any]) -> ToolResult:
        """Run the tool within its time limit; a timeout is a result that says so, not an exception."""
        try:
            with anyio.fail_after(self.time_limit_s):
                result = await self._call(arguments)
        except TimeoutError:
            result = await self._timed_out()
        text = result.text
        if len(text) > self.output_limit_chars:
            cut = len(text) - self.output_limit_chars
            text = f"{text[: self.output_limit_chars]}\n[… output truncated: {cut} of {len(text)} characters cut]"
            return ToolResult.text_result(text, is_error=result.is_error)
        return result

    @abc.abstractmethod
    async def _call(self, arguments: dict[str, Any]) -> ToolResult: ...

    async def _timed_out(self) -> ToolResult:
        return ToolResult.error(f"{self.spec.name} did not finish within {self.time_limit_s:g}s and was stopped.")

    async def aclose(self) -> None:
        return None
