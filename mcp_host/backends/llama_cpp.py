"""llama.cpp in-process (the default engine), through llama-cpp-python.

    backend = LlamaCppBackend.load("openai/gpt-oss-20b")     # or a path to a .gguf
    async with backend.generate(prompt, GenerationParams(stop_tokens=STOP_TOKENS)) as generation:
        async for token in generation: ...

Inference runs in a worker thread; one loaded model serves many chats, one generation at a time
in arrival order. Across the rounds of a tool loop the KV cache is reused for the longest common
prefix, so a round evaluates only what was appended. Sliding-window models (gemma 3, gpt-oss)
keep a full-size SWA cache by default (`swa_full`), without which llama.cpp cannot cut the cache
at an arbitrary position and would re-evaluate the whole prompt. A prompt longer than one batch is
evaluated here batch by batch (the batches llama.cpp would use anyway), so that its progress is
reported (`GenerationParams.on_prompt_progress`) and a cancelled generation stops between batches.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
from anyio.abc import AsyncResource

from mcp_host.backends.base import (
    BackendUnavailableError,
    Capabilities,
    Embeddings,
    GenerationParams,
    GenerationStats,
    PromptProgressCallback,
    StopReason,
    UnsupportedFeatureError,
    speaks_harmony,
)
from mcp_host.backends.gguf_info import read_gguf_info
from mcp_host.backends.models import find_model
from mcp_host.backends.threaded import CancelFlag, ThreadedGeneration, TokenSink
from mcp_host.errors import GenerationError, ModelLoadError

logger = logging.getLogger(__name__)

DEFAULT_CONTEXT = 32768
EMBEDDING_CONTEXT = 8192  # per text; a model loaded for embeddings evaluates a whole text at once


def decode_threads() -> int:
    """Threads for decoding: half the cores (llama-cpp-python's and llama.cpp's own default, about the physical
    cores), at least one. Decoding is bound by memory more than by arithmetic, and on a small machine the cores
    left free run the event loop: on 2 cores the tiny gpt-oss decoded at 0.89-0.93x bare speed through the host
    with 2 threads (the loop's turns preempting llama.cpp's threads) and 0.97-0.99x with 1, which was also faster."""
    return max(1, (os.cpu_count() or 2) // 2)


def _import_llama() -> Any:
    try:
        import llama_cpp
    except ImportError as exc:
        raise BackendUnavailableError(
            "llama.cpp support is not installed: pip install 'mcp_host[llama]' (builds llama-cpp-python)"
        ) from exc
    return llama_cpp


class LlamaCppBackend(AsyncResource):
    """A GGUF model loaded in this process. Use `load()`; `aclose()` frees it."""

    def __init__(self, llama: Any, *, name: str) -> None:
        self._llama = llama
        self.name = name
        self.context_length = int(llama.n_ctx())
        self._lock = anyio.Lock()
        self._closed = False
        self._sink: TokenSink | None = None  # the running generation's
        self._hand_off_before_decoding()

    def __repr__(self) -> str:
        return f"LlamaCppBackend({self.name!r}, context_length={self.context_length})"

    @classmethod
    def load(
        cls,
        model: str | Path,
        *,
        context_length: int | None = None,
        gpu_layers: int | None = None,
        threads: int | None = None,
        swa_full: bool = True,
        seed: int | None = None,
        embedding: bool = False,
        progress: Callable[[float], None] | None = None,
        batch_size: int | None = None,
    ) -> LlamaCppBackend:
        """Load a model by path or id (see `find_model`). Blocking: call it from a thread in async code.

        Defaults: the context is the model's training context capped at 32,768; every layer goes to
        the GPU when llama.cpp was built with GPU support; prompts are read with one thread per core and tokens
        decoded with half as many (`decode_threads`), as llama-cpp-python does; `threads` sets both.
        `embedding` loads the model for `embed()` instead of generation; `progress` is called from the loading
        thread with 0.0 … 1.0.
        `batch_size` is how many prompt tokens one step evaluates (llama.cpp's `n_batch`, 512 by default).
        Raises `ModelNotFoundError`, `BackendUnavailableError`, `ModelLoadError`.
        """
        llama_cpp = _import_llama()
        found = find_model(str(model))
        if gpu_layers is None:
            gpu_layers = -1 if llama_cpp.llama_supports_gpu_offload() else 0
        kwargs: dict[str, Any] = {
            "model_path": str(found.path),
            "n_ctx": 0,  # first read the training context from the file, then cap it below
            "n_gpu_layers": gpu_layers,
            "n_threads": threads or decode_threads(),
            "n_threads_batch": threads or os.cpu_count() or 1,  # `threads` bounds reading the prompt too
            "swa_full": swa_full,
            "verbose": False,
            "embedding": embedding,
        }
        if seed is not None:
            kwargs["seed"] = seed
        if batch_size is not None:
            kwargs["n_batch"] = batch_size
        from llama_cpp._utils import suppress_stdout_stderr

        try:
            # llama.cpp logs to the terminal while loading even when asked not to; that is noise in a chat.
            with suppress_stdout_stderr(disable=False):
                info = read_gguf_info(found.path)
                train_context = info.context_length
                if embedding and f"{info.architecture}.pooling_type" not in info.metadata:
                    # A chat model has no pooling of its own: its vectors are per token. Averaged, one per text.
                    kwargs["pooling_type"] = llama_cpp.LLAMA_POOLING_TYPE_MEAN
                kwargs["n_ctx"] = context_length or min(train_context or DEFAULT_CONTEXT, DEFAULT_CONTEXT)
                if embedding:
                    # A text is embedded in one batch: llama-cpp-python silently cuts it at the batch size.
                    kwargs["n_ctx"] = context_length or min(kwargs["n_ctx"], EMBEDDING_CONTEXT)
                    kwargs["n_batch"] = kwargs["n_ubatch"] = kwargs["n_ctx"]
                with _reporting_progress(llama_cpp, progress):
                    llama = llama_cpp.Llama(**kwargs)
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelLoadError(f"llama.cpp could not load {found.path}: {exc}") from exc
        return cls(llama, name=found.id)

    @functools.cached_property
    def capabilities(self) -> Capabilities:
        template = self.chat_template
        return Capabilities(
            # A model file says what it is: its architecture, or a template writing Harmony; never its name.
            prompt_format="harmony"
            if speaks_harmony(None, template, self.metadata.get("general.architecture"))
            else "template",
            chat_template=template,
            bos_token=self.bos_token,
            end_tokens=self.eog_tokens or frozenset({self.eos_token}),
            control_texts=self.control_texts,
            grammar=True,
            embeddings=bool(self._llama.context_params.embeddings),
            metadata=self.metadata,
        )

    @property
    def metadata(self) -> dict[str, str]:
        return dict(self._llama.metadata)

    @property
    def chat_template(self) -> str | None:
        template = self._llama.metadata.get("tokenizer.chat_template")
        return str(template) if template else None

    @property
    def eos_token(self) -> int:
        return int(self._llama.token_eos())

    @functools.cached_property
    def eog_tokens(self) -> frozenset[int]:
        """Every token that ends a generation (EOS, and a chat template's end-of-turn such as `<end_of_turn>`)."""
        vocab, count = self._vocab()
        llama_cpp = _import_llama()
        return frozenset(i for i in range(count) if llama_cpp.llama_vocab_is_eog(vocab, i))

    @functools.cached_property
    def control_texts(self) -> tuple[str, ...]:
        """The text of every control token that looks like markup (`<start_of_turn>`, `<|im_start|>`)."""
        vocab, count = self._vocab()
        llama_cpp = _import_llama()
        texts = []
        for i in range(count):
            if llama_cpp.llama_vocab_is_control(vocab, i):
                text = bytes(llama_cpp.llama_vocab_get_text(vocab, i) or b"").decode("utf-8", "replace")
                if len(text) > 2 and text[0] in "<[":
                    texts.append(text)
        return tuple(texts)

    def _vocab(self) -> tuple[Any, int]:
        llama_cpp = _import_llama()
        vocab = llama_cpp.llama_model_get_vocab(self._llama.model)
        return vocab, int(llama_cpp.llama_vocab_n_tokens(vocab))

    @property
    def bos_token(self) -> int | None:
        """The token a prompt starts with, when the model wants one (text prompts are tokenized without it)."""
        wants = str(self._llama.metadata.get("tokenizer.ggml.add_bos_token", "true")).lower() == "true"
        bos = int(self._llama.token_bos())
        return bos if wants and bos >= 0 else None

    def tokenize(self, text: str, *, special: bool = True) -> list[int]:
        return list(self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=special))

    def detokenize(self, tokens: Sequence[int]) -> str:
        return bytes(self._llama.detokenize(list(tokens), special=True)).decode("utf-8", "replace")

    def generate(self, prompt: Sequence[int], params: GenerationParams) -> ThreadedGeneration:
        if self._closed:
            raise GenerationError(f"model {self.name} was closed")
        if not prompt:
            raise GenerationError("cannot generate from an empty prompt")
        if len(prompt) >= self.context_length:
            raise GenerationError(f"the prompt has {len(prompt)} tokens; the context holds {self.context_length}")
        tokens = list(prompt)
        stats = GenerationStats(prompt_tokens=len(tokens))
        return ThreadedGeneration(self._lock, self._worker(tokens, params), stats)

    def _worker(
        self, prompt: list[int], params: GenerationParams
    ) -> Callable[[CancelFlag, TokenSink, GenerationStats], StopReason]:
        llama = self._llama
        llama_cpp = _import_llama()

        def run(cancel: CancelFlag, sink: TokenSink, stats: GenerationStats) -> StopReason:
            reused = self._prepare_cache(prompt)
            stats.reused_prompt_tokens = reused
            stats.evaluated_prompt_tokens = len(prompt) - reused
            if not self._evaluate_prompt(prompt, reused, cancel, params.on_prompt_progress):
                return "cancelled"
            if params.seed is not None:
                llama.set_seed(params.seed)
            grammar = llama_cpp.LlamaGrammar.from_string(params.grammar, verbose=False) if params.grammar else None
            budget = min(params.max_tokens, self.context_length - len(prompt))
            stops = set(params.stop_tokens) | {self.eos_token}
            produced = 0
            self._sink = sink  # tokens are put here and flushed when llama.cpp next decodes
            try:
                for token in llama.generate(
                    prompt,
                    temp=params.temperature,
                    top_p=params.top_p,
                    top_k=params.top_k,
                    min_p=params.min_p,
                    repeat_penalty=params.repeat_penalty,
                    reset=True,
                    grammar=grammar,
                ):
                    if cancel:
                        return "cancelled"
                    sink.flush()  # a no-op while the decode hook works; else a token late, never stuck
                    sink.put(token)
                    produced += 1
                    if token in stops:
                        return "stop"  # the sink hands over what is left when the worker returns
                    if produced >= budget:
                        return "length"
                return "stop"
            finally:
                self._sink = None

        return run

    def _hand_off_before_decoding(self) -> None:
        """Flush the running generation's tokens just before each `llama_decode`.

        The event loop's turn for a token then runs while llama.cpp computes with the GIL released;
        flushed when the token is sampled, the turn lands in the worker's Python before the decode
        and holds it up (see `threaded.py`). llama-cpp-python has no hook there: `Llama.eval` calls
        its context's `decode`, which is wrapped here.
        """
        context = self._llama._ctx
        decode = context.decode

        def decode_after_hand_off(batch: Any) -> None:
            sink = self._sink
            if sink is not None:
                sink.flush()
            decode(batch)

        context.decode = decode_after_hand_off

    def _prepare_cache(self, prompt: list[int]) -> int:
        """How much of the prompt llama.cpp will reuse; cuts the cache there, as `Llama.generate` would.

        Done here first so that the figure is exact: when the cache cannot be cut, the model is
        reset and everything counts as evaluated.
        """
        llama = self._llama
        cached = list(llama._input_ids[: llama.n_tokens])
        prefix = 0
        for a, b in zip(cached, prompt, strict=False):
            if a != b:
                break
            prefix += 1
        if prefix == len(prompt):
            prefix -= 1  # the last prompt token is decoded again for fresh logits
        if prefix <= 0:
            llama.reset()  # nothing in common: what is evaluated next starts at the first position
            return 0
        if self._window_lost(prefix):
            logger.info("the sliding-window cache no longer holds position %d; evaluating the whole prompt", prefix)
            llama.reset()
            return 0
        if not llama._ctx.kv_cache_seq_rm(-1, prefix, -1):
            logger.info("llama.cpp cannot cut this model's cache at %d; evaluating the whole prompt", prefix)
            llama.reset()
            return 0
        llama.n_tokens = prefix  # what the cache now holds; left longer, a repeated prompt decodes an empty batch
        return prefix

    def _window_lost(self, prefix: int) -> bool:
        """Whether the sliding-window layers forgot what a cut at `prefix` needs (a cache without `swa_full` keeps
        only the window's last positions, yet llama.cpp still lets it be cut further back, giving wrong logits)."""
        llama_cpp = _import_llama()
        window = int(llama_cpp.llama_model_n_swa(self._llama.model))
        if window <= 0:
            return False
        oldest = int(llama_cpp.llama_memory_seq_pos_min(llama_cpp.llama_get_memory(self._llama.ctx), 0))
        return oldest > max(0, prefix - window)

    def _evaluate_prompt(
        self, prompt: list[int], start: int, cancel: CancelFlag, on_progress: PromptProgressCallback | None
    ) -> bool:
        """Evaluate `prompt[start:]` batch by batch when it is longer than one batch; False if cancelled meanwhile.

        The batches are those `Llama.eval` makes, so it costs nothing; `Llama.generate` then finds the whole
        prompt in the cache and samples at once. A shorter prompt is left to `Llama.generate`.
        """
        llama = self._llama
        total, batch = len(prompt) - start, int(llama.n_batch)
        if total <= batch:
            return True
        report = _on_event_loop(on_progress)
        report(0, total)
        for begin in range(start, len(prompt), batch):
            if cancel:
                return False
            llama.eval(prompt[begin : begin + batch])
            report(min(begin + batch, len(prompt)) - start, total)
        return True

    async def embed(self, texts: Sequence[str]) -> Embeddings:
        """One normalized vector per text, queued with generations. Raises `UnsupportedFeatureError`."""
        if not self.capabilities.embeddings:
            raise UnsupportedFeatureError(f"{self.name} was loaded for generation, not for embeddings")
        inputs = list(texts)

        def run() -> tuple[list[list[float]], int]:
            vectors, tokens = self._llama.embed(inputs, normalize=True, truncate=True, return_count=True)
            return [list(map(float, vector)) for vector in vectors], int(tokens)

        async with self._lock:
            try:
                vectors, tokens = await anyio.to_thread.run_sync(run)
            except (ValueError, RuntimeError) as exc:
                raise GenerationError(f"llama.cpp could not embed with {self.name}: {exc}") from exc
        return Embeddings(vectors, tokens)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        async with self._lock:
            await anyio.to_thread.run_sync(self._llama.close)


def _on_event_loop(on_progress: PromptProgressCallback | None) -> Callable[[int, int], None]:
    """The worker thread's way to report progress: awaited on the event loop (it only queues an event)."""

    def report(done: int, total: int) -> None:
        if on_progress is None:
            return

        async def deliver() -> None:
            await on_progress(done, total)

        try:
            anyio.from_thread.run(deliver)
        except Exception:  # noqa: BLE001 - an observer that went away (a closed stream) must not stop the model
            logger.debug("prompt progress not delivered", exc_info=True)

    return report


# llama-cpp-python builds the model parameters inside `Llama()` and offers no way to pass llama.cpp's load
# progress callback; the default parameters it starts from are swapped for ones that carry it, one load at a time.
_PROGRESS_LOCK = threading.Lock()


@contextlib.contextmanager
def _reporting_progress(llama_cpp: Any, progress: Callable[[float], None] | None) -> Iterator[None]:
    if progress is None:
        yield
        return
    low_level = llama_cpp.llama_cpp

    def report(value: float, user_data: Any) -> bool:
        with contextlib.suppress(Exception):  # a failing observer must not abort the load
            progress(float(value))
        return True

    callback = low_level.llama_progress_callback(report)  # kept alive until the load returns
    original = low_level.llama_model_default_params

    def with_progress() -> Any:
        params = original()
        params.progress_callback = callback
        return params

    with _PROGRESS_LOCK:
        low_level.llama_model_default_params = with_progress
        try:
            yield
        finally:
            low_level.llama_model_default_params = original
