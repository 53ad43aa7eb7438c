"""What a gpt-oss prompt spends on tools: `mcp-host render` prints it, the HTTP API answers it as JSON.

    budget = prompt_budget(registry, settings, HarmonyOptions(python=True), context_tokens=16384)
    budget.tool_tokens, budget.warning      # the built-in tools and every server's functions, and the warning
    budget.tools                            # each function's share, by server: which server costs what
    budget.prompt                           # the prompt itself (rendered when asked for)

Where every tool together would crowd the context, the prompt holds the selection a turn would offer
(`mcp_host.agent.selection`), driven by `message`; the warning is about every tool all the same.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from openai_harmony import Message

from mcp_host.agent.selection import ToolSelection, ToolSelector
from mcp_host.config.settings import HostSettings
from mcp_host.prompt.budget import HarmonyToolCost, tool_budget_warning, tool_tokens
from mcp_host.prompt.harmony import FunctionTool, HarmonyOptions, HarmonyRenderer, PromptPart, user_message
from mcp_host.tools.registry import ToolRegistry


@dataclass(frozen=True)
class ToolTokens:
    """One function's share of the tool listing (without the `functions` namespace around it)."""

    name: str
    server: str
    tokens: int
    offered: bool  # False: the selection left it out of this prompt


@dataclass
class PromptBudget:
    """The parts of one prompt and what its tools take of the context."""

    renderer: HarmonyRenderer
    options: HarmonyOptions
    functions: list[FunctionTool]  # those the prompt offers
    history: list[Message]
    parts: list[PromptPart]
    context_tokens: int
    warning: str | None
    selection: ToolSelection
    tools: list[ToolTokens]  # every tool chosen from, offered or not

    @property
    def tool_tokens(self) -> int:
        return tool_tokens(self.parts)

    @functools.cached_property
    def prompt(self) -> list[int]:
        return self.renderer.render_prompt(self.options, self.functions, self.history)

    def to_json(self) -> dict[str, Any]:
        """What the API answers: `mcp-host render --json`'s numbers, with each tool's share."""
        return {
            "tool_tokens": self.tool_tokens,
            "parts": [{"label": part.label, "tokens": part.tokens} for part in self.parts],
            "context_tokens": self.context_tokens,
            "share": round(self.tool_tokens / self.context_tokens, 4),
            "warning": self.warning,
            "tools": [
                {"name": tool.name, "server": tool.server, "tokens": tool.tokens, "offered": tool.offered}
                for tool in self.tools
            ],
            "selection": selection_json(self.selection),
        }


def prompt_budget(
    registry: ToolRegistry,
    settings: HostSettings,
    options: HarmonyOptions,
    *,
    context_tokens: int,
    message: str = "",
    renderer: HarmonyRenderer | None = None,
) -> PromptBudget:
    """The prompt a turn saying `message` would start from, with `registry`'s tools (or the selection of them that
    `settings.tools` makes) and the built-in tools `options` turn on, counted part by part."""
    renderer = renderer or HarmonyRenderer()
    cost = HarmonyToolCost(renderer, options)
    selection = ToolSelector(settings.tools, cost).select(registry, context_tokens=context_tokens, message=message)
    offered = FunctionTool.from_specs(list(selection.registry), selection.registry.names)
    history = [user_message(message)] if message else []
    parts = renderer.breakdown(options, offered, history)
    every_tool = FunctionTool.from_specs(list(registry), registry.names)
    # The warning is about every tool, not the selection shown.
    warned = renderer.breakdown(options, every_tool, []) if selection.active else parts
    warning = tool_budget_warning(warned, context_tokens, settings.prompt.tools_warn_share, selecting=selection.active)
    names = {tool.spec.name for tool in offered}
    shares = [ToolTokens(t.spec.name, t.spec.server, cost.tool(t), t.spec.name in names) for t in every_tool]
    return PromptBudget(renderer, options, offered, history, parts, context_tokens, warning, selection, shares)


def selection_json(selection: ToolSelection) -> dict[str, Any]:
    """The tool selection of a prompt: whether it is active, its numbers, and what it offers and why."""
    return {
        "active": selection.active,
        "all_tokens": selection.all_tokens,
        "threshold_tokens": selection.threshold_tokens,
        "budget_tokens": selection.budget_tokens,
        "selected_tokens": selection.selected_tokens,
        "builtin_tokens": selection.builtin_tokens,
        "offered": [
            {"name": c.name, "tokens": c.tokens, "score": round(c.score, 4), "reasons": list(c.reasons)}
            for c in selection.selected
        ],
        "left_out": len(selection.choices) - len(selection.selected),
    }
