"""`mcp-host plugins | plugins new | call PLUGIN.TOOL`, `--no-plugins`, `chat --plugins` and the chat's
`/plugins` and `/plugin on|off`, with small plugins of our own in a temporary user folder."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document
from rich.console import Console

from mcp_host.backends.replay import ReplayBackend
from mcp_host.chat_commands import ChatState, SlashCommands
from mcp_host.chat_completion import SlashCompleter
from mcp_host.host import Host
from tests.conftest import ROOT, fixture_entry, write_config

GREET = '''\
from mcp_host.plugins import Plugin

plugin = Plugin("greet", description="Greets people.")


@plugin.tool(read_only=True)
def hi(name: str) -> str:
    """Say hi to someone.

    Args:
        name: Who.
    """
    return f"hi {name}"
'''
BROKEN = 'from mcp_host.plugins import Plugin\n\nplugin = Plugin("oops")\nraise RuntimeError("broken on purpose")\n'


def write_plugins(folder: Path) -> Path:
    """A good plugin (a folder) and a broken one (a file failing on line 4); returns the broken file."""
    (folder / "greet").mkdir(parents=True)
    (folder / "greet" / "__init__.py").write_text(GREET)
    broken = folder / "oops.py"
    broken.write_text(BROKEN)
    return broken


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """mcp.json (one disabled server: nothing starts), settings naming the plugin folder, HOME and XDG in tmp."""
    write_config(tmp_path / "mcp.json", {"fx": fixture_entry(disabled=True)})
    folder = tmp_path / "plugins"
    folder.mkdir()
    (tmp_path / "s.toml").write_text(f'[plugins]\nfolder = "{folder}"\n\n[plugins.hello-kit]\ngreeting = "Hi"\n')
    return tmp_path


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("MCP_HOST_")}
    env.update(
        HOME=str(home / "home"),
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_STATE_HOME=str(home / "state"),
        XDG_CACHE_HOME=str(home / "cache"),
    )
    command = [sys.executable, "-m", "mcp_host.cli", "--config", str(home / "mcp.json")]
    command += ["--settings", str(home / "s.toml"), *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_a_good_and_a_broken_plugin_side_by_side(home: Path) -> None:
    broken = write_plugins(home / "plugins")
    listed = cli(home, "plugins")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert any(line.split() == ["greet", "loaded", "user", "hi"] for line in lines)
    assert any(line.split()[:3] == ["oops", "failed", "user"] for line in lines)
    assert f"{broken}:4: RuntimeError: broken on purpose" in lines[-1]  # never cut, even in a pipe
    assert f"{home / 'plugins' / 'greet' / '__init__.py'}" in listed.stdout

    by_name = {entry["name"]: entry for entry in json.loads(cli(home, "plugins", "--json").stdout)}
    assert by_name["greet"] == {
        "name": "greet",
        "origin": "user",
        "where": str(home / "plugins" / "greet" / "__init__.py"),
        "state": "loaded",
        "on_by_default": True,
        "tools": ["hi"],
        "error": None,
        "description": "Greets people.",
    }
    assert by_name["oops"]["state"] == "failed" and by_name["oops"]["error"].startswith(f"{broken}:4: RuntimeError")

    called = cli(home, "call", "greet.hi", '{"name": "Ada"}')
    assert called.returncode == 0, called.stderr
    assert called.stdout.strip() == "hi Ada"
    as_json = json.loads(cli(home, "call", "greet.hi", '{"name": 3}', "--json").stdout)
    assert as_json["is_error"] and "invalid arguments for greet.hi" in as_json["content"][0]["text"]

    tools = cli(home, "tools")
    assert tools.returncode == 0, tools.stderr
    assert any(line.split()[:2] == ["greet.hi", "plugin:greet"] for line in tools.stdout.splitlines())
    assert f"plugin oops failed: {broken}:4" in tools.stderr
    listing = {tool["name"]: tool for tool in json.loads(cli(home, "tools", "--json").stdout)}
    assert listing["greet.hi"]["origin"] == "plugin" and listing["greet.hi"]["server"] == "greet"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("call", "oops.anything"), "plugin 'oops' failed: {broken}:4: RuntimeError"),
        (("call", "greet.nope"), "plugin 'greet' has no tool 'nope' (its tools: greet.hi)"),
        (("call", "nowhere.tool"), "names no configured server or loaded plugin"),
        (("call", "nowhere.tool"), "(servers: fx; plugins: "),
        (("--no-plugins", "call", "greet.hi"), "plugins: none: --no-plugins"),
        (("chat", "--plugins", "greet,nope"), "--plugins: not loaded here: nope (loaded plugins: "),
    ],
)
def test_calls_that_name_no_usable_plugin_tool(home: Path, args: tuple[str, ...], message: str) -> None:
    broken = write_plugins(home / "plugins")
    result = cli(home, *args)
    assert result.returncode == 2, result.stderr
    assert message.format(broken=broken) in " ".join(result.stderr.split())
    if args[-1] == "nowhere.tool":
        assert "greet" in result.stderr.rpartition("plugins: ")[2]


def test_no_plugins_loads_none(home: Path) -> None:
    write_plugins(home / "plugins")
    tools = json.loads(cli(home, "--no-plugins", "tools", "--json").stdout)
    assert [tool for tool in tools if tool["origin"] == "plugin"] == []
    assert json.loads(cli(home, "--no-plugins", "plugins", "--json").stdout) == []


def test_new_writes_a_skeleton_that_works(home: Path) -> None:
    made = cli(home, "plugins", "new", "hello-kit")
    assert made.returncode == 0, made.stderr
    written = home / "plugins" / "hello-kit" / "__init__.py"
    assert f"wrote plugin hello-kit to {written}" in made.stdout
    assert 'mcp-host call hello-kit.hello \'{"name": "Ada"}\'' in made.stdout
    assert '"Plugins" section' in written.read_text()

    called = cli(home, "call", "hello-kit.hello", '{"name": "Ada", "excited": true}')
    assert called.returncode == 0, called.stderr
    assert called.stdout.strip() == "Hi, Ada!"  # the greeting from [plugins.hello-kit]

    again = cli(home, "plugins", "new", "hello-kit")
    assert again.returncode == 2 and f"{written.parent} exists already" in again.stderr
    assert not (home / "plugins" / "hello-kit.py").exists()
    bad = cli(home, "plugins", "new", "Hello Kit")
    assert bad.returncode == 2 and "must be lowercase letters" in bad.stderr
    elsewhere = cli(home, "plugins", "new", "other", "--dir", str(home / "elsewhere"))
    assert elsewhere.returncode == 0 and (home / "elsewhere" / "other" / "__init__.py").is_file()
    assert "the host loads plugins from" in elsewhere.stdout


@pytest.mark.anyio
async def test_the_skeleton_through_the_real_host(home: Path) -> None:
    assert cli(home, "plugins", "new", "hello-kit").returncode == 0
    async with Host(home / "mcp.json", settings_path=home / "s.toml") as host:
        await host.wait_settled()
        spec = host.registry.get("hello-kit.hello")
        assert spec.origin == "plugin" and spec.description == "Greet someone by name."
        assert spec.input_schema["required"] == ["name"]
        assert spec.input_schema["properties"]["name"]["description"] == 'Who to greet, e.g. "Ada".'
        result = await host.call_tool("hello-kit.hello", {"name": "Ada"})
        assert not result.is_error and result.text == "Hi, Ada."


async def completions(completer: SlashCompleter, text: str) -> list[str]:
    found = completer.get_completions_async(Document(text), CompleteEvent(completion_requested=True))
    return [text[: len(text) + c.start_position] + c.text async for c in found]


@pytest.mark.anyio
async def test_chat_plugin_commands_and_completion(home: Path) -> None:
    broken = write_plugins(home / "plugins")
    async with Host(home / "mcp.json", settings_path=home / "s.toml") as host:
        await host.wait_settled()
        out = io.StringIO()
        chat = host.chat(ReplayBackend([]))
        commands = SlashCommands(host, chat, Console(file=out, width=300, color_system=None), ChatState("low"))

        async def run(line: str) -> str:
            out.seek(0)
            out.truncate()
            assert await commands.run(line) is None
            return out.getvalue()

        listed = await run("/plugins")
        assert "greet  on in this chat  user: hi" in listed
        assert f"oops  failed  user: no tools  {broken}:4: RuntimeError" in listed
        assert "greet off from the next message" in await run("/plugin off greet")
        # Off from the default set (greet): the bundled plugins, off by default, stay off (no tools offered).
        assert chat.enabled_plugins == set(host.plugins.default_names) - {"greet"} == set()
        assert "greet  off in this chat" in await run("/plugins")
        assert "greet.hi  Say hi to someone. (plugin off in this chat)" in await run("/tools")
        assert "plugin greet is off already" in await run("/plugin off greet")
        assert "greet on from the next message" in await run("/plugin on greet")
        assert chat.enabled_plugins == set(host.plugins.default_names) == {"greet"}
        assert "calc  off in this chat" in await run("/plugins")  # bundled: off until turned on
        assert "no plugin named 'nope' (plugins: " in await run("/plugin on nope")
        assert f"plugin oops failed: {broken}:4" in await run("/plugin on oops")
        assert "/plugin: 'maybe' is not on or off" in await run("/plugin maybe greet")
        assert "/plugin on|off NAME" in await run("/help")

        completer = SlashCompleter(host)
        assert await completions(completer, "/plu") == ["/plugin", "/plugins"]
        assert await completions(completer, "/plugin o") == ["/plugin on", "/plugin off"]
        assert await completions(completer, "/plugin off gr") == ["/plugin off greet"]
        assert await completions(completer, "/plugin off oo") == []  # failed: not offered
