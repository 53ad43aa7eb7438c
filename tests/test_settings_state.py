"""The user's settings stay the user's: "always" answers live in their own private file, shared safely."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mcp_host.agent.permissions import Permissions, fingerprint
from mcp_host.config.approvals import AlwaysAllowed, ApprovalStore, approvals_path
from mcp_host.config.settings import load_settings
from mcp_host.errors import ConfigError, ConfigSyntaxError, ConfigWriteError
from mcp_host.tools.spec import ToolSpec

USER_SETTINGS = """# my settings, typed by hand
[servers]
call_timeout_s = 20   # slow laptop
"""

USER_EDIT = """
# added while the host was running
[permissions.tools]
"fs.delete" = "deny"
"""


def spec(tool: str, description: str = "does a thing") -> ToolSpec:
    schema = {"type": "object", "properties": {}}
    return ToolSpec(server="fs", tool=tool, description=description, input_schema=schema, original_schema=schema)


def mode_of(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_always_never_touches_the_settings_the_user_edited_meanwhile(tmp_path: Path) -> None:
    settings_path = tmp_path / "settings.toml"
    settings_path.write_text(USER_SETTINGS)
    permissions = Permissions.load(settings_path)
    with settings_path.open("a") as handle:  # the user edits the file while the host runs
        handle.write(USER_EDIT)
    before = settings_path.read_bytes()

    permissions.remember(spec("write"))

    assert settings_path.read_bytes() == before  # the deny rule and both comments, byte for byte
    assert permissions.verdict(spec("write")).reason == "always allowed earlier"
    assert load_settings(settings_path).permissions.tools == {"fs.delete": "deny"}
    saved = json.loads(approvals_path(settings_path).read_text())
    assert saved == {"always": [{"server": "fs", "tool": "write", "fingerprint": fingerprint(spec("write"))}]}


def test_files_the_host_creates_are_private_from_creation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings_path = tmp_path / "new" / "settings.toml"  # neither the folder nor the settings exist yet
    modes_before_rename: list[int] = []
    real_replace = os.replace

    def replace_spying(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
        modes_before_rename.append(mode_of(Path(source)))
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace_spying)
    Permissions.load(settings_path).remember(spec("write"))

    approvals = approvals_path(settings_path)
    assert approvals.name == "settings.approvals.json"
    assert modes_before_rename == [0o600]
    assert mode_of(approvals) == 0o600
    assert mode_of(approvals.with_name(approvals.name + ".lock")) == 0o600
    assert mode_of(settings_path.parent) == 0o700
    assert not settings_path.exists()  # the settings file is never written, not even created


def test_two_hosts_on_the_same_files_keep_and_see_each_others_answers(tmp_path: Path) -> None:
    settings_path = tmp_path / "settings.toml"
    settings_path.write_text(USER_SETTINGS)
    first, second = Permissions.load(settings_path), Permissions.load(settings_path)
    assert first.verdict(spec("read")).policy == "ask"  # looked up (and cached) before the other answers

    first.remember(spec("write"))
    second.remember(spec("read"))

    for permissions in (first, second):
        assert permissions.verdict(spec("write")).policy == "allow"
        assert permissions.verdict(spec("read")).policy == "allow"
    saved = ApprovalStore(approvals_path(settings_path)).entries()
    assert sorted(entry.tool for entry in saved) == ["read", "write"]
    assert settings_path.read_text() == USER_SETTINGS


def test_a_changed_tool_asks_again_and_its_new_answer_replaces_the_old(tmp_path: Path) -> None:
    permissions = Permissions.load(tmp_path / "settings.toml")
    permissions.remember(spec("write"))
    changed = spec("write", description="does a different thing")
    assert permissions.verdict(changed).policy == "ask"
    permissions.remember(changed)
    assert permissions.approvals is not None
    assert [e.fingerprint for e in permissions.approvals.entries()] == [fingerprint(changed)]


def test_answers_saved_in_the_settings_by_earlier_versions_still_count(tmp_path: Path) -> None:
    settings_path = tmp_path / "settings.toml"
    old = f'[[permissions.always]]\nserver = "fs"\ntool = "write"\nfingerprint = "{fingerprint(spec("write"))}"\n'
    settings_path.write_text(old)
    permissions = Permissions.load(settings_path)
    assert permissions.verdict(spec("write")).reason == "always allowed earlier"
    permissions.remember(spec("read"))
    assert settings_path.read_text() == old


def test_policies_in_the_settings_win_over_always(tmp_path: Path) -> None:
    settings_path = tmp_path / "settings.toml"
    settings_path.write_text('[permissions.tools]\n"fs.write" = "deny"\n')
    permissions = Permissions.load(settings_path)
    permissions.remember(spec("write"))
    assert permissions.verdict(spec("write")).policy == "deny"


def test_keys_of_later_versions_in_the_approvals_file_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "settings.approvals.json"
    path.write_text('{"version": 7, "always": []}')
    ApprovalStore(path).add(AlwaysAllowed(server="fs", tool="write", fingerprint="f"))
    assert json.loads(path.read_text())["version"] == 7


def test_a_broken_approvals_file_is_reported_ignored_and_never_overwritten(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings_path = tmp_path / "settings.toml"
    path = approvals_path(settings_path)
    broken = '{"always": [{"server": "fs",'
    path.write_text(broken)
    permissions = Permissions.load(settings_path)
    with caplog.at_level(logging.WARNING):
        assert permissions.verdict(spec("write")).policy == "ask"
        assert permissions.verdict(spec("read")).policy == "ask"
        permissions.remember(spec("write"))
    reports = [r.getMessage() for r in caplog.records if "invalid JSON" in r.getMessage()]
    assert len(reports) == 2  # once for the lookups, once for the answer that could not be saved
    assert all(str(path) in report for report in reports)
    assert path.read_text() == broken
    assert permissions.verdict(spec("write")).policy == "allow"  # the answer holds while the host runs
    with pytest.raises(ConfigSyntaxError):
        ApprovalStore(path).add(AlwaysAllowed(server="fs", tool="x", fingerprint="f"))


def test_concurrent_writers_in_threads_lose_nothing(tmp_path: Path) -> None:
    settings_path = tmp_path / "settings.toml"
    writers, answers_each = 8, 10
    start = threading.Barrier(writers)
    failures: list[BaseException] = []

    def answer(writer: int) -> None:
        permissions = Permissions.load(settings_path)  # one host per thread, each with its own store
        try:
            start.wait(timeout=30)
            for index in range(answers_each):
                permissions.remember(spec(f"tool_{writer}_{index}"))
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            failures.append(exc)

    threads = [threading.Thread(target=answer, args=(writer,)) for writer in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures and not any(thread.is_alive() for thread in threads)
    saved = ApprovalStore(approvals_path(settings_path)).entries()
    assert len(saved) == writers * answers_each
    assert {e.tool for e in saved} == {f"tool_{w}_{i}" for w in range(writers) for i in range(answers_each)}


WRITER = """
import sys
from pathlib import Path
from mcp_host.config.approvals import AlwaysAllowed, ApprovalStore
store = ApprovalStore(Path(sys.argv[1]))
sys.stdin.readline()  # start together
for index in range(int(sys.argv[3])):
    store.add(AlwaysAllowed(server="fs", tool=f"{sys.argv[2]}_{index}", fingerprint="f"))
"""


def test_concurrent_writers_in_processes_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "settings.approvals.json"
    names, answers_each = ["a", "b", "c"], 15
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), name, str(answers_each)], stdin=subprocess.PIPE, text=True
        )
        for name in names
    ]
    for process in processes:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.close()
    assert [process.wait(timeout=60) for process in processes] == [0] * len(names)
    saved = ApprovalStore(path).entries()
    assert {e.tool for e in saved} == {f"{name}_{i}" for name in names for i in range(answers_each)}
    assert mode_of(path) == 0o600


def test_a_symlinked_lock_is_refused_and_its_target_never_created(tmp_path: Path) -> None:
    path = tmp_path / "settings.approvals.json"
    target = tmp_path / "elsewhere" / "target"
    target.parent.mkdir()
    lock = path.with_name(path.name + ".lock")
    lock.symlink_to(target)
    with pytest.raises(ConfigWriteError, match="symbolic link") as caught:
        ApprovalStore(path).add(AlwaysAllowed(server="fs", tool="write", fingerprint="f"))
    assert str(lock) in str(caught.value)
    assert not target.exists() and not path.exists()


def test_a_lock_that_is_not_a_regular_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "settings.approvals.json"
    os.mkfifo(path.with_name(path.name + ".lock"))
    with pytest.raises(ConfigWriteError, match="not a regular file"):
        ApprovalStore(path).add(AlwaysAllowed(server="fs", tool="write", fingerprint="f"))
    assert not path.exists()


def identity(path: Path) -> tuple[int, int, int, int, int]:
    status = path.lstat()
    return status.st_ino, status.st_mode, status.st_uid, status.st_size, status.st_mtime_ns


def make_world_writable(path: Path) -> str:
    path.chmod(0o666)
    return "mode 0666"


def make_a_symlink(path: Path) -> str:
    target = path.with_name("planted.json")
    path.rename(target)
    path.symlink_to(target)
    return "symbolic link"


def make_a_fifo(path: Path) -> str:
    path.unlink()
    os.mkfifo(path, 0o600)  # opening it for reading would wait for a writer forever
    return "not a regular file"


def give_to_another_user(path: Path) -> str:
    if os.getuid() != 0:
        pytest.skip("only root can give a file away")
    os.chown(path, 12345, 12345)
    return "owned by uid 12345"


@pytest.mark.parametrize("plant", [make_world_writable, make_a_symlink, make_a_fifo, give_to_another_user])
def test_approvals_that_others_could_have_planted_are_ignored_reported_once_and_never_written(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, plant: Callable[[Path], str]
) -> None:
    settings_path = tmp_path / "settings.toml"
    path = approvals_path(settings_path)
    planted = {"always": [{"server": "fs", "tool": "write", "fingerprint": fingerprint(spec("write"))}]}
    path.write_text(json.dumps(planted))
    path.chmod(0o600)
    reason = plant(path)
    before = {p.name: identity(p) for p in tmp_path.iterdir()}
    permissions = Permissions.load(settings_path)
    with caplog.at_level(logging.WARNING):
        assert permissions.verdict(spec("write")).policy == "ask"
        assert permissions.verdict(spec("write")).policy == "ask"
        with pytest.raises(ConfigError, match=reason):
            ApprovalStore(path).add(AlwaysAllowed(server="fs", tool="read", fingerprint="f"))
    reports = [r.getMessage() for r in caplog.records if reason in r.getMessage()]
    assert len(reports) == 1 and str(path) in reports[0] and "ignored" in reports[0]
    after = {p.name: identity(p) for p in tmp_path.iterdir()}
    changed = {name for name in before if before[name] != after.get(name)}
    assert not changed  # neither the planted file nor what it points to was written or replaced


def test_approvals_count_again_once_the_file_is_private_again(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings_path = tmp_path / "settings.toml"
    permissions = Permissions.load(settings_path)
    permissions.remember(spec("write"))
    path = approvals_path(settings_path)
    path.chmod(0o620)
    with caplog.at_level(logging.WARNING):
        assert permissions.verdict(spec("write")).policy == "ask"
    assert any("mode 0620" in r.getMessage() for r in caplog.records)
    path.chmod(0o600)
    assert permissions.verdict(spec("write")).policy == "allow"


def test_a_link_swapped_in_for_the_temporary_file_is_never_chmodded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    victim = tmp_path / "victim"
    victim.write_text("shared")
    victim.chmod(0o644)
    real_mkstemp = tempfile.mkstemp

    def mkstemp_then_swap(*args: Any, **kwargs: Any) -> tuple[int, str]:
        fd, name = real_mkstemp(*args, **kwargs)
        other = name + ".moved"
        os.rename(name, other)  # an attacker moves the temporary file away and plants a link under its name
        os.symlink(victim, name)
        return fd, name

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp_then_swap)
    ApprovalStore(tmp_path / "settings.approvals.json").add(AlwaysAllowed(server="fs", tool="w", fingerprint="f"))
    assert mode_of(victim) == 0o644 and victim.read_text() == "shared"
