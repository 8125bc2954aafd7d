"""The jobs of a queued run (``run.queue``) in procrastinate's queue: what one batch is
(:class:`Batch`), the app, deferring a run's batches and waiting for them, and giving back
to the queue the batches of workers whose heartbeat stopped."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from typing import Any

import procrastinate
from sqlalchemy.engine import make_url

from digest.errors import StateError

log = logging.getLogger("digest.queue")

TASK = "digest.batch"
QUEUE = "digest"
#: Seconds between two looks at a run's batches (and at stalled workers).
POLL = 0.5
#: Hours a finished batch job is kept in procrastinate's table.
KEEP_JOBS_HOURS = 7 * 24
#: The highest subscriber id a batch covering every subscriber names.
ALL_IDS = 2**31 - 1


@dataclass(frozen=True)
class Batch:
    """One job: the active subscribers of ids ``low..high`` (with ``ids``: those of them
    only) for run ``run``. ``plan``: plan new digests too (False: resume the pending ones
    only). ``advance``: move each planned subscriber on to their next send (the scheduled
    passes of ``digest serve``)."""

    run: int
    day: str  # ISO dates and times: a job's arguments are JSON
    dates: list[str]
    since: str | None
    keys: list[str]  # the run's papers, under their stored keys
    now: str
    low: int
    high: int
    plan: bool = True
    ids: list[int] | None = None
    advance: bool = False

    def holds(self, subscriber_id: int) -> bool:
        """Whether the subscriber ``subscriber_id`` is one of this batch's."""
        if not self.low <= subscriber_id <= self.high:
            return False
        return self.ids is None or subscriber_id in self.ids


def conninfo(database: str) -> str:
    """The libpq URI of an SQLAlchemy PostgreSQL URL (its driver name dropped)."""
    return make_url(database).set(drivername="postgresql").render_as_string(hide_password=False)


def make_app(
    database: str, task: Callable[..., Awaitable[None]] | None = None
) -> procrastinate.App:
    """The procrastinate app on ``database``, with the batch task registered: ``task`` in a
    worker, which runs it; elsewhere a stand-in (the run only defers it by name)."""
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=conninfo(database)))
    # A batch the database failed (a connection cut) is taken again: it resumes what it had
    # recorded and plans the rest, so a retry sends nothing twice.
    retry = procrastinate.RetryStrategy(
        max_attempts=5, linear_wait=2, retry_exceptions={StateError}
    )
    app.task(name=TASK, queue=QUEUE, pass_context=True, retry=retry)(task or _not_here)
    return app


async def _not_here(*_args: Any, **_kwargs: Any) -> None:
    raise RuntimeError("a batch runs in `digest worker`, not here")


@asynccontextmanager
async def opened(
    database: str, task: Callable[..., Awaitable[None]] | None = None
) -> AsyncIterator[procrastinate.App]:
    """The app, open (``task``: see :func:`make_app`)."""
    app = make_app(database, task)
    async with app.open_async():
        yield app


async def defer(app: procrastinate.App, jobs: Iterable[Batch]) -> list[int]:
    """Queue ``jobs``, all in one transaction; their job ids."""
    task = app.tasks[TASK]
    return await task.batch_defer_async(*(asdict(j) for j in jobs))


async def wait_for(
    app: procrastinate.App,
    ids: list[int],
    heartbeat_timeout: float,
    tick: Callable[[], None] = lambda: None,
    should_stop: Callable[[], bool] = lambda: False,
) -> int | None:
    """Until every job of ``ids`` ended (succeeded or failed), giving back to the queue the
    jobs of workers silent for ``heartbeat_timeout`` seconds meanwhile, calling ``tick()``
    at each look; how many failed. None when ``should_stop()`` said to stop waiting first
    (the jobs go on in the workers)."""
    while True:
        tick()
        counts = await job_counts(app, ids)
        if counts.get("todo", 0) + counts.get("doing", 0) == 0:
            return counts.get("failed", 0)
        if should_stop():
            return None
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


async def open_jobs(app: procrastinate.App, runs: Iterable[int]) -> list[int]:
    """The batch jobs of ``runs`` still waiting for a worker or being worked on."""
    rows: list[dict[str, Any]] = await app.connector.execute_query_all_async(
        "SELECT id FROM procrastinate_jobs WHERE task_name = %(task)s"
        " AND status IN ('todo', 'doing') AND (args->>'run')::int = ANY(%(runs)s)",
        task=TASK,
        runs=list(runs),
    )
    return [int(r["id"]) for r in rows]


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
