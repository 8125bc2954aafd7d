"""The file outbox: each message written whole as an ``.eml`` file, for a machine without a
mail server, or to read what would have been sent."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterable, Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from digest.deliver.base import DeliveryStats, OnOutcome, Outcome, Outgoing, Tally, iterate
from digest.errors import TransientDeliveryError
from digest.files import write_atomic

#: What a file name may hold on every filesystem (Windows' ``<>:"/\\|?*`` and controls
#: included): anything else becomes ``_``; a name starts and ends with neither ``.`` nor ``_``.
_UNSAFE = re.compile(r"[^A-Za-z0-9._@+-]+")
_RECIPIENT_CHARS = 100  # a name stays far under the 255 bytes filesystems allow


def outbox_name(when: datetime, recipient: str, day: date | None = None) -> str:
    """``<UTC time to the microsecond>_<listing date>_<recipient>.eml``
    (``20261207T070000000123Z_2026-12-07_ada@example.org.eml``; without a listing date,
    a confirmation or an alert, ``<time>_<recipient>.eml``): names sort by time of writing,
    and ``ls outbox/*ada@example.org*`` finds Ada's. The recipient is reduced to characters
    safe on every filesystem (ASCII letters, digits, ``._@+-``), at most 100 of them.
    """
    safe = _UNSAFE.sub("_", recipient.strip()).strip("._")[:_RECIPIENT_CHARS].strip("._")
    parts = [f"{when.astimezone(UTC):%Y%m%dT%H%M%S%fZ}"]
    if day is not None:
        parts.append(day.isoformat())
    parts.append(safe or "message")
    return "_".join(parts) + ".eml"


class FileOutboxSender:
    """Writes each message as an ``.eml`` file in ``directory`` (created when missing).

    Each file appears whole or not at all (temp file, fsync, rename, then the folder fsynced).
    Names (:func:`outbox_name`) sort in the order of writing and never repeat within one
    sender, even when ``now`` stands still: each file's time is at least a microsecond
    after the previous one's, and a name already taken moves on by one more.
    Raises :class:`TransientDeliveryError` when the folder cannot be written (disk full).
    """

    def __init__(self, directory: Path, *, now: Callable[[], datetime] | None = None) -> None:
        self.directory = Path(directory)
        self.now = now or (lambda: datetime.now(UTC))
        self._last: datetime | None = None

    def _path(self, item: Outgoing) -> Path:
        when = self.now().astimezone(UTC)
        recipient = ",".join(item.recipients)
        while True:
            if self._last is not None and when <= self._last:
                when = self._last + timedelta(microseconds=1)
            self._last = when
            path = self.directory / outbox_name(when, recipient, item.day)
            if not path.exists():
                return path

    def __repr__(self) -> str:
        return f"FileOutboxSender({str(self.directory)!r})"

    async def deliver(
        self, items: AsyncIterable[Outgoing] | Iterable[Outgoing], on_outcome: OnOutcome
    ) -> DeliveryStats:
        """See :meth:`Sender.deliver`; the outcome's ``reply`` is the path written."""
        tally = Tally(on_outcome)
        async for item in iterate(items):
            path = self._path(item)
            try:
                await asyncio.to_thread(self._write, path, item.data)
            except OSError as exc:
                first = item.recipients[0] if item.recipients else ""
                raise TransientDeliveryError(
                    first, f"cannot write {path}: {exc.strerror or exc}"
                ) from exc
            await tally.record(Outcome(item, True, None, 1, str(path)))
        return tally.stats()

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        write_atomic(path, data)
        # The rename is durable only once the folder itself is on disk.
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
