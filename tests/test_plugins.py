"""Plugins: schemas from type hints checked with jsonschema against real calls, discovery from the three
places, reload on change, failure isolation, config, permissions, hooks, and functions passed to `act()`."""

from __future__ import annotations

import enum
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Literal

import anyio
import jsonschema
import pytest
from pydantic import BaseModel

from mcp_host.agent import (
    ApprovalAnswer,
    ApprovalRequired,
    ChatOptions,
    Event,
    ToolCallCreated,
    ToolCallResult,
    TurnCompleted,
)
from mcp_host.agent.permissions import Permissions
from mcp_host.backends import RecordedGeneration, ReplayBackend
from mcp_host.backends.llama_cpp import LlamaCppBackend
from mcp_host.config.settings import HostSettings, PluginSettings
from mcp_host.host import Host
from mcp_host.plugins import FunctionTool, Plugin, PluginContext, ToolDefinitionError, parse_docstring
from mcp_host.plugins.manager import PluginManager
from mcp_host.prompt import harmony_encoding
from mcp_host.tools.registry import ToolRegistry
from tests.conftest import ROOT, fixture_entry, write_config

pytestmark = pytest.mark.anyio


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Point(BaseModel):
    x: float
    y: float = 0.0


def everything_typed(
    text: str,
    count: int,
    ratio: float,
    flag: bool,
    items: list[int],
    table: dict[str, str],
    mode: Literal["fast", "slow"],
    colour: Colour,
    point: Point,
    note: str | None = None,
    limit: int = 10,
) -> str:
    """Echo every argument back, typed.

    Args:
        text: Some text.
        count: How many.
        ratio: A fraction.
        flag: On or off.
        items: Numbers.
        table: Names to names.
        mode: How fast.
        colour: A colour.
        point: Where.
        note: Optional words.
        limit: At most this many.
    """
    return (
        f"{text}|{count}|{ratio}|{flag}|{items}|{sorted(table.items())}|{mode}|{colour.value}|"
        f"{point.x},{point.y}|{note}|{limit}"
    )


async def test_a_schema_from_type_hints_validates_real_calls() -> None:
    tool = FunctionTool.build(everything_typed, server="demo")
    schema = tool.spec.original_schema
    properties = schema["properties"]
    assert properties["text"]["description"] == "Some text."
    assert set(schema["required"]) == {"text", "count", "ratio", "flag", "items", "table", "mode", "colour", "point"}
    assert tool.spec.description == "Echo every argument back, typed."
    good = {
        "text": "hi",
        "count": 2,
        "ratio": 0.5,
        "flag": True,
        "items": [1, 2],
        "table": {"a": "b"},
        "mode": "fast",
        "colour": "blue",
        "point": {"x": 1.5},
    }
    jsonschema.validate(good, schema)  # what the model is told accepts what the function takes
    result = await tool.call(good, timeout_s=5)
    assert not result.is_error, result.text
    assert result.text == "hi|2|0.5|True|[1, 2]|[('a', 'b')]|fast|blue|1.5,0.0|None|10"
    with_optional = {**good, "note": "n", "limit": 3}
    jsonschema.validate(with_optional, schema)
    assert (await tool.call(with_optional, timeout_s=5)).text.endswith("|n|3")
    for wrong in ({**good, "mode": "medium"}, {**good, "colour": "green"}, {**good, "count": "many"}, {"text": "x"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(wrong, schema)
        refused = await tool.call(wrong, timeout_s=5)
        assert refused.is_error and "invalid arguments" in refused.text


def test_docstrings_give_descriptions_in_google_and_sphinx_style() -> None:
    summary, params = parse_docstring(
        """Do a thing.

        More words.

        Args:
            a: The first,
                continued.
            b (int): The second.

        Returns:
            Nothing.
        """
    )
    assert summary == "Do a thing.\n\nMore words."
    assert params == {"a": "The first, continued.", "b": "The second."}
    assert parse_docstring(":param x: An x.\n:param int y: A y.")[1] == {"x": "An x.", "y": "A y."}


def test_functions_that_cannot_be_tools_say_why() -> None:
    def untyped(a):  # type: ignore[no-untyped-def]
        return a

    def star(*args: int) -> int:
        return 0

    with pytest.raises(ToolDefinitionError, match="'a' has no type annotation"):
        FunctionTool.build(untyped, server="x")
    with pytest.raises(ToolDefinitionError, match=r"\*args"):
        FunctionTool.build(star, server="x")
    with pytest.raises(ToolDefinitionError, match="plugin name"):
        Plugin("Bad Name")


async def test_raising_and_blocking_tools_return_errors_the_model_reads() -> None:
    plugin = Plugin("edge")

    @plugin.tool
    def boom(reason: str) -> str:
        raise RuntimeError(f"broke: {reason}")

    @plugin.tool
    def block(seconds: float) -> str:
        time.sleep(seconds)
        return "woke"

    @plugin.tool
    async def wait(seconds: float) -> str:
        await anyio.sleep(seconds)
        return "waited"

    boom_tool, block_tool, wait_tool = plugin.tools
    failed = await boom_tool.call({"reason": "test"}, timeout_s=5)
    assert failed.is_error and failed.text == "edge.boom failed: RuntimeError: broke: test"
    started = time.monotonic()
    blocked = await block_tool.call({"seconds": 5}, timeout_s=0.3)
    assert blocked.is_error and "did not finish within 0.3s" in blocked.text
    assert time.monotonic() - started < 2  # the worker thread is left to finish; the call is not
    waited = await wait_tool.call({"seconds": 5}, timeout_s=0.3)
    assert waited.is_error and "did not finish within 0.3s" in waited.text


def write_plugin(folder: Path, name: str, body: str) -> Path:
    path = folder / name / "__init__.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(body))
    return path


GOOD = """
    from mcp_host.plugins import Plugin

    plugin = Plugin("{name}", description="A test plugin.")

    @plugin.tool(read_only=True)
    def hello(who: str) -> str:
        '''Say hello.'''
        return f"hello {{who}} from {origin}"
"""


def test_discovery_shadowing_failures_and_config(tmp_path: Path) -> None:
    bundled, user = tmp_path / "bundled", tmp_path / "user"
    write_plugin(bundled, "greet", GOOD.format(name="greet", origin="bundled"))
    write_plugin(user, "greet", GOOD.format(name="greet", origin="user"))  # the user's copy wins
    broken = write_plugin(user, "broken", "from mcp_host.plugins import Plugin\nplugin = Plugin('broken')\n1 / 0\n")
    write_plugin(user, "syntax", "def (:\n")
    write_plugin(user, "empty", "x = 1\n")
    write_plugin(
        user,
        "configured",
        """
        from pydantic import BaseModel, SecretStr
        from mcp_host.plugins import Plugin, PluginContext

        class Config(BaseModel):
            key: SecretStr
            level: int = 1

        plugin = Plugin("configured", config=Config)

        @plugin.tool
        def show(ctx: PluginContext) -> str:
            return f"{ctx.config.level} {len(ctx.config.key.get_secret_value())} {ctx.roots[0].name}"
        """,
    )
    write_plugin(user, "time", GOOD.format(name="time", origin="user"))  # an mcp.json server's name
    (user / "single.py").write_text(GOOD.format(name="single", origin="file"))
    settings = PluginSettings.model_validate({"configured": {"key": "s3cret", "level": 3}, "disabled": ["single"]})
    registry = ToolRegistry()
    manager = PluginManager(
        registry,
        settings,
        folders=[("bundled", bundled), ("user", user)],
        entry_points=False,
        reserved=lambda: {"time"},
    )
    manager.load_all()
    states = {(s.name, s.origin): s for s in manager.statuses()}
    assert states[("greet", "user")].state == "loaded" and states[("greet", "bundled")].state == "shadowed"
    assert states[("broken", "user")].state == "failed"
    assert states[("broken", "user")].error == f"{broken}:3: ZeroDivisionError: division by zero"
    assert "__init__.py:1: SyntaxError" in (states[("syntax", "user")].error or "")
    assert "defines no `plugin`" in (states[("empty", "user")].error or "")
    assert states[("time", "user")].state == "failed" and "taken by an mcp.json server" in (
        states[("time", "user")].error or ""
    )
    assert states[("single", "user")].state == "disabled"
    assert manager.names == ["configured", "greet"]
    assert {spec.name for spec in registry} == {"greet.hello", "configured.show"}
    assert "s3cret" not in repr(settings) and "s3cret" not in repr(manager.statuses())

    async def calls() -> None:
        greeting = await manager.call("greet.hello", {"who": "Ada"}, timeout_s=5, roots=(tmp_path,))
        assert greeting.text == "hello Ada from user"
        shown = await manager.call("configured.show", {}, timeout_s=5, roots=(tmp_path,))
        assert shown.text == f"3 6 {tmp_path.name}"

    anyio.run(calls)
    bad = PluginSettings.model_validate({"configured": {"level": "high"}})
    manager = PluginManager(ToolRegistry(), bad, folders=[("user", user)], entry_points=False)
    manager.load_all()
    (configured,) = [s for s in manager.statuses() if s.name == "configured"]
    assert configured.state == "failed"
    assert configured.error is not None and configured.error.startswith("settings [plugins.configured]: key:")


def test_an_installed_package_is_found_by_its_entry_point(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    write_plugin(package / "src", "mcp_host_plugin_shout", GOOD.format(name="shout", origin="installed"))
    (package / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [build-system]
            requires = ["setuptools"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "mcp-host-plugin-shout"
            version = "1.0"

            [tool.setuptools.packages.find]
            where = ["src"]

            [project.entry-points."mcp_host.plugins"]
            shout = "mcp_host_plugin_shout:plugin"
            """
        )
    )
    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            str(package),
        ],
        check=True,
        capture_output=True,
    )
    env = {**os.environ, "PYTHONPATH": str(site), "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    config = write_config(tmp_path / "mcp.json", {})
    program = textwrap.dedent(
        f"""
        import anyio
        from pathlib import Path
        from mcp_host import Host

        async def main() -> None:
            async with Host(Path({str(config)!r}), settings_path=Path({str(tmp_path / "s.toml")!r})) as host:
                (status,) = [s for s in host.plugins.statuses() if s.name == "shout"]
                print(status.origin, status.state)
                print((await host.call_tool("shout.hello", {{"who": "pip"}})).text)

        anyio.run(main)
        """
    )
    listed = subprocess.run(
        [sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert listed.returncode == 0, listed.stderr
    assert "installed loaded" in listed.stdout
    assert "hello pip from installed" in listed.stdout


async def test_a_changed_user_plugin_reloads_without_touching_servers(tmp_path: Path) -> None:
    user = tmp_path / "plugins"
    write_plugin(user, "live", GOOD.format(name="live", origin="v1"))
    settings = tmp_path / "settings.toml"
    settings.write_text(f'[plugins]\nfolder = "{user}"\n')
    config = write_config(tmp_path / "mcp.json", {"fx": fixture_entry()})
    async with Host(config, settings_path=settings, watch=True) as host:
        await host.wait_settled()
        pid = host.manager.connection("fx").status().pid
        assert (await host.call_tool("live.hello", {"who": "a"})).text == "hello a from v1"
        write_plugin(user, "live", GOOD.format(name="live", origin="v2").replace("def hello", "def hi"))
        with anyio.fail_after(20):
            while "live.hi" not in host.registry:
                await anyio.sleep(0.1)
        assert "live.hello" not in host.registry
        assert (await host.call_tool("live.hi", {"who": "b"})).text == "hello b from v2"
        write_plugin(user, "live", "raise ImportError('half-written')\n")  # a broken edit
        with anyio.fail_after(20):
            while "live.hi" in host.registry:
                await anyio.sleep(0.1)
        (live,) = [s for s in host.plugins.statuses() if s.name == "live"]
        assert live.state == "failed" and "half-written" in (live.error or "")
        assert host.manager.connection("fx").status().pid == pid  # the MCP server was not restarted


def test_plugin_tools_follow_the_permission_policy() -> None:
    plugin = Plugin("pol")

    @plugin.tool(read_only=True)
    def look() -> str:
        return ""

    @plugin.tool(destructive=True)
    def wipe() -> str:
        return ""

    look_spec, wipe_spec = (tool.spec for tool in plugin.tools)
    permissions = Permissions(HostSettings.model_validate({"permissions": {"allow_read_only": True}}))
    assert permissions.verdict(look_spec).policy == "allow"
    assert permissions.verdict(wipe_spec).policy == "ask"
    denying = Permissions(HostSettings.model_validate({"permissions": {"servers": {"pol": "deny"}}}))
    assert denying.verdict(look_spec).policy == "deny"


HOOKS = """
    from mcp_host.plugins import Plugin, ToolCallInfo, UserMessage
    from mcp_host.tools.spec import ToolResult

    plugin = Plugin("hooks")

    @plugin.tool(read_only=True)
    def secret() -> str:
        return "the code is 1234"

    @plugin.preprocessor
    def add_context(message: UserMessage) -> UserMessage:
        return message.with_text(message.text + " [context: the user likes tea]")

    @plugin.postprocessor
    async def redact(call: ToolCallInfo, result: ToolResult) -> str | None:
        return result.text.replace("1234", "****") if call.tool == "hooks.secret" else None
"""


def script(*outputs: str) -> ReplayBackend:
    encoding = harmony_encoding()
    return ReplayBackend(
        [RecordedGeneration([], list(encoding.encode(text, allowed_special="all")), "stop") for text in outputs]
    )


def call_text(identifier: str, arguments: str = "{}") -> str:
    return f"<|channel|>commentary to=functions.{identifier} <|constrain|>json<|message|>{arguments}<|call|>"


ANSWER = "<|channel|>final<|message|>done<|return|>"


async def test_hooks_and_per_chat_plugins_in_a_scripted_harmony_turn(tmp_path: Path) -> None:
    user = tmp_path / "plugins"
    write_plugin(user, "hooks", HOOKS)
    write_plugin(user, "greet", GOOD.format(name="greet", origin="user"))
    settings = tmp_path / "settings.toml"
    settings.write_text(f'[plugins]\nfolder = "{user}"\n[permissions.tools]\n"hooks.secret" = "allow"\n')
    async with Host(write_config(tmp_path / "mcp.json", {}), settings_path=settings) as host:
        backend = script(call_text("hooks__secret"), ANSWER)
        chat = host.chat(backend, ChatOptions(plugins=("hooks",)))
        events: list[Event] = [event async for event in chat.send("Hello")]
        (result,) = [e for e in events if isinstance(e, ToolCallResult)]
        assert result.text == "the code is ****"  # the postprocessor ran before the model read it
        prompt = harmony_encoding().decode(backend.prompts[0])
        assert "Hello [context: the user likes tea]" in prompt  # the preprocessor ran
        assert "hooks__secret" in prompt and "greet__hello" not in prompt  # this chat uses `hooks` only
        assert isinstance(events[-1], TurnCompleted)


def multiply(a: float, b: float) -> float:
    """Multiply two numbers.

    Args:
        a: The first factor.
        b: The second factor.
    """
    return a * b


async def test_act_takes_plain_functions_as_tools_on_the_real_model(gemma: LlamaCppBackend, tmp_path: Path) -> None:
    async with Host(write_config(tmp_path / "mcp.json", {}), settings_path=tmp_path / "s.toml", plugins=False) as host:
        options = ChatOptions(required_tool="app.multiply", max_rounds=2, max_tokens_per_round=48, seed=1)
        chat = host.chat(gemma, options)
        seen: list[Event] = []
        approvals: list[ApprovalRequired] = []

        async def never(event: ApprovalRequired) -> ApprovalAnswer:
            approvals.append(event)
            return ApprovalAnswer("deny")

        done = await chat.act("What is 6 times 7?", tools=[multiply], on_event=seen.append, on_approval=never)
    (created,) = [e for e in seen if isinstance(e, ToolCallCreated)]
    (result,) = [e for e in seen if isinstance(e, ToolCallResult)]
    assert result.tool == "app.multiply" and not result.is_error, result.text
    assert isinstance(created.arguments, dict)
    assert float(result.text) == pytest.approx(float(created.arguments["a"]) * float(created.arguments["b"]))
    assert not approvals  # the application's own functions run without asking
    assert done.stats.tool_calls == 1
    assert "app.multiply" not in host.registry  # offered for that turn only


def test_the_bundled_plugins_folder_is_the_projects() -> None:
    from mcp_host.plugins.loader import bundled_dir

    assert bundled_dir() == ROOT / "plugins"


async def test_the_readmes_plugin_example_works_as_written(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    (example,) = re.findall(r"```py\n(.*?)```", readme, re.DOTALL)
    user = tmp_path / "plugins"
    (user / "units").mkdir(parents=True)
    (user / "units" / "__init__.py").write_text(example)
    settings = tmp_path / "settings.toml"
    settings.write_text(f'[plugins]\nfolder = "{user}"\n')
    async with Host(write_config(tmp_path / "mcp.json", {}), settings_path=settings) as host:
        (status,) = [s for s in host.plugins.statuses() if s.name == "units"]
        assert status.state == "loaded", status.error
        result = await host.call_tool("units.convert", {"value": 5, "source": "km", "target": "mi"})
    assert result.text == "3.11 mi"
    assert "prints `3.11 mi`" in readme


def test_a_wheel_ships_every_bundled_plugin() -> None:
    """pyproject.toml's data-files list each bundled plugin's folder (a wheel puts them under <prefix>/share)."""
    import tomllib

    data_files = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["data-files"]
    shipped = {path for patterns in data_files.values() for pattern in patterns for path in ROOT.glob(pattern)}
    bundled = {path for path in (ROOT / "plugins").rglob("*.py") if "__pycache__" not in path.parts}
    assert bundled == shipped
    for target, patterns in data_files.items():
        assert all(pattern.startswith(f"plugins/{target.rsplit('/', 1)[-1]}/") for pattern in patterns)


async def test_what_the_review_found_stays_fixed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """sys.exit in a plugin, planted files, the `app` name, open-world reads, `/` as a root, runaway regexes."""
    from mcp_host.config.paths import implicit_roots
    from tests.test_plugin_files import load_plugin, plugin_tool

    user = tmp_path / "user"
    write_plugin(user, "exits", "raise SystemExit(0)\n")
    write_plugin(user, "app", GOOD.format(name="app", origin="user"))
    planted = write_plugin(user, "planted", GOOD.format(name="planted", origin="user"))
    planted.chmod(0o666)
    write_plugin(
        user,
        "quits",
        "from mcp_host.plugins import Plugin\nplugin = Plugin('quits')\n\n@plugin.tool\ndef stop(code: int) -> str:\n"
        "    raise SystemExit(code)\n",
    )
    manager = PluginManager(ToolRegistry(), folders=[("user", user)], entry_points=False)
    manager.load_all()
    states = {s.name: s for s in manager.statuses()}
    assert states["exits"].state == "failed" and "SystemExit" in (states["exits"].error or "")
    assert states["app"].state == "failed" and "taken" in (states["app"].error or "")
    assert states["planted"].state == "failed" and "writable by others (mode 0666)" in (states["planted"].error or "")
    stopped = await manager.call("quits.stop", {"code": 2}, timeout_s=5, roots=(tmp_path,))
    assert stopped.is_error and "SystemExit" in stopped.text  # the host lives on

    fetch = Plugin("net")

    @fetch.tool(read_only=True, open_world=True)
    def get(url: str) -> str:
        return url

    permissions = Permissions(HostSettings.model_validate({"permissions": {"allow_read_only": True}}))
    assert permissions.verdict(fetch.tools[0].spec).policy == "ask"

    monkeypatch.chdir("/")
    assert implicit_roots() == ()
    monkeypatch.chdir(tmp_path)
    assert implicit_roots() == (tmp_path.resolve(),)

    files = load_plugin("files")
    (tmp_path / "a.txt").write_text("a" * 40 + "\n")
    search = plugin_tool(files, "search")
    started = time.monotonic()
    refused = await search.call(
        {"pattern": "(a|aa)*b", "regex": True}, timeout_s=5, context=PluginContext("files", roots=(tmp_path,))
    )
    assert refused.is_error and "cannot be stopped" in refused.text and time.monotonic() - started < 1
    calc = plugin_tool(load_plugin("calc"), "calculate")
    started = time.monotonic()
    assert (await calc.call({"expression": "round(7, -3*10**7)"}, timeout_s=5)).text.strip() == "0"
    assert time.monotonic() - started < 1


def test_a_plugin_whose_import_hangs_is_reported_not_waited_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mcp_host.plugins import loader

    user = tmp_path / "user"
    write_plugin(user, "stuck", "import threading\nthreading.Event().wait()\n")
    write_plugin(user, "greet", GOOD.format(name="greet", origin="user"))
    monkeypatch.setattr(loader, "IMPORT_DEADLINE_S", 0.5)
    monkeypatch.setattr(loader.load_within, "__defaults__", (0.5,))
    manager = PluginManager(ToolRegistry(), folders=[("user", user)], entry_points=False)
    manager.load_all()
    states = {s.name: s for s in manager.statuses()}
    assert states["stuck"].state == "failed" and "did not finish within 0.5s" in (states["stuck"].error or "")
    assert states["greet"].state == "loaded"
