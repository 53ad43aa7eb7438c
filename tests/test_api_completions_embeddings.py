"""Text completions and embeddings, OpenAI's and LM Studio's, on a real uvicorn server on 127.0.0.1.

The model is gemma-3-270m on real llama.cpp, found in an LM Studio model folder and loaded by the server's
registry when a request names it: once for generation (a base model, what raw completions are for) and once
in llama.cpp's embedding mode. LM Studio's v0 examples run unchanged but for the base URL: the folder also
holds gemma under the names they ask for. Generation is bounded by tokens, never by the clock.
"""

from __future__ import annotations

import base64
import json
import math
import os
import shutil
import struct
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import httpx2
import openai
import pytest

from mcp_host.api import create_app
from mcp_host.backends import RecordedGeneration, RecordingBackend, ReplayBackend, discover_models
from mcp_host.backends.base import GenerationParams
from mcp_host.backends.llama_cpp import LlamaCppBackend
from mcp_host.backends.loading import LoadedModel, LoadOptions, load_with_llama_cpp
from mcp_host.backends.openai_http import OpenAIChatBackend
from mcp_host.backends.registry import ModelRegistry
from mcp_host.host import Host
from mcp_host.prompt import harmony_encoding
from tests.conftest import free_port, gemma_path, serve_app, smollm2_path, write_config
from tests.test_api_openai import serving

pytestmark = pytest.mark.anyio

GEMMA = "google/gemma-3-270m"
CONTEXT = 4096  # the registry loads models with this context: quick to load, and a prompt can overflow it
PROMPT = "The capital of France is"
CAT = "The cat sat on the mat."
# The names LM Studio's v0 examples ask for, served by the same gemma file.
V0_COMPLETION_MODEL = "ibm/granite-3.0-2b-instruct"
V0_EMBEDDING_MODEL = "nomic-ai/text-embedding-nomic-embed-text-v1.5"


class Server:
    def __init__(self, url: str) -> None:
        self.url = url
        self.client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="not-needed", max_retries=0)

    async def post(self, path: str, body: object, **headers: str) -> httpx2.Response:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        async with httpx2.AsyncClient(base_url=self.url, timeout=60) as http:
            return await http.post(path, content=content, headers={"content-type": "application/json", **headers})


@pytest.fixture(scope="module")
def lmstudio_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """As conftest's `lmstudio_models`, for the whole module (each model loads once): an LM Studio folder of real
    GGUFs set as LMSTUDIO_MODELS_DIR, with gemma also under the names of LM Studio's examples."""
    root = tmp_path_factory.mktemp("lmstudio-models")
    for model_id, path in (
        (GEMMA, gemma_path()),
        ("HuggingFaceTB/SmolLM2-135M-Instruct", smollm2_path()),
        (V0_COMPLETION_MODEL, gemma_path()),
        (V0_EMBEDDING_MODEL, gemma_path()),
    ):
        folder = root / model_id
        folder.mkdir(parents=True)
        link(path, folder / path.name)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LMSTUDIO_MODELS_DIR", str(root))
        patch.setenv("HF_HUB_CACHE", str(root / "no-hf-cache"))
        yield root


def link(source: Path, target: Path) -> None:
    """A hard link (a copy across file systems): the registry lists a file found twice under one real path once."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def load_small(path: Path, name: str, options: LoadOptions, progress: Callable[[float], None]) -> LoadedModel:
    return load_with_llama_cpp(path, name, replace(options, context_length=options.context_length or CONTEXT), progress)


@pytest.fixture(scope="module")
async def server(lmstudio_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Server]:
    state = tmp_path_factory.mktemp("state")
    registry = ModelRegistry(discover=discover_models, loader=load_small, resident=4)
    async with Host(write_config(state / "mcp.json", {}), settings_path=state / "settings.toml") as host:
        async with serve_app(create_app(host, registry)) as url:
            served = Server(url)
            yield served
            await served.client.close()


async def greedy(server: Server, max_tokens: int, prompt: str = PROMPT) -> str:
    completion = await server.client.completions.create(
        model=GEMMA, prompt=prompt, max_tokens=max_tokens, temperature=0
    )
    return completion.choices[0].text


# -- completions on gemma --------------------------------------------------------------------------


async def test_a_completion_continues_the_prompt_as_it_is(server: Server, gemma: LlamaCppBackend) -> None:
    completion = await server.client.completions.create(model=GEMMA, prompt=PROMPT, max_tokens=8, temperature=0)
    assert completion.object == "text_completion" and completion.id.startswith("cmpl-")
    assert completion.model == GEMMA and completion.created > 0
    (choice,) = completion.choices
    assert choice.index == 0 and choice.logprobs is None and choice.text.strip()
    assert completion.usage is not None
    assert completion.usage.completion_tokens <= 8
    assert (choice.finish_reason == "length") == (completion.usage.completion_tokens == 8)
    # No chat template: the prompt is the model's BOS and the text's own tokens, and the text is what
    # the same model writes after exactly that.
    prompt = [gemma.capabilities.bos_token, *gemma.tokenize(PROMPT)]
    assert completion.usage.prompt_tokens == len(prompt)
    params = GenerationParams(max_tokens=8, temperature=0, stop_tokens=gemma.capabilities.end_tokens)
    async with gemma.generate(prompt, params) as generation:
        tokens = [token async for token in generation if token not in gemma.capabilities.end_tokens]
    assert choice.text == gemma.detokenize(tokens)


async def test_max_tokens_bounds_the_tokens(server: Server) -> None:
    for limit, prompt in ((1, "Once upon a time"), (5, "In a hole in the ground there lived")):
        completion = await server.client.completions.create(
            model=GEMMA,
            prompt=prompt,
            max_tokens=limit,
            temperature=0.8,
            seed=3,
            presence_penalty=0.0,  # fields clients send that change nothing here are accepted
            user="someone",
        )
        assert completion.usage is not None and completion.usage.completion_tokens <= limit


async def test_a_seed_and_temperature_reproduce_a_sample(server: Server) -> None:
    async def sample(seed: int) -> str:
        # From the same KV cache state each time: a prompt decoded whole and one decoded from its cached prefix
        # give slightly different logits, enough to change a sample at temperature 1.
        await greedy(server, 2, prompt="Something else entirely")
        completion = await server.client.completions.create(
            model=GEMMA, prompt="My favourite animal is", max_tokens=8, temperature=1.0, seed=seed
        )
        return completion.choices[0].text

    first = await sample(42)
    assert await sample(42) == first
    assert len({first, await sample(1), await sample(2)}) > 1


async def test_generation_stops_at_a_stop_string_which_the_text_leaves_out(server: Server) -> None:
    text = await greedy(server, 24)
    stop = text[len(text) // 2 : len(text) // 2 + 3]  # may begin inside a token: held back until it is known
    expected = text[: text.index(stop)]
    completion = await server.client.completions.create(
        model=GEMMA, prompt=PROMPT, max_tokens=24, temperature=0, stop=["never written", stop]
    )
    assert completion.choices[0].text == expected and completion.choices[0].finish_reason == "stop"

    stream = await server.client.completions.create(
        model=GEMMA, prompt=PROMPT, max_tokens=24, temperature=0, stop=stop, stream=True
    )
    chunks = [chunk async for chunk in stream]
    pieces = [chunk.choices[0].text for chunk in chunks if chunk.choices]
    assert "".join(pieces) == expected and not any(stop in piece for piece in pieces)
    assert chunks[-1].choices[0].finish_reason == "stop"


async def test_a_streamed_completion_is_text_completion_chunks(server: Server) -> None:
    whole = await greedy(server, 10)
    stream = await server.client.completions.create(
        model=GEMMA,
        prompt=PROMPT,
        max_tokens=10,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    assert {chunk.object for chunk in chunks} == {"text_completion"} and len({chunk.id for chunk in chunks}) == 1
    texts = [chunk.choices[0] for chunk in chunks if chunk.choices]
    assert "".join(choice.text for choice in texts) == whole
    assert all(choice.finish_reason is None for choice in texts[:-1]) and texts[-1].finish_reason is not None
    assert chunks[-1].usage is not None and 0 < chunks[-1].usage.completion_tokens <= 10
    raw = await server.post("/v1/completions", {"model": GEMMA, "prompt": PROMPT, "max_tokens": 2, "stream": True})
    assert raw.headers["content-type"].startswith("text/event-stream")
    assert [line for line in raw.text.splitlines() if line.startswith("data:")][-1] == "data: [DONE]"


async def test_echo_puts_the_prompt_before_the_completion(server: Server) -> None:
    whole = await greedy(server, 4)
    completion = await server.client.completions.create(
        model=GEMMA, prompt=PROMPT, max_tokens=4, temperature=0, echo=True
    )
    assert completion.choices[0].text == PROMPT + whole
    listed = await server.client.completions.create(model=GEMMA, prompt=[PROMPT], max_tokens=4, temperature=0)
    assert listed.choices[0].text == whole  # a list of one prompt is that prompt


async def test_a_prompt_over_the_context_is_a_400(server: Server) -> None:
    for prompt in ("word " * 5000, "word " * 1_000_000):  # the second is refused after its first pieces
        response = await server.post("/v1/completions", {"model": GEMMA, "prompt": prompt, "max_tokens": 1})
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["code"] == "context_length_exceeded" and error["param"] == "prompt"
        assert str(CONTEXT) in error["message"]


# -- embeddings on gemma, loaded in embedding mode -------------------------------------------------


def norm(vector: list[float]) -> float:
    return math.sqrt(sum(value * value for value in vector))


async def test_embeddings_are_normalized_vectors_of_the_model_s_width(server: Server, gemma: LlamaCppBackend) -> None:
    width = int(gemma.capabilities.metadata["gemma3.embedding_length"])
    texts = [CAT, "Quarterly revenue grew by four percent.", CAT]
    made = await server.client.embeddings.create(model=GEMMA, input=texts, encoding_format="float")
    assert made.object == "list" and made.model == GEMMA
    assert [item.index for item in made.data] == [0, 1, 2] and {item.object for item in made.data} == {"embedding"}
    cat, revenue, cat_again = (item.embedding for item in made.data)
    assert all(len(vector) == width for vector in (cat, revenue, cat_again))
    assert all(abs(norm(vector) - 1) < 1e-4 for vector in (cat, revenue, cat_again))
    assert max(abs(a - b) for a, b in zip(cat, revenue, strict=True)) > 1e-2
    # In one batch a text's vector depends a little on where it lies (llama.cpp's kernels round differently).
    assert sum(a * b for a, b in zip(cat, cat_again, strict=True)) > 0.9999
    tokens = sum(1 + len(gemma.tokenize(text, special=False)) for text in texts)  # each after a BOS
    assert made.usage.prompt_tokens == made.usage.total_tokens == tokens

    alone = await server.client.embeddings.create(model=GEMMA, input=CAT, encoding_format="float")
    again = await server.client.embeddings.create(model=GEMMA, input=CAT, encoding_format="float")
    assert alone.data[0].embedding == again.data[0].embedding and len(alone.data) == 1
    # The client asks for base64 unless told otherwise, and decodes it: the same float32 values.
    decoded = await server.client.embeddings.create(model=GEMMA, input=CAT)
    assert decoded.data[0].embedding == alone.data[0].embedding
    raw = await server.post("/v1/embeddings", {"model": GEMMA, "input": CAT, "encoding_format": "base64"})
    packed = base64.b64decode(raw.json()["data"][0]["embedding"])
    assert list(struct.unpack(f"<{width}f", packed)) == alone.data[0].embedding


async def test_lm_studio_s_python_embedding_example(server: Server) -> None:
    def example(url: str) -> list[float]:
        from openai import OpenAI

        client = OpenAI(base_url=f"{url}/v1", api_key="lm-studio")

        def get_embedding(text: str, model: str = "model-identifier") -> list[float]:
            text = text.replace("\n", " ")
            return client.embeddings.create(input=[text], model=model).data[0].embedding

        try:  # the example's model is a placeholder: named here as in the other examples
            return get_embedding("Once upon a time, there was a cat.", model=V0_EMBEDDING_MODEL)
        finally:
            client.close()

    vector = await anyio.to_thread.run_sync(example, server.url)
    assert abs(norm(vector) - 1) < 1e-4


# -- LM Studio's v0 examples, verbatim but for the base URL ----------------------------------------


async def test_lm_studio_s_v0_completion_example(server: Server) -> None:
    response = await server.post(
        "/api/v0/completions",
        b"""{
    "model": "granite-3.0-2b-instruct",
    "prompt": "the meaning of life is",
    "temperature": 0.7,
    "max_tokens": 10,
    "stream": false,
    "stop": "\\n"
  }""",
        authorization="Bearer lm-studio",
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert set(result) == {"id", "object", "created", "model", "choices", "usage", "stats", "model_info", "runtime"}
    assert result["object"] == "text_completion" and result["model"] == V0_COMPLETION_MODEL
    (choice,) = result["choices"]
    assert set(choice) == {"index", "text", "logprobs", "finish_reason"} and "\n" not in choice["text"]
    usage = result["usage"]
    assert (
        usage["completion_tokens"] <= 10
        and usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    )
    stats = result["stats"]
    assert set(stats) == {"tokens_per_second", "time_to_first_token", "generation_time", "stop_reason"}
    expected_reasons = {"length": {"maxPredictedTokensReached"}, "stop": {"eosFound", "stopStringFound"}}
    assert stats["stop_reason"] in expected_reasons[choice["finish_reason"]]
    assert result["model_info"] == {"arch": "gemma3", "quant": "Q4_K_M", "format": "gguf", "context_length": CONTEXT}
    assert set(result["runtime"]) == {"name", "version", "supported_formats"}


async def test_lm_studio_s_v0_stats_name_a_stop_string(server: Server) -> None:
    text = await greedy(server, 12)
    stop = text[len(text) // 2 :][:2]
    body = {"model": GEMMA, "prompt": PROMPT, "max_tokens": 12, "temperature": 0, "stop": [stop]}
    result = (await server.post("/api/v0/completions", body)).json()
    assert result["choices"][0]["text"] == text[: text.index(stop)]
    assert result["stats"]["stop_reason"] == "stopStringFound"


async def test_lm_studio_s_v0_embedding_example(server: Server) -> None:
    # The published curl lacks its closing quote; the body is sent as it was meant.
    response = await server.post(
        "/api/v0/embeddings",
        b"""{
    "model": "text-embedding-nomic-embed-text-v1.5",
    "input": "Some text to embed"
  }""",
        authorization="Bearer lm-studio",
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert set(result) == {"object", "data", "model", "usage"} and result["object"] == "list"
    (item,) = result["data"]
    assert item["object"] == "embedding" and item["index"] == 0
    assert len(item["embedding"]) == 640 and all(isinstance(value, float) for value in item["embedding"])
    assert set(result["usage"]) == {"prompt_tokens", "total_tokens"}


# -- what cannot be done, and bad input --------------------------------------------------------------


def assert_400(response: httpx2.Response, param: str | None, *words: str) -> None:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param, error
    assert all(word in error["message"] for word in words), error["message"]


COMPLETION_CASES = [
    pytest.param(b"[]", None, (), id="an array"),
    pytest.param(b'"x"', None, (), id="a string"),
    pytest.param(b"{not json", None, (), id="not JSON"),
    pytest.param({"model": GEMMA}, "prompt", (), id="no prompt"),
    pytest.param({"prompt": [1, 2, 3]}, "prompt", ("token ids",), id="token ids"),
    pytest.param({"prompt": [[1, 2], [3]]}, "prompt", ("token ids",), id="token id lists"),
    pytest.param({"prompt": ["a", "b"]}, "prompt", ("one prompt",), id="two prompts"),
    pytest.param({"prompt": 5}, "prompt", ("string",), id="a number"),
    pytest.param({"prompt": "x", "stream": "no"}, "stream", (), id="stream: 'no'"),
    pytest.param({"prompt": "x", "max_tokens": "8"}, "max_tokens", (), id="max_tokens: '8'"),
    pytest.param({"prompt": "x", "temperature": -1}, "temperature", (), id="temperature: -1"),
    pytest.param({"prompt": "x", "logprobs": 2}, "logprobs", ("logprobs",), id="logprobs"),
    pytest.param({"prompt": "x", "n": 2}, "n", (), id="n: 2"),
    pytest.param({"prompt": "x", "stop": [""]}, "stop", (), id="an empty stop"),
    pytest.param({"prompt": "x", "stop": ["s"] * 100}, "stop", (), id="100 stops"),
]


@pytest.mark.parametrize(("body", "param", "words"), COMPLETION_CASES)
@pytest.mark.parametrize("path", ["/v1/completions", "/api/v0/completions"])
async def test_a_malformed_completion_request_is_a_400(
    server: Server, path: str, body: object, param: str | None, words: tuple[str, ...]
) -> None:
    assert_400(await server.post(path, body), param, *words)


EMBEDDING_CASES = [
    pytest.param(b"[]", None, (), id="an array"),
    pytest.param(b"null", None, (), id="null"),
    pytest.param({"model": GEMMA}, "input", (), id="no input"),
    pytest.param({"input": []}, "input", ("at least one",), id="input: []"),
    pytest.param({"input": ["x"] * 10_000}, "input", ("2048",), id="10,000 inputs"),
    pytest.param({"input": 5}, "input", ("string",), id="a number"),
    pytest.param({"input": [1, 2, 3]}, "input", ("token ids",), id="token ids"),
    pytest.param({"input": ["x", 3]}, "input", (), id="a number in the list"),
    pytest.param({"input": ["x", ""]}, "input", ("empty",), id="an empty text"),
    pytest.param({"input": "x", "encoding_format": "hex"}, "encoding_format", (), id="encoding_format: hex"),
    pytest.param({"input": "x", "dimensions": "3"}, "dimensions", (), id="dimensions: '3'"),
]


@pytest.mark.parametrize(("body", "param", "words"), EMBEDDING_CASES)
@pytest.mark.parametrize("path", ["/v1/embeddings", "/api/v0/embeddings"])
async def test_a_malformed_embedding_request_is_a_400(
    server: Server, path: str, body: object, param: str | None, words: tuple[str, ...]
) -> None:
    assert_400(await server.post(path, body), param, *words)


async def test_what_the_model_cannot_do_is_a_400_and_an_unknown_model_a_404(server: Server) -> None:
    other_width = await server.post("/v1/embeddings", {"model": GEMMA, "input": "x", "dimensions": 3})
    assert_400(other_width, "dimensions", "640")
    too_long = await server.post("/v1/embeddings", {"model": GEMMA, "input": ["short", "word " * 5000]})
    assert too_long.status_code == 400 and too_long.json()["error"]["param"] == "input.1"
    for path, body in (
        ("/v1/completions", {"model": "no/such-model", "prompt": "x"}),
        ("/api/v0/completions", {"model": "no/such-model", "prompt": "x"}),
        ("/v1/embeddings", {"model": "no/such-model", "input": "x"}),
        ("/api/v0/embeddings", {"model": "no/such-model", "input": "x"}),
    ):
        missing = await server.post(path, body)
        assert missing.status_code == 404 and missing.json()["error"]["param"] == "model", missing.text
    with pytest.raises(openai.NotFoundError):
        await server.client.completions.create(model="no/such-model", prompt="x")


# -- other backends: a replayed gpt-oss, a server in chat mode ---------------------------------------

HARMONY_PROMPT = "<|start|>user<|message|>Hi<|end|><|start|>assistant"
HARMONY_ANSWER = "<|channel|>final<|message|>Hello there.<|return|>"


async def test_a_harmony_model_completes_raw_harmony_and_cannot_embed(tmp_path: Path) -> None:
    async for served in serving(tmp_path, [HARMONY_ANSWER]):
        completion = await served.client().completions.create(model="openai/gpt-oss-20b", prompt=HARMONY_PROMPT)
        assert completion.choices[0].text == "<|channel|>final<|message|>Hello there."  # without <|return|>
        assert completion.choices[0].finish_reason == "stop"
        assert served.backend.prompts[0] == harmony_encoding().encode(HARMONY_PROMPT, allowed_special="all")  # type: ignore[attr-defined]
        for path in ("/v1/embeddings", "/api/v0/embeddings"):
            async with httpx2.AsyncClient(base_url=served.url) as http:
                response = await http.post(path, json={"model": "openai/gpt-oss-20b", "input": "x"})
            assert_400(response, "model", "openai/gpt-oss-20b cannot embed", "embedding mode")
        with pytest.raises(openai.BadRequestError):
            await served.client().embeddings.create(model="openai/gpt-oss-20b", input="x")


async def test_a_model_behind_a_server_in_chat_mode_cannot_complete_raw_text(tmp_path: Path) -> None:
    chat = OpenAIChatBackend(f"http://127.0.0.1:{free_port()}/v1", "qwen")  # nothing listens: refused before
    async for served in serving(tmp_path, [], chat):  # type: ignore[arg-type]
        async with httpx2.AsyncClient(base_url=served.url) as http:
            for path in ("/v1/completions", "/api/v0/completions"):
                response = await http.post(path, json={"prompt": "x"})
                assert_400(response, "model", "chat mode")
            assert_400(await http.post("/v1/embeddings", json={"input": "x"}), "model", "cannot embed")
    await chat.aclose()


# -- a client that hangs up stops its generation ---------------------------------------------------

RATE = 200  # tokens per second of the replayed model
EARLY = 300  # far fewer than the long answer's 2,000 tokens


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
async def test_a_completion_nobody_waits_for_is_cancelled(tmp_path: Path, stream: bool) -> None:
    encoding = harmony_encoding()
    long, short = "word " * 2000 + "<|return|>", "It is 42.<|return|>"
    replay = ReplayBackend(
        [RecordedGeneration([], list(encoding.encode(t, allowed_special="all")), "stop") for t in (long, short)],
        name="openai/gpt-oss-20b",
        tokens_per_second=RATE,
    )
    recording = tmp_path / "generations.jsonl"
    async for served in serving(tmp_path, [], RecordingBackend(replay, recording)):
        body: dict[str, Any] = {"prompt": "talk", "max_tokens": 4000, "stream": stream}
        async with httpx2.AsyncClient(base_url=served.url, timeout=httpx2.Timeout(30, read=0.5)) as http:
            if stream:
                async with http.stream("POST", "/v1/completions", json=body) as response:
                    async for line in response.aiter_lines():
                        if '"text":"word' in line:
                            break  # hang up mid-answer
            else:
                with pytest.raises(httpx2.ReadTimeout):
                    await http.post("/v1/completions", json=body)
        async with httpx2.AsyncClient(base_url=served.url, timeout=30) as http:
            answer = await http.post("/v1/completions", json={**body, "stream": False})
        assert answer.json()["choices"][0]["text"] == "It is 42."
        with anyio.fail_after(5):
            while len(generations := recorded(recording)) < 2:
                await anyio.sleep(0.02)
        assert generations[0]["stop_reason"] == "cancelled" and len(generations[0]["tokens"]) < EARLY


def recorded(path: Path) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return [line for line in lines if line["type"] == "generation"]
