"""Prompt progress from real llama.cpp (gemma-3-270m on the CPU): a long prompt is read batch by batch, reported
between batches, and cancellable there; the KV cache is reused as before. Bounded in tokens, never in time."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest

from mcp_host.backends import GenerationParams
from mcp_host.backends.llama_cpp import LlamaCppBackend
from tests.conftest import gemma_path

pytestmark = pytest.mark.anyio
BATCH = 128


@pytest.fixture(scope="module")
async def small_batches() -> AsyncIterator[LlamaCppBackend]:
    """The demo model reading prompts 128 tokens at a time."""
    backend = await anyio.to_thread.run_sync(
        lambda: LlamaCppBackend.load(gemma_path(), context_length=2048, seed=7, batch_size=BATCH)
    )
    yield backend
    await backend.aclose()


def long_prompt(backend: LlamaCppBackend, tokens: int) -> list[int]:
    text = " ".join(f"Line {n}: the tool returned the weather for city number {n}." for n in range(400))
    return [2, *backend.tokenize(text, special=False)[: tokens - 1]]


async def generate(
    backend: LlamaCppBackend, prompt: list[int], max_tokens: int = 8
) -> tuple[list[int], list[tuple[int, int]], object]:
    reports: list[tuple[int, int]] = []

    async def on_progress(done: int, total: int) -> None:
        reports.append((done, total))

    params = GenerationParams(max_tokens=max_tokens, temperature=0.0, on_prompt_progress=on_progress)
    async with backend.generate(prompt, params) as generation:
        tokens = [token async for token in generation]
    return tokens, reports, generation.stats


async def test_a_long_prompt_reports_increasing_progress_ending_at_its_total(small_batches: LlamaCppBackend) -> None:
    backend, llama = small_batches, small_batches._llama
    prompt = long_prompt(backend, 1100)
    llama.reset()
    tokens, reports, stats = await generate(backend, prompt)
    total = len(prompt)
    assert stats.evaluated_prompt_tokens == total and stats.reused_prompt_tokens == 0  # type: ignore[attr-defined]
    assert reports[0] == (0, total) and reports[-1] == (total, total)
    assert len(reports) == 1 + -(-total // BATCH)  # the start, then one report per batch
    done = [d for d, t in reports if t == total]
    assert done == sorted(set(done)) and all(b - a <= BATCH for a, b in zip(done, done[1:], strict=False))

    # The same answer as llama-cpp-python's own evaluation of the whole prompt (the path before batches were ours).
    llama.reset()
    plain = []
    for token in llama.generate(prompt, temp=0.0, top_k=0, top_p=1.0, min_p=0.0, reset=True):
        plain.append(token)
        if len(plain) == len(tokens):
            break
    assert plain == tokens

    # What was evaluated stays cached: an appended question is read alone, with no report within one batch ...
    question = backend.tokenize(" Which city was the warmest?", special=False)
    extended = prompt + tokens + question
    _, reports, stats = await generate(backend, extended)
    assert stats.reused_prompt_tokens >= len(prompt) and stats.evaluated_prompt_tokens <= len(question) + len(tokens)  # type: ignore[attr-defined]
    assert reports == []

    # ... and a long addition is reported for what is evaluated only.
    more = long_prompt(backend, 400)[1:]
    _, reports, stats = await generate(backend, extended + more)
    evaluated = stats.evaluated_prompt_tokens  # type: ignore[attr-defined]
    assert evaluated < len(more) + 16 and stats.reused_prompt_tokens == len(extended + more) - evaluated  # type: ignore[attr-defined]
    assert reports[0] == (0, evaluated) and reports[-1] == (evaluated, evaluated) and len(reports) > 2


async def test_a_cancelled_reading_stops_within_a_batch_and_keeps_what_it_read(
    small_batches: LlamaCppBackend,
) -> None:
    backend, llama = small_batches, small_batches._llama
    prompt = long_prompt(backend, 1500)
    llama.reset()
    reports: list[tuple[int, int]] = []
    scope = anyio.CancelScope()

    async def on_progress(done: int, total: int) -> None:
        reports.append((done, total))
        if done >= 2 * BATCH:
            scope.cancel()  # the reader goes away after the second batch

    params = GenerationParams(max_tokens=8, temperature=0.0, on_prompt_progress=on_progress)
    with scope:
        async with backend.generate(prompt, params) as generation:
            async for _ in generation:
                pytest.fail("no token comes from a cancelled reading")
    assert scope.cancelled_caught and generation.stats.stop_reason == "cancelled"
    assert generation.stats.generated_tokens == 0
    assert reports[-1][0] <= 3 * BATCH < len(prompt)  # at most one batch more was read after the cancel
    assert llama.n_tokens == reports[-1][0]

    _, _, stats = await generate(backend, prompt)  # the part read is reused
    assert stats.reused_prompt_tokens == reports[-1][0]  # type: ignore[attr-defined]
