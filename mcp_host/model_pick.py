"""Which model `mcp-host chat` talks to, picked as a user would expect.

1. `--model` (a path, an LM Studio id, or an `http://` address of an OpenAI-compatible server);
2. gpt-oss found in LM Studio's model folder (or the Hugging Face cache);
3. an OpenAI-compatible server already running on localhost (LM Studio on 1234, Ollama on 11434):
   gpt-oss through raw Harmony on `/v1/completions` where the server offers it, else chat mode (the
   server applies the model's template and reads its tool calls); the notice says which;
4. the small demo model, if installed, said plainly to be a demo;
5. otherwise a clear message on how to get gpt-oss.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx2

from mcp_host.backends.base import Backend, ChatBackend, ModelNotFoundError
from mcp_host.backends.models import HOW_TO_GET_GPT_OSS, demo_model, find_gpt_oss, find_model
from mcp_host.backends.replay import ReplayBackend

LOCAL_SERVERS = (("LM Studio", "http://127.0.0.1:1234"), ("Ollama", "http://127.0.0.1:11434"))


@dataclass(frozen=True)
class Pick:
    """The backend to use and one line telling the user what it is."""

    backend: Backend | ChatBackend
    notice: str
    format: Literal["auto", "harmony", "template", "chat"] = "auto"
    path: Path | None = None  # the model file, for a model loaded here


def pick_model(
    model: str | None,
    *,
    replay: Path | None = None,
    replay_speed: float = 0.0,
    progress: Callable[[float], None] | None = None,
) -> Pick:
    """Load the model to chat with. Blocking (model loading): call it from a thread in async code.

    `progress` hears how much of a model file is loaded (0.0 … 1.0), from the loading thread.

    Raises `ModelNotFoundError` (with how to get gpt-oss) or `BackendError`.
    """
    if replay is not None:
        backend = ReplayBackend.load(replay, tokens_per_second=replay_speed)
        return Pick(backend, f"replaying {replay} ({backend.remaining} recorded generations)", format="harmony")
    if model and model.startswith(("http://", "https://")):
        return _server(model, None)
    if model:
        return _local(str(find_model(model).path), f"model {model}", progress)
    found = find_gpt_oss()
    if found is not None:
        return _local(str(found.path), f"gpt-oss from {found.path}", progress)
    for label, url in LOCAL_SERVERS:
        served = _served_models(url)
        if served:
            return _server(url, label, served)
    demo = demo_model()
    if demo is not None:
        pick = _local(str(demo.path), "", progress)
        return Pick(
            path=pick.path,
            backend=pick.backend,
            notice="DEMO MODEL: gemma-3-270m, a tiny base model that is not gpt-oss and not an "
            "assistant; it will not answer well. " + HOW_TO_GET_GPT_OSS,
        )
    raise ModelNotFoundError(
        f"no model to chat with: no gpt-oss on disk, no LM Studio or Ollama server running "
        f"on localhost, no demo model installed. {HOW_TO_GET_GPT_OSS}"
    )


def _local(path: str, notice: str, progress: Callable[[float], None] | None) -> Pick:
    from mcp_host.backends.llama_cpp import LlamaCppBackend

    backend = LlamaCppBackend.load(path, progress=progress)
    kind = "Harmony" if backend.capabilities.prompt_format == "harmony" else "the model's chat template"
    said = f"{notice} (llama.cpp in-process, {kind})" if notice else ""
    return Pick(backend, said, path=find_model(path).path)


def _served_models(url: str) -> list[str]:
    try:
        response = httpx2.get(f"{url}/v1/models", timeout=0.5)
        response.raise_for_status()
        return [str(entry["id"]) for entry in response.json().get("data", [])]
    except (httpx2.HTTPError, ValueError, KeyError, TypeError):
        return []


def _offers_raw_completions(url: str) -> bool:
    """Whether the server has `/v1/completions` (asked with an empty body: no model loads, nothing runs)."""
    try:
        response = httpx2.post(f"{url}/v1/completions", json={}, timeout=0.5)
    except httpx2.HTTPError:
        return False
    return response.status_code not in (404, 405, 501)


def _server(url: str, label: str | None, served: list[str] | None = None) -> Pick:
    from mcp_host.backends.openai_http import OpenAIChatBackend, OpenAICompletionsBackend
    from mcp_host.prompt.vocab import harmony_encoding

    served = served if served is not None else _served_models(url)
    preferred = [model for model in served if "gpt-oss" in model.lower()]
    model = (preferred or served or ["gpt-oss-20b"])[0]
    where = f"{label} at {url}" if label else url
    if preferred and _offers_raw_completions(url):
        backend = OpenAICompletionsBackend(url, model, harmony_encoding())
        return Pick(backend, f"model {model} on {where} (raw Harmony over /v1/completions)", format="harmony")
    reason = "not gpt-oss" if not preferred else "the server has no /v1/completions"
    return Pick(
        OpenAIChatBackend(url, model),
        f"model {model} on {where} (chat mode, {reason}: the server applies the model's template and reads its calls)",
        format="chat",
    )
