"""Finding and importing plugins: the project's `plugins/` folder, the user's folder, installed packages.

    sources = discover([("bundled", bundled_dir()), ("user", user_plugins_dir())])
    loaded = [load(source) for source in sources]     # never raises: a failure is `loaded.error`

A folder plugin is `NAME/__init__.py` (imported as a package, so its relative imports work), a
file plugin is `NAME.py`; names starting with `_` or `.` are skipped. An installed package
registers an entry point in the group `mcp_host.plugins` that names a `Plugin` or a module
defining `plugin`. A plugin that fails to import, to define its tools, or to say `plugin = Plugin(...)`
is reported with the file, the line and the error, and nothing else is affected.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import stat
import sys
import threading
import traceback
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Literal

from mcp_host.plugins.api import Plugin
from mcp_host.plugins.functions import PLUGIN_FAILURES

logger = logging.getLogger(__name__)

Origin = Literal["bundled", "user", "installed"]
ENTRY_POINT_GROUP = "mcp_host.plugins"
MODULE_PREFIX = "mcp_host_plugins"


def bundled_dir() -> Path | None:
    """The project's own `plugins/` folder: next to the `mcp_host` package in a checkout or an editable
    install, else where a wheel puts it (`<prefix>/share/mcp-host/plugins`)."""
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file() and (checkout / "plugins").is_dir():  # not site-packages/plugins
        return checkout / "plugins"
    installed = Path(sys.prefix) / "share" / "mcp-host" / "plugins"
    return installed if installed.is_dir() else None


@dataclass(frozen=True)
class PluginSource:
    """Where one plugin comes from: a file or folder, or an installed package's entry point."""

    key: str  # the folder / file / entry point name (the plugin's own name may differ)
    origin: Origin
    path: Path | None = None  # the module file: NAME/__init__.py or NAME.py
    entry_point: metadata.EntryPoint | None = None

    @property
    def where(self) -> str:
        if self.path is not None:
            return str(self.path)
        assert self.entry_point is not None
        return f"{self.entry_point.value} (entry point {self.entry_point.name!r})"

    def signature(self) -> tuple[tuple[str, int, int], ...]:
        """What changes when the plugin's files change: (path, mtime, size) of each .py file."""
        if self.path is None:
            return ()
        root = self.path.parent if self.path.name == "__init__.py" else self.path
        files = sorted(root.rglob("*.py")) if root.is_dir() else [root]
        stamps = []
        for file in files:
            try:
                stat = file.stat()
            except OSError:
                continue
            stamps.append((str(file), stat.st_mtime_ns, stat.st_size))
        return tuple(stamps)


@dataclass
class LoadedPlugin:
    source: PluginSource
    plugin: Plugin | None = None
    error: str | None = None  # "FILE:LINE: ErrorType: message"
    signature: tuple[tuple[str, int, int], ...] = ()


def discover(folders: list[tuple[Origin, Path | None]], *, entry_points: bool = True) -> list[PluginSource]:
    """Every plugin in the folders (in their order), then every installed one."""
    sources: list[PluginSource] = []
    for origin, folder in folders:
        if folder is None or not folder.is_dir():
            continue
        for child in sorted(folder.iterdir()):
            if child.name.startswith(("_", ".")):
                continue
            if child.is_dir() and (child / "__init__.py").is_file():
                sources.append(PluginSource(child.name, origin, child / "__init__.py"))
            elif child.is_file() and child.suffix == ".py":
                sources.append(PluginSource(child.stem, origin, child))
    if entry_points:
        for entry in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            sources.append(PluginSource(entry.name, "installed", entry_point=entry))
    return sources


def _module_name(source: PluginSource) -> str:
    safe = "".join(c if c.isalnum() else "_" for c in source.key)
    return f"{MODULE_PREFIX}.{source.origin}.{safe}"


def _forget(name: str) -> None:
    """Drop a plugin's modules (and its submodules) so the next import reads the files again."""
    for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[module]


def _where_it_failed(exc: BaseException, source: PluginSource) -> str:
    """`FILE:LINE: Type: message`, at the deepest frame inside the plugin (else the deepest at all)."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{exc.filename}:{exc.lineno}: SyntaxError: {exc.msg}"
    frames = traceback.extract_tb(exc.__traceback__)
    root = None
    if source.path is not None:
        root = source.path.parent if source.path.name == "__init__.py" else source.path
    inside = [f for f in frames if root is not None and Path(f.filename).resolve().is_relative_to(root.resolve())]
    chosen = inside or list(frames)
    place = f"{chosen[-1].filename}:{chosen[-1].lineno}: " if chosen else f"{source.where}: "
    return f"{place}{type(exc).__name__}: {exc}"


def _distrusted(source: PluginSource) -> str | None:
    """Why the user folder's plugin must not run: its files or folders writable by others, or another user's.

    Like the approvals file: code anyone else could have changed is not run as this user. Bundled and
    installed plugins live where the host itself does.
    """
    if source.origin != "user" or source.path is None or sys.platform == "win32":
        return None
    root = source.path.parent if source.path.name == "__init__.py" else source.path
    uid = os.getuid()
    for path in [root.parent, root, *(sorted(root.rglob("*")) if root.is_dir() else [])]:
        try:
            status = path.lstat()
        except OSError:
            continue
        if stat.S_ISLNK(status.st_mode):
            continue
        if status.st_uid not in (uid, 0):
            return f"{path} is owned by uid {status.st_uid}, not by this user (uid {uid})"
        if status.st_mode & (stat.S_IWOTH | stat.S_IWGRP):
            return f"{path} is writable by others (mode {status.st_mode & 0o777:04o}); `chmod go-w` it to trust it"
    return None


def _import(source: PluginSource) -> object:
    if source.entry_point is not None:
        return source.entry_point.load()
    assert source.path is not None
    name = _module_name(source)
    _forget(name)
    locations = [str(source.path.parent)] if source.path.name == "__init__.py" else None
    spec = importlib.util.spec_from_file_location(name, source.path, submodule_search_locations=locations)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {source.path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        _forget(name)
        raise
    return module


IMPORT_DEADLINE_S = 15.0


def load_within(source: PluginSource, deadline_s: float = IMPORT_DEADLINE_S) -> LoadedPlugin:
    """`load()` in a thread of its own: a plugin whose import does not finish in time is reported as failed
    (its thread is left to end by itself), so a hanging import cannot hang the host's start."""
    outcome: list[LoadedPlugin] = []
    thread = threading.Thread(target=lambda: outcome.append(load(source)), name=f"plugin {source.key}", daemon=True)
    thread.start()
    thread.join(deadline_s)
    if outcome:
        return outcome[0]
    error = f"{source.where}: its import did not finish within {deadline_s:g}s; not loaded"
    logger.warning("plugin %s failed to load: %s", source.key, error)
    return LoadedPlugin(source, error=error, signature=source.signature())


def load(source: PluginSource) -> LoadedPlugin:
    """Import one plugin; any failure is reported in `error`, never raised."""
    loaded = LoadedPlugin(source, signature=source.signature())
    if (distrust := _distrusted(source)) is not None:
        loaded.error = f"{source.where}: {distrust}; not loaded"
        logger.warning("plugin %s refused: %s", source.key, loaded.error)
        return loaded
    try:
        found = _import(source)
    except PLUGIN_FAILURES as exc:  # even sys.exit() is its state, not the host's end
        loaded.error = _where_it_failed(exc, source)
        logger.warning("plugin %s failed to load: %s", source.key, loaded.error)
        return loaded
    plugin = found if isinstance(found, Plugin) else getattr(found, "plugin", None)
    if not isinstance(plugin, Plugin):
        what = "defines no `plugin`" if isinstance(found, ModuleType) else f"gives {type(found).__name__}, not a Plugin"
        loaded.error = f'{source.where}: {what}: write `plugin = Plugin("{source.key}")` at module level'
        logger.warning("plugin %s failed to load: %s", source.key, loaded.error)
        return loaded
    loaded.plugin = plugin
    return loaded
