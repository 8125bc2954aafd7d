"""What a run did (:class:`RunReport`), its outcome, and the record of its end in the
``runs`` table, with the admin alert."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from digest.errors import DigestError
from digest.run.alerts import alert_admin
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
        released = ctx.store.outbox.release_claims(run_id)
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
