"""A gpt-oss GGUF where users keep it: found with no flags, spoken to in Harmony, seen by `render` and the chat.

The tiny gpt-oss-architecture model (`tests.gptoss_model`) stands in for gpt-oss-20b in LM Studio's two folder
layouts and the Hugging Face cache, and under a neutral name that only its metadata tells apart.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from mcp_host import model_pick
from mcp_host.backends import discover_models
from mcp_host.backends.gguf_info import read_gguf_info
from mcp_host.backends.llama_cpp import LlamaCppBackend
from mcp_host.backends.registry import ModelRegistry
from mcp_host.prompt.harmony import CALL_TOKEN, RETURN_TOKEN
from tests.conftest import ROOT, fixture_entry, smollm2_path, write_config
from tests.gptoss_model import tiny_gptoss
from tests.test_chat_terminal import keys, screen, wait_for_prompt

LAYOUTS = {
    "lmstudio-community": ".lmstudio/models/lmstudio-community/gpt-oss-20b-GGUF/gpt-oss-20b-MXFP4.gguf",
    "lmstudio-openai": ".lmstudio/models/openai/gpt-oss-20b/gpt-oss-20b-mxfp4.gguf",
    "huggingface": ".cache/huggingface/hub/models--openai--gpt-oss-20b/snapshots/0123abcd/gpt-oss-20b-mxfp4.gguf",
    "neutral-name": ".lmstudio/models/acme/tiny-chat/model.gguf",  # only the metadata says gpt-oss
}
IDS = {
    "lmstudio-community": "lmstudio-community/gpt-oss-20b-GGUF",
    "lmstudio-openai": "openai/gpt-oss-20b",
    "huggingface": "openai/gpt-oss-20b",
    "neutral-name": "acme/tiny-chat",
}


@pytest.fixture(scope="module")
def gptoss_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_gptoss(tmp_path_factory)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty home of its own: no model folder overridden by the environment, no local server to find."""
    folder = tmp_path / "home"
    folder.mkdir()
    monkeypatch.setenv("HOME", str(folder))
    for name in ("LMSTUDIO_MODELS_DIR", "HF_HUB_CACHE", "HF_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(model_pick, "LOCAL_SERVERS", (("LM Studio", "http://127.0.0.1:9"),))
    return folder


def place(gguf: Path, home: Path, layout: str) -> Path:
    target = home / LAYOUTS[layout]
    target.parent.mkdir(parents=True)
    target.symlink_to(gguf)
    return target


@pytest.mark.anyio
@pytest.mark.parametrize("layout", list(LAYOUTS))
async def test_gpt_oss_is_found_in_each_layout_and_spoken_to_in_harmony(
    gptoss_file: Path, home: Path, layout: str
) -> None:
    placed = place(gptoss_file, home, layout)
    assert [(m.id, m.path) for m in discover_models()] == [(IDS[layout], placed)]
    async with ModelRegistry(discover=discover_models) as models:  # what `serve` lists: the header's facts
        [listed] = models.listing()
    assert (listed.id, listed.architecture, listed.quantization) == (IDS[layout], "gpt-oss", "MXFP4")
    assert (listed.max_context_length, listed.display_name) == (131_072, "gpt-oss tiny (test)")

    pick = await anyio.to_thread.run_sync(model_pick.pick_model, None)
    try:
        assert pick.path == placed, pick.notice  # this file, not the demo model
        assert pick.notice == f"gpt-oss from {placed} (llama.cpp in-process, Harmony)"
        assert isinstance(pick.backend, LlamaCppBackend)
        assert pick.backend.capabilities.prompt_format == "harmony"
        assert {RETURN_TOKEN, CALL_TOKEN} <= pick.backend.capabilities.end_tokens
    finally:
        await pick.backend.aclose()


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mcp_host.cli", *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120
    )


def test_render_takes_the_models_context_and_stop_tokens_from_its_gguf(gptoss_file: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "mcp.json", {"fx": fixture_entry()})
    settings = tmp_path / "settings.toml"
    settings.write_text("")
    done = run_cli(
        "--config", str(config), "--settings", str(settings), "render", "--model", str(gptoss_file),
        "--reasoning", "high", "--browser", "--python", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    prompt = document["prompt"]
    assert "Reasoning: high" in prompt and "## browser" in prompt and "## python" in prompt
    assert "namespace functions" in prompt and "fx__echo" in prompt
    # The context is the model file's (the settings say 16,384), read from its header; the stop tokens are Harmony's.
    assert document["context_tokens"] == read_gguf_info(gptoss_file).context_length == 131_072
    assert document["stop_tokens"] == [RETURN_TOKEN, CALL_TOKEN] == [200_002, 200_012]
    assert document["model"]["architecture"] == "gpt-oss" and document["model"]["path"] == str(gptoss_file)
    table = run_cli("--config", str(config), "--settings", str(settings), "render", "--model", str(gptoss_file))
    assert "gpt-oss, context 131072 tokens; generation stops at <|return|> (200002), <|call|> (200012)" in " ".join(
        table.stdout.split()
    )
    smol = run_cli("--config", str(config), "render", "--model", str(smollm2_path()))
    assert smol.returncode == 2 and "render shows gpt-oss's Harmony prompt" in smol.stderr


@pytest.mark.anyio
async def test_the_model_itself_says_its_context_and_stop_tokens(gptoss_file: Path) -> None:
    """What `render --model` reports is what the engine reads from the file too."""
    backend = await anyio.to_thread.run_sync(lambda: LlamaCppBackend.load(gptoss_file, context_length=4096, threads=1))
    try:
        assert read_gguf_info(gptoss_file).context_length == 131_072
        assert {RETURN_TOKEN, CALL_TOKEN} <= backend.capabilities.end_tokens
        assert (RETURN_TOKEN, CALL_TOKEN) == (200_002, 200_012)
    finally:
        await backend.aclose()


@pytest.fixture
def chat_with_gptoss_on_disk(gptoss_file: Path, tmp_path: Path) -> Iterator[str]:
    """`mcp-host chat` with no model flag (`--no-history`, and a turn bounded to 3 rounds of 256 tokens), in tmux,
    for a home holding LM Studio's gpt-oss folder."""
    if shutil.which("tmux") is None:
        pytest.fail("tmux is not installed (apt-get install tmux; .ci/run does)")
    home = tmp_path / "home"
    place(gptoss_file, home, "lmstudio-openai")
    write_config(home / ".lmstudio" / "mcp.json", {"fx": fixture_entry()})  # LM Studio's, the default config
    settings = home / ".config" / "mcp-host" / "settings.toml"
    settings.parent.mkdir(parents=True)
    settings.write_text('[permissions]\nservers = { fx = "deny" }\n')  # a garbage call never waits for an answer
    path = os.pathsep.join([str(Path(sys.executable).parent), "/usr/bin:/bin"])
    session = f"mcp-host-gptoss-{time.monotonic_ns()}"
    command = (
        f"env -i HOME={home} PATH={path} TERM=xterm-256color LANG=C.UTF-8 "
        f"{sys.executable} -m mcp_host.cli chat --no-history --max-rounds 3 --max-tokens 256; sleep 60"
    )
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "50", command], check=True, cwd=ROOT)
    try:
        yield session
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)


@pytest.mark.timeout(300)  # a turn is bounded in tokens (3 rounds × 256): a few seconds on 2 cores
def test_the_chat_picks_gpt_oss_from_lmstudio_and_survives_its_garbage(chat_with_gptoss_on_disk: str) -> None:
    session = chat_with_gptoss_on_disk
    wait_for_prompt(session, limit_s=120)
    shown = screen(session)
    notice = re.search(
        r"gpt-oss from \S+/\.lmstudio/models/openai/gpt-oss-20b/gpt-oss-20b-mxfp4\.gguf "
        r"\(llama\.cpp in-process, Harmony\)",
        " ".join(shown.split()),
    )
    assert notice and "DEMO" not in shown, shown

    # Random weights sampled without a seed: a turn may also end at once (an end token first, nothing said), so
    # up to three turns are asked for, each bounded in tokens, until one shows the faults of its garbage.
    for attempt in range(1, 4):
        asked = f"> Say hi with the echo tool ({attempt})."
        keys(session, "-l", asked.removeprefix("> "))
        keys(session, "Enter")
        summary = wait_for_summary(session, limit_s=240, after=asked)
        wait_for_prompt(session)
        shown = screen(session)
        assert summary.group("outcome") in ("max_rounds", "answered", "length"), summary.group(0)
        assert int(summary.group("rounds")) <= 3
        assert "Traceback" not in shown and "Error:" not in shown
        after = shown[shown.index(asked) :]
        faults = [line for line in after.splitlines() if line.startswith("! ")]
        if faults:  # the model's malformed Harmony is shown, each fault once, as the model reads it
            break
    assert faults, shown
    keys(session, "/quit", "Enter")


SUMMARY = re.compile(r"(?P<rounds>\d+) round\(s\), (?P<calls>\d+) tool call\(s\).*\((?P<outcome>\w+)\)")


def wait_for_summary(session: str, limit_s: float, after: str = "") -> re.Match[str]:
    """The line a finished turn ends with (rounds, calls, tokens and its outcome), the first after `after`."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        shown = screen(session)
        found = SUMMARY.search(shown, shown.find(after) if after in shown else len(shown))
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"the turn never ended; the screen was:\n{screen(session)}")
