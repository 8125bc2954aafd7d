"""The thin :class:`Store` the pipeline receives: it opens the database, makes sure of the
schema, and holds one repository per area."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime

from sqlalchemy.engine import Engine

from digest.models import Listing, Paper, Subscriber
from digest.store.bounces import Bounces
from digest.store.limits import RateLimits
from digest.store.members import Members, SubscriptionRequest
from digest.store.migrate import upgrade_if_behind
from digest.store.outbox import Claim, DeliveryRecord, Outbox, PendingDelivery
from digest.store.outbox_rows import PlannedDelivery
from digest.store.papers import Papers
from digest.store.runs import RunLog, RunRecord
from digest.store.schema import open_engine
from digest.store.subscriber_rows import ImportCounts


class Store:
    """paper-digest's state over one engine: ``papers`` (papers and listings), ``members``
    (subscribers), ``outbox`` (deliveries and claims), ``run_log`` (runs and meta keys),
    ``limits`` (the web's rate limits).
    Raises :class:`StateError`."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine = open_engine(url)
        self.papers = Papers(self.engine)
        self.members = Members(self.engine)
        self.outbox = Outbox(self.engine)
        self.run_log = RunLog(self.engine)
        self.bounces = Bounces(self.engine)  # the bounce mailbox's record
        self.limits = RateLimits(self.engine)
        upgrade_if_behind(self.engine)  # Alembic: a database that is behind is upgraded

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- papers (phase 1: delegations, to go) ----------

    def save_listing(self, listing: Listing, fetched_at: datetime | None = None) -> None:
        return self.papers.save_listing(listing, fetched_at)

    def listing(self, day: date) -> Listing | None:
        return self.papers.listing(day)

    def recent_dates(self, n: int) -> list[date]:
        return self.papers.recent_dates(n)

    def papers_by_key(self, keys: Iterable[str]) -> dict[str, Paper]:
        return self.papers.papers_by_key(keys)

    # -- members (phase 1: delegations, to go) ----------

    def subscriber(self, email: str) -> Subscriber | None:
        return self.members.subscriber(email)

    def subscriber_by_id(self, subscriber_id: int) -> Subscriber | None:
        return self.members.subscriber_by_id(subscriber_id)

    def subscriber_by_token(self, token: str) -> Subscriber | None:
        return self.members.subscriber_by_token(token)

    def subscribers(self, status: str | None = None) -> list[Subscriber]:
        return self.members.subscribers(status)

    def active_batches(
        self, size: int = 1000, share: tuple[int, int] | None = None, first: int | None = None
    ) -> Iterator[list[Subscriber]]:
        return self.members.active_batches(size, share, first)

    def iter_subscribers(self, batch: int = 1000) -> Iterator[Subscriber]:
        return self.members.iter_subscribers(batch)

    def sync_config_subscribers(self, subs: Sequence[Subscriber]) -> tuple[int, int, int]:
        return self.members.sync_config_subscribers(subs)

    def add_subscriber(self, sub: Subscriber) -> Subscriber:
        return self.members.add_subscriber(sub)

    def remove_subscriber(self, email: str) -> bool:
        return self.members.remove_subscriber(email)

    def import_subscribers(
        self, subs: Sequence[Subscriber], *, batch: int = 5000, now: datetime | None = None
    ) -> ImportCounts:
        return self.members.import_subscribers(subs, batch=batch, now=now)

    def request_subscription(self, sub: Subscriber) -> SubscriptionRequest:
        return self.members.request_subscription(sub)

    def confirm(self, subscriber_id: int, email: str, when: datetime) -> Subscriber | None:
        return self.members.confirm(subscriber_id, email, when)

    def update_preferences(self, subscriber_id: int, sub: Subscriber) -> Subscriber | None:
        return self.members.update_preferences(subscriber_id, sub)

    def set_status(
        self, subscriber_id: int, status: str, reason: str | None, *, only_from: Sequence[str]
    ) -> bool:
        return self.members.set_status(subscriber_id, status, reason, only_from=only_from)

    def unscheduled(self, limit: int = 1000) -> list[Subscriber]:
        return self.members.unscheduled(limit)

    def due(self, now: datetime, limit: int = 1000, after_id: int = 0) -> list[Subscriber]:
        return self.members.due(now, limit, after_id)

    def upcoming(self, limit: int = 3) -> list[tuple[datetime, int]]:
        return self.members.upcoming(limit)

    def state_counts(self) -> dict[str, int]:
        return self.members.state_counts()

    def next_due_at(self) -> datetime | None:
        return self.members.next_due_at()

    def set_next_sends(
        self, marks: Sequence[tuple[int, datetime, date | None]], *, only_if_due: datetime | None
    ) -> None:
        return self.members.set_next_sends(marks, only_if_due=only_if_due)

    # -- outbox (phase 1: delegations, to go) ----------

    def delivered_keys(
        self, subscriber_ids: Sequence[int], day: date | Sequence[date]
    ) -> dict[int, set[str]]:
        return self.outbox.delivered_keys(subscriber_ids, day)

    def record_pending(
        self,
        plans: Sequence[PlannedDelivery],
        created_at: datetime,
        *,
        claimed_by: int | None = None,
    ) -> list[PlannedDelivery]:
        return self.outbox.record_pending(plans, created_at, claimed_by=claimed_by)

    def pending(self, day: date | None = None) -> list[PendingDelivery]:
        return self.outbox.pending(day)

    def claim(self, delivery_id: str, run_id: int, when: datetime) -> bool:
        return self.outbox.claim(delivery_id, run_id, when)

    def claims(self) -> list[Claim]:
        return self.outbox.claims()

    def requeue(self, claim: Claim) -> bool:
        return self.outbox.requeue(claim)

    def release_claims(self, run_id: int) -> int:
        return self.outbox.release_claims(run_id)

    def mark_sent(self, delivery_id: str, when: datetime | None = None) -> None:
        return self.outbox.mark_sent(delivery_id, when)

    def mark_sent_many(self, delivery_ids: Sequence[str], when: datetime | None = None) -> None:
        return self.outbox.mark_sent_many(delivery_ids, when)

    def mark_failed(
        self, delivery_id: str, error: str, *, max_hard_bounces: int | None = None
    ) -> bool:
        return self.outbox.mark_failed(delivery_id, error, max_hard_bounces=max_hard_bounces)

    def mark_deferred(self, delivery_id: str, error: str) -> None:
        return self.outbox.mark_deferred(delivery_id, error)

    def delivery_counts(self) -> dict[str, int]:
        return self.outbox.delivery_counts()

    def history(self, subscriber_id: int, limit: int = 20) -> list[DeliveryRecord]:
        return self.outbox.history(subscriber_id, limit)

    def sent_count(self, subscriber_id: int) -> int:
        return self.outbox.sent_count(subscriber_id)

    # -- run_log (phase 1: delegations, to go) ----------

    def start_run(self, day: date, started_at: datetime, host: str, pid: int) -> int:
        return self.run_log.start_run(day, started_at, host, pid)

    def finish_run(
        self,
        run_id: int,
        finished_at: datetime,
        outcome: str,
        *,
        stage: str | None = None,
        error: str | None = None,
        fetched: int = 0,
        sent: int = 0,
        failed: int = 0,
        deferred: int = 0,
    ) -> None:
        return self.run_log.finish_run(
            run_id,
            finished_at,
            outcome,
            stage=stage,
            error=error,
            fetched=fetched,
            sent=sent,
            failed=failed,
            deferred=deferred,
        )

    def runs(self, limit: int = 20) -> list[RunRecord]:
        return self.run_log.runs(limit)

    def swap_meta(self, key: str, old: str | None, new: str) -> bool:
        return self.run_log.swap_meta(key, old, new)

    def get_meta(self, key: str) -> str | None:
        return self.run_log.get_meta(key)

    def secret(self) -> bytes:
        return self.run_log.secret()
