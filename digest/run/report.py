"""What a run did (:class:`RunReport`), its outcome, and its record in the ``runs`` table
(:func:`recorded_run`: the row at its start, the outcome at its end), with the admin alert."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

from digest.errors import DigestError, FeedError
from digest.models import SourceFailure
from digest.run.alerts import alert_admin
from digest.run.claims import HOST
from digest.run.context import Context

log = logging.getLogger("digest.pipeline")


@dataclass
class SubscriberReport:
    """One subscriber's line of the report: papers matched, and whether the digest went."""

    email: str
    matched: int
    sent: bool = False
    error: str | None = None


@dataclass
class RunReport:
    """What a run did, for the summary the CLI prints."""

    day: date
    fetched: int = 0
    new: int = 0
    warnings: list[str] = field(default_factory=list)
    subscribers: list[SubscriberReport] = field(default_factory=list)
    resumed: int = 0
    requeued: int = 0
    suspended: list[str] = field(default_factory=list)
    run_id: int | None = None
    sent: int = 0
    failed: int = 0
    deferred: int = 0
    dry_run: bool = False
    feeds: list[Path] = field(default_factory=list)
    outbox: Path | None = None
    #: The sources that could not give the run's date (the others' papers went out; the
    #: next run fetches that date of theirs again).
    source_failures: list[SourceFailure] = field(default_factory=list)
    #: A queued run (``run.queue``) whose batches are still with the workers: the digests
    #: it claimed are theirs, not given back when it ends (see :mod:`digest.run.queue`).
    workers_hold: bool = False


def run_outcome(report: RunReport) -> str:
    """``failed`` when digests were left pending, ``empty`` for an empty listing, else ``ok``.

    A digest refused for good (5xx) is the recipient's problem, not the run's: still ``ok``.
    """
    if report.deferred:
        return "failed"
    return "empty" if report.fetched == 0 else "ok"


async def end_run(
    ctx: Context,
    report: RunReport,
    run_id: int,
    finished: datetime,
    stage: str | None,
    error: str | None,
    *,
    alert: bool = True,
) -> None:
    """Give back unsent claims, record the run's end, alert the admin: never raises."""
    outcome = "failed" if error is not None else run_outcome(report)
    if outcome == "failed" and stage is None:
        stage = "deliver"
        error = f"{report.deferred} digest(s) left pending"
    try:
        released = 0 if report.workers_hold else ctx.store.outbox.release_claims(run_id)
        if released:
            log.info("released %s unsent digest(s) for the next run", released)
        ctx.store.run_log.finish_run(
            run_id,
            finished,
            outcome,
            stage=stage,
            error=error,
            fetched=report.fetched,
            sent=report.sent,
            failed=report.failed,
            deferred=report.deferred,
        )
        if alert:
            await alert_admin(ctx.config, ctx.store, ctx.sender, ctx.now, outcome, error)
    except DigestError as exc:  # the run's own error, if any, matters more
        log.error("cannot record the end of run %s: %s", run_id, exc)


@dataclass
class RunInProgress:
    """A run being recorded: its row in ``runs``, its clock (``ctx.now`` moving on with the
    run) and the stage it is in, which the run moves on (``"deliver"`` once fetched)."""

    run_id: int
    clock: Callable[[], datetime]
    stage: str | None = "fetch"


@asynccontextmanager
async def recorded_run(ctx: Context, report: RunReport, day: date) -> AsyncIterator[RunInProgress]:
    """Record a run of ``day`` in the ``runs`` table around the ``async with`` body.

    The row is started on entry (``report.run_id`` set); on leaving, :func:`end_run` records
    the outcome: the stage and error of an exception (a :class:`FeedError` is the
    ``feeds`` stage: the digests went), or ``interrupted`` without an alert for Ctrl-C or a
    cancellation. The exception goes on.
    """
    started = time.monotonic()

    def clock() -> datetime:
        return ctx.now + timedelta(seconds=time.monotonic() - started)

    record = RunInProgress(ctx.store.run_log.start_run(day, ctx.now, HOST, os.getpid()), clock)
    report.run_id = record.run_id
    error: str | None = None
    interrupted = False
    try:
        yield record
        record.stage = None
    except Exception as exc:
        error = str(exc) or type(exc).__name__
        if isinstance(exc, FeedError):  # the digests went; the feed files could not be written
            record.stage = "feeds"
        raise
    except BaseException:  # Ctrl-C, cancelled: recorded, but no reason to alert anyone
        error, interrupted = "interrupted", True
        raise
    finally:
        await end_run(
            ctx, report, record.run_id, clock(), record.stage, error, alert=not interrupted
        )
