"""The outbox repository: digests recorded, claimed, sent or failed (table ``deliveries``,
each row carrying its papers as a packed array of ``papers.id``), and what subscribers were
sent."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from digest.models import Subscriber
from digest.store.outbox_rows import (
    DriverWrites,
    PaperRef,
    PlannedDelivery,
    held_ids,
    held_since,
    keys_of_ids,
    number_papers,
    refs_of_keys,
    since_of,
    unpack_ids,
)
from digest.store.schema import (
    aware,
    begin,
    chunks,
    deliveries,
    listing_papers,
    papers,
    runs,
    subscribers,
    utc_now,
)
from digest.store.subscriber_rows import to_subscriber

#: Papers recorded per transaction (see :meth:`Outbox.record_pending`).
RECORD_ROWS = 5_000


@dataclass(frozen=True)
class PendingDelivery:
    """A recorded digest not yet accepted by a server."""

    id: str
    subscriber: Subscriber
    listing_date: date
    message_id: str
    created_at: datetime
    paper_keys: tuple[str, ...]
    shown: int
    attempts: int


@dataclass(frozen=True)
class Claim:
    """A delivery in state ``sending`` and what is known of the run that claimed it."""

    delivery_id: str
    run_id: int | None
    claimed_at: datetime | None
    run_host: str | None  # None: no such run recorded
    run_pid: int | None
    run_finished: bool


@dataclass(frozen=True)
class DeliveryRecord:
    """One delivery as ``subscribers show`` prints it."""

    listing_date: date
    status: str
    papers: int
    created_at: datetime
    sent_at: datetime | None
    error: str | None


_ids = random.Random()
_ids_pid: int | None = None


def new_delivery_id() -> str:
    """32 hex digits: the microseconds since 1970, then 72 random bits. Ids made later sort
    later, so a day's thousands of new rows go at the end of the indexes on them instead
    of all over (a fifth less time recording 100,000 digests on SQLite).

    The bits only need to be unique, not secret (ids never leave the database): they come
    from a generator seeded from the OS once per process, not a system call per id.
    """
    global _ids_pid
    if _ids_pid != os.getpid():  # a new process (forked ones too) gets a new seed
        _ids.seed(os.urandom(32))
        _ids_pid = os.getpid()
    return f"{time.time_ns() // 1000:014x}{_ids.getrandbits(72):018x}"


class Outbox:
    """Reads and writes of deliveries; raises :class:`StateError`.

    Three of its queries read other repositories' tables, and two writes change a
    subscriber, because each belongs to a delivery: see the package docstring.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._driver = DriverWrites(engine)

    def delivered_keys(
        self, subscriber_ids: Sequence[int], day: date | Sequence[date]
    ) -> dict[int, set[str]]:
        """For each subscriber, the papers of ``day``'s listing (or of any of several
        days') already sent or reserved: the papers of their digests kept (pending, being
        sent, or sent less than ``[history] keep_days`` ago) that the listing has. Only
        digests recorded since the listing's papers were first seen are read (see
        :func:`held_since`)."""
        found: dict[int, set[str]] = {i: set() for i in subscriber_ids}
        if not subscriber_ids:
            return found
        days = [day] if isinstance(day, date) else list(day)
        with self.engine.connect() as conn:
            pool: dict[int, str] = dict(
                conn.execute(
                    sa.select(papers.c.id, papers.c.key)
                    .join(listing_papers, listing_papers.c.paper_key == papers.c.key)
                    .where(listing_papers.c.date.in_(days))
                ).all()
            )
            if not pool:
                return found
            since = held_since(conn, pool)
            for chunk in chunks(list(subscriber_ids), 900):
                for sid, ids in held_ids(conn, chunk, since).items():
                    had = found[sid]
                    for paper_id in ids:
                        key = pool.get(paper_id)
                        if key is not None:
                            had.add(key)
        return found

    def record_pending(
        self,
        plans: Sequence[PlannedDelivery],
        created_at: datetime,
        *,
        claimed_by: int | None = None,
    ) -> list[PlannedDelivery]:
        """Record digests as pending and reserve their papers; returns those recorded.

        With ``claimed_by`` (a run's id) they are recorded already claimed by that run
        (status ``sending``, as :meth:`claim` leaves them): a digest a run plans for itself
        needs no claim of its own, one UPDATE and commit per message fewer.
        A plan whose papers another run reserved meanwhile is dropped (returned list omits it).

        Plans go in chunks of about :data:`RECORD_ROWS` papers, each chunk one transaction
        (a check of what the subscribers' digests hold, then multi-row inserts): a digest
        carries its papers in its own row, and no transaction holds SQLite's write lock long
        enough to stall the ``mark_sent`` of messages being accepted meanwhile. Each paper's
        id and first sighting are read once per call, not once per chunk (a batch's digests
        share the day's papers).
        """
        recorded: list[PlannedDelivery] = []
        chunk: list[PlannedDelivery] = []
        rows = 0
        known: dict[str, PaperRef] = {}
        for plan in plans:
            chunk.append(plan)
            rows += len(plan.paper_keys)
            if rows >= RECORD_ROWS:
                recorded += self._record_chunk(chunk, created_at, claimed_by, known)
                chunk, rows = [], 0
        if chunk:
            recorded += self._record_chunk(chunk, created_at, claimed_by, known)
        return recorded

    def _paper_refs(
        self, keys: set[str], created_at: datetime, known: dict[str, PaperRef]
    ) -> dict[str, PaperRef]:
        """The id and first sighting of each of the papers ``keys``, from ``known`` (then
        remembered there) or the database; a paper never stored is numbered by a row of
        its key only."""
        missing = keys - known.keys()
        if missing:
            with self.engine.connect() as conn:
                known.update(refs_of_keys(conn, missing))
            if unstored := missing - known.keys():
                with begin(self.engine) as conn:
                    number_papers(conn, sorted(unstored), created_at)
                    known.update(refs_of_keys(conn, unstored))
        return {key: known[key] for key in keys}

    def _record_chunk(
        self,
        plans: list[PlannedDelivery],
        created_at: datetime,
        claimed_by: int | None,
        known: dict[str, PaperRef],
    ) -> list[PlannedDelivery]:
        """Record ``plans`` in one transaction, less those holding a paper their subscriber's
        digests already hold (another run reserved it meanwhile): read and written under
        the subscribers' locks (SQLite's write lock, taken first; PostgreSQL's row locks on
        the subscribers, in id order), so two runs never both reserve one paper."""
        refs = self._paper_refs(set().union(*(p.paper_keys for p in plans)), created_at, known)
        ids = {key: ref[0] for key, ref in refs.items()}
        rows = self._driver.rows(plans, created_at, claimed_by, ids)
        owners = sorted({p.subscriber_id for p in plans})
        since = since_of(refs.values())
        # Made before the write lock is taken: each digest's papers, as ids.
        wanted = [set(map(ids.__getitem__, p.paper_keys)) for p in plans]
        with begin(self.engine) as conn:
            _lock_subscribers(conn, owners)
            held: dict[int, set[int]] = {}
            for chunk in chunks(owners, 900):
                held.update(held_ids(conn, chunk, since))
            kept: list[int] = []
            for n, plan in enumerate(plans):
                if not held[plan.subscriber_id].isdisjoint(wanted[n]):
                    continue
                held[plan.subscriber_id] |= wanted[n]
                kept.append(n)
            self._driver.insert(conn, [rows[n] for n in kept])
        return [plans[n] for n in kept]

    def pending(self, day: date | None = None) -> list[PendingDelivery]:
        """Deliveries recorded and not claimed by any run (status pending), oldest first.

        Those of subscribers no longer active are left alone. A run must still
        :meth:`claim` each one before sending it: another run may be resuming them too.
        """
        query = (
            sa.select(deliveries, subscribers)
            .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
            .where(deliveries.c.status == "pending", subscribers.c.status == "active")
            .order_by(deliveries.c.created_at)
        )
        if day is not None:
            query = query.where(deliveries.c.listing_date == day)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
            keys = keys_of_ids(conn, {i for r in rows for i in unpack_ids(r.papers)})
        return [_pending_delivery(r, keys) for r in rows]

    def claim(self, delivery_id: str, run_id: int, when: datetime) -> bool:
        """pending → sending, for run ``run_id``: True when this run now owns the delivery.

        One conditional UPDATE: of two runs claiming the same row, exactly one sees a row
        changed (on SQLite the write lock, on PostgreSQL the row lock, orders them).
        """
        with begin(self.engine) as conn:
            result = conn.execute(
                sa.update(deliveries)
                .where(deliveries.c.id == delivery_id, deliveries.c.status == "pending")
                .values(status="sending", claimed_by=run_id, claimed_at=when)
            )
        return bool(result.rowcount == 1)

    def claims(self) -> list[Claim]:
        """Every delivery in state ``sending``, with what is known of its claiming run."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    deliveries.c.id,
                    deliveries.c.claimed_by,
                    deliveries.c.claimed_at,
                    runs.c.host,
                    runs.c.pid,
                    runs.c.finished_at,
                )
                .outerjoin(runs, runs.c.id == deliveries.c.claimed_by)
                .where(deliveries.c.status == "sending")
            ).all()
        return [
            Claim(
                delivery_id=r.id,
                run_id=r.claimed_by,
                claimed_at=aware(r.claimed_at),
                run_host=r.host,
                run_pid=r.pid,
                run_finished=r.finished_at is not None,
            )
            for r in rows
        ]

    def requeue(self, claim: Claim) -> bool:
        """sending → pending, only if ``claim`` still holds (no one else moved it since)."""
        cond = (
            deliveries.c.claimed_by.is_(None)
            if claim.run_id is None
            else deliveries.c.claimed_by == claim.run_id
        )
        with begin(self.engine) as conn:
            result = conn.execute(
                sa.update(deliveries)
                .where(deliveries.c.id == claim.delivery_id, deliveries.c.status == "sending", cond)
                .values(status="pending", claimed_by=None, claimed_at=None)
            )
        return bool(result.rowcount == 1)

    def release_claims(self, run_id: int) -> int:
        """Put back to pending what run ``run_id`` claimed but never handed over (it stops)."""
        with begin(self.engine) as conn:
            result = conn.execute(
                sa.update(deliveries)
                .where(deliveries.c.status == "sending", deliveries.c.claimed_by == run_id)
                .values(status="pending", claimed_by=None, claimed_at=None)
            )
        return int(result.rowcount)

    def mark_sent(self, delivery_id: str, when: datetime | None = None) -> None:
        """Accepted by the server: the delivery is sent (its papers become history) and its
        subscriber's run of hard bounces ends, in one transaction."""
        self.mark_sent_many([delivery_id], when)

    def mark_sent_many(self, delivery_ids: Sequence[str], when: datetime | None = None) -> None:
        """:meth:`mark_sent` for several deliveries accepted about the same time, in one
        transaction (a group commit: the messages several connections had accepted while
        the previous commit ran).

        Straight to the driver, as SQLAlchemy's statement machinery cost as much as
        SQLite's commit.
        """
        if not delivery_ids:
            return
        when = when or utc_now()
        with begin(self.engine) as conn:
            self._driver.mark_sent(conn, delivery_ids, when)

    def mark_failed(
        self, delivery_id: str, error: str, *, max_hard_bounces: int | None = None
    ) -> bool:
        """A permanent failure: record it and release the papers for a later digest.

        It counts as one more hard bounce of the subscriber; at ``max_hard_bounces`` in a
        row they are suspended (status ``suspended``, reason ``bounced``). Returns True when
        this failure suspended them.
        """
        with begin(self.engine) as conn:
            return fail_delivery(conn, delivery_id, error, max_hard_bounces)

    def mark_deferred(self, delivery_id: str, error: str) -> None:
        """A transient failure: back to pending (unclaimed) for the next run."""
        with begin(self.engine) as conn:
            conn.execute(
                sa.update(deliveries)
                .where(deliveries.c.id == delivery_id)
                .values(
                    status="pending",
                    error=error,
                    attempts=deliveries.c.attempts + 1,
                    claimed_by=None,
                    claimed_at=None,
                )
            )

    def delivery_counts(self) -> dict[str, int]:
        """How many deliveries are in each status (pending, sending, sent, failed)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(deliveries.c.status, sa.func.count()).group_by(deliveries.c.status)
            ).all()
        return {status: int(n) for status, n in rows}

    def history(self, subscriber_id: int, limit: int = 20) -> list[DeliveryRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(deliveries)
                .where(deliveries.c.subscriber_id == subscriber_id)
                .order_by(deliveries.c.created_at.desc())
                .limit(limit)
            ).all()
        return [
            DeliveryRecord(
                listing_date=r.listing_date,
                status=r.status,
                papers=len(unpack_ids(r.papers)),
                created_at=aware(r.created_at) or utc_now(),
                sent_at=aware(r.sent_at),
                error=r.error,
            )
            for r in rows
        ]

    def forget(self, subscriber_id: int) -> int:
        """Delete every digest recorded for a subscriber and the papers each carried ("delete
        my data"); returns how many digests went."""
        with begin(self.engine) as conn:
            result = conn.execute(
                sa.delete(deliveries).where(deliveries.c.subscriber_id == subscriber_id)
            )
        return int(result.rowcount)

    def sent_count(self, subscriber_id: int) -> int:
        """How many papers the subscriber's digests kept (see ``[history]``) sent them."""
        with self.engine.connect() as conn:
            blobs = conn.execute(
                sa.select(deliveries.c.papers).where(
                    deliveries.c.subscriber_id == subscriber_id, deliveries.c.status == "sent"
                )
            ).scalars()
            return sum(len(unpack_ids(b)) for b in blobs)


def _lock_subscribers(conn: Connection, ids: Sequence[int]) -> None:
    """Hold the right to record digests for subscribers ``ids`` until the transaction ends."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")  # pysqlite would begin only at the INSERT
        return
    for chunk in chunks(list(ids), 900):
        conn.execute(
            sa.select(subscribers.c.id)
            .where(subscribers.c.id.in_(chunk))
            .order_by(subscribers.c.id)
            .with_for_update(key_share=True)  # FOR NO KEY UPDATE: foreign keys still check
        ).all()


def fail_delivery(
    conn: Connection,
    delivery_id: str,
    error: str,
    max_hard_bounces: int | None,
    *,
    bounces: Any = None,
) -> bool:
    """:meth:`Outbox.mark_failed` inside the caller's transaction: the delivery failed, its
    papers released, its subscriber's hard bounces set to ``bounces`` (an SQL expression;
    default: one more), suspended at ``max_hard_bounces``. True when this suspended them.

    The mailbox's asynchronous bounces come through here too (``digest.store.bounces``).
    """
    conn.execute(
        sa.update(deliveries)
        .where(deliveries.c.id == delivery_id)
        .values(
            status="failed", error=error, attempts=deliveries.c.attempts + 1, papers=b"", shown=0
        )
    )
    owner = subscribers.c.id == _subscriber_of(delivery_id)
    count = subscribers.c.hard_bounces + 1 if bounces is None else bounces
    conn.execute(sa.update(subscribers).where(owner).values(hard_bounces=count))
    if max_hard_bounces is None:
        return False
    result = conn.execute(
        sa.update(subscribers)
        .where(
            owner,
            subscribers.c.status == "active",
            subscribers.c.hard_bounces >= max_hard_bounces,
        )
        .values(status="suspended", status_reason="bounced", updated_at=utc_now())
    )
    return bool(result.rowcount == 1)


def _subscriber_of(delivery_id: str) -> Any:
    return (
        sa.select(deliveries.c.subscriber_id)
        .where(deliveries.c.id == delivery_id)
        .scalar_subquery()
    )


def _pending_delivery(r: Any, keys: dict[int, str]) -> PendingDelivery:
    """A row of deliveries joined with its subscriber's; ``keys`` names its papers' ids."""
    m = r._mapping
    ids = unpack_ids(m[deliveries.c.papers])
    return PendingDelivery(
        id=m[deliveries.c.id],
        subscriber=to_subscriber(r),
        listing_date=m[deliveries.c.listing_date],
        message_id=m[deliveries.c.message_id],
        created_at=aware(m[deliveries.c.created_at]) or utc_now(),
        paper_keys=tuple(keys[i] for i in ids if i in keys),
        shown=m[deliveries.c.shown],
        attempts=m[deliveries.c.attempts],
    )
