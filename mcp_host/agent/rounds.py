"""The rounds of one turn: generate, report the faults, run the calls and hand their results back.

    outcome = await run_rounds(turn_format, pipeline, options, resumed=None, emit=emit, stats=stats)

The turn ends when the model answers, when an answer reaches the token limit (asking again would be
cut again), when the backend fails (an error event says why), or after `ChatOptions.max_rounds`; the
last of those rounds offers no more tools.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from mcp_host.agent.calls import CallPipeline, Emit
from mcp_host.agent.chat_options import ChatOptions
from mcp_host.agent.events import ErrorEvent, PromptProgress, TurnStats
from mcp_host.agent.formats import Round, TurnFormat, TurnTools
from mcp_host.agent.turn_stream import TurnInput
from mcp_host.errors import BackendError, TemplateError

Outcome = Literal["answered", "max_rounds", "length", "cancelled", "error"]


def resumed_round(turn_format: TurnFormat, tools: TurnTools, turn_input: TurnInput) -> Round | None:
    """A restored turn's first round: the calls it was waiting on, with the ids they were announced with (the
    rest get new ones); None when none wait, and the turn just generates."""
    calls = turn_format.resume_turn(tools, turn_input.reasoning)
    ids = list(turn_input.call_ids) + [None] * len(calls)
    calls = [replace(call, call_id=call_id) for call, call_id in zip(calls, ids, strict=False)]
    return Round(calls=calls) if calls else None


async def run_rounds(
    turn_format: TurnFormat,
    pipeline: CallPipeline,
    options: ChatOptions,
    *,
    resumed: Round | None,
    emit: Emit,
    stats: TurnStats,
) -> Outcome:
    """Run a started turn's rounds, the first one `resumed` where a restored turn's calls wait (nothing is
    generated for it); `stats` counts them. Raises only what the host's own bugs raise."""

    async def prompt_progress(done: int, total: int) -> None:
        await emit(PromptProgress(done=done, total=total))

    # Every format's rounds report how far the engine read a long prompt (engines that cannot tell never call it).
    params = replace(options.generation_params(), on_prompt_progress=prompt_progress)
    outcome: Outcome = "max_rounds"
    for index in range(options.max_rounds):
        stats.rounds += 1
        last_round = index == options.max_rounds - 1 and index > 0
        try:
            if resumed is not None:  # the restored round: its calls run, nothing is generated
                round_, resumed = resumed, None
            else:
                round_ = await turn_format.generate(params, last_round=last_round, emit=emit)
        except (BackendError, TemplateError) as exc:
            await emit(ErrorEvent(message=str(exc), kind="backend"))
            outcome = "error"
            break
        stats.add_generation(round_.stats)
        cut = round_.stats.stop_reason == "length" and not round_.calls
        for fault in round_.faults:
            if not (cut and fault.kind == "model_output.truncated"):  # what the token limit cut: `length` says so
                await emit(ErrorEvent(message=fault.text, kind=fault.kind))
        if cut:
            # The answer reached the token limit: the turn ends here, since asking again would be cut again.
            turn_format.end_round([])
            outcome = "length"
            break
        outcomes = await pipeline.run(round_.calls, emit, stats) if round_.calls else []
        turn_format.end_round(outcomes)
        if round_.answered:
            outcome = "answered"
            break
    return outcome
