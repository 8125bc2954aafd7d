"""The subscribers repository: the ``subscribers`` table, from the config, imports and the
web (double opt-in, preferences, leaving), and its scheduling columns."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import partial
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from digest.compose import random_token
from digest.models import Subscriber
from digest.store.schema import aware, begin, chunks, retried, subscribers, utc_now
from digest.store.subscriber_rows import (
    ImportCounts,
    import_rows,
    new_row,
    schedule_values,
    subscriber_values,
    sync_config_rows,
    to_subscriber,
)


@dataclass(frozen=True)
class SubscriptionRequest:
    """What :meth:`Members.request_subscription` did."""

    subscriber: Subscriber  # the row as it is now
    before: str  # "new" or the status the address had
    nonce: str | None  # what its confirmation link carries; None: nothing to confirm


class Members:
    """Reads and writes of subscribers; raises :class:`StateError`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- reading ----------------------------------------------------------------------------

    def subscriber(self, email: str) -> Subscriber | None:
        return self._one(subscribers.c.email == email)

    def subscriber_by_id(self, subscriber_id: int) -> Subscriber | None:
        return self._one(subscribers.c.id == subscriber_id)

    def subscriber_by_token(self, token: str) -> Subscriber | None:
        """The subscriber whose private feed token is ``token`` (compared by the database)."""
        return self._one(subscribers.c.token == token)

    def _one(self, cond: Any) -> Subscriber | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(subscribers).where(cond)).first()
        return to_subscriber(row) if row else None

    def subscribers(self, status: str | None = None) -> list[Subscriber]:
        query = sa.select(subscribers).order_by(subscribers.c.id)
        if status:
            query = query.where(subscribers.c.status == status)
        with self.engine.connect() as conn:
            return [to_subscriber(r) for r in conn.execute(query)]

    def active_batches(
        self, size: int = 1000, share: tuple[int, int] | None = None, first: int | None = None
    ) -> Iterator[list[Subscriber]]:
        """Active subscribers in id order, ``size`` at a time (memory stays flat), the
        first batch ``first`` (default ``size``).

        ``share=(part, parts)``: only those whose id is ``part`` modulo ``parts`` (one
        worker's share of a run).
        """
        cond = [subscribers.c.status == "active"]
        if share is not None:
            part, parts = share
            cond.append(subscribers.c.id % parts == part)
        return self._pages(cond, first or size, size)

    def iter_subscribers(self, batch: int = 1000) -> Iterator[Subscriber]:
        """Every subscriber, whatever their status, in id order, read ``batch`` rows at a
        time: memory stays flat however many there are."""
        for page in self._pages([], batch, batch):
            yield from page

    def _pages(self, cond: list[Any], first: int, size: int) -> Iterator[list[Subscriber]]:
        """The rows meeting ``cond`` in id order: ``first`` of them, then ``size`` at a time,
        each page read on a connection of its own."""
        last, limit = 0, first
        while True:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    sa.select(subscribers)
                    .where(*cond, subscribers.c.id > last)
                    .order_by(subscribers.c.id)
                    .limit(limit)
                ).all()
            if not rows:
                return
            last, limit = rows[-1].id, size
            yield [to_subscriber(r) for r in rows]

    # -- writing ----------------------------------------------------------------------------

    def sync_config_subscribers(self, subs: Sequence[Subscriber]) -> tuple[int, int, int]:
        """Upsert the config's subscribers; deactivate config subscribers no longer listed.

        Returns (added, updated, deactivated). A config subscriber who unsubscribed stays
        unsubscribed; one removed from the config is reactivated when listed again. Of two
        runs adding the same new subscribers at once, the one that loses does it again.
        """
        return retried(partial(self._sync_config_subscribers, subs), "save the subscribers")

    def _sync_config_subscribers(self, subs: Sequence[Subscriber]) -> tuple[int, int, int]:
        when = utc_now()
        with begin(self.engine) as conn:
            return sync_config_rows(conn, subs, when)

    def add_subscriber(self, sub: Subscriber) -> Subscriber:
        """Add a subscriber, or update and reactivate one with the same address."""
        values = {**subscriber_values(sub), **schedule_values(sub), "next_send_at": None}
        reactivate = {"status": "active", "status_reason": None, "hard_bounces": 0}
        self._put(values, "active", lambda row: reactivate)
        found = self.subscriber(sub.email)
        assert found is not None
        return found

    def _put(
        self, values: dict[str, Any], status: str, changes: Callable[[Any], dict[str, Any] | None]
    ) -> str:
        """Insert a subscriber row made of ``values`` with ``status``, or, when the address
        is known, update it with ``values`` overridden by ``changes(row)`` (None: leave it
        alone). Returns ``"new"`` or the status the row had."""
        when = utc_now()
        with begin(self.engine) as conn:
            row = conn.execute(
                sa.select(subscribers).where(subscribers.c.email == values["email"])
            ).first()
            if row is None:
                conn.execute(sa.insert(subscribers).values(new_row(values, status, now=when)))
                return "new"
            update = changes(row)
            if update is not None:
                conn.execute(
                    sa.update(subscribers)
                    .where(subscribers.c.id == row.id)
                    .values({**values, **update, "updated_at": when})  # update wins
                )
            return str(row.status)

    def remove_subscriber(self, email: str) -> bool:
        """Mark a subscriber unsubscribed (history is kept so nothing is resent on return)."""
        return self._write(
            sa.update(subscribers)
            .where(subscribers.c.email == email)
            .values(status="unsubscribed", status_reason="removed", updated_at=utc_now())
        )

    def import_subscribers(
        self,
        subs: Sequence[Subscriber],
        *,
        batch: int = 5000,
        now: datetime | None = None,
        schedule: bool = False,
        preferences: bool = True,
    ) -> ImportCounts:
        """Upsert ``subs`` by (normalised) address, one transaction per ``batch`` of them.

        A new address is added, active, with a fresh token. A known one keeps its id, token,
        status and bounce count; its name, queries and max_papers are updated when they
        differ; with ``schedule`` (the file carried schedule columns) so is their schedule,
        placed again when it changed; without ``preferences`` (the file had no sources or
        like_threshold column) their sources and like threshold stay. Someone unsubscribed
        or suspended stays so (counted ``kept_unsubscribed``, fields updated all the same):
        an import never reactivates anyone. Of one address given twice in a batch, the last
        wins. Each batch takes three statements: one SELECT of the known addresses, one
        executemany INSERT, one executemany UPDATE.
        """
        when = now or utc_now()
        total = ImportCounts()
        for chunk in chunks(subs, batch):
            # another import may add some of them meanwhile: the batch is done again
            job = partial(self._import_batch, chunk, when, schedule, preferences)
            total += retried(job, "import subscribers")
        return total

    def _import_batch(
        self, chunk: Sequence[Subscriber], when: datetime, schedule: bool, preferences: bool
    ) -> ImportCounts:
        with begin(self.engine) as conn:
            return import_rows(conn, chunk, when, schedule=schedule, preferences=preferences)

    # -- the web: double opt-in, preferences, leaving -----------------------------------------

    def request_subscription(self, sub: Subscriber) -> SubscriptionRequest:
        """Record a subscription asked for on the web: what it did, and the nonce its
        confirmation link must carry.

        New, unconfirmed, unsubscribed or suspended addresses become ``pending`` with the
        preferences given (confirming proves the address works) and a fresh nonce: a link
        sent for an earlier request no longer confirms anything. A subscriber of the
        configuration keeps the configuration's name, queries and schedule (the operator
        owns them). An ``active`` or ``paused`` subscriber is left exactly as is: a
        stranger must not change someone's queries.
        """
        nonce = random_token()
        values = {**subscriber_values(sub), **schedule_values(sub), "confirm_nonce": nonce}
        restart = {"status": "pending", "status_reason": None, "next_send_at": None}

        def changes(row: Any) -> dict[str, Any] | None:
            if row.status not in ("pending", "unsubscribed", "suspended"):
                return None
            if row.in_config:  # only the state and the nonce change
                kept = {k: getattr(row, k) for k in values if k not in ("email", "confirm_nonce")}
                return {**restart, **kept}
            return restart

        before = self._put(values, "pending", changes)
        found = self.subscriber(sub.email)
        assert found is not None
        waiting = before not in ("active", "paused")
        return SubscriptionRequest(found, before, nonce if waiting else None)

    def confirm(
        self, subscriber_id: int, email: str, when: datetime, *, nonce: str | None = None
    ) -> Subscriber | None:
        """Activate the pending request ``nonce`` names (None: a request made before
        nonces existed); the subscriber, or None when the link no longer fits (another
        address, a newer request, confirmed already, unsubscribed since...). Confirming
        clears the nonce: a link confirms once."""
        c = subscribers.c
        same = c.confirm_nonce.is_(None) if nonce is None else c.confirm_nonce == nonce
        with begin(self.engine) as conn:
            result = conn.execute(
                sa.update(subscribers)
                .where(c.id == subscriber_id, c.email == email, c.status == "pending", same)
                .values(
                    status="active",
                    status_reason=None,
                    hard_bounces=0,
                    confirmed_at=when,
                    next_send_at=None,
                    confirm_nonce=None,
                    updated_at=when,
                )
            )
        return self.subscriber_by_id(subscriber_id) if result.rowcount else None

    def withdraw_request(self, subscriber_id: int, nonce: str) -> bool:
        """Forget a new address's request ``nonce`` whose confirmation could not be sent
        (the row goes, unless a newer request or a confirmation came meanwhile)."""
        c = subscribers.c
        return self._write(
            sa.delete(subscribers).where(
                c.id == subscriber_id, c.status == "pending", c.confirm_nonce == nonce
            )
        )

    def pending_request(self, subscriber_id: int, nonce: str | None) -> Subscriber | None:
        """The pending subscriber whose current request is ``nonce`` (None: one made
        before nonces existed), or None: what a confirmation link would confirm."""
        c = subscribers.c
        same = c.confirm_nonce.is_(None) if nonce is None else c.confirm_nonce == nonce
        return self._one(sa.and_(c.id == subscriber_id, c.status == "pending", same))

    def delete(self, subscriber_id: int) -> bool:
        """Remove a subscriber's row ("delete my data"; their deliveries go first, through
        :meth:`Outbox.forget`, as they refer to it). False if there was none."""
        return self._write(sa.delete(subscribers).where(subscribers.c.id == subscriber_id))

    def managed_by_config(self, subscriber_id: int) -> bool:
        """Whether the configuration defines this subscriber (its queries and schedule are
        the operator's: each pass writes them again)."""
        with self.engine.connect() as conn:
            found = conn.execute(
                sa.select(subscribers.c.in_config).where(subscribers.c.id == subscriber_id)
            ).scalar()
        return bool(found)

    def update_preferences(self, subscriber_id: int, sub: Subscriber) -> Subscriber | None:
        """Replace one subscriber's name, queries and schedule (from the manage page: what
        it shows, nothing else; ``max_papers`` stays); the scheduler places them again.
        None if there is no such subscriber."""
        values = subscriber_values(sub)
        del values["email"], values["max_papers"], values["sources"], values["like_threshold"]
        with begin(self.engine) as conn:
            result = conn.execute(
                sa.update(subscribers)
                .where(subscribers.c.id == subscriber_id)
                .values(**values, **schedule_values(sub), next_send_at=None, updated_at=utc_now())
            )
        return self.subscriber_by_id(subscriber_id) if result.rowcount else None

    def set_status(
        self, subscriber_id: int, status: str, reason: str | None, *, only_from: Sequence[str]
    ) -> bool:
        """Move a subscriber to ``status`` if it is now in one of ``only_from``."""
        c = subscribers.c
        return self._write(
            sa.update(subscribers)
            .where(c.id == subscriber_id, c.status.in_(list(only_from)))
            .values(status=status, status_reason=reason, next_send_at=None, updated_at=utc_now())
        )

    def _write(self, statement: Any) -> bool:
        """Run one update or delete in a transaction of its own: whether it touched a row."""
        with begin(self.engine) as conn:
            return bool(conn.execute(statement).rowcount)

    # -- the schedule -----------------------------------------------------------------------

    def unscheduled(self, limit: int = 1000) -> list[Subscriber]:
        """Active subscribers with no next send time yet (new, confirmed, edited)."""
        return self._active(subscribers.c.next_send_at.is_(None), limit=limit)

    def due(self, now: datetime, limit: int = 1000, after_id: int = 0) -> list[Subscriber]:
        """Active subscribers whose next send time has come, by id, ``limit`` at a time."""
        c = subscribers.c
        return self._active(c.next_send_at <= now, c.id > after_id, limit=limit)

    def _active(self, *cond: Any, limit: int) -> list[Subscriber]:
        c = subscribers.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(subscribers)
                .where(c.status == "active", *cond)
                .order_by(c.id)
                .limit(limit)
            ).all()
        return [to_subscriber(r) for r in rows]

    def upcoming(self, limit: int = 3) -> list[tuple[datetime, int]]:
        """The next ``limit`` scheduled send instants of active subscribers, with how many
        subscribers each serves (overdue ones included: they go at the next pass)."""
        c = subscribers.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(c.next_send_at, sa.func.count())
                .where(c.status == "active", c.next_send_at.is_not(None))
                .group_by(c.next_send_at)
                .order_by(c.next_send_at)
                .limit(limit)
            ).all()
        return [(aware(when) or when, int(n)) for when, n in rows]

    def state_counts(self) -> dict[str, int]:
        """How many subscribers are in each state; ``unscheduled``: active, not placed yet."""
        c = subscribers.c
        with self.engine.connect() as conn:
            counts = {
                str(state): int(n)
                for state, n in conn.execute(
                    sa.select(c.status, sa.func.count()).group_by(c.status)
                )
            }
            counts["unscheduled"] = int(
                conn.execute(
                    sa.select(sa.func.count()).where(c.status == "active", c.next_send_at.is_(None))
                ).scalar_one()
            )
        return counts

    def next_due_at(self) -> datetime | None:
        """The earliest next send time of any active subscriber."""
        c = subscribers.c
        with self.engine.connect() as conn:
            value = conn.execute(
                sa.select(sa.func.min(c.next_send_at)).where(c.status == "active")
            ).scalar()
        return aware(value)

    def set_next_sends(
        self, marks: Sequence[tuple[int, datetime, date | None]], *, only_if_due: datetime | None
    ) -> None:
        """For each (id, next_send_at, covered_until): store the next send; covered_until
        None keeps the old one. With ``only_if_due``, a row whose next send time moved past
        it meanwhile (edited on the manage page) is left alone."""
        if not marks:
            return
        c = subscribers.c
        query = sa.update(subscribers).where(c.id == sa.bindparam("b_id"))
        if only_if_due is not None:
            query = query.where(c.next_send_at <= only_if_due)
        else:
            query = query.where(c.next_send_at.is_(None))
        query = query.values(
            next_send_at=sa.bindparam("b_next", type_=sa.DateTime(timezone=True)),
            covered_until=sa.func.coalesce(
                sa.bindparam("b_covered", type_=sa.Date), c.covered_until
            ),
        )
        rows = [{"b_id": i, "b_next": n, "b_covered": cov} for i, n, cov in marks]
        with begin(self.engine) as conn:
            for chunk in chunks(rows, 5000):
                conn.execute(query, list(chunk))
