"""A run's digests shared by ``digest worker`` processes on any number of machines
(``run.queue``, PostgreSQL only), through procrastinate's job queue in the same database.

The run (``digest run``, a ``digest serve`` pass) fetches and stores the listing as ever,
then defers one job per batch of active subscribers (an id range, :class:`Batch`), all
in one transaction, and waits for them: each worker takes a batch, resumes its subscribers'
pending digests, plans, records, composes and sends theirs (the functions of
:mod:`digest.run.share`) and marks each sent. Then the run writes the feeds and its record.

A batch's digests are recorded already claimed by the run (as a single-process run does),
each marked sent as the server accepts it. A worker killed mid-batch (SIGKILL, power cut)
leaves its unsent digests claimed: procrastinate notices its heartbeat stopped
(``run.heartbeat_timeout``), the run or any worker gives its batch back to the queue, and
another worker plans the rest (the claimed digests count as reserved: never planned twice).
When every batch is done the run takes back the claims dead workers left and sends them in a
last batch: only the messages a dead worker had in flight (accepted, not yet marked) may go
twice. A worker that loses
its database stops taking work (procrastinate stops it when its heartbeat fails) and
reconnects (:func:`work`).

Each batch adds what it did to the run's tally (a row of ``meta``), which the run reads
into its report.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import signal
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import procrastinate
import psycopg
from procrastinate.job_context import JobContext
from procrastinate.schema import SchemaManager
from procrastinate.worker import Worker
from sqlalchemy.engine import make_url

from digest.config import Config
from digest.deliver import Outgoing
from digest.errors import DigestError, StateError
from digest.models import Listing
from digest.run.claims import HOST, claimer
from digest.run.context import Context, make_context
from digest.run.outcomes import Recorder
from digest.run.report import RunReport
from digest.run.share import BATCH, Pool, plan_batch, resume_items
from digest.run.workers import WorkerError
from digest.select import DayMatcher
from digest.store import Store
from digest.store.queue_state import active_between

log = logging.getLogger("digest.queue")

TASK = "digest.batch"
QUEUE = "digest"
#: Seconds between two looks at a run's batches (and at stalled workers).
POLL = 0.5
#: Hours a finished batch job is kept in procrastinate's table.
KEEP_JOBS_HOURS = 7 * 24
#: The fewest subscribers a batch holds (a job costs a few database round trips).
MIN_BATCH = 10
#: Seconds before a worker that lost its database tries again.
RECONNECT = 2.0
_SCHEMA_LOCK = 0x64696775  # pg_advisory_xact_lock key: one process applies the schema


@dataclass(frozen=True)
class Batch:
    """One job: the active subscribers of ids ``low..high`` for run ``run``. ``plan``: plan
    new digests too (False: resume the pending ones only, the run's last sweep)."""

    run: int
    day: str  # ISO dates and times: a job's arguments are JSON
    dates: list[str]
    since: str | None
    keys: list[str]  # the run's papers, under their stored keys
    now: str
    low: int
    high: int
    plan: bool = True


@dataclass
class Tally:
    """What a run's batches did, added up in ``meta`` as each ends."""

    sent: int = 0
    failed: int = 0
    deferred: int = 0
    resumed: int = 0
    batches: int = 0
    suspended: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def conninfo(database: str) -> str:
    """The libpq URI of an SQLAlchemy PostgreSQL URL (its driver name dropped)."""
    return make_url(database).set(drivername="postgresql").render_as_string(hide_password=False)


def make_app(database: str) -> procrastinate.App:
    """The procrastinate app on ``database``, with the batch task registered."""
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=conninfo(database)))
    # A batch the database failed (a connection cut) is taken again: it resumes what it had
    # recorded and plans the rest, so a retry sends nothing twice.
    retry = procrastinate.RetryStrategy(
        max_attempts=5, linear_wait=2, retry_exceptions={StateError}
    )
    app.task(name=TASK, queue=QUEUE, pass_context=True, retry=retry)(_batch_task)
    return app


@asynccontextmanager
async def opened(database: str) -> AsyncIterator[procrastinate.App]:
    """The app, open, its tables made if this database has none yet."""
    app = make_app(database)
    await ensure_schema(database)
    async with app.open_async():
        yield app


async def ensure_schema(database: str) -> None:
    """Apply procrastinate's schema unless its tables exist: once, by whichever process
    comes first (the others wait on a transaction lock, then find the tables)."""
    async with await psycopg.AsyncConnection.connect(conninfo(database)) as conn:
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
        cursor = await conn.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL")
        row = await cursor.fetchone()
        if row is None or not row[0]:
            await conn.execute(SchemaManager.get_schema())
        await conn.commit()


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
    common = {
        "run": run_id,
        "day": pool.day.isoformat(),
        "dates": [d.isoformat() for d in pool.dates],
        "since": None,
        "keys": [p.key for p in listing.papers],
        "now": ctx.now.isoformat(),
    }
    return [
        Batch(low=page[0].id or 0, high=page[-1].id or 0, **common)  # type: ignore[arg-type]
        for page in ctx.store.members.active_batches(size)
        if page
    ]


async def deliver_queued(
    ctx: Context, listing: Listing, report: RunReport, run_id: int, *, wait: bool = True
) -> list[int]:
    """Defer the run's batches (one transaction) and, with ``wait``, wait for them, sweep
    what dead workers left, and add their tally to ``report``. Returns the jobs' ids.

    Raises :class:`WorkerError` when a batch failed (the first error a batch gave).
    """
    jobs = batches(ctx, listing, run_id)
    async with opened(ctx.config.database) as app:
        ids = await defer(app, jobs)
        log.info("run %s: %d batch(es) queued for the workers", run_id, len(ids))
        if not wait or not jobs:
            return ids

        def counted() -> None:  # the run's progress, batch by batch
            _add_up(report, read_tally(ctx.store, run_id))

        failed = await wait_for(app, ids, ctx.config.run.heartbeat_timeout, counted)
        released = ctx.store.outbox.release_claims(run_id)  # in flight when a worker died
        if released:
            log.warning("run %s: %d digest(s) a dead worker held, sent again", run_id, released)
            ends = [(j.low, j.high) for j in jobs]
            sweep = Batch(**{**asdict(jobs[0]), "low": ends[0][0], "high": ends[-1][1]})
            sweep = Batch(**{**asdict(sweep), "plan": False})
            more = await defer(app, [sweep])
            failed += await wait_for(app, more, ctx.config.run.heartbeat_timeout, counted)
            ids += more
        # Finished batches are kept a week (digest status reads the latest run's), no more.
        await app.job_manager.delete_old_jobs(KEEP_JOBS_HOURS, queue=QUEUE, include_failed=True)
    tally = _add_up(report, read_tally(ctx.store, run_id))
    if tally.errors or failed:
        error = tally.errors[0] if tally.errors else f"{failed} batch(es) failed"
        raise WorkerError(error, hint="see the workers' logs for the batches")
    return ids


def _add_up(report: RunReport, tally: Tally) -> Tally:
    """The run's report holds what its batches did so far (``report`` counts nothing else)."""
    report.sent, report.failed, report.deferred = tally.sent, tally.failed, tally.deferred
    report.resumed, report.suspended = tally.resumed, list(tally.suspended)
    return tally


async def defer(app: procrastinate.App, jobs: Iterable[Batch]) -> list[int]:
    """Queue ``jobs``, all in one transaction; their job ids."""
    task = app.tasks[TASK]
    return await task.batch_defer_async(*(asdict(j) for j in jobs))


async def wait_for(
    app: procrastinate.App,
    ids: list[int],
    heartbeat_timeout: float,
    tick: Callable[[], None] = lambda: None,
) -> int:
    """Until every job of ``ids`` ended (succeeded or failed), giving back to the queue the
    jobs of workers silent for ``heartbeat_timeout`` seconds meanwhile, calling ``tick()``
    at each look; how many failed."""
    while True:
        tick()
        counts = await job_counts(app, ids)
        if counts.get("todo", 0) + counts.get("doing", 0) == 0:
            return counts.get("failed", 0)
        await retry_stalled(app, heartbeat_timeout)
        await asyncio.sleep(POLL)


async def job_counts(app: procrastinate.App, ids: list[int] | None = None) -> dict[str, int]:
    """How many batch jobs (of ``ids``; None: all) are in each status."""
    rows = await app.connector.execute_query_all_async(
        "SELECT status::text AS status, count(*) AS n FROM procrastinate_jobs"
        " WHERE task_name = %(task)s AND (%(all)s OR id = ANY(%(ids)s)) GROUP BY status",
        task=TASK,
        all=ids is None,
        ids=ids or [],
    )
    return {r["status"]: int(r["n"]) for r in rows}


async def retry_stalled(app: procrastinate.App, heartbeat_timeout: float) -> list[int]:
    """Give back to the queue the batches of workers silent ``heartbeat_timeout`` seconds."""
    stalled = await app.job_manager.get_stalled_jobs(
        task_name=TASK, seconds_since_heartbeat=heartbeat_timeout
    )
    retried = []
    for job in stalled:
        log.warning("batch job %s: its worker is silent, given to another worker", job.id)
        await app.job_manager.retry_job(job)
        retried.append(job.id or 0)
    return retried


def read_tally(store: Store, run_id: int) -> Tally:
    """The run's tally so far (empty before any batch ended)."""
    text = store.run_log.get_meta(_tally_key(run_id))
    return Tally(**json.loads(text)) if text else Tally()


def add_tally(store: Store, run_id: int, report: RunReport, error: str | None) -> None:
    """Add one batch's report (and error) to the run's tally (a compare-and-swap loop)."""
    key = _tally_key(run_id)
    while True:
        old = store.run_log.get_meta(key)
        tally = Tally(**json.loads(old)) if old else Tally()
        tally.sent += report.sent
        tally.failed += report.failed
        tally.deferred += report.deferred
        tally.resumed += report.resumed
        tally.batches += 1
        tally.suspended += report.suspended
        tally.errors += [error] if error else []
        if store.run_log.swap_meta(key, old, json.dumps(asdict(tally))):
            return


def _tally_key(run_id: int) -> str:
    return f"queue.run.{run_id}"


@dataclass(frozen=True)
class QueueState:
    """What ``digest status`` says of the queue: each live worker's seconds since its last
    heartbeat, and the batches of the latest queued run by status (procrastinate's: todo,
    doing, succeeded, failed...)."""

    heartbeats: list[float]
    run: int | None
    batches: dict[str, int]

    def lines(self, timeout: float) -> list[str]:
        """``workers:`` and ``batches:`` lines of ``digest status``."""
        alive = [h for h in self.heartbeats if h <= timeout]
        silent = len(self.heartbeats) - len(alive)
        beats = ", ".join(f"{h:.0f} s" for h in sorted(alive))
        text = f"{len(alive)} (heartbeats {beats} ago)" if alive else "0 (none running)"
        if silent:
            text += f"; {silent} silent past {timeout:g} s (taken for dead)"
        counts = self.batches
        batches = (
            f"pending {counts.get('todo', 0)}, running {counts.get('doing', 0)},"
            f" done {counts.get('succeeded', 0)}, failed {counts.get('failed', 0)}"
            f" (run {self.run})"
            if self.run is not None
            else "none queued yet"
        )
        return [f"workers:    {text}", f"batches:    {batches}"]


def queue_state(database: str) -> QueueState:
    """Read the workers' heartbeats and the latest queued run's batches; raises
    :class:`StateError` when the database does not answer."""
    try:
        return _queue_state(database)
    except psycopg.Error as exc:
        raise StateError(f"cannot read the queue: {exc}") from exc


def _queue_state(database: str) -> QueueState:
    with psycopg.connect(conninfo(database), connect_timeout=10) as conn:
        found = conn.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL").fetchone()
        if found is None or not found[0]:
            return QueueState([], None, {})
        beats = conn.execute(
            "SELECT extract(epoch FROM now() - last_heartbeat) FROM procrastinate_workers"
        ).fetchall()
        latest = conn.execute(
            "SELECT max((args->>'run')::int) FROM procrastinate_jobs WHERE task_name = %s",
            (TASK,),
        ).fetchone()
        run = latest[0] if latest else None
        rows = conn.execute(
            "SELECT status::text, count(*) FROM procrastinate_jobs"
            " WHERE task_name = %s AND (args->>'run')::int = %s GROUP BY status",
            (TASK, run),
        ).fetchall()
    return QueueState([float(b[0]) for b in beats], run, {st: int(n) for st, n in rows})


# -- in the workers ----------------------------------------------------------------------


class WorkerState:
    """What a worker process keeps between batches: the config, one store, each run's pool."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.store = Store(config.database)
        self._pools: dict[int, Pool] = {}
        self._contexts: dict[int, Context] = {}

    def context(self, batch: Batch) -> Context:
        """The run's context: one per run and worker, so that its renderer renders each
        paper once for all the batches (the fragments' cache)."""
        if batch.run not in self._contexts:
            now = datetime.fromisoformat(batch.now)
            self._contexts = {batch.run: make_context(self.config, self.store, now=now)}
        return self._contexts[batch.run]

    def pool(self, batch: Batch) -> Pool:
        """The run's papers (read once per run and worker)."""
        if batch.run not in self._pools:
            found = self.store.papers.papers_by_key(set(batch.keys))
            papers = [found[k] for k in batch.keys if k in found]
            self._pools = {
                batch.run: Pool(
                    date.fromisoformat(batch.day),
                    tuple(date.fromisoformat(d) for d in batch.dates),
                    DayMatcher(papers),
                    len(papers),
                    date.fromisoformat(batch.since) if batch.since else None,
                )
            }
        return self._pools[batch.run]


async def _batch_task(context: JobContext, /, **args: Any) -> None:
    state: WorkerState = context.additional_context["state"]
    await deliver_batch(state, Batch(**args))


async def deliver_batch(state: WorkerState, batch: Batch) -> RunReport:
    """Resume the pending digests of the batch's subscribers (each claimed before it goes),
    then (``batch.plan``) plan and record theirs, claimed for the run, compose and send them,
    each marked sent as it is accepted. Adds the report to the run's tally; raises what
    stopped it (the batch then fails; a :class:`StateError` is retried)."""
    ctx, pool = state.context(batch), state.pool(batch)
    report = RunReport(day=date.fromisoformat(batch.day))
    marker = ThreadPoolExecutor(1, thread_name_prefix="digest-mark")
    recorder = Recorder(ctx.store, report, ctx.config.mail.max_hard_bounces, marker)
    claim = claimer(ctx, batch.run, lambda: datetime.now(UTC))
    pending = [
        p
        for p in ctx.store.outbox.pending()
        if p.subscriber.id is not None and batch.low <= p.subscriber.id <= batch.high
    ]

    def plan() -> Iterator[Outgoing]:  # in a thread: the worker's heartbeat goes on
        subs = active_between(ctx.store.engine, batch.low, batch.high)
        return plan_batch(ctx, subs, lambda _: pool, report, recorder, batch.run)

    try:
        resumed = resume_items(ctx, pending, report, claim)
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


async def work(config: Config, concurrency: int = 1, *, wait: bool = True) -> None:
    """A worker: take batches until stopped (SIGINT, SIGTERM; ``wait=False``: until the
    queue is empty). Losing the database stops it taking work; it reconnects after
    :data:`RECONNECT` seconds and goes on."""
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
        async with opened(config.database) as app:
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


async def _watch_stalled(app: procrastinate.App, timeout: float) -> None:
    while True:
        await asyncio.sleep(max(1.0, timeout / 4))
        try:
            await retry_stalled(app, timeout)
        except Exception as exc:  # the database went away: the worker stops by itself
            log.debug("cannot look for stalled batches: %s", exc)
