"""What an operator sees of the runs: ``digest status``.

Each run is a row of the store's ``runs`` table (the pipeline records them); the alerts to
``mail.admin`` are :mod:`digest.run.alerts`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from digest.models import Subscriber
from digest.run.alerts import ALERT_KEY, failed_streak
from digest.store import RunRecord, Store


@dataclass(frozen=True)
class Status:
    """What ``digest status`` shows: runs, the delivery queue, suspended subscribers."""

    last: RunRecord | None  # the most recent finished run
    running: tuple[RunRecord, ...]  # runs recorded as started and not finished
    failing: tuple[RunRecord, ...]  # the failed runs in a row up to now, newest first
    deliveries: dict[str, int]  # count by status
    suspended: tuple[Subscriber, ...]
    alerting: bool
    upcoming: tuple[tuple[datetime, int], ...] = ()  # next send instants (UTC), subscribers
    states: dict[str, int] | None = None  # subscribers by state, and "unscheduled"
    #: The bounce mailbox's messages acted on in the last ``mailbox_days`` days, by kind
    #: (hard, soft, complaint, mailto).
    mailbox: dict[str, int] | None = None
    mailbox_days: int = 7


def status(store: Store, now: datetime | None = None) -> Status:
    recent = store.run_log.runs(50)
    days = Status.mailbox_days
    since = (now or datetime.now(UTC)) - timedelta(days=days)
    finished = [r for r in recent if r.outcome != "running"]
    return Status(
        last=finished[0] if finished else None,
        running=tuple(r for r in recent if r.outcome == "running"),
        failing=tuple(failed_streak(recent)),
        deliveries=store.outbox.delivery_counts(),
        suspended=tuple(store.members.subscribers("suspended")),
        alerting=store.run_log.get_meta(ALERT_KEY) == "alerting",
        upcoming=tuple(store.members.upcoming(3)),
        states=store.members.state_counts(),
        mailbox=store.bounces.counts(since),
        mailbox_days=days,
    )
