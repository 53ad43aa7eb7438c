"""An unsandboxed python tool asks before every run; each chat's prompt states its own tool's limits."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcp_host.agent import ChatOptions
from mcp_host.agent.permissions import Permissions
from mcp_host.backends import ReplayBackend
from mcp_host.config.settings import HostSettings
from mcp_host.host import Host
from mcp_host.prompt.harmony import HarmonyOptions, HarmonyRenderer
from mcp_host.tools.native import PythonTool
from mcp_host.tools.native.sandbox import Isolation
from tests.conftest import write_config


def test_an_always_answer_never_covers_unsandboxed_code(tmp_path: Path) -> None:
    permissions = Permissions(HostSettings(), tmp_path / "settings.toml")
    sandboxed = PythonTool(tmp_path / "a", isolation=Isolation.SANDBOX).spec
    bare = PythonTool(tmp_path / "b", isolation=Isolation.NETWORK).spec
    assert bare.unsandboxed_code and not sandboxed.unsandboxed_code
    permissions.remember(bare)
    assert permissions.verdict(bare).policy == "ask"
    assert "outside any sandbox" in permissions.verdict(bare).reason
    assert bare.description != sandboxed.description  # the model is told the truth too
    permissions.remember(sandboxed)
    assert permissions.verdict(sandboxed).policy == "allow"
    # A rule the user wrote still wins: they said otherwise.
    ruled = Permissions(HostSettings.model_validate({"permissions": {"tools": {"python": "allow"}}}))
    assert ruled.verdict(bare).policy == "allow"


@pytest.mark.anyio
async def test_the_prompt_states_the_chats_own_time_limit(tmp_path: Path) -> None:
    config = write_config(tmp_path / "mcp.json", {})
    async with Host(config, settings_path=tmp_path / "settings.toml") as host:
        options = ChatOptions(harmony=HarmonyOptions(python=True), call_timeout_s=7.0)
        async with host.chat(ReplayBackend([]), options) as chat:
            description = chat.options.harmony.python_description
            assert description is not None and "7 seconds" in description
            system = HarmonyRenderer().system_message(chat.options.harmony)
            assert "7 seconds" in str(system.content[0])
