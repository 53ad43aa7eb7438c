"""Which model `mcp-host chat` talks to, picked as a user would expect.

1. `--model` (a path, an LM Studio id, or an `http://` address of an OpenAI-compatible server);
2. gpt-oss found in LM Studio's model folder (or the Hugging Face cache);
3. a model server already running on localhost (LM Studio on 1234, Ollama on 11434, vLLM on 8000), asked what
   it is and what it serves (`mcp_host.backends.served`): gpt-oss through raw Harmony where the server takes a
   raw prompt (Ollama's `/api/generate` with `raw`, the others' `/v1/completions`), else chat mode (the server
   applies the model's template and reads its tool calls); the notice says which, and how gpt-oss was known;
4. the small demo model, if installed, said plainly to be a demo;
5. otherwise a clear message on how to get gpt-oss.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx2

from mcp_host.backends import served
from mcp_host.backends.base import Backend, ChatBackend, ModelNotFoundError
from mcp_host.backends.models import HOW_TO_GET_GPT_OSS, demo_model, find_gpt_oss, find_model
from mcp_host.backends.replay import ReplayBackend
from mcp_host.backends.served import Survey

# Where each server listens by default; each is asked what it is (`mcp_host.backends.served`), not taken for it.
DEFAULT_SERVED_CONTEXT = 131072  # gpt-oss's own, where the server does not say what it loaded
LOCAL_SERVERS = ("http://127.0.0.1:1234", "http://127.0.0.1:11434", "http://127.0.0.1:8000")


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
        return _server(model)
    if model:
        return _local(str(find_model(model).path), f"model {model}", progress)
    found = find_gpt_oss()
    if found is not None:
        return _local(str(found.path), f"gpt-oss from {found.path}", progress)
    for url in LOCAL_SERVERS:
        survey = served.survey(url)
        if survey is not None and survey.models:
            return _server(url, survey)
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
        f"no model to chat with: no gpt-oss on disk, no LM Studio, Ollama or vLLM server running "
        f"on localhost, no demo model installed. {HOW_TO_GET_GPT_OSS}"
    )


def _local(path: str, notice: str, progress: Callable[[float], None] | None) -> Pick:
    from mcp_host.backends.llama_cpp import LlamaCppBackend

    backend = LlamaCppBackend.load(path, progress=progress)
    kind = "Harmony" if backend.capabilities.prompt_format == "harmony" else "the model's chat template"
    said = f"{notice} (llama.cpp in-process, {kind})" if notice else ""
    return Pick(backend, said, path=find_model(path).path)


def _server(url: str, survey: Survey | None = None) -> Pick:
    """The model server at `url`: raw Harmony where it takes raw prompts and the model is gpt-oss, else chat mode."""
    from mcp_host.backends.openai_http import OllamaRawBackend, OpenAIChatBackend, OpenAICompletionsBackend
    from mcp_host.prompt.vocab import harmony_encoding

    survey = survey or served.survey(url)
    model = survey.pick() if survey is not None else None
    kind = survey.kind if survey is not None and survey.kind != "OpenAI-compatible" else "an OpenAI-compatible server"
    where = f"{kind} at {url}"
    if model is None:
        raise ModelNotFoundError(f"{where}: no model is served there (or nothing answers /v1/models)")
    context = model.context_length or DEFAULT_SERVED_CONTEXT
    if model.harmony and survey is not None:
        how = (
            "gpt-oss by its architecture"
            if model.known_by == "architecture"
            else "gpt-oss by its name: the server does not say a model's architecture"
        )
        backend: OpenAICompletionsBackend | None = None
        if survey.kind == "Ollama":
            backend = OllamaRawBackend(url, model.id, harmony_encoding(), context_length=context)
        elif _offers_raw_completions(url):
            # vLLM and others take the prompt as token ids; LM Studio takes text, which it tokenizes again.
            ids = survey.kind != "LM Studio"
            backend = OpenAICompletionsBackend(
                url, model.id, harmony_encoding(), context_length=context, send_token_ids=ids
            )
        if backend is not None:
            sent = "token ids" if backend.send_token_ids else "a text prompt, tokenized again by the server"
            said = f"model {model.id} on {where} (raw Harmony over {survey.raw_endpoint} as {sent}; {how})"
            return Pick(backend, said, format="harmony")
    reason = "not gpt-oss" if not model.harmony else "the server takes no raw prompt"
    return Pick(
        OpenAIChatBackend(url, model.id),
        f"model {model.id} on {where} (chat mode, {reason}: the server applies the model's template and reads its "
        "calls)",
        format="chat",
    )


def _offers_raw_completions(url: str) -> bool:
    """Whether the server has `/v1/completions` (asked with an empty body: no model loads, nothing runs)."""
    try:
        response = httpx2.post(f"{url}/v1/completions", json={}, timeout=0.5)
    except httpx2.HTTPError:
        return False
    return response.status_code not in (404, 405, 501)
