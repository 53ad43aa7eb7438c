"""What the host knows about one tool, and what one call of it returned."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from mcp_types import CallToolResult, ContentBlock, EmbeddedResource, ImageContent, ResourceLink, TextContent, Tool

from mcp_host.tools.schema import JsonSchema, normalise_schema

ToolOrigin = Literal["mcp", "native", "plugin", "function"]


@dataclass(frozen=True)
class ToolSpec:
    """One tool under its qualified name `<server>.<tool>`.

    `input_schema` is normalised for prompt rendering; `original_schema` is what the
    server sent, used for validation and fingerprints.
    """

    server: str
    tool: str
    description: str
    input_schema: JsonSchema
    original_schema: JsonSchema
    origin: ToolOrigin = "mcp"
    title: str | None = None
    annotations: dict[str, Any] | None = None
    qualified: str | None = None  # native tools keep gpt-oss's names: `python`, `browser.search`
    # Runs code with the host's own rights (the python tool where no sandbox can be had): an "always"
    # answer never covers it, so it asks before every run unless a rule in the settings says otherwise.
    unsandboxed_code: bool = False
    # MCP tasks: "required" tools run only as tasks, "optional" ones run as tasks where the server can.
    task_support: Literal["forbidden", "optional", "required"] | None = None
    # From the tool catalog, while its server starts: stands in for the listing, never trusted for a permission.
    from_catalog: bool = field(default=False, compare=False)

    @property
    def name(self) -> str:
        return self.qualified or f"{self.server}.{self.tool}"

    @property
    def summary(self) -> str:
        """The description's first line, for one-line listings."""
        lines = self.description.strip().splitlines()
        return lines[0].strip() if lines else ""

    @classmethod
    def from_mcp(cls, server: str, tool: Tool) -> ToolSpec:
        original = dict(tool.input_schema)
        annotations = tool.annotations.model_dump(exclude_none=True, by_alias=True) if tool.annotations else None
        return cls(
            server=server,
            tool=tool.name,
            description=tool.description or "",
            input_schema=normalise_schema(original),
            original_schema=original,
            title=tool.title or (tool.annotations.title if tool.annotations else None),
            annotations=annotations,
            task_support=tool.execution.task_support if tool.execution else None,
        )


@dataclass(frozen=True)
class ToolResult:
    """The outcome of a tool call as the model and the user see it.

    `is_error` is the tool's own verdict (MCP `isError`): the call reached the tool and
    the tool said it failed. Host-side failures (timeouts, a dead server) raise instead.
    """

    content: list[ContentBlock] = field(default_factory=list)
    is_error: bool = False
    structured: dict[str, Any] | None = None

    @classmethod
    def error(cls, text: str) -> ToolResult:
        """A failure the model should read, as the tool's reply."""
        return cls(content=[TextContent(text=text)], is_error=True)

    @classmethod
    def text_result(cls, text: str, *, is_error: bool = False) -> ToolResult:
        return cls(content=[TextContent(text=text)], is_error=is_error)

    @classmethod
    def from_mcp(cls, result: CallToolResult) -> ToolResult:
        return cls(content=list(result.content), is_error=result.is_error, structured=result.structured_content)

    @property
    def text(self) -> str:
        """Every content block as text: text verbatim, other kinds as a short bracketed note."""
        parts = [_block_text(block) for block in self.content]
        if not parts and self.structured is not None:
            parts.append(json.dumps(self.structured, ensure_ascii=False))
        return "\n".join(parts)


def _block_text(block: ContentBlock) -> str:
    if isinstance(block, TextContent):
        return block.text
    if isinstance(block, ImageContent):
        return f"[image {block.mime_type}, {len(block.data) * 3 // 4} bytes]"
    if isinstance(block, ResourceLink):
        return f"[resource link {block.uri}]"
    if isinstance(block, EmbeddedResource):
        resource = block.resource
        text = getattr(resource, "text", None)
        return text if isinstance(text, str) else f"[resource {resource.uri}]"
    return f"[{block.type} content]"
