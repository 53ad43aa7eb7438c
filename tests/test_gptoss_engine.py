"""gpt-oss through a real engine: a tiny gpt-oss GGUF in real llama.cpp, behind mcp_host's own backend and chat loop.

Forced decoding makes the random model say scripted Harmony: a logits processor handed to `Llama.generate`
(the only change made to the engine) leaves just the scripted next token possible. Everything else is real:
tokenisation, the KV cache and its reuse across tool rounds on sliding-window layers, where a generation
stops. Unforced, the model's garbage goes through the streaming Harmony parser and the chat loop.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import threading
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import anyio
import llama_cpp
import numpy as np
import pytest
from numpy.typing import NDArray

from mcp_host.agent import (
    ApprovalAnswer,
    ApprovalRequired,
    ChatOptions,
    ErrorEvent,
    Event,
    MessageDelta,
    ReasoningDelta,
    ToolCallCreated,
    ToolCallResult,
    TurnCompleted,
)
from mcp_host.agent.chat import Chat
from mcp_host.agent.formats import Round
from mcp_host.backends import GenerationParams, GenerationStats
from mcp_host.backends.gguf_info import read_gguf_info
from mcp_host.backends.llama_cpp import LlamaCppBackend
from mcp_host.host import Host
from mcp_host.prompt import HarmonyOptions, harmony_encoding
from mcp_host.prompt.harmony import CALL_TOKEN, RETURN_TOKEN, STOP_TOKENS
from tests.conftest import fixture_entry, write_config
from tests.gptoss_model import TinyShape, favoured_tokens, tiny_gptoss
from tests.test_browser_tool import Handler as SiteHandler

pytestmark = pytest.mark.anyio

ENDOFTEXT = 199_999
SHAPE = TinyShape()
CONTEXT = 8192
DATE = "2026-01-02"  # a fixed date: every chat's prompt starts the same, as one user's chats do


def load(path: Path, **options: Any) -> LlamaCppBackend:
    """The model on one thread (decoding and prompt batches): it is tiny, and on a busy 2-core machine llama.cpp's
    thread barriers stall (batches ran ~60× slower)."""
    return LlamaCppBackend.load(path, context_length=CONTEXT, threads=1, **options)


@pytest.fixture(scope="session")
def gptoss_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_gptoss(tmp_path_factory)


@pytest.fixture(scope="module")
async def engine(gptoss_path: Path) -> AsyncIterator[LlamaCppBackend]:
    backend = await anyio.to_thread.run_sync(lambda: load(gptoss_path))
    yield backend
    await backend.aclose()


def harmony(text: str) -> list[int]:
    return list(harmony_encoding().encode(text, allowed_special="all"))


class EngineHooks:
    """What the tests add to a loaded backend: scripts to force, and a record of every generation.

    `force(*texts)` queues one script per coming generation; a generation with no script left samples freely.
    The engine alone decides where a generation ends, so a script may run on past its stop token to prove it.
    """

    def __init__(self, backend: LlamaCppBackend, monkeypatch: pytest.MonkeyPatch) -> None:
        self.scripts: deque[list[int]] = deque()
        self.prompts: list[list[int]] = []
        self.stats: list[GenerationStats] = []
        self.sampled: list[list[int]] = []  # what llama.cpp sampled, per generation
        self.first_logits: list[NDArray[np.float32]] = []  # the engine's logits for each forced generation's 1st token
        self.backend = backend
        llama = backend._llama
        generate_tokens, generate = llama.generate, backend.generate

        def forced_generate(tokens: Sequence[int], **options: Any) -> Iterator[int]:
            sampled: list[int] = []
            self.sampled.append(sampled)
            if self.scripts:
                script, prompt_length = self.scripts.popleft(), len(tokens)

                def only_the_script(context: NDArray[np.intc], logits: NDArray[np.float32]) -> NDArray[np.float32]:
                    position = len(context) - prompt_length
                    if position == 0:
                        self.first_logits.append(np.array(logits, copy=True))
                    forced = np.full_like(logits, -np.inf)
                    forced[script[min(position, len(script) - 1)]] = 0.0
                    return forced

                options["logits_processor"] = llama_cpp.LogitsProcessorList([only_the_script])
            for token in generate_tokens(tokens, **options):
                sampled.append(token)
                yield token

        def recorded_generate(prompt: Sequence[int], params: GenerationParams) -> Any:
            generation = generate(prompt, params)
            self.prompts.append(list(prompt))
            self.stats.append(generation.stats)
            return generation

        monkeypatch.setattr(llama, "generate", forced_generate)
        monkeypatch.setattr(backend, "generate", recorded_generate)

    def force(self, *texts: str) -> None:
        self.scripts.extend(harmony(text) for text in texts)


@pytest.fixture
def hooks(engine: LlamaCppBackend, monkeypatch: pytest.MonkeyPatch) -> EngineHooks:
    return EngineHooks(engine, monkeypatch)


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[Host]:
    config = write_config(tmp_path / "mcp.json", {"fx": fixture_entry()})
    audit = tmp_path / "audit.jsonl"
    # No plugins: garbage must not find a tool that runs unasked (the fixture server's all ask first).
    async with Host(config, settings_path=tmp_path / "settings.toml", audit_path=audit, plugins=False) as running:
        await running.wait_settled()
        yield running


async def generate(backend: LlamaCppBackend, prompt: list[int], params: GenerationParams) -> list[int]:
    tokens: list[int] = []
    async with backend.generate(prompt, params) as generation:
        async for token in generation:
            tokens.append(token)
    return tokens


Decide = Callable[[ApprovalRequired], ApprovalAnswer]


async def run_turn(chat: Chat, text: str, decide: Decide) -> list[Event]:
    events: list[Event] = []
    async for event in chat.send(text):
        events.append(event)
        if isinstance(event, ApprovalRequired):
            chat.answer(event.call_id, decide(event))
    return events


T = TypeVar("T")


def of(kind: type[T], events: list[Event]) -> list[T]:
    return [e for e in events if isinstance(e, kind)]


def options(**overrides: Any) -> ChatOptions:
    return ChatOptions(harmony=HarmonyOptions(start_date=DATE), **overrides)


# -- loading --------------------------------------------------------------------------------------------


async def test_the_tiny_gpt_oss_loads_in_llama_cpp_and_is_taken_for_harmony(
    engine: LlamaCppBackend, gptoss_path: Path
) -> None:
    info = read_gguf_info(gptoss_path)
    assert (info.architecture, info.quantization, info.context_length) == ("gpt-oss", "MXFP4", SHAPE.context_length)
    assert info.name == "gpt-oss tiny (test)" and info.metadata["tokenizer.ggml.pre"] == "gpt-4o"
    model = engine._llama.model
    description = ctypes.create_string_buffer(64)
    llama_cpp.llama_model_desc(model, description, 64)
    assert description.value == b"gpt-oss ?B MXFP4 MoE"  # llama.cpp took the experts as MXFP4
    assert llama_cpp.llama_model_n_swa(model) == SHAPE.sliding_window
    assert llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(model)) == 201_088
    assert engine.context_length == CONTEXT
    # The file name says nothing of gpt-oss: the chat template's Harmony markers do.
    assert "gpt-oss" not in engine.name and engine.capabilities.prompt_format == "harmony"
    # llama.cpp ends generation at <|endoftext|>, <|return|> and <|call|>, and drops <|end|> for gpt-oss.
    assert engine.capabilities.end_tokens == {ENDOFTEXT, RETURN_TOKEN, CALL_TOKEN}
    assert (engine.eos_token, engine.bos_token) == (RETURN_TOKEN, None)  # add_bos_token is false
    # llama.cpp turns five of gpt-oss's control tokens into user-defined ones, shown even when specials are not.
    control = set(engine.capabilities.control_texts)
    assert {"<|call|>", "<|return|>", "<|endoftext|>"} <= control
    shown = ["<|start|>", "<|channel|>", "<|message|>", "<|constrain|>", "<|end|>"]
    assert not set(shown) & control
    tokens = harmony("".join(shown) + "<|call|><|return|>")
    assert engine._llama.detokenize(tokens, special=False) == "".join(shown).encode()


async def test_a_gpt_oss_file_is_harmony_by_its_architecture_alone(tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tiny_gptoss(tmp_path_factory, "model.gguf", chat_template=None)
    backend = await anyio.to_thread.run_sync(lambda: LlamaCppBackend.load(path, context_length=512, threads=1))
    try:
        assert backend.capabilities.chat_template is None
        assert backend.capabilities.prompt_format == "harmony"
    finally:
        await backend.aclose()
        path.unlink()  # 65 MB that no other test reads


async def test_threads_bounds_prompt_evaluation_too(gptoss_path: Path) -> None:
    threads = (os.cpu_count() or 1) + 1  # never the default, whatever the machine
    backend = await anyio.to_thread.run_sync(
        lambda: LlamaCppBackend.load(gptoss_path, context_length=512, threads=threads)
    )
    try:
        params = backend._llama.context_params
        assert (params.n_threads, params.n_threads_batch) == (threads, threads)
    finally:
        await backend.aclose()


# -- forced decoding ------------------------------------------------------------------------------------

CALL = (
    "<|channel|>analysis<|message|>Use a tool.<|end|>"
    "<|start|>assistant<|channel|>commentary to=functions.x <|constrain|>json<|message|>{}<|call|>"
)
ANSWER = "<|channel|>final<|message|>Done.<|return|>"
JUNK = "<|start|>assistant<|channel|>final<|message|>never said"


async def test_return_and_call_end_a_generation_and_end_does_not(engine: LlamaCppBackend, hooks: EngineHooks) -> None:
    prompt = harmony("<|start|>user<|message|>Hi<|end|><|start|>assistant")
    params = GenerationParams(max_tokens=100, stop_tokens=STOP_TOKENS)
    hooks.force(CALL + JUNK, ANSWER + JUNK, CALL)
    assert await generate(engine, prompt, params) == harmony(CALL)  # on through <|end|>, stopped at <|call|>
    assert await generate(engine, prompt, params) == harmony(ANSWER)
    assert await generate(engine, prompt, GenerationParams(max_tokens=5, stop_tokens=STOP_TOKENS)) == harmony(CALL)[:5]
    assert [stats.stop_reason for stats in hooks.stats] == ["stop", "stop", "length"]
    assert hooks.sampled == [harmony(CALL), harmony(ANSWER), harmony(CALL)[:5]]  # the junk was never sampled


ECHOED = "héllo 世界 — привет. " * 12  # long enough that a turn's tail is longer than the sliding window
ROUNDS = (
    "<|channel|>analysis<|message|>First echo the greeting.<|end|><|start|>assistant<|channel|>commentary "
    f'to=functions.fx__echo <|constrain|>json<|message|>{{"text": "{ECHOED}"}}<|call|>',
    "<|channel|>analysis<|message|>Now add 2 and 40.<|end|><|start|>assistant<|channel|>commentary "
    'to=functions.fx__add <|constrain|>json<|message|>{"a": 2, "b": 40}<|call|>',
    "<|channel|>analysis<|message|>Both done.<|end|><|start|>assistant<|channel|>final<|message|>"
    "Echoed, and 2 + 40 = 42.<|return|>",
)


def allow(event: ApprovalRequired) -> ApprovalAnswer:
    return ApprovalAnswer("allow")


async def test_a_scripted_tool_loop_runs_on_the_real_engine_reusing_its_cache(
    engine: LlamaCppBackend, hooks: EngineHooks, host: Host
) -> None:
    hooks.force(*(text + JUNK for text in ROUNDS))
    chat = host.chat(engine, options())
    events = await run_turn(chat, "Echo my greeting, then add 2 and 40.", allow)

    assert [e.tool for e in of(ApprovalRequired, events)] == ["fx.echo", "fx.add"]
    assert [(e.tool, e.arguments) for e in of(ToolCallCreated, events)] == [
        ("fx.echo", {"text": ECHOED}),
        ("fx.add", {"a": 2, "b": 40}),
    ]
    assert [(e.text, e.is_error) for e in of(ToolCallResult, events)] == [(ECHOED, False), ("42", False)]
    reasoning = "".join(e.text for e in of(ReasoningDelta, events))
    assert reasoning == "First echo the greeting.Now add 2 and 40.Both done."
    assert "".join(e.text for e in of(MessageDelta, events)) == "Echoed, and 2 + 40 = 42."
    assert not of(ErrorEvent, events)
    (done,) = of(TurnCompleted, events)
    assert (done.stop_reason, done.stats.rounds, done.stats.tool_calls) == ("answered", 3, 2)

    # Each round sampled its script up to the stop token and no further: <|call|>, <|call|>, <|return|>.
    prompts, stats = hooks.prompts, hooks.stats
    assert hooks.sampled == [harmony(text) for text in ROUNDS]
    assert [s.stop_reason for s in stats] == ["stop"] * 3
    # Round n+1's prompt is round n's, what the model said, the result and <|start|>assistant; the engine
    # evaluates only that result plus the stop token it sampled but never decoded, whatever the window.
    assert len(prompts[0]) > 4 * SHAPE.sliding_window
    for round_, text in enumerate(ROUNDS[:2]):
        said = harmony(text)
        appended = prompts[round_ + 1][len(prompts[round_]) + len(said) :]
        assert prompts[round_ + 1] == prompts[round_] + said + appended
        assert appended[-2:] == harmony("<|start|>assistant") and appended[0] == harmony("<|start|>")[0]
        assert stats[round_ + 1].reused_prompt_tokens == len(prompts[round_]) + len(said) - 1
        assert stats[round_ + 1].evaluated_prompt_tokens == len(appended) + 1
    assert done.stats.prompt_tokens_evaluated == sum(s.evaluated_prompt_tokens for s in stats)
    assert done.stats.prompt_tokens_reused == sum(s.reused_prompt_tokens for s in stats)
    assert "<|start|>functions.fx__add to=assistant<|channel|>commentary<|message|>42<|end|>" in (
        harmony_encoding().decode(prompts[2])
    )
    print(  # the figures for the record (pytest -s)
        "\nKV reuse per round (prompt, reused, evaluated, generated):",
        [(s.prompt_tokens, s.reused_prompt_tokens, s.evaluated_prompt_tokens, s.generated_tokens) for s in stats],
    )

    # The next turn re-renders the history (analysis dropped, calls re-rendered): the cache is cut back past
    # the sliding window. What it computes from there must be what a fresh evaluation computes.
    hooks.force(ANSWER)
    events = await run_turn(chat, "Thanks!", allow)
    assert of(TurnCompleted, events)[0].stop_reason == "answered"
    cut_back = len(prompts[2]) + len(harmony(ROUNDS[2])) - 1 - hooks.stats[3].reused_prompt_tokens
    assert cut_back > 2 * SHAPE.sliding_window
    gap = await assert_fresh_evaluation_agrees(engine, hooks, prompts[3], hooks.first_logits[3])
    turn_2 = hooks.stats[3]
    figures = (turn_2.prompt_tokens, turn_2.reused_prompt_tokens, turn_2.evaluated_prompt_tokens)
    print(f"turn 2 (prompt, reused, evaluated): {figures}; cache cut back by {cut_back}; logits gap {gap:.2g}")


async def assert_fresh_evaluation_agrees(
    backend: LlamaCppBackend, hooks: EngineHooks, prompt: list[int], reused_logits: NDArray[np.float32]
) -> float:
    """The logits computed on a reused cache are those of the same prompt evaluated from scratch (largest gap)."""
    params = GenerationParams(max_tokens=1)
    hooks.force(ANSWER, ANSWER)
    await generate(backend, [0], params)  # nothing in common with `prompt`: the cache is emptied
    await generate(backend, prompt, params)
    assert hooks.stats[-1].reused_prompt_tokens == 0
    fresh = hooks.first_logits[-1]
    difference = float(np.max(np.abs(fresh - reused_logits)))
    assert int(fresh.argmax()) == int(reused_logits.argmax())
    assert difference < 1e-2, difference
    return difference


async def test_cutting_the_cache_back_past_the_window_without_swa_full_gives_the_fresh_logits(
    gptoss_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = await anyio.to_thread.run_sync(lambda: load(gptoss_path, swa_full=False))
    try:
        hooks = EngineHooks(backend, monkeypatch)
        start = harmony("<|start|>user<|message|>")
        long_question = start + harmony("Tell me about windows. " * 200 + "<|end|><|start|>assistant")
        other_question = start + harmony("Hi<|end|><|start|>assistant")
        # Longer than the window plus a batch: the sliding-window layers' cache lets the first positions go.
        assert len(long_question) > SHAPE.sliding_window + int(backend._llama.n_batch) + 256
        hooks.force(ANSWER, ANSWER)
        await generate(backend, long_question, GenerationParams(max_tokens=1))
        await generate(backend, other_question, GenerationParams(max_tokens=1))  # shares only `start`: cut back
        await assert_fresh_evaluation_agrees(backend, hooks, other_question, hooks.first_logits[-1])
    finally:
        await backend.aclose()


# -- unforced garbage -----------------------------------------------------------------------------------

GARBAGE_GENERATIONS = 200
GARBAGE_TOKENS = 32
GARBAGE_ROUNDS = 4
HARMLESS = {"fx.echo", "fx.add"}


def approve_harmless(event: ApprovalRequired) -> ApprovalAnswer:
    if event.tool in HARMLESS:
        return ApprovalAnswer("allow")
    return ApprovalAnswer("deny", reason="not in this test")


async def test_a_fault_in_the_last_token_allowed_is_still_reported(hooks: EngineHooks, host: Host) -> None:
    bad = "<|channel|>bogus<|message|>hi<|end|>"
    hooks.force(bad)
    chat = host.chat(hooks.backend, options(max_tokens_per_round=len(harmony(bad))))
    events = await run_turn(chat, "Hi", allow)
    assert hooks.stats[0].stop_reason == "length" and hooks.sampled[0] == harmony(bad)
    assert of(TurnCompleted, events)[0].stop_reason == "length"
    assert [e.kind for e in of(ErrorEvent, events)] == ["model_output.malformed_header"]


def record_rounds(chat: Chat, monkeypatch: pytest.MonkeyPatch) -> list[Round]:
    """Every round the chat's Harmony format returns to the loop, faults included."""
    rounds: list[Round] = []
    generate_round = chat.turn_format.generate

    async def recorded(params: GenerationParams, *, last_round: bool, emit: Any) -> Round:
        round_ = await generate_round(params, last_round=last_round, emit=emit)
        rounds.append(round_)
        return round_

    monkeypatch.setattr(chat.turn_format, "generate", recorded)
    return rounds


async def test_random_weights_garbage_never_crashes_the_loop_and_every_fault_is_reported(
    engine: LlamaCppBackend, hooks: EngineHooks, host: Host, monkeypatch: pytest.MonkeyPatch
) -> None:
    faults: Counter[str] = Counter()
    unreported: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    stops: Counter[str] = Counter()
    calls, favoured, sampled_tokens = 0, 0, 0
    favourites = set(favoured_tokens())
    seed = 0
    while len(hooks.stats) < GARBAGE_GENERATIONS:
        chat = host.chat(
            engine, options(max_rounds=GARBAGE_ROUNDS, max_tokens_per_round=GARBAGE_TOKENS, seed=seed, temperature=1.0)
        )
        rounds = record_rounds(chat, monkeypatch)
        first = len(hooks.stats)
        events = await run_turn(chat, "Say something.", approve_harmless)
        seed += 1

        (done,) = of(TurnCompleted, events)
        assert done.stop_reason in ("answered", "max_rounds", "length") and 1 <= done.stats.rounds <= GARBAGE_ROUNDS
        assert len(rounds) == done.stats.rounds == len(hooks.stats) - first
        # Every fault is an error event, in order; only the message a turn's last round was cut in (truncated, at
        # the token limit) ends the turn as "length" without one: that cut is what "length" says.
        reported = [(e.kind, e.message) for e in of(ErrorEvent, events)]
        required: list[tuple[str, str]] = []
        for index, round_ in enumerate(rounds):
            cut = round_.stats.stop_reason == "length" and index == len(rounds) - 1
            for fault in round_.faults:
                faults[fault.kind] += 1
                if not cut or fault.kind != "model_output.truncated":
                    required.append((fault.kind, fault.text))
                elif (fault.kind, fault.text) not in reported:
                    unreported[fault.kind] += 1
                    assert done.stop_reason == "length"
        assert [entry for entry in reported if entry in required] == required
        assert all(kind.startswith("model_output.") for kind, _ in reported)
        outcomes[done.stop_reason] += 1
        calls += done.stats.tool_calls
        for stats, sampled in zip(hooks.stats[first:], hooks.sampled[first:], strict=True):
            stops[stats.stop_reason or "none"] += 1
            sampled_tokens += len(sampled)
            favoured += sum(token in favourites for token in sampled)
    print(
        f"\n{len(hooks.stats)} garbage generations in {seed} chats: outcomes {dict(outcomes)}, engine stops "
        f"{dict(stops)}, faults {dict(faults)}, of which ended the turn as 'length' without an error event "
        f"{dict(unreported)}, calls run {calls}; {sampled_tokens} tokens sampled, {favoured} of them Harmony-ish"
    )
    assert len(faults) >= 3  # the garbage does exercise the parser's faults


@pytest.fixture
async def browsing_host(tmp_path: Path) -> AsyncIterator[tuple[Host, str]]:
    """A host whose browser may open the test's own site on 127.0.0.1 (the FAQ page of `test_browser_tool`)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), SiteHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    site = f"http://127.0.0.1:{server.server_address[1]}"
    settings = tmp_path / "settings.toml"
    settings.write_text(f'[browser]\nsearch_url = "{site}"\nallow_private_addresses = true\n')
    config = write_config(tmp_path / "mcp.json", {})
    try:
        async with Host(config, settings_path=settings, plugins=False) as running:
            yield running, site
    finally:
        server.shutdown()
        server.server_close()


async def test_reasoning_effort_and_the_python_and_browser_built_ins_on_the_real_engine(
    engine: LlamaCppBackend, hooks: EngineHooks, browsing_host: tuple[Host, str]
) -> None:
    host, site = browsing_host
    rounds = (
        "<|channel|>analysis<|message|>Compute first.<|end|><|start|>assistant<|channel|>analysis to=python code"
        "<|message|>print(6 * 7)<|call|>",
        f'<|channel|>analysis to=browser.open<|message|>{{"id": "{site}/faq.html"}}<|call|>',
        "<|channel|>final<|message|>42, and MCP is open 【0†L0】.<|return|>",
    )
    hooks.force(*(text + JUNK for text in rounds))
    harmony_options = HarmonyOptions(start_date=DATE, reasoning_effort="high", python=True, browser=True)
    chat = host.chat(engine, ChatOptions(harmony=harmony_options))
    events = await run_turn(chat, "What is 6 * 7, and is MCP open?", allow)
    await chat.aclose()

    assert [e.tool for e in of(ApprovalRequired, events)] == ["python", "browser.open"]  # both ask first
    results = of(ToolCallResult, events)
    assert [r.tool for r in results] == ["python", "browser.open"]
    assert results[0].text.strip() == "42" and not results[0].is_error
    assert "an open protocol" in results[1].text
    (done,) = of(TurnCompleted, events)
    assert (done.stop_reason, done.stats.rounds, done.answer) == ("answered", 3, "42, and MCP is open 【0†L0】.")
    assert done.annotations and done.annotations[0].url == f"{site}/faq.html"
    first = harmony_encoding().decode(hooks.prompts[0])
    assert "Reasoning: high" in first and "namespace browser {" in first and "## python" in first
    # Each round's prompt extends the last (the python and browser results appended): the cache is reused.
    assert all(later[: len(earlier)] == earlier for earlier, later in itertools.pairwise(hooks.prompts))
    assert all(stats.reused_prompt_tokens > 0 for stats in hooks.stats[1:])
