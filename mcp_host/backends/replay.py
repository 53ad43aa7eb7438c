"""Recording generations to a file, and playing them back token for token.

    backend = RecordingBackend(LlamaCppBackend(...), Path("chat.jsonl"))   # record a real chat
    backend = ReplayBackend.load(Path("chat.jsonl"))                        # replay it, no model needed

A recording is JSON lines: one header, then one line per generation with the prompt tokens,
the generated tokens and the stop reason. Tests use replays where no gpt-oss can run; users
attach recordings to bug reports.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
from anyio.abc import AsyncResource

from mcp_host.backends.base import (
    Backend,
    Capabilities,
    Generation,
    GenerationParams,
    GenerationStats,
    StopReason,
)
from mcp_host.errors import GenerationError, ModelLoadError, UnsupportedFeatureError

FORMAT_VERSION = 1


@dataclass(frozen=True)
class RecordedGeneration:
    prompt: list[int]
    tokens: list[int]
    stop_reason: StopReason

    def to_json(self) -> dict[str, Any]:
        return {"type": "generation", "prompt": self.prompt, "tokens": self.tokens, "stop_reason": self.stop_reason}


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    for index in range(n):
        if a[index] != b[index]:
            return index
    return n


class ReplayBackend(AsyncResource):
    """Plays recorded (or scripted) generations back in order, as a `Backend`.

    With `check_prompts`, a prompt that differs from the recorded one is an error (a faithful
    reproduction); without, only the outputs are replayed (scripted model behaviour). Prompt
    reuse is reported as a KV cache would: the prefix shared with the previous prompt and output.
    `tokens_per_second` paces the output like a real model; 0 means as fast as possible.
    """

    def __init__(
        self,
        generations: Sequence[RecordedGeneration],
        *,
        name: str = "replay",
        context_length: int = 131072,
        check_prompts: bool = False,
        tokens_per_second: float = 0.0,
        detokenizer: Any = None,
        capabilities: Capabilities | None = None,
    ) -> None:
        self.name = name
        # Scripts in this project are of gpt-oss; a recording says what its model was.
        self.capabilities = capabilities or Capabilities(prompt_format="harmony", tokenizer=False)
        self.context_length = context_length
        self.check_prompts = check_prompts
        self.tokens_per_second = tokens_per_second
        self._generations = list(generations)
        self._next = 0
        self._cached: list[int] = []
        self._detokenizer = detokenizer
        self.prompts: list[list[int]] = []  # what each generation was asked, for tests and bug reports

    @classmethod
    def load(cls, path: Path, **options: Any) -> ReplayBackend:
        """Read a recording. Raises `ModelLoadError` naming the file and line of anything unreadable."""
        generations: list[RecordedGeneration] = []
        name = "replay"
        capabilities: Capabilities | None = None
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ModelLoadError(f"cannot read recording {path}: {exc}") from exc
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                if entry["type"] == "header":
                    if entry.get("version") != FORMAT_VERSION:
                        raise ValueError(f"unsupported version {entry.get('version')!r}")
                    name = f"replay of {entry.get('backend', 'unknown')}"
                    capabilities = _capabilities_from_json(entry.get("capabilities"))
                elif entry["type"] == "generation":
                    generations.append(
                        RecordedGeneration(
                            [int(t) for t in entry["prompt"]], [int(t) for t in entry["tokens"]], entry["stop_reason"]
                        )
                    )
            except (ValueError, KeyError, TypeError) as exc:
                raise ModelLoadError(f"{path}:{number}: not a recording line: {exc}") from exc
        options.setdefault("capabilities", capabilities)
        return cls(generations, name=options.pop("name", name), **options)

    @property
    def remaining(self) -> int:
        return len(self._generations) - self._next

    def generate(self, prompt: Sequence[int], params: GenerationParams) -> Generation:
        if self._next >= len(self._generations):
            raise GenerationError(f"the recording has no more generations (it had {len(self._generations)})")
        recorded = self._generations[self._next]
        self._next += 1
        self.prompts.append(list(prompt))
        if self.check_prompts and list(prompt) != recorded.prompt:
            at = common_prefix_length(prompt, recorded.prompt)
            raise GenerationError(f"generation {self._next}: the prompt differs from the recording at token {at}")
        stats = GenerationStats(prompt_tokens=len(prompt))
        stats.reused_prompt_tokens = min(common_prefix_length(self._cached, prompt), max(len(prompt) - 1, 0))
        stats.evaluated_prompt_tokens = len(prompt) - stats.reused_prompt_tokens
        self._cached = list(prompt) + recorded.tokens
        return _ReplayGeneration(recorded, params, stats, self.tokens_per_second)

    def tokenize(self, text: str, *, special: bool = True) -> list[int]:
        raise UnsupportedFeatureError("a replay has no tokenizer of its own")

    def detokenize(self, tokens: Sequence[int]) -> str:
        if self._detokenizer is None:
            raise UnsupportedFeatureError("a replay has no tokenizer of its own")
        return str(self._detokenizer.decode(list(tokens)))

    async def aclose(self) -> None:
        return None


class _ReplayGeneration:
    def __init__(
        self, recorded: RecordedGeneration, params: GenerationParams, stats: GenerationStats, tokens_per_second: float
    ) -> None:
        self.stats = stats
        self._recorded = recorded
        self._params = params
        self._delay = 1 / tokens_per_second if tokens_per_second > 0 else 0.0

    async def __aenter__(self) -> _ReplayGeneration:
        self.stats.started_at = time.perf_counter()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.stats.stop_reason is None:
            self.stats.finish("cancelled")

    def __aiter__(self) -> AsyncIterator[int]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[int]:
        for index, token in enumerate(self._recorded.tokens):
            if index >= self._params.max_tokens:
                self.stats.finish("length")
                return
            await anyio.sleep(self._delay)  # also a checkpoint, so a replay can be cancelled like a model
            self.stats.mark_token()
            if token in self._params.stop_tokens:
                self.stats.finish("stop")  # before handing it over: a consumer may stop reading at a stop token
                yield token
                return
            yield token
        self.stats.finish(self._recorded.stop_reason)


class RecordingBackend(AsyncResource):
    """Wraps a backend and appends every generation it makes to a recording file."""

    def __init__(self, inner: Backend, path: Path) -> None:
        self.inner = inner
        self.path = path
        self.name = inner.name
        self.context_length = inner.context_length
        self.capabilities = inner.capabilities
        path.parent.mkdir(parents=True, exist_ok=True)
        header = {
            "type": "header",
            "version": FORMAT_VERSION,
            "backend": inner.name,
            "capabilities": _capabilities_to_json(inner.capabilities),
        }
        with path.open("a", encoding="utf-8") as handle:
            if handle.tell() == 0:
                handle.write(json.dumps(header) + "\n")

    def generate(self, prompt: Sequence[int], params: GenerationParams) -> Generation:
        return _RecordingGeneration(self.inner.generate(prompt, params), list(prompt), self.path)

    def tokenize(self, text: str, *, special: bool = True) -> list[int]:
        return self.inner.tokenize(text, special=special)

    def detokenize(self, tokens: Sequence[int]) -> str:
        return self.inner.detokenize(tokens)

    async def aclose(self) -> None:
        await self.inner.aclose()


class _RecordingGeneration:
    def __init__(self, inner: Generation, prompt: list[int], path: Path) -> None:
        self._inner = inner
        self._prompt = prompt
        self._path = path
        self._tokens: list[int] = []

    @property
    def stats(self) -> GenerationStats:
        return self._inner.stats

    async def __aenter__(self) -> _RecordingGeneration:
        await self._inner.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._inner.__aexit__(exc_type, exc, tb)
        reason = self._inner.stats.stop_reason or "cancelled"
        line = json.dumps(RecordedGeneration(self._prompt, self._tokens, reason).to_json())
        with self._path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")

    def __aiter__(self) -> AsyncIterator[int]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[int]:
        async for token in self._inner:
            self._tokens.append(token)
            yield token


def _capabilities_to_json(capabilities: Capabilities) -> dict[str, Any]:
    """The prompt-format facts a replay needs (no metadata: recordings go into bug reports)."""
    return {
        "prompt_format": capabilities.prompt_format,
        "chat_template": capabilities.chat_template,
        "bos_token": capabilities.bos_token,
        "end_tokens": sorted(capabilities.end_tokens),
        "control_texts": list(capabilities.control_texts),
    }


def _capabilities_from_json(raw: object) -> Capabilities | None:
    if not isinstance(raw, dict):
        return None
    return Capabilities(
        prompt_format=raw["prompt_format"],
        tokenizer=False,
        chat_template=raw.get("chat_template"),
        bos_token=raw.get("bos_token"),
        end_tokens=frozenset(int(token) for token in raw.get("end_tokens", [])),
        control_texts=tuple(str(text) for text in raw.get("control_texts", [])),
    )
