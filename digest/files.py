"""Crash-safe file writes: a temp file in the same folder, fsynced, then renamed over."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import itertools
import os
import signal
import time
from collections.abc import Iterable, Iterator
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


def link_atomic(
    path: str | Path, target: str, *, absent: bool = False, like: str | None = None
) -> bool:
    """Make ``path`` a symbolic link to ``target`` (relative to its folder), replacing what
    was there in one step; returns False when it already pointed there. ``absent``: the
    caller saw nothing there (a folder listing), so the link is made without a look first.
    ``like``: a link in the same folder that points at ``target`` (made or checked just
    before): the new link is a hard link to that symbolic link, which makes no inode (a
    new inode costs far more kernel time on some file systems, see :func:`_make_link`).
    """
    path = os.fspath(path)
    try:
        if absent:
            _make_link(target, path, like)
            return True
        if os.readlink(path) == target:
            return False
    except FileExistsError:  # made meanwhile: replace it below
        pass
    except FileNotFoundError:  # nothing there yet: no need to replace anything
        try:
            _make_link(target, path, like)
            return True
        except FileExistsError:
            pass
    except OSError:
        pass
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f".{name}.{os.getpid()}.lnk")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    _make_link(target, tmp, like)
    os.replace(tmp, path)
    return True


def _make_link(target: str, path: str, like: str | None) -> None:
    """A symbolic link to ``target`` at ``path`` (which must not exist: FileExistsError).

    With ``like`` (a symbolic link to ``target``), a hard link to that link: one inode
    serves every name, and a relative target resolves from the folder of the name used,
    so it reads as a link of its own. On ext4 without a journal a new inode costs a scan
    of the recently deleted ones (``recently_deleted``: ~0.02 ms a link on a quiet disk,
    ~0.4 ms in the minutes after a large delete). When ``like`` cannot be linked (gone,
    the most links an inode may have, no hard links here) or no longer points at
    ``target`` (replaced meanwhile), a symbolic link of its own is made.
    """
    if like is not None:
        try:
            os.link(like, path, follow_symlinks=False)
        except FileExistsError:
            raise
        except (OSError, NotImplementedError):
            pass
        else:
            try:
                if os.readlink(path) == target:
                    return
            except OSError:  # ``like`` became a file
                pass
            os.unlink(path)
    os.symlink(target, path)


#: Names of the replaced files a :class:`Rewriter` keeps to write the next file into.
SPARE = ".spare."


class Rewriter:
    """Atomic rewrites of many files in one folder that reuse the inodes they replace.

    ``write(path, data)`` puts ``data`` in a temp file and renames it over ``path``, as
    :func:`write_atomic` does (not fsynced), so readers see the old file or the new one,
    whole. But the file it replaces is hard-linked to a spare name first, and that inode,
    no longer served, is the next write's temp file (written, then truncated): a pass of
    rewrites makes one new inode, not one each (on some VMs a new file costs ~1 ms of
    kernel CPU; a link and a rename ~0.03 ms). A spare is reused only when nobody has it
    open (a write lease, held until it is renamed into place, so that a reader who still
    reads the old file keeps its bytes, and one who opens it meanwhile waits for the whole
    new file), and only when no other name links it. ``close()`` removes the last spare.
    """

    def __init__(self) -> None:
        self.spare: str | None = None
        self.reused = 0  # writes that made no new inode (for benches and tests)

    def __enter__(self) -> Rewriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write(self, path: Path, data: bytes, absent: bool = False) -> None:
        """Write ``data`` to ``path`` atomically (see the class); raises OSError.
        ``absent``: the caller saw nothing there (a folder listing): no spare is linked."""
        fd, tmp, leased = self._take(path)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                if leased:
                    os.ftruncate(fd, len(data))
                spare = None if absent else self._keep_old(path, tmp)
                try:
                    os.replace(tmp, path)
                except BaseException:
                    if spare is not None:
                        os.unlink(spare)
                    raise
            finally:
                if leased:
                    fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
                os.close(fd)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        self.spare = spare
        self.reused += leased

    def close(self) -> None:
        """Remove the spare left by the last write, if any."""
        if self.spare is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.spare)
            self.spare = None

    def _take(self, path: Path) -> tuple[int, str, bool]:
        """The next temp file: the spare when it can be reused (then under a write lease,
        True), else a new file beside ``path``."""
        spare, self.spare = self.spare, None
        if spare is not None:
            fd = _lease(spare)
            if fd is not None:
                return fd, spare, True
            with contextlib.suppress(FileNotFoundError):
                os.unlink(spare)  # still read by someone: theirs until they close it
        fd, tmp = _create_temp(path, None)
        return fd, tmp, False

    def _keep_old(self, path: Path, tmp: str) -> str | None:
        """Link the file at ``path`` (about to be replaced) to a spare name other than
        ``tmp``; that name, or None when nothing is there."""
        for serial in range(3):
            spare = os.path.join(os.path.dirname(tmp), f"{SPARE}{os.getpid()}.{serial}")
            if spare == tmp:
                continue
            try:
                os.link(path, spare)
                return spare
            except FileNotFoundError:  # nothing to replace
                return None
            except FileExistsError:  # left by a process that died with our pid
                os.unlink(spare)
                return self._keep_old(path, tmp)
            except OSError:  # no hard links here (or too many): replaced without a spare
                return None
        raise AssertionError("unreachable: two of three names differ from tmp")


def _lease(path: str) -> int | None:
    """``path`` open for writing under a write lease, or None when it cannot be reused:
    someone has it open (the kernel refuses the lease), another name links it, or the
    file system has no leases (nor the system: leases are Linux's)."""
    if not (hasattr(fcntl, "F_SETLEASE") and hasattr(fcntl, "F_SETSIG")):
        return None  # macOS, the BSDs: a new temp file each time, as write_atomic does
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        if os.fstat(fd).st_nlink == 1:
            # A reader opening it while leased makes the kernel signal us (SIGIO by
            # default, which would end the process): SIGURG, whose default is to ignore.
            fcntl.fcntl(fd, fcntl.F_SETSIG, signal.SIGURG)
            fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_WRLCK)
            return fd
    except OSError as exc:
        if exc.errno not in (errno.EAGAIN, errno.EBUSY, errno.EACCES, errno.EINVAL, errno.ENOLCK):
            os.close(fd)
            raise
    os.close(fd)
    return None


def sweep(folder: Path, names: Iterable[str], older: float = 3600.0) -> int:
    """Remove what writers that died left in ``folder`` among ``names`` (a listing of it):
    temp files and spares not changed for ``older`` seconds. Returns how many."""
    removed = 0
    cutoff = time.time() - older
    for name in names:
        if name.startswith(SPARE) or (name.startswith(".") and name.endswith((".tmp", ".lnk"))):
            path = os.path.join(folder, name)
            with contextlib.suppress(FileNotFoundError):
                if os.lstat(path).st_ctime < cutoff:
                    os.unlink(path)
                    removed += 1
    return removed
