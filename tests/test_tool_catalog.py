"""The tool catalog with real stdio servers: tools known at once on the next start, calls that wait for a
server still starting, live listings that replace stale entries, lazy servers, and entries that cannot be used."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import anyio
import pytest
from mcp_types import Tool

from mcp_host.agent import ApprovalAnswer, ApprovalRequired, ToolCallResult
from mcp_host.backends.replay import ReplayBackend
from mcp_host.config.mcpjson import McpConfig, RemoteServerConfig, StdioServerConfig
from mcp_host.host import Host
from mcp_host.servers import ServerManager, ServerState
from mcp_host.servers import catalog as catalog_module
from mcp_host.servers.catalog import ToolCatalog, catalog_key
from tests.conftest import fast_settings, fixture_entry, pid_alive, write_config
from tests.test_chat_terminal import chat_in_tmux, keys, screen, wait_for, wait_for_prompt, write_recording
from tests.test_cli import mcp_host, run_cli

pytestmark = pytest.mark.anyio


def config_of(**servers: dict[str, object]) -> McpConfig:
    return McpConfig(servers={name: StdioServerConfig.model_validate(entry) for name, entry in servers.items()})


def gated(gate: Path, **extra: object) -> dict[str, object]:
    """The fixture server, silent until `gate` exists: 'still starting' for exactly as long as a test wants."""
    return fixture_entry("--gate", str(gate), **extra)


async def fill(catalog: ToolCatalog, config: McpConfig, **settings: object) -> None:
    """One start that lists every server's tools into `catalog`."""
    async with ServerManager(fast_settings(**settings), catalog=catalog) as manager:
        await manager.apply(config)
        await manager.wait_settled()
        assert all(status.state is ServerState.READY for status in manager.statuses())


async def test_a_second_start_offers_the_tools_at_once_and_a_call_waits_for_the_server(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    gate.touch()
    catalog = ToolCatalog(tmp_path / "catalog")
    config = config_of(fx=gated(gate))
    await fill(catalog, config)
    entry = catalog.get(config.servers["fx"])
    assert entry is not None and entry.server_name == "fixture"
    assert "add" in {tool.name for tool in entry.tools}

    gate.unlink()  # the same server (same key) now takes as long as the test likes to answer
    async with ServerManager(fast_settings(), catalog=catalog) as manager:
        await manager.apply(config)
        assert "fx.add" in manager.registry  # known before the server said a word
        with anyio.fail_after(5):
            await manager.wait_tools_known()
        assert manager.connection("fx").state is ServerState.STARTING
        assert manager.statuses()[0].tools == len(entry.tools)

        results = []

        async def call() -> None:
            results.append(await manager.call_tool("fx.add", {"a": 1}))

        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            await anyio.sleep(0.3)
            assert results == [] and manager.connection("fx").state is ServerState.STARTING  # waiting, not refused
            gate.touch()
        assert results[0].text == "3"
        assert manager.connection("fx").state is ServerState.READY


async def test_a_cold_start_waits_until_the_tools_are_listed(tmp_path: Path) -> None:
    catalog = ToolCatalog(tmp_path / "catalog")
    async with ServerManager(fast_settings(), catalog=catalog) as manager:
        await manager.apply(config_of(fx=fixture_entry()))
        assert "fx.add" not in manager.registry
        await manager.wait_tools_known()
        assert manager.connection("fx").state is ServerState.READY
        assert "fx.add" in manager.registry


async def test_the_live_listing_replaces_a_stale_entry_and_rewrites_it(tmp_path: Path) -> None:
    catalog = ToolCatalog(tmp_path / "catalog")
    config = config_of(fx=fixture_entry())
    stale = Tool(name="retired", description="a tool the server no longer has", input_schema={"type": "object"})
    catalog.remember(config.servers["fx"], [stale], server_name="fixture", server_version="0.0.1")
    async with ServerManager(fast_settings(), catalog=catalog) as manager:
        await manager.apply(config)
        assert "fx.retired" in manager.registry and "fx.add" not in manager.registry
        version = manager.registry.version
        await manager.wait_settled()
        assert "fx.retired" not in manager.registry and "fx.add" in manager.registry
        assert manager.registry.version > version  # the next turn renders the live tools
    entry = catalog.get(config.servers["fx"])
    assert entry is not None
    assert "retired" not in {tool.name for tool in entry.tools}
    assert entry.server_version != "0.0.1"


async def test_a_server_that_never_came_up_is_not_waited_for_next_time(tmp_path: Path) -> None:
    catalog = ToolCatalog(tmp_path / "catalog")
    config = config_of(hung=fixture_entry("--behaviour", "hang", timeout=1000))
    async with ServerManager(fast_settings(restart_attempts=0), catalog=catalog) as manager:
        await manager.apply(config)
        await manager.wait_tools_known()  # cold: until its first start ended (its 1 s timeout)
        assert manager.connection("hung").state is ServerState.FAILED
    entry = catalog.get(config.servers["hung"])
    assert entry is not None and entry.tools == () and entry.failed
    assert "did not answer" not in "".join(p.read_text() for p in (tmp_path / "catalog").iterdir())  # no stderr kept

    async with ServerManager(fast_settings(restart_attempts=0), catalog=catalog) as manager:
        await manager.apply(config)
        await manager.wait_tools_known()
        assert manager.connection("hung").state is ServerState.STARTING  # it goes on starting, unwaited


async def test_a_server_that_failed_once_keeps_its_tools_in_the_catalog(tmp_path: Path) -> None:
    catalog = ToolCatalog(tmp_path / "catalog")
    config = config_of(fx=fixture_entry())
    await fill(catalog, config)
    catalog.remember_failure(config.servers["fx"])
    entry = catalog.get(config.servers["fx"])
    assert entry is not None and entry.failed and entry.tools
    async with ServerManager(fast_settings(lazy=("fx",)), catalog=catalog) as manager:
        await manager.apply(config)
        assert manager.connection("fx").state is ServerState.STARTING  # a server that failed last is not lazy
        await manager.wait_settled()
    entry = catalog.get(config.servers["fx"])
    assert entry is not None and not entry.failed and entry.tools  # it came up: the failure is forgotten


async def test_a_lazy_server_starts_when_first_called(tmp_path: Path) -> None:
    catalog = ToolCatalog(tmp_path / "catalog")
    config = config_of(fx=fixture_entry(), other=fixture_entry("--tools", "3", "--behaviour", "paginated"))
    settings = {"lazy": ("fx", "nosuch")}
    async with ServerManager(fast_settings(**settings), catalog=catalog) as manager:
        await manager.apply(config)
        await manager.wait_settled()  # unknown to the catalog: a lazy server starts at once, to learn its tools
        assert manager.connection("fx").state is ServerState.READY

    async with ServerManager(fast_settings(**settings), catalog=catalog) as manager:
        await manager.apply(config)
        await manager.wait_settled()
        lazy = manager.connection("fx").status()
        assert lazy.state is ServerState.IDLE and lazy.pid is None and lazy.tools > 0
        assert manager.connection("other").state is ServerState.READY
        assert "fx.add" in manager.registry
        result = await manager.call_tool("fx.add", {"a": 5})
        assert result.text == "7"
        started = manager.connection("fx").status()
        assert started.state is ServerState.READY and started.pid is not None and pid_alive(started.pid)


async def test_a_lazy_server_starts_for_a_resource_read_too(tmp_path: Path) -> None:
    catalog = ToolCatalog(tmp_path / "catalog")
    config = config_of(fx=fixture_entry())
    await fill(catalog, config)
    async with ServerManager(fast_settings(lazy=("fx",)), catalog=catalog) as manager:
        await manager.apply(config)
        assert manager.connection("fx").state is ServerState.IDLE
        await manager.connection("fx").list_resources()
        assert manager.connection("fx").state is ServerState.READY


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b'{"format": 99, "tools": []}',
        b'{"format": 1, "key": "KEY", "tools": [{"name": 3}]}',
        b'{"format": 1, "key": "KEY", "tools": [], "saved_at": 1' + b"0" * 400 + b"}",
        b'{"format": 1, "key": "another server", "tools": []}',
        b"[" * 100_000 + b"]" * 100_000,
        b"[]",
        b"\xff\xfe",
    ],
)
async def test_an_entry_that_cannot_be_read_means_a_cold_start_and_is_replaced(tmp_path: Path, content: bytes) -> None:
    catalog = ToolCatalog(tmp_path / "catalog")
    config = config_of(fx=fixture_entry())
    path = tmp_path / "catalog" / f"{catalog_key(config.servers['fx'])}.json"
    path.parent.mkdir(mode=0o700)
    path.write_bytes(content.replace(b"KEY", catalog_key(config.servers["fx"]).encode()))
    path.chmod(0o600)
    assert catalog.get(config.servers["fx"]) is None
    async with ServerManager(fast_settings(), catalog=catalog) as manager:
        await manager.apply(config)
        assert not manager.connection("fx").known_at_start
        await manager.wait_tools_known()
        assert manager.connection("fx").state is ServerState.READY
    entry = catalog.get(config.servers["fx"])
    assert entry is not None and entry.tools


async def test_an_entry_others_may_write_or_a_link_is_not_used(tmp_path: Path) -> None:
    catalog = ToolCatalog(tmp_path / "catalog")
    server = StdioServerConfig(command="x")
    catalog.remember(server, [Tool(name="t", input_schema={"type": "object"})], server_name=None, server_version=None)
    path = tmp_path / "catalog" / f"{catalog_key(server)}.json"
    assert path.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "catalog").stat().st_mode & 0o777 == 0o700
    assert catalog.get(server) is not None
    path.chmod(0o666)
    assert catalog.get(server) is None
    path.chmod(0o600)
    elsewhere = tmp_path / "planted.json"
    elsewhere.write_text(path.read_text())
    path.unlink()
    path.symlink_to(elsewhere)
    assert catalog.get(server) is None


def test_a_listing_too_large_is_not_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(catalog_module, "MAX_ENTRY_BYTES", 2000)
    catalog = ToolCatalog(tmp_path / "catalog")
    server = StdioServerConfig(command="x")
    tools = [Tool(name=f"t{i}", description="d" * 100, input_schema={"type": "object"}) for i in range(30)]
    catalog.remember(server, tools, server_name=None, server_version=None)
    assert catalog.get(server) is None
    catalog.remember(server, tools[:2], server_name=None, server_version=None)
    assert catalog.get(server) is not None


def test_the_key_is_what_the_server_is_and_secrets_are_never_written(tmp_path: Path) -> None:
    catalog = ToolCatalog(tmp_path / "catalog")
    secret = "sk-live-5e3c2d1b"
    local = StdioServerConfig(command="npx", args=["-y", "pkg"], env={"API_KEY": secret})
    remote = RemoteServerConfig(url="https://mcp.example.com/mcp", headers={"Authorization": f"Bearer {secret}"})
    tool = [Tool(name="t", input_schema={"type": "object"})]
    for server in (local, remote):
        catalog.remember(server, tool, server_name="s", server_version="1")
    written = b"".join(path.read_bytes() + path.name.encode() for path in (tmp_path / "catalog").iterdir())
    assert secret.encode() not in written
    assert len(list((tmp_path / "catalog").iterdir())) == 2
    assert catalog_key(local) == catalog_key(local.model_copy(update={"timeout": 5000, "roots": ["/tmp"]}))
    assert catalog_key(local) != catalog_key(local.model_copy(update={"args": ["-y", "pkg@2"]}))
    assert catalog_key(local) != catalog_key(local.model_copy(update={"env": {"API_KEY": "other"}}))
    assert catalog_key(remote) != catalog_key(remote.model_copy(update={"headers": {}}))


async def test_the_host_keeps_its_catalog_in_the_cache_folder_unless_told_not_to(
    tmp_path: Path, private_cache_dir: Path
) -> None:
    gate = tmp_path / "gate"
    gate.touch()
    config = write_config(tmp_path / "mcp.json", {"fx": gated(gate)})
    async with Host(config, settings_path=tmp_path / "settings.toml", plugins=False) as host:
        await host.wait_tools_known()
        assert host.statuses()[0].state is ServerState.READY
    assert len(list((private_cache_dir / "mcp-host" / "tools").iterdir())) == 1

    gate.unlink()
    async with Host(config, settings_path=tmp_path / "settings.toml", plugins=False) as host:
        with anyio.fail_after(5):
            await host.wait_tools_known()
        assert host.statuses()[0].state is ServerState.STARTING and "fx.add" in host.registry
        gate.touch()
        assert (await host.call_tool("fx.add", {"a": 0})).text == "2"

    (tmp_path / "settings.toml").write_text("[servers]\ntool_catalog = false\n")
    gate.unlink()
    async with Host(config, settings_path=tmp_path / "settings.toml", plugins=False) as host:
        assert "fx.add" not in host.registry and not host.manager.connection("fx").known_at_start
        gate.touch()
    os.sync()
    assert json.loads(next((private_cache_dir / "mcp-host" / "tools").iterdir()).read_text())["format"] == 1


def test_tools_and_render_answer_from_the_catalog_without_waiting_for_servers(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    gate.touch()
    config = write_config(tmp_path / "mcp.json", {"fx": gated(gate)})
    (tmp_path / "s.toml").write_text("[servers]\nconnect_timeout_s = 60\n")
    cold = mcp_host(config, "tools", "--json", "--no-plugins")
    assert cold.returncode == 0, cold.stderr
    listed = {tool["name"] for tool in json.loads(cold.stdout)}
    assert "fx.add" in listed

    gate.unlink()  # from now on the server never answers: only the catalog can know its tools
    warm = mcp_host(config, "tools", "--json", "--no-plugins")
    assert warm.returncode == 0, warm.stderr
    assert {tool["name"] for tool in json.loads(warm.stdout)} == listed
    rendered = mcp_host(config, "render", "--json", "--no-plugins")
    assert rendered.returncode == 0, rendered.stderr
    assert "add" in rendered.stdout
    glance = mcp_host(config, "servers", "--json")
    assert [(entry["state"], entry["tools"]) for entry in json.loads(glance.stdout)] == [("starting", len(listed))]


def test_the_chat_starts_with_the_catalogs_tools_and_a_call_waits_for_its_server(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    gate.touch()
    config = write_config(tmp_path / "mcp.json", {"fx": gated(gate)})
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}  # the folder the chat below uses
    filled = run_cli("--config", str(config), "--settings", str(tmp_path / "settings.toml"), "tools", env=env)
    assert filled.returncode == 0 and "fx.add" in filled.stdout, filled.stderr
    gate.unlink()
    recording = tmp_path / "chat.jsonl"
    write_recording(recording)
    with chat_in_tmux(tmp_path, config, recording, speed=40, width=160) as session:
        wait_for_prompt(session)
        shown = screen(session)
        assert "still starting: fx (a call waits for its server)" in shown, shown
        keys(session, "-l", '/call fx.add {"a": 1}')
        keys(session, "Enter")
        wait_for(session, "[y]es once / [a]lways / [n]o / [e]dit?")
        keys(session, "y", "Enter")
        time.sleep(0.5)
        assert "← 3" not in screen(session)  # the call waits for its server, which is still starting
        gate.touch()
        wait_for(session, "← 3")
        shown = wait_for(session, "server fx is ready:")
        wait_for_prompt(session)
        assert "failed" not in shown


async def test_deferred_starts_wait_for_release_or_a_first_use(tmp_path: Path) -> None:
    catalog = ToolCatalog(tmp_path / "catalog")
    config = config_of(a=fixture_entry(), b=fixture_entry("--tools", "2", "--behaviour", "paginated"))
    await fill(catalog, config)
    cold = StdioServerConfig.model_validate(fixture_entry("--tools", "1", "--behaviour", "paginated"))
    new = McpConfig(servers={**config.servers, "cold": cold})
    async with ServerManager(fast_settings(), catalog=catalog, defer_known=True) as manager:
        await manager.apply(new)
        await manager.wait_tools_known()  # the cold one listed; the known ones are held back meanwhile
        assert manager.connection("cold").state is ServerState.READY
        assert manager.connection("a").status().pid is None and manager.connection("a").state is ServerState.STARTING
        assert (await manager.call_tool("a.add", {"a": 1})).text == "3"  # a first use does not wait for release()
        assert manager.connection("b").state is ServerState.STARTING
        manager.release()
        await manager.wait_settled()
        assert manager.connection("b").state is ServerState.READY


async def test_a_permission_reads_the_live_tool_not_the_catalogs_copy(tmp_path: Path, private_cache_dir: Path) -> None:
    """A stale entry says `add` is read-only and the settings allow read-only tools: the call still asks, since
    the running server's `add` says nothing of the kind (an updated server's changed tool must ask again)."""
    gate = tmp_path / "gate"
    config = write_config(tmp_path / "mcp.json", {"fx": gated(gate)})
    server = StdioServerConfig.model_validate(gated(gate))
    claimed = Tool(name="add", input_schema={"type": "object"}, annotations={"readOnlyHint": True})
    ToolCatalog(private_cache_dir / "mcp-host" / "tools").remember(
        server, [claimed], server_name="fixture", server_version="0"
    )
    (tmp_path / "settings.toml").write_text("[permissions]\nallow_read_only = true\n")
    recording = tmp_path / "replay.jsonl"
    write_recording(
        recording,
        [
            '<|channel|>commentary to=functions.fx__add <|constrain|>json<|message|>{"a": 1}<|call|>',
            "<|channel|>final<|message|>Three.<|return|>",
        ],
    )
    async with Host(config, settings_path=tmp_path / "settings.toml", plugins=False) as host:
        assert host.registry.get("fx.add").annotations == {"readOnlyHint": True}  # the catalog's word, for now
        backend = ReplayBackend.load(recording)
        asked = []
        async with host.chat(backend) as chat:
            gate.touch()
            async for event in chat.send("1 + 2?"):
                if isinstance(event, ApprovalRequired):
                    asked.append(event)
                    chat.answer(event.call_id, ApprovalAnswer("allow"))
                if isinstance(event, ToolCallResult):
                    assert event.text == "3"
    assert len(asked) == 1 and "no annotations" in asked[0].reason


def test_a_lazy_server_starts_for_a_call_from_the_command_line(tmp_path: Path) -> None:
    config = write_config(tmp_path / "mcp.json", {"fx": fixture_entry()})
    (tmp_path / "s.toml").write_text('[servers]\nlazy = ["fx"]\n')
    assert mcp_host(config, "tools").returncode == 0  # fills the catalog: from now on fx is lazy
    assert json.loads(mcp_host(config, "servers", "--json").stdout)[0]["state"] == "idle"
    called = mcp_host(config, "call", "fx.add", '{"a": 2}')
    assert called.returncode == 0 and "4" in called.stdout, called.stderr
    read = mcp_host(config, "resources", "fx", "--json")
    assert read.returncode == 0, read.stderr


def test_tools_waits_for_a_server_whose_last_start_failed(tmp_path: Path, private_cache_dir: Path) -> None:
    config = write_config(tmp_path / "mcp.json", {"fx": fixture_entry()})
    ToolCatalog(private_cache_dir / "mcp-host" / "tools").remember_failure(
        StdioServerConfig.model_validate(fixture_entry())
    )
    listed = mcp_host(config, "tools", "--json", "--no-plugins")
    assert "fx.add" in {tool["name"] for tool in json.loads(listed.stdout)}, listed.stderr


def test_a_relative_path_puts_the_working_folder_in_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for project in ("one", "two"):
        (tmp_path / project / "build").mkdir(parents=True)
        (tmp_path / project / "build" / "index.js").write_text("")
    local = StdioServerConfig(command="node", args=["build/index.js"])
    published = StdioServerConfig(command="npx", args=["-y", "@modelcontextprotocol/server-everything"])
    keys = []
    for project in ("one", "two"):
        monkeypatch.chdir(tmp_path / project)
        keys.append((catalog_key(local), catalog_key(published)))
    assert keys[0][0] != keys[1][0] and keys[0][1] == keys[1][1]
