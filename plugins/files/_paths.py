"""Where the files plugin may reach: inside the roots once every symlink is resolved, opened without following one.

    roots = Roots.of([Path("/work/project")])
    target = roots.locate("src/app.py")              # Target(root=/work/project, parts=("src", "app.py"))
    with roots.open_folder(target.root, target.parts[:-1]) as folder:
        fd = os.open(target.parts[-1], os.O_RDONLY | os.O_NOFOLLOW, dir_fd=folder)

`locate` resolves symlinks and `..` (`os.path.realpath`) and refuses a path that ends up outside every
root: `../x`, `/etc/passwd`, a symlink (to a file or a folder, dangling or not) that points out.

Checking a path and then opening it by name leaves a gap (TOCTOU): in between, a folder on the way can be
swapped for a symlink that points out. So nothing is opened by its full path: `open_folder` starts at the
root's descriptor and opens each component with `O_NOFOLLOW` relative to the previous one, and callers open
the last component with `O_NOFOLLOW` too. A symlink that appears after the check fails the open (ELOOP or
ENOTDIR) instead of being followed. POSIX only: it needs `dir_fd` and `O_NOFOLLOW`.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


class FilesError(Exception):
    """A request the files plugin refuses or cannot carry out; the message is for the model."""


class OutsideRootsError(FilesError):
    """The path leads outside every folder the chat may use."""


@dataclass(frozen=True)
class Target:
    """A checked path: the (real) root it is in, and its components below it with symlinks resolved."""

    root: Path
    parts: tuple[str, ...]
    shown: str  # how results name it: relative to the first root, else absolute

    @property
    def name(self) -> str:
        if not self.parts:
            raise FilesError(f"{self.shown!r} is the root folder itself")
        return self.parts[-1]


@dataclass(frozen=True)
class Roots:
    """The folders the plugin may touch, as real paths; relative paths are taken from the first."""

    paths: tuple[Path, ...]

    @classmethod
    def of(cls, folders: Sequence[Path]) -> Roots:
        """Raises `FilesError` when there is no folder, or one does not exist."""
        if not folders:
            raise FilesError("no folder is open to this chat, so there are no files to work with")
        real: list[Path] = []
        for folder in folders:
            path = Path(os.path.realpath(folder.expanduser()))
            if not path.is_dir():
                raise FilesError(f"the folder {str(folder)!r} this chat may use does not exist")
            real.append(path)
        return cls(tuple(dict.fromkeys(real)))

    def locate(self, raw: str, *, follow_last: bool = True) -> Target:
        """`raw` checked against the roots. With `follow_last=False` a symlink at the end is the target itself.

        Raises `OutsideRootsError` for a path that leads out, `FilesError` for one that names nothing.
        """
        if "\x00" in raw:
            raise FilesError("a path cannot contain a NUL character")
        given = Path(raw or ".").expanduser()
        joined = given if given.is_absolute() else self.paths[0] / given
        if follow_last:
            real = Path(os.path.realpath(joined))
        else:
            if joined.name in ("", ".."):
                raise FilesError(f"{raw!r} does not name a file or folder (it ends in {joined.name or '/'!r})")
            real = Path(os.path.realpath(joined.parent)) / joined.name
        for root in self.paths:
            if real.is_relative_to(root):
                parts = real.relative_to(root).parts
                return Target(root, parts, self._show(root, parts))
        lexical = Path(os.path.normpath(joined))
        via_link = any(lexical.is_relative_to(root) for root in self.paths)
        how = f"leads (through a symbolic link) to {real}" if via_link else f"is {real}"
        allowed = ", ".join(str(root) for root in self.paths)
        raise OutsideRootsError(f"{raw!r} {how}, outside the folders this chat may use ({allowed}); refused")

    def _show(self, root: Path, parts: tuple[str, ...]) -> str:
        if root == self.paths[0]:
            return "/".join(parts) or "."
        return str(root.joinpath(*parts))

    @contextmanager
    def open_folder(self, root: Path, parts: Sequence[str], *, create: bool = False) -> Iterator[int]:
        """A descriptor of the folder `root/parts`, reached without following a symlink; `create` makes missing ones."""
        fd = os.open(root, _FOLDER_FLAGS)
        try:
            for part in parts:
                try:
                    inner = os.open(part, _FOLDER_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    with suppress(FileExistsError):  # made in the meantime: fine, it is opened below
                        os.mkdir(part, 0o777, dir_fd=fd)
                    inner = os.open(part, _FOLDER_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
                os.close(fd)
                fd = inner
            yield fd
        finally:
            os.close(fd)


_REASONS = {
    errno.ENOENT: "does not exist",
    errno.ELOOP: "is (or goes through) a symbolic link that appeared after the path was checked; not followed",
    errno.ENOTDIR: "goes through something that is not a folder (a file, or a symbolic link that is not followed)",
    errno.EISDIR: "is a folder, not a file",
    errno.EEXIST: "already exists",
    errno.ENOTEMPTY: "is a folder that is not empty; delete what is in it first",
    errno.EACCES: "cannot be accessed (permission denied)",
    errno.EPERM: "cannot be accessed (operation not permitted)",
    errno.ENOSPC: "cannot be written: the disk is full",
    errno.EROFS: "is on a read-only file system",
    errno.ENXIO: "is a special file (a pipe or a device)",
}


@contextmanager
def explained(shown: str, hints: dict[int, str] | None = None) -> Iterator[None]:
    """Turn an `OSError` into a `FilesError` that names the path and says why, with an optional hint per errno."""
    try:
        yield
    except OSError as exc:
        reason = _REASONS.get(exc.errno or 0, exc.strerror or str(exc))
        hint = (hints or {}).get(exc.errno or 0)
        raise FilesError(f"{shown} {reason}" + (f"; {hint}" if hint else "")) from exc
