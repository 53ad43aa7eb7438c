"""What a GGUF file says about its model, read from the header alone (no weights, no llama.cpp).

    info = read_gguf_info(Path("gpt-oss-20b-mxfp4.gguf"))
    info.architecture, info.quantization, info.context_length, info.kind    # "gpt-oss", "MXFP4", 131072, "llm"

Used to list every model on disk quickly; arrays (the vocabulary) are skipped, never decoded.
Raises `ModelLoadError` for a file that is not GGUF or is cut short.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from mcp_host.errors import ModelLoadError

_SCALARS: dict[int, str] = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q"}
_SCALARS[12] = "<d"
_STRING, _ARRAY = 8, 9
_MAX_STRING = 16 * 1024 * 1024  # no metadata string is this long; a bigger one means a corrupt file

# llama.cpp's `llama_ftype` (llama.h), for the quantization a model is listed with.
_FILE_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K", 11: "Q3_K_S",
    12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K",
    19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL",
    26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0",
    37: "TQ2_0", 38: "MXFP4",
}  # fmt: skip
# Architectures whose models embed text rather than chat.
EMBEDDING_ARCHITECTURES = frozenset(
    {"bert", "nomic-bert", "nomic-bert-moe", "jina-bert-v2", "jina-bert-v3", "t5encoder"}
)


@dataclass(frozen=True)
class GGUFInfo:
    """The scalar metadata of a GGUF file (strings, numbers, booleans; arrays left out)."""

    metadata: dict[str, str | int | float | bool]

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", "unknown"))

    @property
    def name(self) -> str | None:
        value = self.metadata.get("general.name")
        return None if value is None else str(value)

    @property
    def context_length(self) -> int | None:
        value = self.metadata.get(f"{self.architecture}.context_length")
        return int(value) if isinstance(value, int | float) else None

    @property
    def quantization(self) -> str | None:
        value = self.metadata.get("general.file_type")
        return _FILE_TYPES.get(value) if isinstance(value, int) else None

    @property
    def kind(self) -> Literal["llm", "embedding"]:
        return "embedding" if self.architecture in EMBEDDING_ARCHITECTURES else "llm"


def read_gguf_info(path: Path) -> GGUFInfo:
    """The header's scalar metadata. Raises `ModelLoadError`. Cached per file version (size, mtime)."""
    try:
        stat = path.stat()
    except OSError as exc:
        raise ModelLoadError(f"{path}: cannot be read: {exc}") from exc
    return _read_cached(path, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _read_cached(path: Path, size: int, mtime_ns: int) -> GGUFInfo:
    try:
        with path.open("rb") as file:
            return GGUFInfo(_read_metadata(file))
    except (OSError, struct.error, UnicodeDecodeError, ValueError) as exc:
        raise ModelLoadError(f"{path}: not a readable GGUF file: {exc}") from exc


def _read_metadata(file: BinaryIO) -> dict[str, str | int | float | bool]:
    if file.read(4) != b"GGUF":
        raise ValueError("no GGUF magic number")
    (version,) = struct.unpack("<I", file.read(4))
    count_format = "<I" if version == 1 else "<Q"
    _unpack(file, count_format)  # tensor count
    kv_count = _unpack(file, count_format)
    metadata: dict[str, str | int | float | bool] = {}
    for _ in range(int(kv_count)):
        key = _read_string(file)
        value_type = int(_unpack(file, "<I"))
        if value_type == _ARRAY:
            _skip_array(file)
        else:
            metadata[key] = _read_value(file, value_type)
    return metadata


def _unpack(file: BinaryIO, fmt: str) -> int | float | bool:
    size = struct.calcsize(fmt)
    data = file.read(size)
    if len(data) != size:
        raise ValueError("the file ends inside its header")
    value: int | float | bool = struct.unpack(fmt, data)[0]
    return value


def _read_string(file: BinaryIO) -> str:
    length = int(_unpack(file, "<Q"))
    if length > _MAX_STRING:
        raise ValueError(f"a metadata string of {length} bytes")
    data = file.read(length)
    if len(data) != length:
        raise ValueError("the file ends inside its header")
    return data.decode("utf-8")


def _read_value(file: BinaryIO, value_type: int) -> str | int | float | bool:
    if value_type == _STRING:
        return _read_string(file)
    fmt = _SCALARS.get(value_type)
    if fmt is None:
        raise ValueError(f"unknown metadata type {value_type}")
    return _unpack(file, fmt)


def _skip_array(file: BinaryIO) -> None:
    item_type = int(_unpack(file, "<I"))
    count = int(_unpack(file, "<Q"))
    if item_type == _STRING:
        for _ in range(count):
            length = int(_unpack(file, "<Q"))
            file.seek(length, 1)
    elif item_type == _ARRAY:
        for _ in range(count):
            _skip_array(file)
    else:
        fmt = _SCALARS.get(item_type)
        if fmt is None:
            raise ValueError(f"unknown metadata type {item_type}")
        file.seek(struct.calcsize(fmt) * count, 1)
