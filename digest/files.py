"""Crash-safe file writes: a temp file in the same folder, fsynced, then renamed over."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: Permissions of a new file as ``open()`` would make it: feeds must stay readable by the web
#: server, while ``mkstemp`` alone would make every file private (0600).
_MODE = 0o666 & ~_umask()


def write_atomic(path: Path, data: bytes, *, mode: int | None = None, durable: bool = True) -> None:
    """Write ``data`` to ``path`` so readers see the old or the new file, never a part.

    The file gets ``mode`` (default: what the umask allows, as for any new file).
    ``durable=False`` skips the fsync, for files that are rebuilt anyway (feeds): after a
    power cut such a file may be empty, never half of two versions.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, _MODE if mode is None else mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def open_atomic(path: Path) -> Iterator[BinaryIO]:
    """``with open_atomic(path) as fh``: write a large file piece by piece, then make it
    appear at ``path`` in one step (fsynced) when the block ends; on an error it never does."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, _MODE)
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def link_atomic(path: Path, target: str) -> bool:
    """Make ``path`` a symbolic link to ``target`` (relative to its folder), replacing what
    was there in one step; returns False when it already pointed there."""
    try:
        if os.readlink(path) == target:
            return False
    except FileNotFoundError:  # nothing there yet: no need to replace anything
        try:
            os.symlink(target, path)
            return True
        except FileExistsError:  # made meanwhile: replace it below
            pass
    except OSError:
        pass
    tmp = path.with_name(f".{path.name}.{os.getpid()}.lnk")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.replace(tmp, path)
    return True
