"""Each delivery's outcome recorded in the store as soon as it is known: sent marks
group-committed from a thread of their own, failures and deferrals through a writer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

from digest.deliver import Outcome
from digest.run.report import RunReport, SubscriberReport
from digest.store import Store

log = logging.getLogger("digest.pipeline")
T = TypeVar("T")


def _settle(batch: list[tuple[str, asyncio.Future[None]]], error: Exception | None) -> None:
    for _, done in batch:
        if done.done():  # cancelled meanwhile
            continue
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)


class Recorder:
    """Marks each delivery's fate in the store as soon as it is known."""

    def __init__(
        self,
        store: Store | None,
        report: RunReport,
        max_hard_bounces: int | None = None,
        writer: Executor | None = None,
    ) -> None:
        self.store = store
        self.report = report
        self.max_hard_bounces = max_hard_bounces
        self.by_email: dict[str, SubscriberReport] = {}
        #: Where the store's writes run (a thread: the event loop goes on composing and
        #: sending while the database commits or waits for its lock); None: inline.
        self.writer = writer
        #: Sent marks have a thread of their own, which commits what was queued, group
        #: after group, without a round trip through the (busy) event loop between two.
        self._sent_writer = (
            ThreadPoolExecutor(1, thread_name_prefix="digest-sent") if writer else None
        )
        self._unmarked: queue.SimpleQueue[tuple[str, asyncio.Future[None]]] = queue.SimpleQueue()
        self._marking: asyncio.Future[None] | None = None
        self._running = False
        self._lock = threading.Lock()
        #: Marks written, in how many commits, and the seconds messages waited for them.
        self.marks = self.commits = 0
        self.mark_wait = 0.0

    async def _mark_sent(self, key: str) -> None:
        """Mark one delivery sent; returns once it is committed. The messages accepted
        while a commit runs are marked together by the next one (a group commit), so each
        connection still waits for its own message to be recorded before it takes another:
        the crash duplicate bound stays one message per connection."""
        assert self.store is not None
        if self._sent_writer is None:
            self.store.outbox.mark_sent(key)
            return
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        self._unmarked.put((key, done))
        with self._lock:  # the thread stops only when it saw the queue empty, under it
            if not self._running:
                self._running = True
                self._marking = loop.run_in_executor(self._sent_writer, self._mark_queued, loop)
        started = time.monotonic()
        await done
        self.marks += 1
        self.mark_wait += time.monotonic() - started

    def _mark_queued(self, loop: asyncio.AbstractEventLoop) -> None:
        """In the marks' thread: commit what is queued, group after group, until nothing
        is; each group's connections are woken by one callback in the event loop."""
        assert self.store is not None
        while True:
            with self._lock:
                if self._unmarked.empty():
                    self._running = False
                    return
            batch: list[tuple[str, asyncio.Future[None]]] = []
            with contextlib.suppress(queue.Empty):
                while True:
                    batch.append(self._unmarked.get_nowait())
            self.commits += 1
            error: Exception | None = None
            try:
                self.store.outbox.mark_sent_many([key for key, _ in batch])
            except Exception as exc:  # each waiting connection gets the error
                error = exc
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
                loop.call_soon_threadsafe(_settle, batch, error)

    async def close(self) -> None:
        """Wait for the marks still being written (none are left once sending ends)."""
        if self._marking is not None:
            await asyncio.gather(self._marking, return_exceptions=True)
        if self._sent_writer is not None:
            self._sent_writer.shutdown(wait=True)

    async def _write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self.writer is None:
            return fn(*args, **kwargs)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.writer, partial(fn, *args, **kwargs))

    async def __call__(self, outcome: Outcome) -> None:
        item = outcome.item
        rep = self.by_email.get(item.recipients[0])
        if outcome.ok:
            if self.store is not None:
                await self._mark_sent(str(item.key))
            self.report.sent += 1
            if rep:
                rep.sent = True
            log.info("sent to=%s message_id=%s", item.recipients[0], item.message_id)
            return
        error = str(outcome.error) if outcome.error else "unknown error"
        if rep:
            rep.error = error
        if outcome.error is not None and not outcome.error.transient:
            suspended = False
            if self.store is not None:
                suspended = await self._write(
                    self.store.outbox.mark_failed,
                    str(item.key),
                    error,
                    max_hard_bounces=self.max_hard_bounces,
                )
            self.report.failed += 1
            log.warning(
                "failed to=%s message_id=%s error=%s", item.recipients[0], item.message_id, error
            )
            if suspended:
                self.report.suspended.append(item.recipients[0])
                log.warning(
                    "suspended to=%s after %s permanent failures in a row",
                    item.recipients[0],
                    self.max_hard_bounces,
                )
        else:
            if self.store is not None:
                await self._write(self.store.outbox.mark_deferred, str(item.key), error)
            self.report.deferred += 1
            log.warning(
                "deferred to=%s message_id=%s error=%s", item.recipients[0], item.message_id, error
            )
