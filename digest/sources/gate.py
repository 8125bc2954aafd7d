"""The per-host gate: at most one request every ``min_interval`` seconds and one connection at
a time to a host, across every source and every process of this machine.

Each gated host has a lock file in a directory (:func:`default_gate_dir`): a process holds an
``fcntl`` lock on it from the start of a request to its end, and the file holds the earliest
time the next request may start (the end of the last one plus ``min_interval``, or later when
the server asked for more with ``Retry-After``) and when that was written (a clock set back
since costs one interval, not the difference). The lock is tried without blocking and the
event loop sleeps between tries. Nothing is shared between machines: two machines fetching
arXiv each keep their own limit.

A directory that cannot be used (unwritable, not ours, no ``fcntl``) falls back to a gate
within this process, with a logged warning.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX: the in-process gate only
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("digest.sources.gate")

#: Hosts with a minimum interval of their own (the host and its subdomains share one gate):
#: arXiv asks for one request every 3 seconds and one connection at a time
#: (https://info.arxiv.org/help/api/tou.html), for the API and the RSS feeds alike.
HOST_INTERVALS: dict[str, float] = {"arxiv.org": 3.0}
POLL = 0.05  # seconds between tries of a lock another request holds
MAX_HOLD_OFF = 300.0  # the longest wait a gate file asks for (HttpEdge's MAX_RETRY_AFTER)


def gate_key(url: str) -> str:
    """The gate a URL's requests go through: its host in lower case (with an explicit port),
    or the domain of :data:`HOST_INTERVALS` it belongs to (``export.arxiv.org`` and
    ``rss.arxiv.org`` are both ``"arxiv.org"``)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower().rstrip(".")
    for domain in HOST_INTERVALS:
        if host == domain or host.endswith("." + domain):
            return domain
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{host}:{port}" if port else host


def default_interval(url: str) -> float:
    """The minimum seconds between requests to ``url``'s host: 3 for arXiv, else 0."""
    return HOST_INTERVALS.get(gate_key(url), 0.0)


def effective_interval(url: str, configured: float | None) -> float:
    """The interval used for ``url``: ``configured`` (a source's ``min_interval``), never
    below the host's own (arXiv's 3 s holds whatever a source says); None is the host's."""
    floor = default_interval(url)
    return floor if configured is None else max(floor, configured)


def default_gate_dir() -> Path:
    """``$XDG_RUNTIME_DIR/paper-digest``, else ``<tempdir>/paper-digest-<uid>``."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime) / "paper-digest"
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"paper-digest-{uid}"


@dataclass
class _Local:
    """One key's state in the in-process gate."""

    busy: bool = False
    ready_at: float = 0.0


_LOCAL: dict[str, _Local] = {}
_LOCAL_LOCK = threading.Lock()
_WARNED: set[str] = set()


class Slot:
    """A request's turn at the gate: :meth:`hold_off` delays the next request (a server's
    ``Retry-After``) for every process."""

    def __init__(self) -> None:
        self.not_before = 0.0

    def hold_off(self, seconds: float) -> None:
        """No request to this host starts within ``seconds`` of now."""
        self.not_before = max(self.not_before, time.time() + seconds)


class HostGate:
    """The gate of one host (``key``, see :func:`gate_key`), ``min_interval`` seconds apart.

    ``async with gate.slot() as slot:`` waits for the lock and the interval, then holds the
    lock until the block ends; the next request may start ``min_interval`` after this one
    *ended* (arXiv asks for a delay between calls, and a slow answer should not let the next
    one follow at once). A ``min_interval`` of 0 still allows one connection at a time.
    ``directory`` None is :func:`default_gate_dir`.
    """

    def __init__(
        self,
        key: str,
        min_interval: float,
        directory: Path | str | None = None,
        *,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        if min_interval < 0:
            raise ValueError("min_interval must be >= 0")
        self.key = key
        self.min_interval = min_interval
        self.directory = Path(directory) if directory is not None else default_gate_dir()
        self.sleep = sleep or asyncio.sleep
        self.file = self.directory / (re.sub(r"[^A-Za-z0-9._-]", "_", key) + ".lock")

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[Slot]:
        """The lock and the interval for one request (see the class docstring)."""
        handle = self._open()
        if handle is None:
            async with self._local_slot() as slot:
                yield slot
            return
        with handle:
            while not _try_lock(handle):
                await self.sleep(POLL)
            try:
                await self._wait(_read_ready(handle))
                slot = Slot()
                # A crash mid-request leaves the start plus the interval, not nothing.
                _write_ready(handle, time.time() + self.min_interval)
                try:
                    yield slot
                finally:
                    _write_ready(handle, max(time.time() + self.min_interval, slot.not_before))
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    async def _wait(self, ready_at: float) -> None:
        wait = min(ready_at - time.time(), max(self.min_interval, MAX_HOLD_OFF))
        if wait > 0:
            await self.sleep(wait)

    @asynccontextmanager
    async def _local_slot(self) -> AsyncIterator[Slot]:
        name = f"{self.directory}/{self.key}"
        while True:
            with _LOCAL_LOCK:
                state = _LOCAL.setdefault(name, _Local())
                if not state.busy:
                    state.busy = True
                    break
            await self.sleep(POLL)
        try:
            await self._wait(state.ready_at)
            slot = Slot()
            state.ready_at = time.time() + self.min_interval
            try:
                yield slot
            finally:
                state.ready_at = max(time.time() + self.min_interval, slot.not_before)
        finally:
            with _LOCAL_LOCK:
                state.busy = False

    def _open(self) -> IO[bytes] | None:
        """The lock file open for reading and writing, or None (warned once) when the
        directory cannot hold it."""
        if fcntl is None:
            self._fallback("fcntl is not available on this system")
            return None
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            info = self.directory.stat()
            if hasattr(os, "getuid") and info.st_uid != os.getuid():
                self._fallback("the directory belongs to another user")
                return None
            descriptor = os.open(self.file, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            return os.fdopen(descriptor, "r+b")
        except OSError as exc:
            self._fallback(exc.strerror or str(exc))
            return None

    def _fallback(self, why: str) -> None:
        if str(self.directory) not in _WARNED:
            _WARNED.add(str(self.directory))
            log.warning(
                "cannot keep the request gate in %s (%s): requests are spaced within this"
                " process only; set a writable gate directory",
                self.directory,
                why,
            )


def _try_lock(handle: IO[bytes]) -> bool:
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _read_ready(handle: IO[bytes]) -> float:
    """The earliest start the file asks for (``"<ready_at> <written_at>"``, seconds since the
    epoch); one written "in the future" (the clock was set back since) is only the interval
    from now, not hours of waiting."""
    handle.seek(0)
    fields = handle.read(100).decode("ascii", "replace").split()
    try:
        ready_at, written_at = float(fields[0]), float(fields[1])
    except (IndexError, ValueError):
        return 0.0
    now = time.time()
    if written_at > now + 1.0:
        return now + (ready_at - written_at)
    return ready_at


def _write_ready(handle: IO[bytes], when: float) -> None:
    handle.seek(0)
    handle.truncate()
    handle.write(f"{when:.6f} {time.time():.6f}\n".encode("ascii"))
    handle.flush()
