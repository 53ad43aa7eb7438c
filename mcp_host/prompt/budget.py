"""What the tools cost in context, and the warning when they take too much of it."""

from __future__ import annotations

from collections.abc import Sequence

from mcp_host.prompt.harmony import PromptPart

TOOL_PREFIX = "tools: "


def tool_tokens(parts: Sequence[PromptPart]) -> int:
    """Tokens spent on tools: built-in tools plus every server's functions."""
    return sum(part.tokens for part in parts if part.label.startswith(TOOL_PREFIX) or part.label == "built-in tools")


def tool_budget_warning(parts: Sequence[PromptPart], context_tokens: int, share: float) -> str | None:
    """A warning naming the biggest servers when tools take more than `share` of the context, else None."""
    spent = tool_tokens(parts)
    if spent <= share * context_tokens:
        return None
    servers = sorted((p for p in parts if p.label.startswith(TOOL_PREFIX)), key=lambda p: p.tokens, reverse=True)
    biggest = ", ".join(f"{p.label.removeprefix(TOOL_PREFIX)} ({p.tokens})" for p in servers[:3])
    return (
        f"tools take {spent} tokens, {spent / context_tokens:.0%} of the {context_tokens}-token context "
        f"(warning above {share:.0%}); biggest: {biggest or 'built-in tools'}. Disable servers you do not need "
        'in mcp.json ("disabled": true).'
    )
