"""Files the host writes for the user: private from creation, replaced atomically, changed under a lock.

    with exclusive_lock(path):                # every host and thread that changes `path` takes turns
        text = read(path); write_atomically(path, merged(text), mode=0o600)

A reader never sees half a file (the new text goes to a temporary file in the same folder, which
replaces the old one in one `rename`), and a writer that re-reads under the lock never undoes
another host's change. The lock is a sidecar `<name>.lock` rather than the file itself, because the
file is replaced on every write and a lock on the replaced inode would protect nothing.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mcp_host.errors import ConfigWriteError

PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700


def ensure_private_dir(folder: Path) -> None:
    """Create `folder` (0700 when it is new) and its parents; an existing folder keeps its mode."""
    folder.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)


def write_atomically(path: Path, text: str, *, mode: int | None = None) -> None:
    """Replace `path` with `text` through a temporary file in the same folder and `os.replace`.

    `mode` None keeps an existing file's mode and makes a new file 0600; the temporary file is
    0600 from its creation, so the text is never readable by others on the way. Raises `ConfigWriteError`.
    """
    try:
        ensure_private_dir(path.parent)
        if mode is None:
            mode = path.stat().st_mode & 0o777 if path.exists() else PRIVATE_FILE_MODE
        fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # 0600
    except OSError as exc:
        raise ConfigWriteError(f"{path}: cannot be written: {exc}", path=path) from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp_name, mode)
        os.replace(temp_name, path)
    except OSError as exc:
        Path(temp_name).unlink(missing_ok=True)
        raise ConfigWriteError(f"{path}: cannot be written: {exc}", path=path) from exc


@contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (its sidecar `<name>.lock`, created 0600) for the block.

    Blocks until other holders, in this process or another, let go. Raises `ConfigWriteError`.
    """
    lock_path = path.with_name(f"{path.name}.lock")
    try:
        ensure_private_dir(path.parent)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE_MODE)
    except OSError as exc:
        raise ConfigWriteError(f"{lock_path}: cannot be opened to lock {path.name}: {exc}", path=path) from exc
    try:
        try:
            _lock(fd)
        except OSError as exc:
            raise ConfigWriteError(f"{lock_path}: cannot be locked: {exc}", path=path) from exc
        try:
            yield
        finally:
            _unlock(fd)
    finally:
        os.close(fd)


if sys.platform == "win32":  # pragma: no cover - the host targets POSIX first
    import msvcrt

    def _lock(fd: int) -> None:
        msvcrt.locking(fd, msvcrt.LK_LOCK, 1)

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX)

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
