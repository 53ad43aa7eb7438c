"""mcp.json loading: LM Studio's keys, variable expansion, and errors that say where."""

from __future__ import annotations

import json
import sys
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import anyio
import pytest

from mcp_host import Host, ServerState
from mcp_host.config import (
    HostSettings,
    RemoteServerConfig,
    StdioServerConfig,
    add_server,
    default_config_path,
    load_config,
    load_settings,
    parse_config,
)
from mcp_host.config.check import check_config_text
from mcp_host.config.expand import UndefinedVariableError, expand_vars
from mcp_host.config.locate import Locator
from mcp_host.errors import ConfigSchemaError, ConfigSyntaxError
from tests.conftest import fixture_entry

LM_STUDIO_FILE = """{
  "mcpServers": {
    "time": {"command": "uvx", "args": ["mcp-server-time"], "env": {"TZ": "UTC"}, "timeout": 30000},
    "remote": {"url": "https://example.com/mcp", "headers": {"Authorization": "Bearer ${TOKEN}"}},
    "legacy": {"url": "http://127.0.0.1:9000/sse", "type": "sse"},
    "off": {"command": "npx", "args": ["-y", "some-server"], "disabled": true},
    "tools": {"command": "node", "args": ["server.js"], "cwd": "${HOME_DIR:-/tmp}", "somethingNew": 1}
  }
}
"""


def test_reads_lm_studio_format() -> None:
    config = parse_config(LM_STUDIO_FILE, path=Path("mcp.json"), environ={"TOKEN": "t0k"})
    time = config.servers["time"]
    assert isinstance(time, StdioServerConfig)
    assert (time.command, time.args, time.env, time.timeout_s) == ("uvx", ["mcp-server-time"], {"TZ": "UTC"}, 30.0)
    remote = config.servers["remote"]
    assert isinstance(remote, RemoteServerConfig)
    assert remote.headers == {"Authorization": "Bearer t0k"} and remote.transport == "http"
    assert config.servers["legacy"].transport == "sse"
    assert set(config.enabled) == {"time", "remote", "legacy", "tools"}
    tools = config.servers["tools"]
    assert isinstance(tools, StdioServerConfig) and tools.cwd == "/tmp"
    assert config.warnings == (
        "mcp.json: server 'tools', key 'somethingNew': unknown key, ignored (known keys: "
        "args, command, cwd, disabled, env, roots, timeout, type)",
    )


def test_expansion_rules() -> None:
    env = {"A": "1", "EMPTY": ""}
    assert expand_vars("${A}-${B:-two}-${EMPTY:-dflt}-$A-${", env) == "1-two-dflt-$A-${"
    with pytest.raises(UndefinedVariableError):
        expand_vars("${MISSING}", env)


def test_undefined_variable_names_server_and_key() -> None:
    with pytest.raises(ConfigSchemaError) as caught:
        parse_config(LM_STUDIO_FILE, path=Path("/x/mcp.json"), environ={})
    message = str(caught.value)
    assert "/x/mcp.json" in message and "server 'remote'" in message and "headers.Authorization" in message
    assert "TOKEN" in message
    assert (caught.value.server, caught.value.key) == ("remote", "headers.Authorization")


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ('{\n  "mcpServers": {\n    "a": {"command": "x",}\n  }\n}', 3, 26),
        ('{"mcpServers": {}', 1, 18),
        ("", 1, 1),
    ],
)
def test_json_errors_name_file_line_and_column(tmp_path: Path, text: str, line: int, column: int) -> None:
    path = tmp_path / "mcp.json"
    path.write_text(text)
    with pytest.raises(ConfigSyntaxError) as caught:
        load_config(path)
    assert (caught.value.line, caught.value.column) == (line, column)
    assert str(caught.value).startswith(f"{path}:{line}:{column}: invalid JSON")


def test_json_nested_too_deeply_is_a_syntax_error_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    path.write_text('{"mcpServers": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(ConfigSyntaxError, match="nested too deeply"):
        load_config(path)


@pytest.mark.parametrize(
    ("servers", "server", "key", "fragment"),
    [
        ('{"a": {"command": "x", "args": "not-a-list"}}', "a", "args", "valid list"),
        ('{"a": {"command": "x", "url": "http://h"}}', "a", "command", "both"),
        ('{"a": {"args": []}}', "a", None, "needs 'command'"),
        ('{"a": {"url": "ftp://h"}}', "a", "url", "match pattern"),
        ('{"a": {"command": "x", "timeout": -5}}', "a", "timeout", "greater than 0"),
        ('{"a": {"command": "x", "env": {"K": 1}}}', "a", "env.K", "valid string (got a number)"),
        ('{"a": {"command": "x", "disabled": "yes"}}', "a", "disabled", "valid boolean (got a string)"),
        ('{"a": {"command": "x", "timeout": "100"}}', "a", "timeout", "valid integer (got a string)"),
        ('{"a": "npx server"}', "a", None, "must be an object"),
        ('["not", "servers"]', None, "mcpServers", "object of servers"),
    ],
)
def test_schema_errors_name_server_and_key(
    tmp_path: Path, servers: str, server: str | None, key: str | None, fragment: str
) -> None:
    path = tmp_path / "mcp.json"
    path.write_text(f'{{"mcpServers": {servers}}}')
    with pytest.raises(ConfigSchemaError) as caught:
        load_config(path)
    assert caught.value.server == server and caught.value.key == key
    assert fragment in str(caught.value) and str(path) in str(caught.value)


def test_missing_file_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigSchemaError, match="file not found"):
        load_config(tmp_path / "nope.json")


def test_no_file_at_lm_studios_path_means_no_servers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MCP_HOST_CONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    lmstudio = tmp_path / ".lmstudio" / "mcp.json"  # LM Studio writes it when a first server is added
    config = load_config(lmstudio)
    assert (config.servers, config.path, config.warnings) == ({}, lmstudio, ())
    with pytest.raises(ConfigSchemaError, match="file not found"):
        load_config(lmstudio, missing_ok=False)
    with pytest.raises(ConfigSchemaError, match="file not found"):
        load_config(tmp_path / "mine.json")  # a path someone named must exist
    assert load_config(tmp_path / "mine.json", missing_ok=True).servers == {}


@pytest.mark.anyio
async def test_a_host_without_mcp_json_starts_servers_added_later(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("MCP_HOST_CONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    async with Host(settings_path=tmp_path / "settings.toml", watch=True, plugins=False) as host:
        await host.wait_settled()
        assert host.statuses() == [] and len(host.registry) == 0
        await anyio.sleep(0.5)  # let the watcher start before the file appears
        add_server(default_config_path(), "fx", fixture_entry())
        with anyio.fail_after(20):
            while "fx.echo" not in host.registry:
                await anyio.sleep(0.1)
        assert [(status.name, status.state) for status in host.statuses()] == [("fx", ServerState.READY)]


def test_secrets_never_appear_in_repr() -> None:
    config = parse_config(
        '{"mcpServers": {"a": {"command": "x", "env": {"API_KEY": "sk-secret"}},'
        ' "b": {"url": "https://h/mcp", "headers": {"Authorization": "Bearer sk-other"}}}}',
        path=Path("mcp.json"),
    )
    text = repr(config) + str(config)
    assert "sk-secret" not in text and "sk-other" not in text
    assert "API_KEY" in text and "Authorization" in text


def test_default_path_and_its_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MCP_HOST_CONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_config_path() == tmp_path / ".lmstudio" / "mcp.json"
    monkeypatch.setenv("MCP_HOST_CONFIG", str(tmp_path / "other.json"))
    assert default_config_path() == tmp_path / "other.json"


def test_settings_are_read_with_sections_of_later_versions(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    assert load_settings(path) == HostSettings()
    assert not path.exists()  # the defaults, and no file written
    path.write_text("[servers]\ncall_timeout_s = 5\n\n[future]\nflag = true\n")
    settings = load_settings(path)
    assert settings.servers.call_timeout_s == 5


def test_settings_errors(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text("[servers]\ncall_timeout_s = \n")
    with pytest.raises(ConfigSyntaxError) as caught:
        load_settings(path)
    assert caught.value.line == 2
    path.write_text("[servers]\ncall_timeout_s = -1\n")
    with pytest.raises(ConfigSchemaError, match="servers.call_timeout_s"):
        load_settings(path)


# -- hostile texts: the editor's API checks what any page on the loopback port sends, and the watcher what lands on disk

MIB = 1024 * 1024
BIG_NUMBER = "4" * 4301  # one digit past Python's default limit on an int's digits


def text_of_size(build: Callable[[int], str], size: int = MIB) -> str:
    """The longest `build(n)` of at most `size` characters."""
    low, high = 1, size
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if len(build(middle)) <= size else (low, middle - 1)
    return build(low)


class WorkExceeded(Exception):
    pass


@contextmanager
def work_budget(calls: int, memory_bytes: int) -> Iterator[None]:
    """Raise `WorkExceeded` once the code inside has made more than `calls` function calls (Python's and C's)
    or holds more than `memory_bytes`: a bound on work that a slow machine cannot break, and that stops a
    quadratic run early instead of waiting for it."""
    made = 0

    def count(_frame: FrameType, event: str, _arg: object) -> None:
        nonlocal made
        if event in ("call", "c_call"):
            made += 1
            if made > calls:
                raise WorkExceeded(f"more than {calls} calls")
            if made % 1024 == 0 and tracemalloc.get_traced_memory()[0] > memory_bytes:
                raise WorkExceeded(f"more than {memory_bytes} bytes after {made} calls")

    tracemalloc.start()
    sys.setprofile(count)
    try:
        yield
    finally:
        sys.setprofile(None)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    # Also when the raise was swallowed (a destructor's exception is only reported): the count stands.
    assert made <= calls and peak <= memory_bytes, f"{made} calls, {peak} bytes at the peak"


WORST_TEXTS = {
    # A header name of half a million dots: every dotted prefix of it was built (quadratic: 87 KiB took 2.5 GB).
    "dotted header name": lambda n: json.dumps({"mcpServers": {"s": {"url": "https://x", "headers": {"a." * n: 1}}}}),
    "dotted auth key": lambda n: json.dumps({"mcpServers": {"s": {"url": "https://x", "auth": {"a." * n: 1}}}}),
    # A warning each: each one re-read the whole text and re-sorted every name (45 KiB took 29 s).
    "a server each with an unknown key": lambda n: json.dumps(
        {"mcpServers": {f"s{i}": {"command": "c", "zz": 1} for i in range(n)}}
    ),
    "one server of unknown keys": lambda n: json.dumps(
        {"mcpServers": {"s": {"command": "c", **{f"k{i}": 0 for i in range(n)}}}}
    ),
    "a server each with an unset variable": lambda n: json.dumps(
        {"mcpServers": {f"s{i}": {"command": "c", "env": {"A": "${NOPE}"}} for i in range(n)}}
    ),
}


@pytest.mark.parametrize("build", WORST_TEXTS.values(), ids=WORST_TEXTS.keys())
def test_the_worst_texts_at_the_editors_limit_cost_work_in_proportion(build: Callable[[int], str]) -> None:
    text = text_of_size(build)
    with work_budget(calls=4 * len(text), memory_bytes=100 * MIB):  # about 2 calls a character are needed
        check = check_config_text(text, path=Path("/x/mcp.json"), environ={})
    problems = check.errors + check.warnings
    assert 1 <= len(problems) <= 52  # 50 unknown keys named, the rest counted, and an unset variable
    assert all(len(problem.message) < 600 for problem in problems)  # names shortened, hints kept
    assert all(len(problem.key or "") <= 250 and len(problem.server or "") <= 250 for problem in problems)
    assert all(problem.line is not None for problem in problems if problem.server is not None)
    if len(problems) > 50:
        assert problems[50].message.startswith("/x/mcp.json: and ") and "more unknown keys" in problems[50].message


def test_a_long_name_is_shortened_in_messages_and_placed_in_full() -> None:
    header = "X-" + "a." * 1000
    text = json.dumps({"mcpServers": {"s": {"url": "https://x", "headers": {"a": "b", header: 1}}}}, indent=1)
    [error] = check_config_text(text, path=Path("/x/mcp.json"), environ={}).errors
    assert error.key is not None and error.key.startswith("headers.X-a.a.") and "(2010 characters)" in error.key
    assert "(2010 characters)': Input should be a valid string (got a number)" in error.message
    assert error.line is not None and text.splitlines()[error.line - 1].strip().startswith(f'"{header}"')


def test_a_number_python_cannot_convert_is_a_syntax_error_at_its_place(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    path.write_text(
        '{"mcpServers": {"s": {"command": "c", "note": "' + "7" * 5000 + '",\n  "timeout": ' + BIG_NUMBER + "}}}"
    )
    with pytest.raises(ConfigSyntaxError) as caught:
        load_config(path)
    assert (caught.value.line, caught.value.column) == (2, 14)
    assert str(caught.value) == f"{path}:2:14: invalid JSON: a number of more than 4300 digits"
    [error] = check_config_text(path.read_text(), path=path).errors
    assert (error.line, error.column) == (2, 14) and BIG_NUMBER not in error.message


def test_a_deeply_nested_value_is_a_schema_error_not_a_crash() -> None:
    nested = '{"a": ' * 900 + '"${X}"' + "}" * 900  # json.loads reads it; walking it with recursion did not
    with pytest.raises(ConfigSchemaError, match="key 'env.a': Input should be a valid string"):
        parse_config('{"mcpServers": {"s": {"command": "c", "env": ' + nested + "}}}", path=Path("/x"), environ={})


def test_places_are_found_in_text_json_refuses_to_read() -> None:
    # A locator is only asked of parsed text; if the text refuses a second reading, it answers what it found.
    text = '{"mcpServers": {"s": {"env": {"K": ' + BIG_NUMBER + '}, "args": [1]}}}'
    places = Locator(text)
    assert places.locate("s", "env.K") == (1, 31)
    assert places.locate("s", "args.0") == (1, 17)  # the server: its `env` cannot be read past


def test_errors_name_the_kind_of_a_value_never_the_value() -> None:
    for value, kind in (("4242424242", "a number"), ("-42.5", "a number"), ("true", "a boolean"), ("null", "null")):
        with pytest.raises(ConfigSchemaError) as caught:
            parse_config(f'{{"mcpServers": {{"s": {{"command": "c", "env": {{"PIN": {value}}}}}}}}}', path=Path("/x"))
        assert str(caught.value) == f"/x: server 's', key 'env.PIN': Input should be a valid string (got {kind})"
