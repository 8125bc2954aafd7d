"""Crash-safe file writes: a temp file in the same folder, fsynced, then renamed over."""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

_serial = itertools.count()


def _create_temp(path: Path, mode: int | None) -> tuple[int, str]:
    """A new file beside ``path`` (same folder, so the rename is atomic), open for writing."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    while True:
        tmp = str(path.parent / f".{path.name}.{os.getpid()}.{next(_serial)}.tmp")
        try:
            # 0o666 less the umask, as for any new file (mkstemp would make it 0600).
            fd = os.open(tmp, flags, 0o666)
        except FileExistsError:  # left by a process that died with our pid: next name
            continue
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
            continue
        if mode is not None:
            os.fchmod(fd, mode)
        return fd, tmp


def write_atomic(path: Path, data: bytes, *, mode: int | None = None, durable: bool = True) -> None:
    """Write ``data`` to ``path`` so readers see the old or the new file, never a part.

    The file gets ``mode`` (default: what the umask allows, as for any new file).
    ``durable=False`` skips the fsync, for files that are rebuilt anyway (feeds): after a
    power cut such a file may be empty, never half of two versions.
    """
    fd, tmp = _create_temp(path, mode)
    try:
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
    fd, tmp = _create_temp(path, None)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def link_atomic(path: str | Path, target: str, *, absent: bool = False) -> bool:
    """Make ``path`` a symbolic link to ``target`` (relative to its folder), replacing what
    was there in one step; returns False when it already pointed there. ``absent``: the
    caller saw nothing there (a folder listing), so the link is made without a look first.
    """
    path = os.fspath(path)
    try:
        if absent:
            os.symlink(target, path)
            return True
        if os.readlink(path) == target:
            return False
    except FileExistsError:  # made meanwhile: replace it below
        pass
    except FileNotFoundError:  # nothing there yet: no need to replace anything
        try:
            os.symlink(target, path)
            return True
        except FileExistsError:
            pass
    except OSError:
        pass
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f".{name}.{os.getpid()}.lnk")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.replace(tmp, path)
    return True
