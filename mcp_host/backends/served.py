"""What a model server on the network offers: which server it is, its models, and which of them are gpt-oss.

    found = survey("http://127.0.0.1:11434")   # None: nothing that serves models answers there
    found.kind, found.models[0].harmony, found.models[0].known_by

Each server is asked what it says about itself, in its own words (blocking, short timeouts; nothing loads):
- LM Studio: `GET /api/v0/models` names each model's architecture (`arch`) and context length;
- Ollama: `GET /api/version`, `GET /api/tags`, and `POST /api/show` per model (`general.architecture`, `gptoss`);
- vLLM: `GET /version`, and `GET /v1/models` (`max_model_len`; no architecture: gpt-oss is known by its name);
- anything else OpenAI-compatible (llama.cpp's servers): `GET /v1/models`, known by name too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import httpx2

ServerKind = Literal["LM Studio", "Ollama", "vLLM", "OpenAI-compatible"]
HARMONY_ARCHITECTURES = frozenset({"gpt-oss", "gpt_oss", "gptoss"})
PROBE_TIMEOUT_S = 0.5
SHOWN_MODELS = 16  # Ollama is asked about this many models at most


@dataclass(frozen=True)
class ServedModel:
    id: str
    harmony: bool
    known_by: Literal["architecture", "name"]  # how the host knows whether it is gpt-oss
    context_length: int | None = None


@dataclass(frozen=True)
class Survey:
    url: str
    kind: ServerKind
    models: tuple[ServedModel, ...]

    @property
    def raw_endpoint(self) -> str:
        """Where this server takes a raw prompt (the host's own Harmony rendering)."""
        return "/api/generate (raw)" if self.kind == "Ollama" else "/v1/completions"

    def pick(self) -> ServedModel | None:
        """gpt-oss first (the 20b before the 120b, as on disk), else the first model."""
        harmony = sorted((m for m in self.models if m.harmony), key=lambda m: ("120b" in m.id.lower(), m.id))
        chosen = harmony or list(self.models)
        return chosen[0] if chosen else None


def _get(client: httpx2.Client, url: str) -> Any:
    response = client.get(url)
    response.raise_for_status()
    return response.json()


def survey(url: str) -> Survey | None:
    """What the server at `url` offers, or None when nothing there lists models."""
    url = url.rstrip("/")
    with httpx2.Client(timeout=PROBE_TIMEOUT_S) as client:
        for probe in (_ollama, _lmstudio, _vllm, _generic):
            try:
                found = probe(client, url)
            except (httpx2.HTTPError, ValueError, KeyError, TypeError, AttributeError):
                continue
            if found is not None:
                return found
    return None


def _name_says_harmony(model_id: str) -> bool:
    return "gpt-oss" in model_id.lower() or "gpt_oss" in model_id.lower()


def _ollama(client: httpx2.Client, url: str) -> Survey | None:
    if "version" not in _get(client, f"{url}/api/version"):
        return None
    models = []
    for entry in _get(client, f"{url}/api/tags").get("models", [])[:SHOWN_MODELS]:
        name = str(entry["name"])
        shown = client.post(f"{url}/api/show", json={"model": name})
        shown.raise_for_status()
        info = shown.json().get("model_info") or {}
        arch = str(info.get("general.architecture", ""))
        context = _int(info, f"{arch}.context_length")
        models.append(ServedModel(name, arch in HARMONY_ARCHITECTURES, "architecture", context))
    return Survey(url, "Ollama", tuple(models))


def _lmstudio(client: httpx2.Client, url: str) -> Survey | None:
    entries = _get(client, f"{url}/api/v0/models").get("data")
    if not isinstance(entries, list) or not all(isinstance(e, dict) and "arch" in e for e in entries):
        return None
    models = tuple(
        ServedModel(
            str(entry["id"]),
            str(entry["arch"]) in HARMONY_ARCHITECTURES,
            "architecture",
            _int(entry, "max_context_length"),
        )
        for entry in entries
        if entry.get("type", "llm") in ("llm", "vlm")
    )
    return Survey(url, "LM Studio", models)


def _vllm(client: httpx2.Client, url: str) -> Survey | None:
    if "version" not in _get(client, f"{url}/version"):
        return None
    return Survey(url, "vLLM", _listed(client, url))


def _generic(client: httpx2.Client, url: str) -> Survey | None:
    models = _listed(client, url)
    return Survey(url, "OpenAI-compatible", models) if models else None


def _listed(client: httpx2.Client, url: str) -> tuple[ServedModel, ...]:
    models = []
    for entry in _get(client, f"{url}/v1/models").get("data", []):
        model_id = str(entry["id"])
        models.append(ServedModel(model_id, _name_says_harmony(model_id), "name", _int(entry, "max_model_len")))
    return tuple(models)


def _int(mapping: dict[str, Any], key: str) -> int | None:
    value = mapping.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None
