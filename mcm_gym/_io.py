"""File I/O every layer shares: one atomic writer and one inter-process file lock.

An atomic write goes to a temporary file in the target's folder (unique name), is flushed and
fsync'ed, gets the usual permissions (``0666 & ~umask``) and is renamed over the target, so a reader
sees the old file or the new one, never a partial one; on any error (Ctrl-C included) the temporary
file is removed and the target is left as it was.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock

__all__ = ["atomic_write", "atomic_write_text", "file_lock"]


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], object]) -> Path:
    """Atomically create or replace ``path`` with what ``write(tmp)`` writes to the temporary path
    ``tmp`` (which keeps ``path``'s suffix, for writers that choose the format by it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Atomically write ``text`` (UTF-8) to ``path``."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


@contextmanager
def file_lock(path: str | os.PathLike[str], timeout: float = -1) -> Iterator[None]:
    """An exclusive lock held by this process on ``<path>.lock`` (the ``filelock`` package: works on
    every OS). ``timeout`` in seconds, ``-1`` waits for ever."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path.with_name(path.name + ".lock")), timeout=timeout):
        yield
