"""The bodies of text completions and embeddings (OpenAI's and LM Studio's), as pydantic models.

    body = await reader.read(request, CompletionRequest)    # ApiError 400 naming `param` on a bad body
    body = await reader.read(request, EmbeddingRequest)

Strict like the chat bodies of `mcp_host.api.requests` (`"stream": "no"` is not a boolean), and open to
the unknown fields OpenAI's clients send. What this server cannot do is refused by name rather than
ignored: token-id prompts and inputs, several prompts at once, `logprobs`, `n` or `best_of` above 1.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from mcp_host.api.requests import OpenAIShape, StreamOptions

MAX_EMBEDDING_INPUTS = 2048  # OpenAI's limit on one request's list
MAX_STOP_STRINGS = 16
MAX_STOP_CHARS = 1024


def _no_token_ids(value: Any, what: str) -> Any:
    """Refuse OpenAI's token-id forms (`[1, 2]`, `[[1, 2]]`) by name: this server reads text only."""
    if isinstance(value, list) and value and all(isinstance(item, int | list) for item in value):
        raise ValueError(f"token ids are not accepted here: send the {what} as text")
    if not isinstance(value, str | list):
        raise ValueError(f"the {what} must be a string or a list of strings")
    return value


class CompletionRequest(OpenAIShape):
    """`POST /v1/completions` and LM Studio's `/api/v0/completions`: raw text in, its continuation out."""

    model: str | None = Field(default=None, max_length=500)
    prompt: str | list[str]
    max_tokens: int | None = Field(default=None, ge=-1)  # -1, 0 and absent: until the end (LM Studio's default)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    min_p: float | None = Field(default=None, ge=0, le=1)
    repeat_penalty: float | None = Field(default=None, gt=0)
    seed: int | None = Field(default=None, ge=-(2**63), lt=2**63)
    stop: str | list[str] | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    echo: bool | None = None
    logprobs: int | None = None
    n: int | None = Field(default=None, ge=1)
    best_of: int | None = Field(default=None, ge=1)
    suffix: str | None = None

    @field_validator("prompt", mode="before")
    @classmethod
    def _text_prompt(cls, value: Any) -> Any:
        return _no_token_ids(value, "prompt")

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and len(value) != 1:
            raise ValueError(f"exactly one prompt is completed per request; this one has {len(value)}")
        return value

    @field_validator("stop")
    @classmethod
    def _bounded_stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        stops = [value] if isinstance(value, str) else value or []
        if len(stops) > MAX_STOP_STRINGS:
            raise ValueError(f"at most {MAX_STOP_STRINGS} stop strings; this request has {len(stops)}")
        if any(not stop or len(stop) > MAX_STOP_CHARS for stop in stops):
            raise ValueError(f"a stop string must have 1 to {MAX_STOP_CHARS} characters")
        return value

    @field_validator("logprobs")
    @classmethod
    def _no_logprobs(cls, value: int | None) -> int | None:
        if value is not None:
            raise ValueError("logprobs are not supported by this server")
        return value

    @field_validator("n", "best_of")
    @classmethod
    def _one_choice(cls, value: int | None) -> int | None:
        if value is not None and value != 1:
            raise ValueError("this server makes one completion per request")
        return value

    @field_validator("suffix")
    @classmethod
    def _no_suffix(cls, value: str | None) -> str | None:
        if value:
            raise ValueError("a suffix (text to insert before) is not supported by this server")
        return value

    @property
    def text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]

    @property
    def stops(self) -> tuple[str, ...]:
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())

    @property
    def streamed(self) -> bool:
        return bool(self.stream)

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and bool(self.stream_options.include_usage)

    def token_limit(self, default: int) -> int:
        """`max_tokens`; -1, 0 and absent mean the default limit."""
        return self.max_tokens if self.max_tokens is not None and self.max_tokens > 0 else default


class EmbeddingRequest(OpenAIShape):
    """`POST /v1/embeddings` and LM Studio's `/api/v0/embeddings`: one vector per text."""

    model: str | None = Field(default=None, max_length=500)
    input: str | list[str]
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None

    @field_validator("input", mode="before")
    @classmethod
    def _text_input(cls, value: Any) -> Any:
        return _no_token_ids(value, "input")

    @field_validator("input")
    @classmethod
    def _bounded_input(cls, value: str | list[str]) -> str | list[str]:
        texts = [value] if isinstance(value, str) else value
        if not texts:
            raise ValueError("give at least one text to embed")
        if len(texts) > MAX_EMBEDDING_INPUTS:
            raise ValueError(f"at most {MAX_EMBEDDING_INPUTS} texts per request; this one has {len(texts)}")
        for index, text in enumerate(texts):
            if not text:
                raise ValueError(f"text {index} is empty; every text to embed needs at least one character")
        return value

    @property
    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)
