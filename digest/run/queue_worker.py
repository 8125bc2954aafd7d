"""``digest worker``'s side of a queued run: take a batch, resume its subscribers' pending
digests, plan, record, compose and send theirs, each marked sent as the server accepts it
(:func:`deliver_batch`), batch after batch, reconnecting when the database goes away
(:func:`work`)."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import signal
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from typing import Any

from procrastinate.job_context import JobContext
from procrastinate.worker import Worker

from digest.config import Config
from digest.deliver import Outgoing
from digest.errors import DigestError, StateError
from digest.models import Subscriber
from digest.run.claims import HOST, claimer
from digest.run.context import Context, make_context
from digest.run.outcomes import Recorder
from digest.run.queue_jobs import QUEUE, Batch, opened, retry_stalled
from digest.run.queue_schema import check_schema
from digest.run.queue_tally import add_tally
from digest.run.report import RunReport
from digest.run.share import Pool, plan_batch, resume_items
from digest.schedule import Schedule, ScheduleError, next_send
from digest.select import DayMatcher
from digest.store import Store
from digest.store.queue_state import active_between, claimed_by_run, note_taken

log = logging.getLogger("digest.queue")

#: Seconds before a worker that lost its database tries again.
RECONNECT = 2.0
#: Resumed digests built ahead and noted in one transaction (after a crash a batch may
#: resume most of its subscribers' digests: one write each would double the claims' cost).
NOTE_AHEAD = 16


class WorkerState:
    """What a worker process keeps between batches: the config, one store, each run's pool."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.store = Store(config.database)
        self._pools: dict[tuple[int, tuple[str, ...], str | None], Pool] = {}
        self._contexts: dict[int, Context] = {}

    def context(self, batch: Batch) -> Context:
        """The run's context: one per run and worker, so that its renderer renders each
        paper once for all the batches (the fragments' cache)."""
        if batch.run not in self._contexts:
            now = datetime.fromisoformat(batch.now)
            self._contexts = {batch.run: make_context(self.config, self.store, now=now)}
        return self._contexts[batch.run]

    def pool(self, batch: Batch) -> Pool:
        """The batch's papers (read once per run, dates and worker: a scheduled pass has a
        pool per window of dates)."""
        key = (batch.run, tuple(batch.dates), batch.since)
        if key not in self._pools:
            found = self.store.papers.papers_by_key(set(batch.keys))
            papers = [found[k] for k in batch.keys if k in found]
            pools = {k: p for k, p in self._pools.items() if k[0] == batch.run}
            pools[key] = Pool(
                date.fromisoformat(batch.day),
                tuple(date.fromisoformat(d) for d in batch.dates),
                DayMatcher(papers),
                len(papers),
                date.fromisoformat(batch.since) if batch.since else None,
            )
            self._pools = pools
        return self._pools[key]


async def batch_task(context: JobContext, /, **args: Any) -> None:
    """procrastinate's task: one batch (its arguments a :class:`Batch`)."""
    state: WorkerState = context.additional_context["state"]
    job = context.job.id if context.job is not None else None
    await deliver_batch(state, Batch(**args), job or 0)


async def deliver_batch(state: WorkerState, batch: Batch, job_id: int = 0) -> RunReport:
    """Resume the pending digests of the batch's subscribers (each claimed before it goes),
    then (``batch.plan``) plan and record theirs, claimed for the run, compose and send them,
    each marked sent as it is accepted. Every digest taken is noted under the job before it
    is sent (the run's counts). Adds the report to the run's tally; raises what stopped it
    (the batch then fails; a :class:`StateError` is retried)."""
    ctx, pool = state.context(batch), state.pool(batch)
    engine = ctx.store.engine
    report = RunReport(day=date.fromisoformat(batch.day))
    marker = ThreadPoolExecutor(1, thread_name_prefix="digest-mark")
    recorder = Recorder(ctx.store, report, ctx.config.mail.max_hard_bounces, marker)
    claim = claimer(ctx, batch.run, lambda: datetime.now(UTC))
    pending = [
        p
        for p in ctx.store.outbox.pending()
        if p.subscriber.id is not None and batch.holds(p.subscriber.id)
    ]

    def plan() -> Iterator[Outgoing]:  # in a thread: the worker's heartbeat goes on
        subs = active_between(engine, batch.low, batch.high, batch.ids)
        outgoing = plan_batch(ctx, subs, lambda _: pool, report, recorder, batch.run)
        taken = claimed_by_run(engine, batch.run, batch.low, batch.high, batch.ids)
        note_taken(engine, batch.run, job_id, taken)
        if batch.advance:  # recorded: on to their next send (a scheduled pass)
            advance(ctx, subs, date.fromisoformat(batch.day))
        return outgoing

    def noted(items: Iterable[Outgoing]) -> Iterator[Outgoing]:
        """Resumed digests (claimed as they are built), noted a few at a time before they go."""
        found = iter(items)
        while few := list(itertools.islice(found, NOTE_AHEAD)):
            note_taken(engine, batch.run, job_id, [str(item.key) for item in few])
            yield from few

    try:
        resumed = noted(resume_items(ctx, pending, report, claim))
        planned = await asyncio.to_thread(plan) if batch.plan else iter(())
        await ctx.sender.deliver(itertools.chain(resumed, planned), recorder)
    except StateError:
        raise  # the database: the batch is retried, and tallied then
    except DigestError as exc:
        add_tally(ctx.store, batch.run, report, str(exc))
        raise
    finally:
        await recorder.close()
        marker.shutdown(wait=True)
    add_tally(ctx.store, batch.run, report, None)
    return report


def advance(ctx: Context, subs: Sequence[Subscriber], today: date) -> None:
    """Move the batch's subscribers on to their next send, as a scheduled pass does once
    their digests are recorded (only those still due: another pass may have moved them)."""
    now = ctx.now
    ctx.store.members.set_next_sends(
        [(s.id, next_send(_schedule(ctx.config, s), now), today) for s in subs if s.id is not None],
        only_if_due=now,
    )


def _schedule(config: Config, sub: Subscriber) -> Schedule:
    """The subscriber's schedule; the configuration's default if theirs no longer validates."""
    try:
        return config.schedule_of(sub)
    except ScheduleError:
        return config.schedule_of(Subscriber(email=sub.email))


async def work(config: Config, concurrency: int = 1, *, wait: bool = True) -> None:
    """A worker: take batches until stopped (SIGINT, SIGTERM; ``wait=False``: until the
    queue is empty). Losing the database stops it taking work; it reconnects after
    :data:`RECONNECT` seconds and goes on. Raises :class:`StateError` (naming
    ``digest db upgrade``) when the queue's tables are missing or behind."""
    await asyncio.to_thread(check_schema, config.database)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    current: list[Worker] = []

    def stop() -> None:
        stopping.set()
        for worker in current:
            worker.stop()  # type: ignore[no-untyped-call]

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    try:
        while not stopping.is_set():
            try:
                await _one_session(config, concurrency, wait, current)
                if not wait:
                    return
            except Exception as exc:  # the database went away (psycopg, pool, StateError)
                log.warning("worker lost the database (%s); reconnecting", exc or type(exc))
            current.clear()
            if not stopping.is_set():
                await asyncio.sleep(RECONNECT)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _one_session(config: Config, concurrency: int, wait: bool, current: list[Worker]) -> None:
    """One connection's worth of work: a procrastinate worker, and a look for stalled
    workers' batches every few seconds beside it."""
    timeout = config.run.heartbeat_timeout
    state = WorkerState(config)
    try:
        async with opened(config.database, batch_task) as app:
            worker = Worker(
                app,
                queues=[QUEUE],
                name=f"{HOST}:{os.getpid()}",
                concurrency=concurrency,
                wait=wait,
                additional_context={"state": state},
                install_signal_handlers=False,
                update_heartbeat_interval=max(1.0, timeout / 6),
                stalled_worker_timeout=timeout,
                listen_notify=True,
                fetch_job_polling_interval=2.0,
            )
            current.append(worker)
            watcher = asyncio.create_task(_watch_stalled(app, timeout))
            try:
                await worker.run()  # type: ignore[no-untyped-call]
            finally:
                watcher.cancel()
    finally:
        state.store.close()


async def _watch_stalled(app: Any, timeout: float) -> None:
    while True:
        await asyncio.sleep(max(1.0, timeout / 4))
        try:
            await retry_stalled(app, timeout)
        except Exception as exc:  # the database went away: the worker stops by itself
            log.debug("cannot look for stalled batches: %s", exc)
