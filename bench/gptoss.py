"""gpt-oss through the host against bare llama-cpp-python, for a GPU (or any machine with the real weights).

    python bench/gptoss.py --model ~/.lmstudio/models/lmstudio-community/gpt-oss-20b-GGUF/gpt-oss-20b-MXFP4.gguf
    python bench/gptoss.py --tiny-gptoss        # a smoke run on the tests' tiny gpt-oss GGUF (CPU, seconds)

Measured in one run, on the same GGUF, layers on the GPU (`--gpu-layers`, default all):
1. Time to first token for a Harmony prompt with the fixture MCP server's tools (rendered by the host), host vs
   bare `Llama.generate`, each from an empty cache; median of `--repeat`.
2. Decode speed: `--tokens` greedy tokens after that prompt, host vs bare, in alternating pairs; both must make
   the same tokens. The ratio host / bare is the figure (the README's goal: at least 0.97).
3. A tool loop through the host: a real chat with the fixture MCP server (`tests/fixtures/server.py`), every call
   allowed, up to `--rounds` rounds; then the same rounds' prompts through bare llama-cpp-python re-evaluating
   each whole prompt (what a client without prefix reuse does): prompt tokens evaluated and seconds, both ways.
   A real gpt-oss calls the tool as asked; the tiny model's random weights end the loop on a fault instead.
Nothing here is needed by the tests; `tests/test_bench.py` only checks that it starts.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import llama_cpp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.engine import Run, bare_run, host_run, rate  # noqa: E402 - after the repository root is importable
from mcp_host.agent import ApprovalAnswer, ApprovalRequired, ChatOptions, ToolCallResult, TurnCompleted  # noqa: E402
from mcp_host.backends import GenerationParams, GenerationStats  # noqa: E402
from mcp_host.backends.llama_cpp import LlamaCppBackend  # noqa: E402
from mcp_host.host import Host  # noqa: E402
from mcp_host.prompt import HarmonyOptions, HarmonyRenderer, user_message  # noqa: E402
from mcp_host.prompt.harmony import FunctionTool  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "server.py"
QUESTION = (
    "Use the fx.add tool to add 1 and 2, then add the result and 3, then that result and 4, and so on: "
    "one call at a time, five calls in all. Then tell me the last sum."
)


def first_token_s(llama: llama_cpp.Llama, prompt: list[int]) -> float:
    llama.reset()
    started = time.perf_counter()
    for _ in llama.generate(prompt, temp=0.0, top_k=0, min_p=0.0, top_p=1.0, repeat_penalty=1.0, reset=True):
        return time.perf_counter() - started
    raise SystemExit("the model generated nothing")


async def host_first_token_s(backend: LlamaCppBackend, prompt: list[int]) -> float:
    backend._llama.reset()
    started = time.perf_counter()
    async with backend.generate(prompt, GenerationParams(max_tokens=1, temperature=0.0)) as generation:
        async for _ in generation:
            return time.perf_counter() - started
    raise SystemExit("the model generated nothing")


async def tool_loop(
    backend: LlamaCppBackend, config: Path, settings: Path, rounds: int
) -> tuple[list[list[int]], list[GenerationStats], float, str]:
    """A real chat turn through the host: its rounds' prompts and generation stats, its seconds, how it ended."""
    prompts: list[list[int]] = []
    stats: list[GenerationStats] = []
    generate = backend.generate

    def recorded(prompt: Sequence[int], params: GenerationParams) -> Any:
        prompts.append(list(prompt))
        generation = generate(prompt, params)
        stats.append(generation.stats)
        return generation

    backend.generate = recorded  # type: ignore[method-assign]
    ended = "?"
    async with Host(config, settings_path=settings, plugins=False) as host:
        await host.wait_settled()
        chat = host.chat(backend, ChatOptions(max_rounds=rounds, max_tokens_per_round=256, temperature=0.0))
        started = time.perf_counter()
        calls = 0
        async for event in chat.send(QUESTION):
            if isinstance(event, ApprovalRequired):
                chat.answer(event.call_id, ApprovalAnswer("allow"))
            elif isinstance(event, ToolCallResult):
                calls += 1
            elif isinstance(event, TurnCompleted):
                ended = f"{event.stop_reason} after {event.stats.rounds} rounds and {calls} calls"
        elapsed = time.perf_counter() - started
        await chat.aclose()
    backend.generate = generate  # type: ignore[method-assign]
    return prompts, stats, elapsed, ended


def bare_rounds(llama: llama_cpp.Llama, prompts: list[list[int]], generated: list[int]) -> tuple[int, float]:
    """Each round's whole prompt evaluated afresh, then as many tokens generated as the host's round made."""
    evaluated = 0
    started = time.perf_counter()
    for prompt, count in zip(prompts, generated, strict=True):
        llama.reset()
        evaluated += len(prompt)
        for made, _ in enumerate(llama.generate(prompt, temp=0.0, top_k=0, min_p=0.0, top_p=1.0, reset=True), 1):
            if made >= count:
                break
    return evaluated, time.perf_counter() - started


async def main(model: Path, gpu_layers: int, count: int, repeat: int, rounds: int) -> None:
    backend = await anyio.to_thread.run_sync(lambda: LlamaCppBackend.load(model, gpu_layers=gpu_layers))
    if backend.capabilities.prompt_format != "harmony":
        raise SystemExit(f"{model.name} is not a gpt-oss (Harmony) model")
    context = backend.context_length
    bare = llama_cpp.Llama(model_path=str(model), n_ctx=context, n_gpu_layers=gpu_layers, swa_full=True, verbose=False)
    folder = Path(tempfile.mkdtemp(prefix="mcp-host-bench-gptoss-"))
    config = folder / "mcp.json"
    config.write_text(f'{{"mcpServers": {{"fx": {{"command": "{sys.executable}", "args": ["{FIXTURE}"]}}}}}}')
    settings = folder / "settings.toml"
    try:
        async with Host(config, settings_path=settings, plugins=False) as host:
            await host.wait_settled()
            tools = FunctionTool.from_specs(list(host.registry), host.registry.names)
        prompt = HarmonyRenderer().render_prompt(HarmonyOptions(), tools, [user_message(QUESTION)])
        print(f"model: {model.name}, context {context}, prompt {len(prompt)} tokens with {len(tools)} tools")

        host_ttft = [await host_first_token_s(backend, prompt) for _ in range(repeat)]
        bare_ttft = [first_token_s(bare, prompt) for _ in range(repeat)]
        print(
            f"time to first token: host {statistics.median(host_ttft) * 1000:.1f} ms, "
            f"bare {statistics.median(bare_ttft) * 1000:.1f} ms"
        )

        runs: dict[str, list[Run]] = {"bare": [], "host": []}
        for pair in range(repeat):
            for who in ("bare", "host") if pair % 2 == 0 else ("host", "bare"):
                run = bare_run(bare, prompt, count) if who == "bare" else await host_run(backend, prompt, count)
                runs[who].append(run)
        if any(run[0] != runs["bare"][0][0] for run in runs["bare"] + runs["host"]):
            print("note: the runs did not all make the same tokens (a stop token, or nondeterminism on the GPU)")
        ratios = [rate(h) / rate(b) for h, b in zip(runs["host"], runs["bare"], strict=True)]
        print(
            f"decode: host {statistics.median(map(rate, runs['host'])):.1f} tok/s, "
            f"bare {statistics.median(map(rate, runs['bare'])):.1f} tok/s, host / bare {statistics.median(ratios):.3f} "
            f"[{min(ratios):.3f}-{max(ratios):.3f}]"
        )

        prompts, stats, host_s, ended = await tool_loop(backend, config, settings, rounds)
        host_evaluated = sum(s.evaluated_prompt_tokens for s in stats)
        bare_evaluated, bare_s = bare_rounds(bare, prompts, [max(s.generated_tokens, 1) for s in stats])
        print(
            f"tool loop ({ended}): host evaluated {host_evaluated} prompt tokens in {host_s:.2f} s; "
            f"bare, re-evaluating each round, {bare_evaluated} in {bare_s:.2f} s"
        )
    finally:
        await backend.aclose()
        bare.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--tiny-gptoss", action="store_true", help="build and measure the tests' tiny gpt-oss GGUF")
    parser.add_argument("--gpu-layers", type=int, default=-1, help="layers on the GPU (-1: all)")
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=6, help="at most this many rounds in the tool loop")
    options = parser.parse_args()
    path = options.model
    if options.tiny_gptoss:
        from tests.gptoss_model import build_tiny_gptoss  # the dev dependencies (gguf, numpy)

        path = build_tiny_gptoss(Path(tempfile.mkdtemp(prefix="mcp-host-bench-")) / "tiny-gptoss.gguf")
    if path is None:
        raise SystemExit("pass --model PATH (a gpt-oss GGUF) or --tiny-gptoss")
    anyio.run(main, path, options.gpu_layers, options.tokens, options.repeat, options.rounds)
