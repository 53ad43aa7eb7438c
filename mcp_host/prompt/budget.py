"""What the tools cost in context, and the warning when they take too much of it.

    cost = HarmonyToolCost(renderer, options)            # or TextToolCost(backend.tokenize) for a chat template
    cost.tools(function_tools)                           # the exact tokens of listing these tools together
    cost.tool(function_tool)                             # one tool's share of a listing (cached)

A `ToolCost` counts as its prompt format renders: Harmony lists functions in the developer message and the
built-in tools (browser, python) in the system message; other models read each tool as an OpenAI function in
JSON (the chat template's `tools`, or LM Studio's default listing). Tool selection
(`mcp_host.agent.selection`) fills its budget with these counts.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import ClassVar, Protocol

from mcp_host.prompt.harmony import FunctionTool, HarmonyOptions, HarmonyRenderer, PromptPart
from mcp_host.prompt.template import TemplateTool
from mcp_host.tools.spec import ToolSpec

TOOL_PREFIX = "tools: "


def tool_tokens(parts: Sequence[PromptPart]) -> int:
    """Tokens spent on tools: built-in tools plus every server's functions."""
    return sum(part.tokens for part in parts if part.label.startswith(TOOL_PREFIX) or part.label == "built-in tools")


def tool_budget_warning(
    parts: Sequence[PromptPart], context_tokens: int, share: float, *, selecting: bool = False
) -> str | None:
    """A warning naming the biggest servers when tools take more than `share` of the context, else None.

    `selecting`: the host offers a selection of the tools per turn (`[tools]` in the settings), and says so.
    """
    spent = tool_tokens(parts)
    if spent <= share * context_tokens:
        return None
    servers = sorted((p for p in parts if p.label.startswith(TOOL_PREFIX)), key=lambda p: p.tokens, reverse=True)
    biggest = ", ".join(f"{p.label.removeprefix(TOOL_PREFIX)} ({p.tokens})" for p in servers[:3])
    advice = (
        "Each turn offers only the tools it needs ([tools] in the settings)."
        if selecting
        else 'Disable servers you do not need in mcp.json ("disabled": true).'
    )
    return (
        f"tools take {spent} tokens, {spent / context_tokens:.0%} of the {context_tokens}-token context "
        f"(warning above {share:.0%}); biggest: {biggest or 'built-in tools'}. {advice}"
    )


class ToolCost(Protocol):
    """What offering tools costs in one prompt format's tokens."""

    def natives(self, specs: Sequence[ToolSpec]) -> int:
        """The built-in tools of a chat (browser, python), whose specs are `specs`."""
        ...

    def tool(self, tool: FunctionTool) -> int:
        """One function's share of a listing of several: what adding it to a listing adds."""
        ...

    def tools(self, tools: Sequence[FunctionTool]) -> int:
        """The exact tokens of listing `tools` together (0 for none)."""
        ...


class HarmonyToolCost:
    """Tool tokens as `HarmonyRenderer` renders them; instructions are left out (they cost the same either way).

    A function's cost depends on the encoding alone, so every chat shares what was counted (the API makes a chat
    per request, and 1,000 tools take a fifth of a second to count).
    """

    _shared: ClassVar[dict[int, dict[str, tuple[ToolSpec, int]]]] = {}  # by encoding, then by identifier
    _natives: ClassVar[dict[tuple[int, str], int]] = {}  # by encoding and options

    def __init__(self, renderer: HarmonyRenderer, options: HarmonyOptions) -> None:
        self._renderer = renderer
        self._options = replace(options, instructions=None)
        self._cache = self._shared.setdefault(id(renderer.encoding), {})
        self._framing: int | None = None

    def natives(self, specs: Sequence[ToolSpec]) -> int:
        # Harmony's built-in tools are what the options turn on, rendered in the system message; counted once
        # per encoding and options (two renders a turn were most of what a turn's selection check cost).
        renderer, options = self._renderer, self._options
        key = (id(renderer.encoding), repr(options))
        cached = self._natives.get(key)
        if cached is None:
            bare = renderer.render_message(renderer.system_message(options, builtins=False))
            cached = self._natives[key] = len(renderer.render_message(renderer.system_message(options))) - len(bare)
        return cached

    def tools(self, tools: Sequence[FunctionTool]) -> int:
        developer = self._renderer.developer_message(self._options, tools) if tools else None
        return 0 if developer is None else len(self._renderer.render_message(developer))

    def tool(self, tool: FunctionTool) -> int:
        cached = self._cache.get(tool.identifier)
        if cached is not None and cached[0] is tool.spec:
            return cached[1]
        tokens = self.tools([tool]) - self.framing
        self._cache[tool.identifier] = (tool.spec, tokens)
        return tokens

    @property
    def framing(self) -> int:
        """The `functions` namespace around the tools: what two listings of one tool cost more than one of both."""
        if self._framing is None:
            a, b = (_sample_tool(name) for name in ("a", "b"))
            self._framing = self.tools([a]) + self.tools([b]) - self.tools([a, b])
        return self._framing


class TextToolCost:
    """Tool tokens for models that read tools as OpenAI functions in JSON, counted by `count` (the model's tokenizer).

    An estimate for templates that lay tools out their own way; exact for LM Studio's default listing's entries.
    """

    def __init__(self, count: Callable[[str], int]) -> None:
        self._count = count
        self._cache: dict[str, tuple[ToolSpec, int]] = {}

    def natives(self, specs: Sequence[ToolSpec]) -> int:
        # Models not trained on them read the built-in tools as ordinary functions (`browser_search`).
        return sum(self._function(spec.name.replace(".", "_"), spec) for spec in specs)

    def tools(self, tools: Sequence[FunctionTool]) -> int:
        return sum(self.tool(tool) for tool in tools)

    def tool(self, tool: FunctionTool) -> int:
        cached = self._cache.get(tool.identifier)
        if cached is not None and cached[0] is tool.spec:
            return cached[1]
        tokens = self._function(tool.identifier, tool.spec)
        self._cache[tool.identifier] = (tool.spec, tokens)
        return tokens

    def _function(self, name: str, spec: ToolSpec) -> int:
        listed = TemplateTool(name, spec.description or spec.name, spec.input_schema).to_openai()
        return self._count(json.dumps(listed, indent=2))


def _sample_tool(name: str) -> FunctionTool:
    schema = {"type": "object", "properties": {}}
    return FunctionTool(name, ToolSpec("s", name, name, schema, schema))
