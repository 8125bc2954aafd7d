"""What an operator sees of the runs: ``digest status`` (:func:`status`), its ``--json``
and ``/admin`` (:func:`overview`), ``/metrics`` (:func:`counters`).

Each run is a row of the store's ``runs`` table (the pipeline records them); the alerts to
``mail.admin`` are :mod:`digest.run.alerts`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from digest.config import Config
from digest.models import Subscriber
from digest.run.alerts import ALERT_KEY, failed_streak
from digest.run.claims import gone
from digest.run.source_health import SourceHealth, sources_health, to_json
from digest.store import RunRecord, RunTotals, Store


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
    #: Each source's health (the configured ones, then those no longer configured).
    sources: tuple[SourceHealth, ...] = ()


def status(
    store: Store, now: datetime | None = None, config: Config | None = None, *, papers: bool = True
) -> Status:
    """What ``digest status`` shows; each source's health too when ``config`` is given
    (with its stored papers counted unless ``papers`` is false)."""
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
        sources=() if config is None else tuple(sources_health(config, store, papers=papers)),
    )


#: The version of :func:`overview`'s document; a field removed or changed in meaning raises
#: it, a field added does not.
SCHEMA = 1
#: Days of runs, of subscriber growth, in the overview.
DAYS = 30


def overview(store: Store, config: Config, now: datetime | None = None) -> dict[str, Any]:
    """What ``/admin`` shows and ``digest status --json`` prints: plain JSON values.

    ``{"schema": 1, "generated_at", "last_run", "running", "alerting", "runs" (per listing
    day, oldest first: runs, sent, failed, deferred), "sources" (one per source, see
    :func:`~digest.run.source_health.to_json`: name, kind, location, status
    ok|failing|unknown|disabled|removed, last_ok, failures_in_a_row, last_error...), "queue"
    (pending, sending, failed, sent), "subscribers" (by state, and "unscheduled"), "growth"
    (per day: added), "bounces" (days, hard, soft, complaint, mailto), "next_sends" (at,
    subscribers)}``; the README documents each field.
    """
    when = now or datetime.now(UTC)
    st = status(store, when, config)
    since = when - timedelta(days=DAYS)
    recent = store.run_log.since(since)
    counts = st.deliveries
    return {
        "schema": SCHEMA,
        "generated_at": when.isoformat(),
        "last_run": _run(st.last) if st.last else None,
        "running": [_running(r) for r in st.running],
        "alerting": st.alerting,
        "runs": _per_day(recent),
        "sources": [to_json(h) for h in st.sources],
        "queue": {k: counts.get(k, 0) for k in ("pending", "sending", "failed", "sent")},
        "subscribers": {k: (st.states or {}).get(k, 0) for k in STATES},
        "growth": [
            {"day": day.isoformat(), "added": n} for day, n in store.stats.added_per_day(since)
        ],
        "bounces": {"days": st.mailbox_days, **{k: (st.mailbox or {}).get(k, 0) for k in KINDS}},
        "next_sends": [{"at": at.isoformat(), "subscribers": n} for at, n in st.upcoming],
    }


#: The subscriber states the overview counts ("unscheduled": active, not placed yet).
STATES = ("active", "pending", "paused", "unsubscribed", "suspended", "unscheduled")
#: The bounce mailbox's kinds of message.
KINDS = ("hard", "soft", "complaint", "mailto")


def _run(r: RunRecord) -> dict[str, Any]:
    return {
        "id": r.id,
        "day": r.day.isoformat(),
        "started_at": r.started_at.isoformat(),
        "finished_at": r.finished_at.isoformat() if r.finished_at else None,
        "outcome": r.outcome,
        "stage": r.stage,
        "error": r.error,
        "fetched": r.fetched,
        "sent": r.sent,
        "failed": r.failed,
        "deferred": r.deferred,
    }


def _running(r: RunRecord) -> dict[str, Any]:
    """A run recorded as going, and whether it is ``gone``: its process died on this host
    without recording its end (the next run records it as failed)."""
    return {**_run(r), "host": r.host, "pid": r.pid, "gone": gone(r)}


def _per_day(recent: list[RunRecord]) -> list[dict[str, Any]]:
    days: dict[date, dict[str, Any]] = {}
    for r in sorted(recent, key=lambda r: (r.day, r.id)):
        day = days.setdefault(
            r.day, {"day": r.day.isoformat(), "runs": 0, "sent": 0, "failed": 0, "deferred": 0}
        )
        day["runs"] += 1
        for key in ("sent", "failed", "deferred"):
            day[key] += getattr(r, key)
    return list(days.values())[-DAYS:]


@dataclass(frozen=True)
class Counters:
    """What ``/metrics`` exposes: the runs' totals, the queue, subscribers by state, and
    the configured, enabled sources' health."""

    totals: RunTotals
    queue: int  # deliveries pending or being sent
    states: dict[str, int]
    sources: tuple[SourceHealth, ...] = ()


def counters(store: Store, config: Config | None = None) -> Counters:
    """The counters; each enabled source's health too when ``config`` is given."""
    counts = store.outbox.delivery_counts()
    found = sources_health(config, store, papers=False) if config is not None else []
    return Counters(
        totals=store.run_log.totals(),
        queue=counts.get("pending", 0) + counts.get("sending", 0),
        states=store.members.state_counts(),
        sources=tuple(h for h in found if h.configured and h.enabled),
    )
