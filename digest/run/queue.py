"""A run's digests shared by ``digest worker`` processes on any number of machines
(``run.queue``, PostgreSQL only), through procrastinate's job queue in the same database.

The run (``digest run``, a ``digest serve`` pass) fetches and stores the listing as ever,
then defers one job per batch of subscribers (:class:`~digest.run.queue_jobs.Batch`: an id
range, or a pass's due subscribers of one window of dates), all in one transaction, and
waits for them: each worker takes a batch, resumes its subscribers' pending digests, plans,
records, composes and sends theirs and marks each sent (:mod:`digest.run.queue_worker`).
Then the run writes the feeds and its record.

A batch's digests are recorded already claimed by the run (as a single-process run does),
each marked sent as the server accepts it. A worker killed mid-batch (SIGKILL, power cut)
leaves its unsent digests claimed: procrastinate notices its heartbeat stopped
(``run.heartbeat_timeout``), the run or any worker gives its batch back to the queue, and
another worker plans the rest (the claimed digests count as reserved: never planned twice).
When every batch is done the run takes back the claims dead workers left and sends them in a
last batch: only the messages a dead worker had in flight (accepted, not yet marked) may go
twice. A worker that loses its database stops taking work (procrastinate stops it when its
heartbeat fails) and reconnects.

While a run's batches are in the queue its claims are the workers': a run that stops
waiting (``--no-wait``, Ctrl-C, SIGTERM, ``digest serve`` stopping) leaves them alone, and
no run takes them back (:func:`~digest.store.queue_state.queued_runs`). The next queued run
waits for those batches too, then takes back what dead workers left and sends it.

The run's counts are the digests its batches took, by status (:mod:`digest.run.queue_tally`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date

import procrastinate

from digest.models import Listing
from digest.run.claims import requeue_stale
from digest.run.context import Context
from digest.run.queue_jobs import (
    ALL_IDS,
    KEEP_JOBS_HOURS,
    QUEUE,
    Batch,
    conninfo,
    defer,
    open_jobs,
    opened,
    wait_for,
)
from digest.run.queue_schema import upgrade_schema
from digest.run.queue_tally import QueueState, add_up, final_counts, queue_state, read_tally
from digest.run.queue_worker import work
from digest.run.report import RunReport
from digest.run.share import BATCH, Pool
from digest.run.workers import WorkerError
from digest.store.queue_state import drop_run_rows, queued_runs, settle_runs
from digest.store.schema import chunks

log = logging.getLogger("digest.queue")

#: The fewest subscribers a batch holds (a job costs a few database round trips).
MIN_BATCH = 10

__all__ = [
    "QueueState",
    "Window",
    "batch_size",
    "batches",
    "conninfo",
    "deliver_due_queued",
    "deliver_queued",
    "queue_state",
    "work",
]


def batch_size(active: int) -> int:
    """Subscribers per batch: enough batches for many workers (16 at least, when each holds
    :data:`MIN_BATCH` or more), none above :data:`~digest.run.share.BATCH`."""
    return max(MIN_BATCH, min(BATCH, -(-active // 16)))


def batches(ctx: Context, listing: Listing, run_id: int, size: int | None = None) -> list[Batch]:
    """The run's batches: the active subscribers in id ranges of ``size`` (default: by
    :func:`batch_size`)."""
    if size is None:
        size = batch_size(ctx.store.members.state_counts().get("active", 0))
    pool = Pool.of(listing)
    return [
        Batch(
            run=run_id,
            day=pool.day.isoformat(),
            dates=[d.isoformat() for d in pool.dates],
            since=None,
            keys=[p.key for p in listing.papers],
            now=ctx.now.isoformat(),
            low=page[0].id or 0,
            high=page[-1].id or 0,
        )
        for page in ctx.store.members.active_batches(size)
        if page
    ]


async def deliver_queued(
    ctx: Context, listing: Listing, report: RunReport, run_id: int, *, wait: bool = True
) -> list[int]:
    """Defer the run's batches (one transaction) and, with ``wait``, wait for them, sweep
    what dead workers left, and count what they did into ``report``. Returns the jobs' ids.

    Raises :class:`WorkerError` when a batch failed (the first error a batch gave).
    """
    return await queue_and_wait(ctx, batches(ctx, listing, run_id), report, run_id, wait=wait)


@dataclass(frozen=True)
class Window:
    """The due subscribers of a scheduled pass who share one window of listing dates."""

    dates: tuple[date, ...]  # newest first
    keys: list[str]  # the window's papers, under their stored keys
    since: date | None  # the digest says "since" this date (a weekly or catch-up digest)
    subscribers: list[int]


async def deliver_due_queued(
    ctx: Context,
    windows: Sequence[Window],
    today: date,
    report: RunReport,
    run_id: int,
    *,
    resume: bool,
    should_stop: Callable[[], bool] = lambda: False,
) -> list[int]:
    """A ``digest serve`` pass with ``run.queue``: the due subscribers' digests as batches
    for the workers, which move each on to their next send once theirs is recorded; with
    ``resume``, one more batch resumes every pending digest. Waits for them (until
    ``should_stop()``) as :func:`deliver_queued` does."""
    jobs: list[Batch] = []
    for window in windows:
        ids = sorted(window.subscribers)
        for part in chunks(ids, batch_size(len(ids))):
            jobs.append(
                Batch(
                    run=run_id,
                    day=today.isoformat(),
                    dates=[d.isoformat() for d in window.dates],
                    since=window.since.isoformat() if window.since else None,
                    keys=window.keys,
                    now=ctx.now.isoformat(),
                    low=part[0],
                    high=part[-1],
                    ids=list(part),
                    advance=True,
                )
            )
    if resume:
        jobs.append(_sweep(ctx, run_id, today))
    return await queue_and_wait(ctx, jobs, report, run_id, should_stop=should_stop)


def _sweep(ctx: Context, run_id: int, day: date) -> Batch:
    """A batch resuming every subscriber's pending digests, planning nothing."""
    now = ctx.now.isoformat()
    return Batch(run_id, day.isoformat(), [], None, [], now, 0, ALL_IDS, plan=False)


async def queue_and_wait(
    ctx: Context,
    jobs: list[Batch],
    report: RunReport,
    run_id: int,
    *,
    wait: bool = True,
    should_stop: Callable[[], bool] = lambda: False,
) -> list[int]:
    """Defer ``jobs`` and, with ``wait``, wait for them and for the batches earlier runs
    left in the queue, then take back what dead workers left and send it (a last batch).
    Stopping before the end (``should_stop``, Ctrl-C, a cancellation) leaves the claims to
    the workers (``report.workers_hold``). Returns the jobs' ids."""
    if not jobs:
        return []
    database = ctx.config.database
    await asyncio.to_thread(upgrade_schema, database)  # as a Store upgrades its own tables
    earlier = await asyncio.to_thread(queued_runs, ctx.store.engine)
    async with opened(database) as app:
        ids = await defer(app, jobs)
        log.info("run %s: %d batch(es) queued for the workers", run_id, len(ids))
        report.workers_hold = True  # until every batch ended: the workers hold its claims
        if not wait:
            return ids
        more, failed = await _wait_all(
            ctx, app, ids, report, run_id, earlier - {run_id}, should_stop
        )
    if report.workers_hold:  # stopped waiting: the workers go on
        return ids
    tally = final_counts(ctx.store, report, run_id)
    engine = ctx.store.engine
    drop_run_rows(engine, [run_id])  # counted: the run's record keeps the figures
    # Earlier runs that did not wait, their batches ended: their records get their counts.
    settled = settle_runs(engine, await asyncio.to_thread(queued_runs, engine))
    if settled:
        log.info("counted the digests of earlier run(s) %s", settled)
    if tally.errors or failed:
        error = tally.errors[0] if tally.errors else f"{failed} batch(es) failed"
        raise WorkerError(error, hint="see the workers' logs for the batches")
    return ids + more


async def _wait_all(
    ctx: Context,
    app: procrastinate.App,
    ids: list[int],
    report: RunReport,
    run_id: int,
    earlier: set[int],
    should_stop: Callable[[], bool],
) -> tuple[list[int], int]:
    """Wait for the run's jobs ``ids`` and those of the ``earlier`` runs, then sweep; the
    sweep's job ids and how many of the run's batches failed. Leaves
    ``report.workers_hold`` set when it stopped waiting."""
    timeout = ctx.config.run.heartbeat_timeout

    def counted() -> None:  # the run's progress, batch by batch
        add_up(report, read_tally(ctx.store, run_id))

    failed = await wait_for(app, ids, timeout, counted, should_stop)
    if failed is None:
        return [], 0
    if earlier:  # runs that stopped waiting: their batches end before theirs are swept
        log.info("waiting for the batches of earlier run(s) %s too", sorted(earlier))
        if (
            await wait_for(app, await open_jobs(app, earlier), timeout, counted, should_stop)
            is None
        ):
            return [], 0
    # In flight when a worker died, or left by runs that stopped waiting: sent again.
    released = ctx.store.outbox.release_claims(run_id) + requeue_stale(ctx)
    more: list[int] = []
    if released:
        log.warning("run %s: %d digest(s) a dead worker held, sent again", run_id, released)
        more = await defer(app, [_sweep(ctx, run_id, report.day)])
        failed = (failed or 0) + (await wait_for(app, more, timeout, counted) or 0)
    # Finished batches are kept a week (digest status reads the latest run's), no more.
    await app.job_manager.delete_old_jobs(KEEP_JOBS_HOURS, queue=QUEUE, include_failed=True)
    report.workers_hold = False
    return more, failed
