"""`mcp-host render`: the exact prompt gpt-oss would see, and what each part of it costs."""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mcp_host.host import Host
from mcp_host.prompt.budget import tool_budget_warning, tool_tokens
from mcp_host.prompt.harmony import FunctionTool, HarmonyOptions, HarmonyRenderer, user_message


def render_prompt(console: Console, host: Host, args: argparse.Namespace) -> int:
    prompt_settings = host.settings.prompt
    options = HarmonyOptions(
        reasoning_effort=args.reasoning or prompt_settings.reasoning_effort,
        browser=args.browser,
        python=args.python,
        instructions=args.instructions,
    )
    tools = FunctionTool.from_specs(list(host.registry), host.registry.names)
    history = [user_message(args.message)] if args.message else []
    renderer = HarmonyRenderer()
    tokens = renderer.render_prompt(options, tools, history)
    parts = renderer.breakdown(options, tools, history)
    context = args.context or prompt_settings.context_tokens
    warning = tool_budget_warning(parts, context, prompt_settings.tools_warn_share)
    if args.json:
        document = {
            "prompt": renderer.encoding.decode(tokens),
            "tokens": len(tokens),
            "parts": [{"label": part.label, "tokens": part.tokens} for part in parts],
            "tool_tokens": tool_tokens(parts),
            "context_tokens": context,
            "warning": warning,
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
    if warning:
        Console(stderr=True, soft_wrap=True).print(f"[yellow]warning:[/yellow] {escape(warning)}")
    return 0
