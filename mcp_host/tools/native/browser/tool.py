"""`browser.search`, `browser.open`, `browser.find` as native tools sharing one `BrowserSession`."""

from __future__ import annotations

from typing import Any

from mcp_host.tools.native.base import NativeTool
from mcp_host.tools.native.browser.session import BrowserError, BrowserSession
from mcp_host.tools.spec import ToolResult, ToolSpec

_SCHEMAS: dict[str, dict[str, Any]] = {
    "search": {
        "type": "object",
        "properties": {"query": {"type": "string"}, "topn": {"type": "integer"}},
        "required": ["query"],
    },
    "open": {
        "type": "object",
        "properties": {
            "id": {"type": ["integer", "string"]},
            "cursor": {"type": "integer"},
            "loc": {"type": "integer"},
            "num_lines": {"type": "integer"},
            "view_source": {"type": "boolean"},
        },
    },
    "find": {
        "type": "object",
        "properties": {"pattern": {"type": "string"}, "cursor": {"type": "integer"}},
        "required": ["pattern"],
    },
}
# Fetching pages only reads the web: a claim the host itself makes, so the policy may allow it.
_ANNOTATIONS = {"readOnlyHint": True, "openWorldHint": True}


class BrowserFunction(NativeTool):
    """One of the browser's three functions."""

    def __init__(self, session: BrowserSession, function: str, *, time_limit_s: float = 30.0) -> None:
        self.session = session
        self.function = function
        self.time_limit_s = time_limit_s
        self.spec = ToolSpec(
            server="browser",
            tool=function,
            qualified=f"browser.{function}",
            origin="native",
            description=f"The browser's {function}.",
            input_schema=_SCHEMAS[function],
            original_schema=_SCHEMAS[function],
            annotations=_ANNOTATIONS,
        )

    async def _call(self, arguments: dict[str, Any]) -> ToolResult:
        try:
            if self.function == "search":
                text = await self.session.search(str(arguments["query"]), int(arguments.get("topn", 10)))
            elif self.function == "open":
                known = {k: arguments[k] for k in ("id", "cursor", "loc", "num_lines", "view_source") if k in arguments}
                text = await self.session.open(**known)
            else:
                text = self.session.find(str(arguments["pattern"]), int(arguments.get("cursor", -1)))
        except BrowserError as exc:
            return ToolResult.error(str(exc))
        except (KeyError, TypeError, ValueError) as exc:
            return ToolResult.error(f"browser.{self.function}: bad arguments ({exc})")
        return ToolResult.text_result(text)

    async def aclose(self) -> None:
        await self.session.aclose()


def browser_tools(session: BrowserSession) -> dict[str, NativeTool]:
    """The three functions by the names gpt-oss calls them."""
    return {f"browser.{name}": BrowserFunction(session, name) for name in ("search", "open", "find")}
