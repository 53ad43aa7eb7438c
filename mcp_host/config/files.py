"""Files the host writes for the user: private from creation, replaced atomically, changed under a lock.

    with exclusive_lock(path):                # every host and thread that changes `path` takes turns
        text = read_private(path); write_atomically(path, merged(text), mode=0o600)

A reader never sees half a file (the new text goes to a temporary file in the same folder, which
replaces the old one in one `rename`), and a writer that re-reads under the lock never undoes
another host's change. The lock is a sidecar `<name>.lock` rather than the file itself, because the
file is replaced on every write and a lock on the replaced inode would protect nothing.

Whoever can write the folder could plant links and files there, so nothing here follows a symbolic
link in the last step of a path: the lock is opened with `O_NOFOLLOW`, the temporary file is made with
`O_EXCL|O_NOFOLLOW` (`mkstemp`) and its mode set through its descriptor, and `rename` replaces a link
at the target rather than writing where it points. `read_private` trusts a file only when it is a
regular file of this user that nobody else may change (POSIX; on Windows it reads the file as it is).
"""

from __future__ import annotations

import errno
import os
import stat
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mcp_host.errors import ConfigError, ConfigWriteError

PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700


def ensure_private_dir(folder: Path) -> None:
    """Create `folder` (0700 when it is new) and its parents; an existing folder keeps its mode."""
    folder.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)


def read_private(path: Path) -> bytes | None:
    """The bytes of `path`, a file that only this user can change; None when there is none.

        raw = read_private(Path("~/.config/mcp-host/settings.approvals.json").expanduser())

    Raises `ConfigError` naming the path and the reason when it cannot be read or is not to be
    trusted: a symbolic link, not a regular file (a FIFO is never waited on), owned by another user,
    or writable by its group or others.
    """
    try:
        fd = os.open(path, os.O_RDONLY | _NO_FOLLOW | _NO_WAIT)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ConfigError(f"{path}: is a symbolic link, which the host does not follow", path=path) from exc
        raise ConfigError(f"{path}: cannot be read: {exc}", path=path) from exc
    with os.fdopen(fd, "rb") as handle:
        problem = _distrust(os.fstat(fd))
        if problem is not None:
            raise ConfigError(f"{path}: {problem}", path=path)
        try:
            return handle.read()
        except OSError as exc:
            raise ConfigError(f"{path}: cannot be read: {exc}", path=path) from exc


def write_atomically(path: Path, text: str, *, mode: int | None = None) -> None:
    """Replace `path` with `text` through a temporary file in the same folder and `os.replace`.

    `mode` None keeps an existing file's mode and makes a new file 0600; the temporary file is
    0600 from its creation, so the text is never readable by others on the way. A symbolic link at
    `path` is replaced, never written through. Raises `ConfigWriteError`.
    """
    try:
        ensure_private_dir(path.parent)
        if mode is None:
            mode = path.stat().st_mode & 0o777 if path.exists() else PRIVATE_FILE_MODE
        fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # 0600, O_EXCL
    except OSError as exc:
        raise ConfigWriteError(f"{path}: cannot be written: {exc}", path=path) from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
            _set_mode(handle.fileno(), temp_name, mode)
        os.replace(temp_name, path)
    except OSError as exc:
        Path(temp_name).unlink(missing_ok=True)
        raise ConfigWriteError(f"{path}: cannot be written: {exc}", path=path) from exc


@contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (its sidecar `<name>.lock`, created 0600) for the block.

    Blocks until other holders, in this process or another, let go. Raises `ConfigWriteError`,
    also when the sidecar is a symbolic link or not a regular file (whatever it points to is left alone).
    """
    lock_path = path.with_name(f"{path.name}.lock")
    try:
        ensure_private_dir(path.parent)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | _NO_FOLLOW | _NO_WAIT, PRIVATE_FILE_MODE)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            message = f"{lock_path}: is a symbolic link, which the host does not follow; remove it to save answers"
        else:
            message = f"{lock_path}: cannot be opened to lock {path.name}: {exc}"
        raise ConfigWriteError(message, path=path) from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ConfigWriteError(f"{lock_path}: is not a regular file; remove it to save answers", path=path)
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

    _NO_FOLLOW = os.O_NOINHERIT | os.O_BINARY
    _NO_WAIT = 0

    def _distrust(_status: os.stat_result) -> str | None:
        return None  # Windows guards a user's files with ACLs, which this does not read

    def _set_mode(_fd: int, name: str, mode: int) -> None:
        os.chmod(name, mode)

    def _lock(fd: int) -> None:
        msvcrt.locking(fd, msvcrt.LK_LOCK, 1)

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    _NO_FOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC
    _NO_WAIT = os.O_NONBLOCK  # opening a planted FIFO returns at once; `flock` still waits for the lock

    def _distrust(status: os.stat_result) -> str | None:
        """Why a file with this `fstat` is not to be trusted, or None."""
        if not stat.S_ISREG(status.st_mode):
            return "is not a regular file"
        if status.st_uid != os.getuid():
            return f"is owned by uid {status.st_uid}, not by this user (uid {os.getuid()})"
        if status.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return f"is writable by others (mode {status.st_mode & 0o777:04o}); `chmod 600` it to trust it"
        return None

    def _set_mode(fd: int, _name: str, mode: int) -> None:
        os.fchmod(fd, mode)  # by descriptor: a link swapped in under the temporary name changes nothing

    def _lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX)

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
