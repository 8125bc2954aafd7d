"""The bounce mailbox's repository (table ``mailbox_messages``): each message acted on is
recorded in the same transaction as what it did, so none is acted on twice, even when the
mailbox could not be told it was processed.

What a message names is read from ``deliveries``; its effects are written where they
belong, in that one transaction: a hard bounce fails its delivery through the outbox's
:func:`~digest.store.outbox.fail_delivery` (the synchronous 5xx's own code), a complaint or
a mailto unsubscribe changes the subscriber's status.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from digest.store.outbox import fail_delivery
from digest.store.schema import begin, deliveries, mailbox_messages, subscribers

#: States an unsubscribe (complaint or mailto) takes a subscriber from.
UNSUBSCRIBABLE = ("active", "paused", "pending", "suspended")


@dataclass(frozen=True)
class DeliveryRef:
    """A delivery a bounce names: its id, its subscriber and its status now."""

    id: str
    subscriber_id: int
    status: str


@dataclass(frozen=True)
class Applied:
    """What recording one message did. ``new`` False: it had been recorded before (already
    seen), nothing else changed."""

    new: bool
    counted: bool = False  #: a hard bounce counted against the subscriber
    suspended: bool = False  #: ... and suspended them
    unsubscribed: bool = False  #: a complaint or unsubscribe ended the subscription


class Bounces:
    """Reads and writes of the mailbox's record; raises :class:`StateError`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def seen(self, key: str) -> bool:
        """Whether the message with ``key`` was acted on before."""
        with self.engine.connect() as conn:
            found = conn.execute(
                sa.select(mailbox_messages.c.key).where(mailbox_messages.c.key == key)
            ).first()
        return found is not None

    def delivery(self, delivery_id: str) -> DeliveryRef | None:
        return self._delivery(deliveries.c.id == delivery_id)

    def delivery_by_message_id(self, message_id: str) -> DeliveryRef | None:
        return self._delivery(deliveries.c.message_id == message_id)

    def _delivery(self, cond: Any) -> DeliveryRef | None:
        c = deliveries.c
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(c.id, c.subscriber_id, c.status).where(cond)).first()
        return DeliveryRef(row.id, row.subscriber_id, row.status) if row else None

    def hard_bounce(
        self,
        key: str,
        delivery_id: str,
        detail: str,
        *,
        max_hard_bounces: int | None,
        when: datetime,
    ) -> Applied:
        """A permanent failure reported after the server had accepted the digest: the
        delivery fails and counts as a hard bounce, exactly as a 5xx at RCPT or DATA does
        (see :meth:`Outbox.mark_failed`), unless it had failed already.

        "In a row" counts the subscriber's failed digests up to this one: a digest accepted
        by the server since (and reset the count) may well bounce later too, so the count
        is the greater of one more and that run of failures.
        """
        try:
            with begin(self.engine) as conn:
                owner = sa.select(deliveries.c.subscriber_id).where(deliveries.c.id == delivery_id)
                _record(conn, key, "hard", owner.scalar_subquery(), delivery_id, detail, when)
                ref = _lock_delivery(conn, delivery_id)  # after a write: under the lock
                if ref is None or ref.status == "failed":
                    return Applied(new=True)
                run = _failed_run(conn, ref) + 1
                greater = sa.func.greatest if conn.dialect.name == "postgresql" else sa.func.max
                count = greater(subscribers.c.hard_bounces + 1, run)
                suspended = fail_delivery(
                    conn, delivery_id, f"bounced: {detail}", max_hard_bounces, bounces=count
                )
                return Applied(new=True, counted=True, suspended=suspended)
        except IntegrityError:
            return Applied(new=False)

    def note(
        self,
        key: str,
        kind: str,
        detail: str,
        *,
        when: datetime,
        subscriber_id: int | None = None,
        delivery_id: str | None = None,
    ) -> Applied:
        """A message that changes nothing (a soft bounce: counted and reported, not acted
        on), recorded so it is reported once."""
        try:
            with begin(self.engine) as conn:
                _record(conn, key, kind, subscriber_id, delivery_id, detail, when)
        except IntegrityError:
            return Applied(new=False)
        return Applied(new=True)

    def unsubscribe(
        self, key: str, subscriber_id: int, reason: str, detail: str, *, when: datetime
    ) -> Applied:
        """A complaint (``reason`` "complaint") or a mailto unsubscribe ("mailto"): the
        subscriber is unsubscribed at once, from any state but unsubscribed."""
        try:
            with begin(self.engine) as conn:
                _record(conn, key, reason, subscriber_id, None, detail, when)
                result = conn.execute(
                    sa.update(subscribers)
                    .where(
                        subscribers.c.id == subscriber_id,
                        subscribers.c.status.in_(UNSUBSCRIBABLE),
                    )
                    .values(
                        status="unsubscribed",
                        status_reason=reason,
                        next_send_at=None,
                        updated_at=when,
                    )
                )
        except IntegrityError:
            return Applied(new=False)
        return Applied(new=True, unsubscribed=bool(result.rowcount))

    def counts(self, since: datetime | None = None) -> dict[str, int]:
        """How many messages of each kind were acted on (since ``since``)."""
        query = sa.select(mailbox_messages.c.kind, sa.func.count()).group_by(
            mailbox_messages.c.kind
        )
        if since is not None:
            query = query.where(mailbox_messages.c.received_at >= since)
        with self.engine.connect() as conn:
            return {kind: int(n) for kind, n in conn.execute(query).all()}


def _record(
    conn: Connection,
    key: str,
    kind: str,
    subscriber_id: Any,
    delivery_id: str | None,
    detail: str,
    when: datetime,
) -> None:
    """The message's row; IntegrityError when it was recorded before."""
    conn.execute(
        sa.insert(mailbox_messages).values(
            key=key,
            kind=kind,
            subscriber_id=subscriber_id,
            delivery_id=delivery_id,
            detail=detail[:1000],
            received_at=when,
        )
    )


def _lock_delivery(conn: Connection, delivery_id: str) -> DeliveryRef | None:
    """The delivery, read under a row lock on PostgreSQL (on SQLite the transaction holds
    the write lock since its first write: the record)."""
    c = deliveries.c
    query = sa.select(c.id, c.subscriber_id, c.status).where(c.id == delivery_id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).first()
    return DeliveryRef(row.id, row.subscriber_id, row.status) if row else None


def _failed_run(conn: Connection, ref: DeliveryRef) -> int:
    """How many of the subscriber's digests made before ``ref``'s failed in a row (back to
    the newest one that did not fail)."""
    c = deliveries.c
    made = sa.select(c.created_at).where(c.id == ref.id).scalar_subquery()
    rows = conn.execute(
        sa.select(c.status)
        .where(c.subscriber_id == ref.subscriber_id, c.created_at < made)
        .order_by(c.created_at.desc(), c.id.desc())
        .limit(1000)
    ).all()
    run = 0
    for (status,) in rows:
        if status != "failed":
            break
        run += 1
    return run
