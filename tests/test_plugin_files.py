"""The bundled `files` plugin on real files: every tool, and every way out of the roots refused.

Also home of `load_plugin`, which the other bundled-plugin tests import.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest

from mcp_host.plugins import FunctionTool, Plugin, PluginContext
from mcp_host.tools.spec import ToolResult
from tests.conftest import ROOT

pytestmark = pytest.mark.anyio


def load_plugin(name: str) -> ModuleType:
    """`plugins/NAME/__init__.py` imported as a package, as the host's loader does, so relative imports work."""
    module_name = f"mcp_host_test_plugins_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    folder = ROOT / "plugins" / name
    spec = importlib.util.spec_from_file_location(
        module_name, folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    assert isinstance(module.plugin, Plugin) and module.plugin.name == name
    return module


def plugin_tool(module: ModuleType, name: str) -> FunctionTool:
    tool: FunctionTool = next(t for t in module.plugin.tools if t.spec.tool == name)
    return tool


files = load_plugin("files")


async def call(name: str, arguments: dict[str, Any], root: Path, config: Any = None) -> ToolResult:
    context = PluginContext(plugin="files", roots=(root,), config=config)
    return await plugin_tool(files, name).call(arguments, timeout_s=10, context=context)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A project folder, and beside it (outside the root) a folder with a secret."""
    project = tmp_path / "project"
    (project / "src" / "pkg").mkdir(parents=True)
    (project / "src" / "app.py").write_text("import os\n\ndef main():\n    print('Hello')  # TODO: greet\n")
    (project / "src" / "pkg" / "util.py").write_text("def helper():\n    return 42  # todo later\n")
    (project / "README.md").write_text("# Demo\nSee src/app.py. TODO: docs\n")
    (project / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200))
    (project / "empty").mkdir()
    (project / ".git").mkdir()
    (project / ".git" / "config").write_text("TODO in git internals\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("TODO: the secret\n")
    return project


# -- read ---------------------------------------------------------------------------------


async def test_read_numbers_lines_and_pages_a_long_file(root: Path) -> None:
    first = await call("read", {"path": "src/app.py"}, root)
    assert not first.is_error
    assert first.text.splitlines()[0] == "src/app.py (lines 1-4 of 4)"
    assert "     4\t    print('Hello')  # TODO: greet" in first.text

    (root / "long.txt").write_text("".join(f"line {n}\n" for n in range(1, 1001)))
    page = await call("read", {"path": "long.txt", "offset_lines": 10, "max_lines": 5}, root)
    assert page.text.splitlines() == [
        "long.txt (lines 11-15; more follow: read again with offset_lines=15)",
        *(f"{n:>6}\tline {n}" for n in range(11, 16)),
    ]
    end = await call("read", {"path": "long.txt", "offset_lines": 998}, root)
    assert end.text.splitlines()[0] == "long.txt (lines 999-1000 of 1000)"
    past = await call("read", {"path": "long.txt", "offset_lines": 5000}, root)
    assert past.is_error and "has 1000 lines; offset_lines=5000 is past the end" in past.text


async def test_read_bounds_characters_and_cuts_very_long_lines(root: Path) -> None:
    (root / "wide.txt").write_text("x" * 50_000 + "\nshort\n")
    wide = await call("read", {"path": "wide.txt"}, root)
    assert "[line cut at 2000 characters]" in wide.text and "     2\tshort" in wide.text
    assert len(wide.text) < 2200

    (root / "many.txt").write_text("".join(f"{'y' * 90} {n}\n" for n in range(5000)))
    capped = await call("read", {"path": "many.txt"}, root, config={"max_read_chars": 5000})
    assert "more follow" in capped.text.splitlines()[0]
    assert 4000 < len(capped.text) < 5200


async def test_read_refuses_binary_files_folders_and_missing_files(root: Path) -> None:
    binary = await call("read", {"path": "logo.png"}, root)
    assert binary.is_error and "logo.png is a binary file (216 bytes)" in binary.text
    folder = await call("read", {"path": "src"}, root)
    assert folder.is_error and "src is a folder; files.list" in folder.text
    missing = await call("read", {"path": "nope.txt"}, root)
    assert missing.is_error and "nope.txt does not exist" in missing.text
    (root / "blank.txt").write_text("")
    assert (await call("read", {"path": "blank.txt"}, root)).text == "blank.txt is empty"


# -- list ---------------------------------------------------------------------------------


async def test_list_shows_kinds_and_sizes_folders_first(root: Path) -> None:
    (root / "link.md").symlink_to(root / "README.md")
    listing = await call("list", {}, root)
    lines = listing.text.splitlines()
    assert lines[0] == ".: 6 entries"
    assert [line.split()[-1] for line in lines[1:4]] == [".git/", "empty/", "src/"]
    assert any(line.startswith("file") and line.endswith("README.md") and "34 B" in line for line in lines)
    assert any(line.startswith("link") and "link.md (symbolic link)" in line for line in lines)

    python = await call("list", {"path": "src", "pattern": "*.py"}, root)
    assert python.text.splitlines() == ["src: 1 entries matching '*.py'", f"{'file':<6} {'57 B':>9}  app.py"]
    not_folder = await call("list", {"path": "README.md"}, root)
    assert not_folder.is_error and "files.read" in not_folder.text


# -- search -------------------------------------------------------------------------------


async def test_search_finds_text_by_literal_or_regex_with_globs(root: Path) -> None:
    found = await call("search", {"pattern": "todo"}, root)
    assert found.text.splitlines()[1:] == [
        "README.md:2: See src/app.py. TODO: docs",
        "src/app.py:4: print('Hello')  # TODO: greet",
        "src/pkg/util.py:2: return 42  # todo later",
    ]
    assert "3 matching lines in 3 files" in found.text and "1 binary skipped" in found.text  # .git is skipped

    exact = await call("search", {"pattern": "TODO", "case_sensitive": True, "glob": "*.py"}, root)
    assert exact.text.splitlines()[1:] == ["src/app.py:4: print('Hello')  # TODO: greet"]
    regex = await call("search", {"pattern": r"def \w+\(\)", "regex": True, "path": "src"}, root)
    assert regex.text.splitlines()[1:] == ["src/app.py:3: def main():", "src/pkg/util.py:1: def helper():"]
    nested = await call("search", {"pattern": "return", "glob": "pkg/**/*.py", "path": "src"}, root)
    assert nested.text.splitlines()[1:] == ["src/pkg/util.py:2: return 42  # todo later"]
    braces = await call("search", {"pattern": "o", "glob": "*.{md,txt}"}, root)
    assert [line.split(":")[0] for line in braces.text.splitlines()[1:]] == ["README.md", "README.md"]
    literal = await call("search", {"pattern": "src/app.py."}, root)
    assert literal.text.splitlines()[1:] == ["README.md:2: See src/app.py. TODO: docs"]


async def test_search_is_bounded_and_reports_bad_patterns(root: Path) -> None:
    (root / "big.txt").write_text("match\n" * 500)
    limited = await call("search", {"pattern": "match", "max_results": 7}, root)
    assert len(limited.text.splitlines()) == 8 and "stopped at max_results=7" in limited.text
    (root / "huge.txt").write_text("match\n" * 400_000)  # 2.4 MB: over the limit, skipped
    huge = await call("search", {"pattern": "match", "glob": "huge.txt"}, root)
    assert "0 matching lines" in huge.text and "1 over 2 MB skipped" in huge.text
    bad = await call("search", {"pattern": "(unclosed", "regex": True}, root)
    assert bad.is_error and "not a valid regular expression" in bad.text
    too_many = await call("search", {"pattern": "x", "max_results": 5000}, root)
    assert too_many.is_error and "max_results" in too_many.text


async def test_search_stops_after_its_file_budget(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.modules[f"{files.__name__}._search"], "MAX_FILES", 2)
    result = await call("search", {"pattern": "todo"}, root)
    assert "stopped after 2 files" in result.text and "search a smaller folder" in result.text


# -- write and delete ---------------------------------------------------------------------


async def test_write_creates_folders_and_replaces_only_with_overwrite(root: Path) -> None:
    created = await call("write", {"path": "docs/notes/today.md", "content": "# Notes\nfirst\n"}, root)
    assert created.text == "created docs/notes/today.md (2 lines, 14 bytes)"
    assert (root / "docs" / "notes" / "today.md").read_text() == "# Notes\nfirst\n"

    again = await call("write", {"path": "docs/notes/today.md", "content": "other"}, root)
    assert again.is_error and "already exists; pass overwrite=true to replace it" in again.text
    replaced = await call("write", {"path": "docs/notes/today.md", "content": "é", "overwrite": True}, root)
    assert replaced.text == "replaced docs/notes/today.md (1 lines, 2 bytes)"
    assert (root / "docs" / "notes" / "today.md").read_text() == "é"

    into_folder = await call("write", {"path": "src", "content": "x", "overwrite": True}, root)
    assert into_folder.is_error and "src is a folder" in into_folder.text


async def test_write_refuses_a_file_with_other_hard_links(root: Path, tmp_path: Path) -> None:
    os.link(tmp_path / "outside" / "secret.txt", root / "alias.txt")
    result = await call("write", {"path": "alias.txt", "content": "changed", "overwrite": True}, root)
    assert result.is_error and "other hard link" in result.text
    assert (tmp_path / "outside" / "secret.txt").read_text() == "TODO: the secret\n"


async def test_delete_removes_files_links_and_empty_folders_only(root: Path, tmp_path: Path) -> None:
    (root / "out").symlink_to(tmp_path / "outside" / "secret.txt")
    assert (await call("delete", {"path": "README.md"}, root)).text == "deleted README.md"
    assert not (root / "README.md").exists()
    link = await call("delete", {"path": "out"}, root)
    assert link.text == "deleted the symbolic link out (what it pointed to is untouched)"
    assert (tmp_path / "outside" / "secret.txt").exists()
    assert (await call("delete", {"path": "empty"}, root)).text == "deleted the empty folder empty"
    full = await call("delete", {"path": "src"}, root)
    assert full.is_error and "not empty" in full.text and (root / "src" / "app.py").exists()
    itself = await call("delete", {"path": "."}, root)
    assert itself.is_error and root.exists()


# -- escapes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("read", {"path": "{}"}),
        ("list", {"path": "{}"}),
        ("search", {"pattern": "TODO", "path": "{}"}),
        ("write", {"path": "{}", "content": "pwned", "overwrite": True}),
    ],
)
@pytest.mark.parametrize(
    "escape",
    [
        "../outside/secret.txt",
        "{outside}/secret.txt",
        "../outside",
        "src/../../outside/secret.txt",
        "out_file",
        "out_dir",
    ],
)
async def test_paths_leading_outside_the_roots_are_refused(
    root: Path, tmp_path: Path, tool: str, arguments: dict[str, Any], escape: str
) -> None:
    outside = tmp_path / "outside"
    (root / "out_file").symlink_to(outside / "secret.txt")
    (root / "out_dir").symlink_to(outside)
    path = escape.format(outside=outside)
    result = await call(tool, {k: v.format(path) if isinstance(v, str) else v for k, v in arguments.items()}, root)
    assert result.is_error and "outside the folders this chat may use" in result.text
    assert (outside / "secret.txt").read_text() == "TODO: the secret\n"
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


async def test_delete_refuses_paths_outside_but_removes_a_link_that_points_out(root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (root / "out_dir").symlink_to(outside)
    for path in ("../outside/secret.txt", "out_dir/secret.txt", str(outside / "secret.txt"), "../outside", ".."):
        result = await call("delete", {"path": path}, root)
        assert result.is_error, path
    assert (outside / "secret.txt").read_text() == "TODO: the secret\n"
    assert (await call("delete", {"path": "out_dir"}, root)).text.startswith("deleted the symbolic link out_dir")
    assert (outside / "secret.txt").exists()


async def test_symlinks_are_named_as_such_and_inside_ones_are_followed(root: Path, tmp_path: Path) -> None:
    (root / "out_dir").symlink_to(tmp_path / "outside")
    through = await call("read", {"path": "out_dir/secret.txt"}, root)
    assert "leads (through a symbolic link) to" in through.text
    (root / "inside.md").symlink_to(root / "README.md")
    assert "# Demo" in (await call("read", {"path": "inside.md"}, root)).text
    absolute = await call("read", {"path": str(root / "src" / "app.py")}, root)
    assert absolute.text.startswith("src/app.py (lines 1-4 of 4)")


async def test_writing_through_symlinks_out_is_refused(root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (root / "dangling").symlink_to(outside / "new.txt")  # its target does not exist yet
    (root / "linked_dir").symlink_to(outside)
    (root / "out_file").symlink_to(outside / "secret.txt")
    for path in ("dangling", "linked_dir/new.txt", "linked_dir/sub/new.txt", "out_file"):
        for overwrite in (False, True):
            result = await call("write", {"path": path, "content": "pwned", "overwrite": overwrite}, root)
            assert result.is_error and "outside the folders" in result.text, (path, result.text)
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert (outside / "secret.txt").read_text() == "TODO: the secret\n"
    dangling_read = await call("read", {"path": "dangling"}, root)
    assert dangling_read.is_error and "outside the folders" in dangling_read.text


async def test_a_folder_swapped_for_a_symlink_after_the_check_is_not_followed(root: Path, tmp_path: Path) -> None:
    # The race the descriptor walk closes: `src` is checked, then replaced by a symlink that points out.
    paths = sys.modules[f"{files.__name__}._paths"]
    roots = paths.Roots.of([root])
    target = roots.locate("src/secret.txt")
    (root / "src").rename(root / "src_moved")
    (root / "src").symlink_to(tmp_path / "outside")
    with pytest.raises(OSError) as raised:
        with roots.open_folder(target.root, target.parts[:-1]):
            pass
    assert raised.value.errno in (40, 20)  # ELOOP, or ENOTDIR where O_DIRECTORY is checked first
    with pytest.raises(OSError):
        with roots.open_folder(target.root, target.parts[:-1], create=True):
            pass
    assert sorted(p.name for p in (tmp_path / "outside").iterdir()) == ["secret.txt"]


async def test_config_roots_replace_the_chats_and_no_roots_is_an_error(root: Path, tmp_path: Path) -> None:
    config = {"roots": [str(tmp_path / "outside")]}
    result = await call("read", {"path": "secret.txt"}, root, config=config)
    assert "TODO: the secret" in result.text
    refused = await call("read", {"path": str(root / "README.md")}, root, config=config)
    assert refused.is_error and "outside the folders" in refused.text
    with pytest.raises(ValueError, match="not an absolute path"):
        files.Config(roots=["relative/dir"])
    nothing = await plugin_tool(files, "list").call({}, timeout_s=5, context=PluginContext(plugin="files"))
    assert nothing.is_error and "no folder is open to this chat" in nothing.text


# -- the tools as the model sees them -----------------------------------------------------


def test_annotations_mark_writes_destructive_and_reads_read_only() -> None:
    hints = {t.spec.tool: t.spec.annotations or {} for t in files.plugin.tools}
    assert sorted(hints) == ["delete", "list", "read", "search", "write"]
    for name in ("read", "list", "search"):
        assert hints[name]["readOnlyHint"] is True and hints[name]["destructiveHint"] is False
    for name in ("write", "delete"):
        assert hints[name]["destructiveHint"] is True and hints[name]["readOnlyHint"] is False
    assert all(t.spec.name == f"files.{t.spec.tool}" for t in files.plugin.tools)


@pytest.mark.parametrize(
    ("tool", "valid", "invalid"),
    [
        ("read", {"path": "a.txt", "offset_lines": 10, "max_lines": 50}, {"path": "a.txt", "offset_lines": -1}),
        ("list", {"path": "src", "pattern": "*.py"}, {"path": 3}),
        ("search", {"pattern": "x", "glob": "*.py", "regex": True, "max_results": 5}, {"glob": "*.py"}),
        ("write", {"path": "a.txt", "content": "hi", "overwrite": True}, {"path": "a.txt", "contents": "hi"}),
        ("delete", {"path": "a.txt"}, {}),
    ],
)
def test_schemas_validate_real_arguments(tool: str, valid: dict[str, Any], invalid: dict[str, Any]) -> None:
    schema = plugin_tool(files, tool).spec.original_schema
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(valid, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(invalid, schema)
    assert "ctx" not in schema["properties"]
    assert all(prop.get("description") for prop in schema["properties"].values())
