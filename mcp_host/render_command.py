"""`mcp-host render`: the exact prompt gpt-oss would see, what each part of it costs, and which tools it offers.

Where every tool together would take more than `[tools] select_above_share` of the context, the prompt holds
the selection a turn would offer (`mcp_host.agent.selection`), driven by `--message`, and the listing says why
each tool is there.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mcp_host.agent.prompt_budget import prompt_budget, selection_json
from mcp_host.agent.selection import ToolSelection
from mcp_host.backends.base import speaks_harmony
from mcp_host.backends.gguf_info import read_gguf_info
from mcp_host.backends.models import find_model
from mcp_host.errors import UsageError
from mcp_host.host import Host
from mcp_host.prompt.harmony import STOP_TOKENS, HarmonyOptions, HarmonyRenderer


def render_prompt(console: Console, host: Host, args: argparse.Namespace) -> int:
    prompt_settings = host.settings.prompt
    options = HarmonyOptions(
        reasoning_effort=args.reasoning or prompt_settings.reasoning_effort,
        browser=args.browser,
        python=args.python,
        instructions=args.instructions,
    )
    renderer = HarmonyRenderer()
    model = _model_facts(args.model) if args.model else None
    context = args.context or (model or {}).get("context_length") or prompt_settings.context_tokens
    budget = prompt_budget(
        host.registry, host.settings, options, context_tokens=context, message=args.message or "", renderer=renderer
    )
    tokens, parts, warning, selection = budget.prompt, budget.parts, budget.warning, budget.selection
    if args.json:
        document = {
            "prompt": renderer.encoding.decode(tokens),
            "tokens": len(tokens),
            "parts": [{"label": part.label, "tokens": part.tokens} for part in parts],
            "tool_tokens": budget.tool_tokens,
            "context_tokens": context,
            "stop_tokens": sorted(STOP_TOKENS),
            "model": model,
            "warning": warning,
            "selection": selection_json(selection),
        }
        console.print_json(json.dumps(document))
    else:
        console.print(escape(renderer.encoding.decode(tokens)), highlight=False, soft_wrap=True)
        console.print()
        table = Table("part", "tokens", "share of context", box=None, pad_edge=False)
        for part in parts:
            table.add_row(escape(part.label), str(part.tokens), f"{part.tokens / context:.1%}")
        table.add_row("[bold]total[/bold]", f"[bold]{len(tokens)}[/bold]", f"{len(tokens) / context:.1%}")
        console.print(table)
        console.print()
        if model is not None:
            console.print(
                f"model {escape(str(model['id']))}: {escape(str(model['architecture']))}, context "
                f"{model['context_length'] or 'not stated'} tokens; generation stops at "
                + ", ".join(f"{renderer.encoding.decode([token])} ({token})" for token in sorted(STOP_TOKENS)),
                soft_wrap=True,
            )
        _print_selection(console, selection)
    if warning:
        Console(stderr=True, soft_wrap=True).print(f"[yellow]warning:[/yellow] {escape(warning)}")
    return 0


def _model_facts(model: str) -> dict[str, Any]:
    """What a model file says about itself (its header only: nothing is loaded). Raises `ModelNotFoundError`,
    `ModelLoadError`, and `UsageError` for a model that does not speak Harmony (this prompt is gpt-oss's)."""
    found = find_model(model)
    info = read_gguf_info(found.path)
    if not speaks_harmony(None, None, info.architecture):
        raise UsageError(f"{found.id} is a {info.architecture} model: render shows gpt-oss's Harmony prompt")
    return {
        "id": found.id,
        "path": str(found.path),
        "architecture": info.architecture,
        "context_length": info.context_length,
    }


def _print_selection(console: Console, selection: ToolSelection) -> None:
    console.print(f"[bold]tool selection:[/bold] {escape(selection.summary())}", soft_wrap=True)
    if not selection.active:
        return
    table = Table("offered tool", "tokens", "score", "why", box=None, pad_edge=False)
    for choice in selection.selected:
        tokens = str(choice.tokens) if choice.tokens else ""
        table.add_row(escape(choice.name), tokens, f"{choice.score:.2f}", escape(", ".join(choice.reasons)))
    console.print(table)
    left_out = [choice for choice in selection.choices if not choice.selected]
    if left_out:
        best = ", ".join(f"{c.name} ({c.score:.2f})" for c in left_out[:5])
        console.print(f"left out: {len(left_out)} tools; the best of them: {escape(best)}", soft_wrap=True)
