"""llama.cpp tokenises what mcp_host renders for gpt-oss exactly as openai-harmony does.

The tiny gpt-oss GGUF carries the whole o200k_harmony vocabulary (see `tests/gptoss_model.py`); its
tokenizer is llama.cpp's own (`gpt2` BPE with the `gpt-4o` pre-tokenizer), loaded through mcp_host's backend.
One known drift is asserted as it is: llama.cpp's `gpt-4o` pre-tokenizer splits words that carry combining
marks (Devanagari, Thai) where tiktoken does not, which is why the host hands the engine token ids, not text.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import mcp_types
import pytest

from mcp_host.backends.llama_cpp import LlamaCppBackend
from mcp_host.prompt import (
    FunctionTool,
    HarmonyOptions,
    HarmonyRenderer,
    TokenLog,
    assistant_message,
    harmony_encoding,
    tool_call_message,
    tool_result_message,
    user_message,
)
from mcp_host.tools import ToolSpec
from tests.gptoss_model import FIRST_SPECIAL, REAL_MERGE_COUNT, VOCAB_SIZE, o200k_harmony_vocabulary, tiny_gptoss

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="session")
def gptoss_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_gptoss(tmp_path_factory)


@pytest.fixture(scope="module")
async def backend(gptoss_path: Path) -> AsyncIterator[LlamaCppBackend]:
    loaded = await anyio.to_thread.run_sync(lambda: LlamaCppBackend.load(gptoss_path, context_length=512, threads=1))
    yield loaded
    await loaded.aclose()


@pytest.fixture(scope="module")
def renderer() -> HarmonyRenderer:
    return HarmonyRenderer()


def harmony_ids(text: str) -> list[int]:
    return list(harmony_encoding().encode(text, allowed_special="all"))


SCRIPTS = {
    "latin": "The quick brown fox jumps over the lazy dog. Ça va? Grüße aus Köln, señor! Œuvre naïve.",
    "cyrillic": "Съешь же ещё этих мягких французских булок, да выпей чаю. Ёлка, Україна, Беларусь.",
    "cjk": "今日は良い天気ですね。我们明天去北京吧！한국어도 됩니다. カタカナ、ひらがな、漢字。",
    "arabic": "مرحبا بالعالم، كيف حالك اليوم؟ العدد ١٢٣٤ والنص من اليمين إلى اليسار.",
    "hebrew": "שלום עולם, מה שלומך? שָׁלוֹם",
    "greek": "Γειά σου Κόσμε· ό,τι καλύτερο.",
    "emoji": "Launch 🚀🔥 family 👨‍👩‍👧‍👦 flags 🇫🇷🇯🇵 skin 👍🏽 ✨ keycap 1️⃣",
    "code": "def f(x):\n    return {'a': [1, 2, 3], \"b\": x ** 2}  # comment\n\tif x != 0xFF: print(f'{x!r}')\n",
    "json": '{"city": "Zürich", "temps": [21.5, -3e-2], "ok": true, "nested": {"k": null}}',
    "numbers": "1234567890 3.14159 -42 1e-10 100,000,000 ½ ⅔ ²³",
    "whitespace": "a  b   c\n\n\n  d\t\te\r\n    indented\n",
    "harmony-looking text": "Write <|end|> or <|call|> literally; to=functions.x <|channel|>final",
}


async def test_the_vocabulary_is_gpt_oss_s(backend: LlamaCppBackend) -> None:
    vocabulary = o200k_harmony_vocabulary()
    assert len(vocabulary.tokens) == VOCAB_SIZE and len(vocabulary.merges) == REAL_MERGE_COUNT
    metadata = backend.metadata
    assert (metadata["tokenizer.ggml.model"], metadata["tokenizer.ggml.pre"]) == ("gpt2", "gpt-4o")
    encoding = harmony_encoding()
    # Every Harmony special, reserved ones included, is one token in both, by its text.
    for token in range(FIRST_SPECIAL, VOCAB_SIZE):
        text = encoding.decode([token])
        assert backend.tokenize(text) == [token], text
        assert backend.detokenize([token]) == text
    # Even without `special`, llama.cpp reads the five markers it made user-defined as markers; only <|call|>,
    # <|return|> and the rest stay text. openai-harmony encodes a tool's "<|end|>" as text: hand the engine ids.
    text = "<|start|>assistant<|channel|>final<|message|>hi<|end|><|call|>"
    assert backend.tokenize(text, special=False) == [
        *harmony_ids("<|start|>assistant<|channel|>final<|message|>hi<|end|>"),
        *encoding.encode("<|call|>", disallowed_special=()),
    ]


def weather_tool() -> FunctionTool:
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "City name — e.g. Zürich, Москва, 東京"},
            "unit": {"type": "string", "enum": ["c", "f"], "default": "c"},
            "days": {"type": "integer", "description": "How many days ahead"},
        },
        "required": ["city"],
    }
    tool = mcp_types.Tool(
        name="forecast", description="Forecast for a city. Prévisions météo. 天気予報。", input_schema=schema
    )
    return FunctionTool.from_specs([ToolSpec.from_mcp("weather", tool)])[0]


def conversation_prompts(renderer: HarmonyRenderer) -> dict[str, list[int]]:
    """Prompts as mcp_host renders them: tools, built-ins, reasoning effort, a tool loop, results in many scripts."""
    tools = [weather_tool()]
    call = tool_call_message("functions.weather__forecast", '{"city": "Zürich", "unit": "c"}')
    result = tool_result_message(
        "functions.weather__forecast", '{"temp": 21, "sky": "☀️ ensoleillé", "ветер": "слабый"}'
    )
    history = [
        user_message("Quel temps fait-il à Zürich ? 🌦️"),
        assistant_message("The user wants the weather; call the tool.", "analysis"),
        call,
        result,
        assistant_message("Il fait 21 °C et ☀️ à Zürich.", "final"),
        user_message("Et demain ? Also: def f(x): return x**2  # 代码"),
    ]
    options = HarmonyOptions(
        reasoning_effort="high",
        start_date="2026-01-02",
        browser=True,
        python=True,
        instructions="Réponds en français. Отвечай кратко. 簡潔に。",
    )
    prompts = {
        "bare": renderer.render_prompt(HarmonyOptions(reasoning_effort="low", start_date="2026-01-02"), [], []),
        "tools and history": renderer.render_prompt(options, tools, history),
        "every script": renderer.render_prompt(
            options, [], [user_message(text) for text in SCRIPTS.values() if "<|" not in text]
        ),
    }
    # A tool loop as the token log holds it: what the model generated, then the rendered result, appended.
    log = TokenLog(renderer)
    log.start_turn(renderer.render_prompt(options, tools, history[:1]))
    log.append_generated(
        harmony_ids(
            "<|channel|>analysis<|message|>Need the forecast.<|end|><|start|>assistant<|channel|>commentary "
            'to=functions.weather__forecast <|constrain|>json<|message|>{"city": "Zürich"}<|call|>'
        )
    )
    log.append_tool_result(result)
    prompts["tool loop log"] = list(log.tokens)
    return prompts


async def test_rendered_harmony_prompts_tokenize_to_openai_harmony_s_ids(
    backend: LlamaCppBackend, renderer: HarmonyRenderer
) -> None:
    encoding = harmony_encoding()
    sizes = {}
    for name, ids in conversation_prompts(renderer).items():
        text = encoding.decode(ids)
        assert backend.tokenize(text) == ids, name  # special tokens included
        assert backend.detokenize(ids) == text, name
        sizes[name] = len(ids)
    print("\nHarmony prompts tokenised identically (tokens):", sizes)


@pytest.mark.parametrize("script", SCRIPTS)
async def test_every_script_tokenizes_alike_and_round_trips(backend: LlamaCppBackend, script: str) -> None:
    text = SCRIPTS[script]
    ids = harmony_ids(text)
    assert backend.tokenize(text) == ids
    assert backend.detokenize(ids) == text


# llama.cpp's `gpt-4o` pre-tokenizer does not keep combining marks (\p{M}) inside the word as o200k's
# pattern does; the same text then splits into more, different tokens. Both decode back to the text.
DRIFT = {
    "नमस्ते": (["न", "म", "स्त", "े"], ["न", "म", "स", "्त", "े"]),
    "नमस्ते दुनिया": (
        ["न", "म", "स्त", "े", " दुनिया"],
        ["न", "म", "स", "्त", "े", " द", "ुन", "िय", "ा"],
    ),
    "สวัสดีครับ": (["ส", "วั", "สด", "ี", "ครับ"], ["ส", "ว", "ั", "สด", "ี", "คร", "ับ"]),
}


@pytest.mark.parametrize("text", DRIFT)
async def test_words_with_combining_marks_split_differently_in_llama_cpp(backend: LlamaCppBackend, text: str) -> None:
    encoding = harmony_encoding()
    tiktoken_pieces, llama_pieces = DRIFT[text]
    ids, theirs = harmony_ids(text), backend.tokenize(text)
    assert [encoding.decode([token]) for token in ids] == tiktoken_pieces
    assert [backend.detokenize([token]) for token in theirs] == llama_pieces
    assert len(theirs) > len(ids) and theirs != ids
    assert backend.detokenize(ids) == backend.detokenize(theirs) == encoding.decode(theirs) == text
