"""One run's digests built and sent by several processes (``run.workers``).

The run itself stays in the parent: fetching, storing the listing, re-queueing the claims
of dead runs, the feeds (written while the workers send) and the run's record. Each worker
takes the subscribers whose id falls in its share (``id % parts == part``): it resumes
their pending digests, matches, records, renders and sends theirs over its own SMTP
connections (``smtp.concurrency`` split between the workers) and marks each sent, exactly
as a single-process run does (:func:`digest.run.share.deliver_share`). Shares are disjoint,
so no two workers plan for the same subscriber, and claims still guard resumed digests.

A run is CPU-bound in one Python process; on a machine with several cores the workers
divide its time. On SQLite their writes take turns (WAL, ``busy_timeout``); on PostgreSQL
they do not wait for each other.

Workers are spawned (a fresh interpreter, not a fork of a process holding an event loop and
database connections) and die with the parent (``PR_SET_PDEATHSIG``): a killed run never
leaves a worker sending on its own, only claims the next run re-queues.

Progress is live: each worker publishes its count (digests sent, failed or deferred) into
its slot of a shared-memory array a few times a second, from a thread of its own, so the
sending loop pays nothing for it; the parent reads the sum (:meth:`WorkerPool.live`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import gc
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, MutableSequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

from digest import GC_THRESHOLDS
from digest.config import Config
from digest.errors import DigestError
from digest.models import Listing
from digest.run.context import make_context
from digest.run.report import RunReport
from digest.run.share import Pool, deliver_share
from digest.store import Store

log = logging.getLogger("digest.workers")

#: With ``run.workers = "auto"``, one more worker for every this many active subscribers,
#: up to the number of cores: below it, starting a process costs more than it saves.
PER_WORKER = 2000
_PR_SET_PDEATHSIG = 1
#: Seconds between two updates of a worker's published count (the reporter reads ~4/s).
PUBLISH_EVERY = 0.1
#: In a worker: the shared counts, one slot per share (set by :func:`_init_worker`).
_counts: MutableSequence[int] | None = None


def cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def worker_count(setting: int | str, active: int, available: int) -> int:
    """How many processes a run uses: ``setting`` when a number, else by subscribers."""
    if setting != "auto":
        return max(1, int(setting))
    return max(1, min(available, active // PER_WORKER))


@dataclass(frozen=True)
class Job:
    """What one worker needs: everything is picklable, nothing is shared."""

    config: Config
    listing: Listing
    run_id: int
    now: datetime
    elapsed: float  # seconds since the run started, when the job was made
    part: int
    parts: int


@dataclass
class Done:
    """What one worker did (its share of the run's report)."""

    part: int
    sent: int = 0
    failed: int = 0
    deferred: int = 0
    resumed: int = 0
    suspended: list[str] = field(default_factory=list)
    subscribers: list[tuple[str, int, bool, str | None]] = field(default_factory=list)
    error: str | None = None
    hint: str | None = None


def _init_worker(parent: int, level: int, counts: MutableSequence[int] | None = None) -> None:
    """Die with the parent; log like it; collect garbage as rarely as it does; keep the
    shared counts to publish progress in."""
    global _counts
    _counts = counts
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    gc.set_threshold(*GC_THRESHOLDS)


def work(job: Job) -> Done:
    """Run one share of a run, in a worker process."""
    done = Done(part=job.part)
    config = job.config
    share = max(1, -(-config.smtp.concurrency // job.parts))  # ceil: connections each
    config = dataclasses.replace(config, smtp=dataclasses.replace(config.smtp, concurrency=share))
    report = RunReport(day=job.listing.date)
    started = time.monotonic()

    def clock() -> datetime:
        return job.now + timedelta(seconds=job.elapsed + time.monotonic() - started)

    try:
        with Store(config.database) as store, _publishing(report, job.part):
            ctx = make_context(config, store, now=job.now, source=_NoSource())
            pending = [
                p
                for p in store.outbox.pending()
                if p.subscriber.id is not None and p.subscriber.id % job.parts == job.part
            ]
            asyncio.run(
                deliver_share(
                    ctx,
                    Pool.of(job.listing),
                    pending,
                    report,
                    job.run_id,
                    clock,
                    share=(job.part, job.parts),
                )
            )
    except DigestError as exc:
        done.error, done.hint = str(exc), exc.hint
    done.sent, done.failed, done.deferred = report.sent, report.failed, report.deferred
    done.resumed, done.suspended = report.resumed, report.suspended
    done.subscribers = [(s.email, s.matched, s.sent, s.error) for s in report.subscribers]
    return done


class _NoSource:
    """A worker's source: the parent fetched the listing and gave it in the job. Made
    without the configured sources, a worker never imports their modules (httpx,
    feedparser, lxml: ~0.2 CPU-s of each worker's start)."""

    async def fetch(self, day: date) -> Listing:
        raise RuntimeError(f"a run's worker does not fetch ({day}): the parent gives the listing")


@contextlib.contextmanager
def _publishing(report: RunReport, part: int) -> Iterator[None]:
    """While the block runs, copy ``report``'s count (sent + failed + deferred) into slot
    ``part`` of the shared counts every :data:`PUBLISH_EVERY` seconds, and once at the end.

    A thread of its own reads the count the sending loop keeps anyway: no shared-memory
    write (nor lock) per message. Each slot has one writer; the parent only reads.
    """
    counts = _counts
    if counts is None:  # not in a pool's worker (a test calling work() itself)
        yield
        return
    stop = threading.Event()

    def publish() -> None:
        while not stop.wait(PUBLISH_EVERY):
            counts[part] = report.sent + report.failed + report.deferred

    thread = threading.Thread(target=publish, name="digest-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        counts[part] = report.sent + report.failed + report.deferred


class WorkerError(DigestError):
    """A worker stopped the run (its error, as it said it)."""


class WorkerPool:
    """``parts`` worker processes, started at once (they import what they need while the
    run fetches its listing), then given one share each by :meth:`run`."""

    def __init__(self, parts: int) -> None:
        self.parts = parts
        spawn = multiprocessing.get_context("spawn")
        # One 64-bit slot per share, each written by its worker only: no lock needed.
        self._counts: MutableSequence[int] = spawn.Array("q", parts, lock=False)
        self._pool = ProcessPoolExecutor(
            max_workers=parts,
            mp_context=spawn,
            initializer=_init_worker,
            initargs=(os.getpid(), logging.getLogger().getEffectiveLevel(), self._counts),
        )
        for _ in range(parts):
            self._pool.submit(_ready)

    async def run(
        self,
        config: Config,
        listing: Listing,
        run_id: int,
        now: datetime,
        elapsed: Callable[[], float],
        meanwhile: Callable[[], list[Path]],
    ) -> tuple[list[Done], list[Path]]:
        """Run one share per worker; ``meanwhile()`` (the feeds) runs here as they work.
        Returns their reports (in share order) and what ``meanwhile`` gave.

        Always waits for every worker to end, even when interrupted: the run's claims are
        released only after that.
        """
        try:
            futures = [
                asyncio.wrap_future(
                    self._pool.submit(
                        work, Job(config, listing, run_id, now, elapsed(), part, self.parts)
                    )
                )
                for part in range(self.parts)
            ]
            # The feeds at the workers' priority, not below it: at a lower one they got only
            # the CPU the workers left and ended seconds after the last message, with one
            # core idle (10,000 bench subscribers: 13.4-14.0 s a run at nice 10, 12.5 s).
            written = meanwhile()
            results = await asyncio.gather(*futures)
        finally:
            self.close()
        return sorted(results, key=lambda d: d.part), written

    def counted(self) -> int:
        """Digests the workers have sent, failed or deferred so far (live, ~0.1 s late)."""
        return sum(self._counts)

    def live(self, counted: Callable[[], int] | None = None) -> Callable[[], int]:
        """A :attr:`Progress.counted` for a run in these workers: their live count, or
        ``counted()`` (the run's report, which adds the workers' up as they end) once it
        is larger."""
        if counted is None:
            return self.counted
        own = counted
        return lambda: max(own(), self.counted())

    def close(self) -> None:
        """Stop the workers (after their current share, if any)."""
        self._pool.shutdown(wait=True, cancel_futures=True)


def _ready() -> None:
    """A first job: makes the pool start its processes now."""
