"""The database edge: papers, listings, subscribers and deliveries, through SQLAlchemy Core.

SQLite by default, PostgreSQL with only another URL. A paper reaches a subscriber at most
once because ``delivery_papers`` has one row per (subscriber, paper): composing a digest
reserves its papers in the same transaction that records the pending delivery; a permanent
failure releases them; being marked sent makes them history.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from digest.compose import random_token
from digest.errors import StateError
from digest.models import Listing, Paper, Subscriber

#: 2: deliveries.claimed_by/claimed_at (the sending claim), subscribers.hard_bounces, runs.
#: 3: subscribers' schedule (send_at, timezone, frequency, weekday, days, next_send_at,
#: covered_until) and confirmed_at.
SCHEMA_VERSION = 3
#: Paper rows recorded per transaction (see :meth:`Store.record_pending`).
RECORD_ROWS = 5_000

metadata = sa.MetaData()

meta = sa.Table(
    "meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

papers = sa.Table(
    "papers",
    metadata,
    sa.Column("key", sa.String(512), primary_key=True),
    sa.Column("arxiv_id", sa.String(64)),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("abstract", sa.Text, nullable=False, default=""),
    sa.Column("authors", sa.Text, nullable=False, default="[]"),
    sa.Column("upvotes", sa.Integer, nullable=False, default=0),
    sa.Column("published", sa.DateTime(timezone=True)),
    sa.Column("extra", sa.Text, nullable=False, default="{}"),
    sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
)

listings = sa.Table(
    "listings",
    metadata,
    sa.Column("date", sa.Date, primary_key=True),
    sa.Column("source", sa.Text, nullable=False, default=""),
    sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("count", sa.Integer, nullable=False),
)

listing_papers = sa.Table(
    "listing_papers",
    metadata,
    sa.Column("date", sa.Date, primary_key=True),
    sa.Column("paper_key", sa.String(512), primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),
)

subscribers = sa.Table(
    "subscribers",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("email", sa.String(320), nullable=False, unique=True),
    sa.Column("name", sa.Text),
    sa.Column("keywords", sa.Text, nullable=False, default="[]"),
    sa.Column("exclude", sa.Text, nullable=False, default="[]"),
    sa.Column("max_papers", sa.Integer),
    sa.Column("status", sa.String(16), nullable=False, default="active"),
    sa.Column("status_reason", sa.String(32)),
    sa.Column("token", sa.String(64), nullable=False, unique=True),
    sa.Column("in_config", sa.Boolean, nullable=False, default=False),
    sa.Column("hard_bounces", sa.Integer, nullable=False, default=0, server_default="0"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("send_at", sa.String(5)),
    sa.Column("timezone", sa.String(64)),
    sa.Column("frequency", sa.String(8)),
    sa.Column("weekday", sa.String(3)),
    sa.Column("days", sa.String(32)),
    sa.Column("next_send_at", sa.DateTime(timezone=True)),
    sa.Column("covered_until", sa.Date),
    sa.Column("confirmed_at", sa.DateTime(timezone=True)),
    sa.Index("ix_subscribers_due", "status", "next_send_at"),
)

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id"), nullable=False),
    sa.Column("listing_date", sa.Date, nullable=False),
    sa.Column("message_id", sa.String(255), nullable=False, unique=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("error", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("sent_at", sa.DateTime(timezone=True)),
    sa.Column("claimed_by", sa.Integer),  # runs.id of the run sending it (status "sending")
    sa.Column("claimed_at", sa.DateTime(timezone=True)),
    sa.Index("ix_deliveries_status", "status"),
    sa.Index("ix_deliveries_subscriber", "subscriber_id"),
)

delivery_papers = sa.Table(
    "delivery_papers",
    metadata,
    sa.Column("delivery_id", sa.String(32), sa.ForeignKey("deliveries.id"), nullable=False),
    sa.Column("subscriber_id", sa.Integer, nullable=False),
    sa.Column("paper_key", sa.String(512), nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("shown", sa.Boolean, nullable=False),
    sa.PrimaryKeyConstraint("subscriber_id", "paper_key"),
    sa.Index("ix_delivery_papers_delivery", "delivery_id"),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("outcome", sa.String(16), nullable=False),  # running, ok, empty, failed
    sa.Column("stage", sa.String(16)),  # where a failed run stopped: fetch, deliver
    sa.Column("error", sa.Text),
    sa.Column("fetched", sa.Integer, nullable=False, default=0),
    sa.Column("sent", sa.Integer, nullable=False, default=0),
    sa.Column("failed", sa.Integer, nullable=False, default=0),
    sa.Column("deferred", sa.Integer, nullable=False, default=0),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
)

#: Columns added after version 1, by table: created by ALTER TABLE on an older database.
_ADDED_COLUMNS = {
    "subscribers": (
        "hard_bounces",
        "send_at",
        "timezone",
        "frequency",
        "weekday",
        "days",
        "next_send_at",
        "covered_until",
        "confirmed_at",
    ),
    "deliveries": ("claimed_by", "claimed_at"),
}


@dataclass(frozen=True)
class PlannedDelivery:
    """A digest to record as pending: its papers in display order, those past the cap last."""

    subscriber_id: int
    listing_date: date
    paper_keys: tuple[str, ...]
    shown: int  # how many of paper_keys are shown; the rest are "N more"
    id: str = ""
    message_id: str = ""


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
class RunRecord:
    """One recorded ``digest run`` (or fetch attempt), newest first from :meth:`Store.runs`."""

    id: int
    day: date
    started_at: datetime
    finished_at: datetime | None
    outcome: str  # running, ok, empty, failed
    stage: str | None  # where a failed run stopped: "fetch", "deliver"
    error: str | None
    fetched: int
    sent: int
    failed: int
    deferred: int


@dataclass(frozen=True)
class DeliveryRecord:
    """One delivery as ``subscribers show`` prints it."""

    listing_date: date
    status: str
    papers: int
    created_at: datetime
    sent_at: datetime | None
    error: str | None


@dataclass(frozen=True)
class ImportCounts:
    """What :meth:`Store.import_subscribers` did with each subscriber it was given."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    kept_unsubscribed: int = 0  # known, not active (unsubscribed or suspended): left so

    def __add__(self, other: ImportCounts) -> ImportCounts:
        return ImportCounts(
            self.added + other.added,
            self.updated + other.updated,
            self.unchanged + other.unchanged,
            self.kept_unsubscribed + other.kept_unsubscribed,
        )


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


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


class Store:
    """All reads and writes of paper-digest's state; raises :class:`StateError`."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            self.engine: Engine = sa.create_engine(url, future=True)
        except (SQLAlchemyError, ImportError, ValueError) as exc:
            raise StateError(
                f"cannot open database {_safe_url(url)}: {exc}", hint=_db_hint(url)
            ) from exc
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        self._insert_deliveries, self._bind_deliveries = _driver_insert(
            self.engine, deliveries, DELIVERY_COLUMNS
        )
        self._insert_papers, _ = _driver_insert(self.engine, delivery_papers, PAPER_COLUMNS)
        mark = self._mark = "?" if self.engine.dialect.paramstyle == "qmark" else "%s"
        self._sql_mark_sent = (
            f"UPDATE deliveries SET status = 'sent', sent_at = {mark}, error = NULL,"
            " attempts = attempts + 1 WHERE id IN ({ids})"
        )
        self._sql_bounces_reset = (
            "UPDATE subscribers SET hard_bounces = 0 WHERE hard_bounces > 0 AND id IN"
            " (SELECT subscriber_id FROM deliveries WHERE id IN ({ids}))"
        )
        process = deliveries.c.sent_at.type.bind_processor(self.engine.dialect)
        self._bind_sent_at: Callable[[datetime], Any] = process or (lambda value: value)
        self._migrate()

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing -------------------------------------------------------------------------

    def _begin(self) -> Any:
        return _Transaction(self.engine)

    def _migrate(self) -> None:
        with self._begin() as conn:
            metadata.create_all(conn)
            row = conn.execute(sa.select(meta.c.value).where(meta.c.key == "schema_version"))
            version = row.scalar()
            if version is None:
                conn.execute(
                    sa.insert(meta).values(key="schema_version", value=str(SCHEMA_VERSION))
                )
            elif int(version) > SCHEMA_VERSION:
                raise StateError(
                    f"database {_safe_url(self.url)} has schema version {version}, newer than"
                    f" this paper-digest ({SCHEMA_VERSION})",
                    hint="upgrade paper-digest",
                )
            elif int(version) < SCHEMA_VERSION:
                _add_columns(conn)
                for index in subscribers.indexes:
                    index.create(conn, checkfirst=True)
                conn.execute(
                    sa.update(meta)
                    .where(meta.c.key == "schema_version")
                    .values(value=str(SCHEMA_VERSION))
                )

    def secret(self) -> bytes:
        """The signing secret kept in the database, made on first use."""
        made = random_token() + random_token()
        if not self.swap_meta("secret", None, made):  # another run made it first: use theirs
            made = self.get_meta("secret") or made
        return made.encode()

    # -- listings ---------------------------------------------------------------------------

    def save_listing(self, listing: Listing, fetched_at: datetime | None = None) -> None:
        """Record the listing of a date: its papers upserted, its membership extended.

        Two runs saving the same listing at once collide on its keys; the one that loses
        does it again, finding the papers there (an update).
        """
        for attempt in range(3):
            try:
                return self._save_listing(listing, fetched_at or _now())
            except IntegrityError as exc:
                if attempt == 2:
                    raise StateError(f"cannot save the listing: {_reason(exc)}") from exc

    def _save_listing(self, listing: Listing, fetched_at: datetime) -> None:
        keys = [p.key for p in listing.papers]
        with self._begin() as conn:
            known = set()
            for chunk in _chunks(keys, 500):
                known |= set(
                    conn.execute(sa.select(papers.c.key).where(papers.c.key.in_(chunk))).scalars()
                )
            new_rows = [_paper_row(p, fetched_at) for p in listing.papers if p.key not in known]
            if new_rows:
                conn.execute(sa.insert(papers), new_rows)
            for p in listing.papers:
                if p.key in known:
                    row = _paper_row(p, fetched_at)
                    del row["first_seen"], row["key"]
                    conn.execute(sa.update(papers).where(papers.c.key == p.key).values(**row))
            present = set(
                conn.execute(
                    sa.select(listing_papers.c.paper_key).where(
                        listing_papers.c.date == listing.date
                    )
                ).scalars()
            )
            start = len(present)
            rows = [
                {"date": listing.date, "paper_key": k, "position": start + i}
                for i, k in enumerate(k for k in keys if k not in present)
            ]
            if rows:
                conn.execute(sa.insert(listing_papers), rows)
            count = start + len(rows)
            exists = conn.execute(
                sa.select(listings.c.date).where(listings.c.date == listing.date)
            ).first()
            values = {"source": listing.source, "fetched_at": fetched_at, "count": count}
            if exists:
                conn.execute(
                    sa.update(listings).where(listings.c.date == listing.date).values(**values)
                )
            else:
                conn.execute(sa.insert(listings).values(date=listing.date, **values))

    def listing(self, day: date) -> Listing | None:
        """The stored listing of ``day``, or None if it was never fetched."""
        with self.engine.connect() as conn:
            head = conn.execute(sa.select(listings).where(listings.c.date == day)).first()
            if head is None:
                return None
            rows = conn.execute(
                sa.select(papers)
                .join(listing_papers, listing_papers.c.paper_key == papers.c.key)
                .where(listing_papers.c.date == day)
                .order_by(listing_papers.c.position)
            ).mappings()
            return Listing(date=day, papers=tuple(_paper(r) for r in rows), source=head.source)

    def recent_dates(self, n: int) -> list[date]:
        """The ``n`` most recent listing dates stored, newest first."""
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    sa.select(listings.c.date).order_by(listings.c.date.desc()).limit(n)
                ).scalars()
            )

    def papers_by_key(self, keys: Iterable[str]) -> dict[str, Paper]:
        found: dict[str, Paper] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(list(keys), 500):
                for r in conn.execute(sa.select(papers).where(papers.c.key.in_(chunk))).mappings():
                    found[r["key"]] = _paper(r)
        return found

    # -- subscribers ------------------------------------------------------------------------

    def sync_config_subscribers(self, subs: Sequence[Subscriber]) -> tuple[int, int, int]:
        """Upsert the config's subscribers; deactivate config subscribers no longer listed.

        Returns (added, updated, deactivated). A config subscriber who unsubscribed stays
        unsubscribed; one removed from the config is reactivated when listed again. Of two
        runs adding the same new subscribers at once, the one that loses does it again.
        """
        for attempt in range(3):
            try:
                return self._sync_config_subscribers(subs)
            except IntegrityError as exc:
                if attempt == 2:
                    raise StateError(f"cannot save the subscribers: {_reason(exc)}") from exc
        raise AssertionError("unreachable")

    def _sync_config_subscribers(self, subs: Sequence[Subscriber]) -> tuple[int, int, int]:
        now = _now()
        added = updated = deactivated = 0
        with self._begin() as conn:
            listed = {s.email for s in subs}
            # Only the rows that can change: those listed, and config subscribers (not the
            # whole table: a scheduled pass does this every minute beside 100,000 others).
            relevant: Any = subscribers.c.in_config.is_(True)
            if len(listed) > 500:  # a long list in the config: reading everyone is simpler
                relevant = sa.true()
            elif listed:
                relevant = sa.or_(relevant, _one_of(conn, subscribers.c.email, sorted(listed)))
            existing = {r.email: r for r in conn.execute(sa.select(subscribers).where(relevant))}
            for s in subs:
                values = {**_subscriber_values(s), **_schedule_values(s)}
                row = existing.get(s.email)
                if row is None:
                    conn.execute(
                        sa.insert(subscribers).values(
                            _new_row(values, "active", in_config=True, now=now)
                        )
                    )
                    added += 1
                    continue
                changes: dict[str, Any] = {}
                if any(getattr(row, k) != v for k, v in values.items()) or not row.in_config:
                    changes.update(values, in_config=True)
                if any(getattr(row, k) != v for k, v in _schedule_values(s).items()):
                    changes.update(next_send_at=None)  # the scheduler places them again
                if row.status_reason == "config":
                    changes.update(status="active", status_reason=None)
                if changes:
                    conn.execute(
                        sa.update(subscribers)
                        .where(subscribers.c.id == row.id)
                        .values(**changes, updated_at=now)
                    )
                    updated += 1
            for email, row in existing.items():
                if row.in_config and email not in listed and row.status == "active":
                    conn.execute(
                        sa.update(subscribers)
                        .where(subscribers.c.id == row.id)
                        .values(status="unsubscribed", status_reason="config", updated_at=now)
                    )
                    deactivated += 1
        return added, updated, deactivated

    def add_subscriber(self, sub: Subscriber) -> Subscriber:
        """Add a subscriber, or update and reactivate one with the same address."""
        now = _now()
        values = {**_subscriber_values(sub), **_schedule_values(sub), "next_send_at": None}
        with self._begin() as conn:
            row = conn.execute(
                sa.select(subscribers).where(subscribers.c.email == sub.email)
            ).first()
            if row is None:
                conn.execute(sa.insert(subscribers).values(_new_row(values, "active", now=now)))
            else:
                conn.execute(
                    sa.update(subscribers)
                    .where(subscribers.c.id == row.id)
                    .values(
                        **values,
                        status="active",
                        status_reason=None,
                        hard_bounces=0,
                        updated_at=now,
                    )
                )
        found = self.subscriber(sub.email)
        assert found is not None
        return found

    def subscriber(self, email: str) -> Subscriber | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(subscribers).where(subscribers.c.email == email)).first()
        return _subscriber(row) if row else None

    def subscriber_by_id(self, subscriber_id: int) -> Subscriber | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(subscribers).where(subscribers.c.id == subscriber_id)
            ).first()
        return _subscriber(row) if row else None

    def subscriber_by_token(self, token: str) -> Subscriber | None:
        """The subscriber whose private feed token is ``token`` (compared by the database)."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(subscribers).where(subscribers.c.token == token)).first()
        return _subscriber(row) if row else None

    def subscribers(self, status: str | None = None) -> list[Subscriber]:
        query = sa.select(subscribers).order_by(subscribers.c.id)
        if status:
            query = query.where(subscribers.c.status == status)
        with self.engine.connect() as conn:
            return [_subscriber(r) for r in conn.execute(query)]

    def active_batches(
        self, size: int = 1000, share: tuple[int, int] | None = None, first: int | None = None
    ) -> Iterator[list[Subscriber]]:
        """Active subscribers in id order, ``size`` at a time (memory stays flat), the
        first batch ``first`` (default ``size``).

        ``share=(part, parts)``: only those whose id is ``part`` modulo ``parts`` (one
        worker's share of a run).
        """
        last = 0
        limit = first or size
        cond = [subscribers.c.status == "active"]
        if share is not None:
            part, parts = share
            cond.append(subscribers.c.id % parts == part)
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
            yield [_subscriber(r) for r in rows]

    def remove_subscriber(self, email: str) -> bool:
        """Mark a subscriber unsubscribed (history is kept so nothing is resent on return)."""
        with self._begin() as conn:
            result = conn.execute(
                sa.update(subscribers)
                .where(subscribers.c.email == email)
                .values(status="unsubscribed", status_reason="removed", updated_at=_now())
            )
        return bool(result.rowcount)

    def import_subscribers(
        self, subs: Sequence[Subscriber], *, batch: int = 5000, now: datetime | None = None
    ) -> ImportCounts:
        """Upsert ``subs`` by (normalised) address, one transaction per ``batch`` of them.

        A new address is added, active, with a fresh token. A known one keeps its id, token,
        status and bounce count; its name, queries and max_papers are updated when they
        differ. Someone unsubscribed or suspended stays so (counted ``kept_unsubscribed``,
        fields updated all the same): an import never reactivates anyone. Of one address
        given twice in a batch, the last wins. Each batch takes three statements: one
        SELECT of the known addresses, one executemany INSERT, one executemany UPDATE.
        """
        when = now or _now()
        total = ImportCounts()
        for chunk in _chunks(subs, batch):
            for attempt in range(3):
                try:
                    total += self._import_batch(chunk, when)
                    break
                except IntegrityError as exc:  # another import added some of them meanwhile
                    if attempt == 2:
                        raise StateError(f"cannot import subscribers: {_reason(exc)}") from exc
        return total

    def _import_batch(self, chunk: Sequence[Subscriber], now: datetime) -> ImportCounts:
        c = subscribers.c
        given = {s.email: s for s in chunk}
        added = updated = unchanged = kept = 0
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        with self._begin() as conn:
            known = {
                r.email: r
                for r in conn.execute(
                    sa.select(
                        c.id, c.email, c.name, c.keywords, c.exclude, c.max_papers, c.status
                    ).where(_one_of(conn, c.email, list(given)))
                )
            }
            for email, sub in given.items():
                values = _subscriber_values(sub)
                row = known.get(email)
                if row is None:
                    inserts.append(_new_row(values, "active", now=now))
                    added += 1
                    continue
                if row.status != "active":
                    kept += 1
                if all(getattr(row, k) == v for k, v in values.items()):
                    unchanged += row.status == "active"
                    continue
                updated += row.status == "active"
                updates.append({"b_" + k: v for k, v in values.items() if k != "email"})
                updates[-1].update(b_id=row.id, b_updated_at=now)
            if inserts:
                conn.execute(sa.insert(subscribers), inserts)
            if updates:
                conn.execute(
                    sa.update(subscribers)
                    .where(c.id == sa.bindparam("b_id"))
                    .values(
                        {
                            name: sa.bindparam("b_" + name)
                            for name in ("name", "keywords", "exclude", "max_papers", "updated_at")
                        }
                    ),
                    updates,
                )
        return ImportCounts(added, updated, unchanged, kept)

    def iter_subscribers(self, batch: int = 1000) -> Iterator[Subscriber]:
        """Every subscriber, whatever their status, in id order, read ``batch`` rows at a
        time: memory stays flat however many there are."""
        last = 0
        while True:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    sa.select(subscribers)
                    .where(subscribers.c.id > last)
                    .order_by(subscribers.c.id)
                    .limit(batch)
                ).all()
            if not rows:
                return
            last = rows[-1].id
            yield from (_subscriber(r) for r in rows)

    # -- the web: double opt-in, preferences, leaving -----------------------------------------

    def request_subscription(self, sub: Subscriber) -> tuple[Subscriber, str]:
        """Record a subscription asked for on the web; returns (row, what it was before).

        New, unconfirmed, unsubscribed or suspended addresses become ``pending`` with the
        preferences given (confirming proves the address works). An ``active`` or ``paused``
        subscriber is left exactly as is: a stranger must not change someone's queries.
        The second value is ``"new"`` or the previous status.
        """
        now = _now()
        values = {**_subscriber_values(sub), **_schedule_values(sub)}
        with self._begin() as conn:
            row = conn.execute(
                sa.select(subscribers).where(subscribers.c.email == sub.email)
            ).first()
            before = "new" if row is None else str(row.status)
            if row is None:
                conn.execute(sa.insert(subscribers).values(_new_row(values, "pending", now=now)))
            elif row.status in ("pending", "unsubscribed", "suspended"):
                conn.execute(
                    sa.update(subscribers)
                    .where(subscribers.c.id == row.id)
                    .values(
                        **values,
                        status="pending",
                        status_reason=None,
                        next_send_at=None,
                        updated_at=now,
                    )
                )
        found = self.subscriber(sub.email)
        assert found is not None
        return found, before

    def confirm(self, subscriber_id: int, email: str, when: datetime) -> Subscriber | None:
        """Activate a pending subscriber (idempotent for an active one); None if the link no
        longer fits (another address, unsubscribed since, paused...)."""
        c = subscribers.c
        with self._begin() as conn:
            conn.execute(
                sa.update(subscribers)
                .where(c.id == subscriber_id, c.email == email, c.status == "pending")
                .values(
                    status="active",
                    status_reason=None,
                    hard_bounces=0,
                    confirmed_at=when,
                    next_send_at=None,
                    updated_at=when,
                )
            )
        found = self.subscriber_by_id(subscriber_id)
        if found is None or found.email != email or found.status != "active":
            return None
        return found

    def update_preferences(self, subscriber_id: int, sub: Subscriber) -> Subscriber | None:
        """Replace one subscriber's queries and schedule (from the manage page); the
        scheduler places them again. None if there is no such subscriber."""
        values = _subscriber_values(sub)
        del values["email"]
        with self._begin() as conn:
            result = conn.execute(
                sa.update(subscribers)
                .where(subscribers.c.id == subscriber_id)
                .values(**values, **_schedule_values(sub), next_send_at=None, updated_at=_now())
            )
        return self.subscriber_by_id(subscriber_id) if result.rowcount else None

    def set_status(
        self, subscriber_id: int, status: str, reason: str | None, *, only_from: Sequence[str]
    ) -> bool:
        """Move a subscriber to ``status`` if it is now in one of ``only_from``."""
        c = subscribers.c
        with self._begin() as conn:
            result = conn.execute(
                sa.update(subscribers)
                .where(c.id == subscriber_id, c.status.in_(list(only_from)))
                .values(status=status, status_reason=reason, next_send_at=None, updated_at=_now())
            )
        return bool(result.rowcount)

    # -- the schedule -----------------------------------------------------------------------

    def unscheduled(self, limit: int = 1000) -> list[Subscriber]:
        """Active subscribers with no next send time yet (new, confirmed, edited)."""
        c = subscribers.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(subscribers)
                .where(c.status == "active", c.next_send_at.is_(None))
                .order_by(c.id)
                .limit(limit)
            ).all()
        return [_subscriber(r) for r in rows]

    def due(self, now: datetime, limit: int = 1000, after_id: int = 0) -> list[Subscriber]:
        """Active subscribers whose next send time has come, by id, ``limit`` at a time."""
        c = subscribers.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(subscribers)
                .where(c.status == "active", c.next_send_at <= now, c.id > after_id)
                .order_by(c.id)
                .limit(limit)
            ).all()
        return [_subscriber(r) for r in rows]

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
        return [(_aware(when) or when, int(n)) for when, n in rows]

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
        return _aware(value)

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
        with self._begin() as conn:
            for chunk in _chunks(rows, 5000):
                conn.execute(query, list(chunk))

    # -- deliveries -------------------------------------------------------------------------

    def delivered_keys(
        self, subscriber_ids: Sequence[int], day: date | Sequence[date]
    ) -> dict[int, set[str]]:
        """For each subscriber, the papers of ``day``'s listing (or of any of several
        days') already sent or reserved."""
        found: dict[int, set[str]] = {i: set() for i in subscriber_ids}
        if not subscriber_ids:
            return found
        days = [day] if isinstance(day, date) else list(day)
        with self.engine.connect() as conn:
            for chunk in _chunks(list(subscriber_ids), 900):
                rows = conn.execute(
                    sa.select(delivery_papers.c.subscriber_id, delivery_papers.c.paper_key)
                    .join(listing_papers, listing_papers.c.paper_key == delivery_papers.c.paper_key)
                    .where(
                        listing_papers.c.date.in_(days), delivery_papers.c.subscriber_id.in_(chunk)
                    )
                    .distinct()
                )
                for sid, key in rows:
                    found[sid].add(key)
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

        Plans go in chunks of about :data:`RECORD_ROWS` paper rows, each chunk one
        transaction of two multi-row inserts: a digest and its papers are always recorded
        together, and no transaction holds SQLite's write lock long enough to stall the
        ``mark_sent`` of messages being accepted meanwhile. Only when a chunk collides with
        another run's reservation is it redone plan by plan to find which.
        """
        recorded: list[PlannedDelivery] = []
        chunk: list[PlannedDelivery] = []
        rows = 0
        for plan in plans:
            chunk.append(plan)
            rows += len(plan.paper_keys)
            if rows >= RECORD_ROWS:
                recorded += self._record_chunk(chunk, created_at, claimed_by)
                chunk, rows = [], 0
        if chunk:
            recorded += self._record_chunk(chunk, created_at, claimed_by)
        return recorded

    def _record_chunk(
        self, plans: list[PlannedDelivery], created_at: datetime, claimed_by: int | None
    ) -> list[PlannedDelivery]:
        # The rows are made before the transaction: none of it holds the write lock.
        delivery_rows = [
            self._bind_deliveries(_delivery_tuple(p, created_at, claimed_by)) for p in plans
        ]
        paper_rows = [row for p in plans for row in _paper_tuples(p)]  # plain ints, text, bools
        try:
            with self._begin() as conn:
                # Straight to the driver: SQLAlchemy's per-row parameter processing cost more
                # than the inserts themselves (30 rows per digest, 100,000 digests a day).
                self._insert_deliveries(conn, delivery_rows)
                self._insert_papers(conn, paper_rows)
            return plans
        except IntegrityError:
            pass  # another run reserved some of these papers: find out which plans are left
        recorded: list[PlannedDelivery] = []
        with self._begin() as conn:
            for plan in plans:
                try:
                    with conn.begin_nested():
                        conn.execute(
                            sa.insert(deliveries).values(
                                _delivery_row(plan, created_at, claimed_by)
                            )
                        )
                        conn.execute(sa.insert(delivery_papers), _paper_rows(plan))
                except IntegrityError:
                    continue
                recorded.append(plan)
        return recorded

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
            result = []
            for r in rows:
                keys = conn.execute(
                    sa.select(delivery_papers.c.paper_key, delivery_papers.c.shown)
                    .where(delivery_papers.c.delivery_id == r.id)
                    .order_by(delivery_papers.c.position)
                ).all()
                m = r._mapping
                sub = _subscriber(r)
                result.append(
                    PendingDelivery(
                        id=m[deliveries.c.id],
                        subscriber=sub,
                        listing_date=m[deliveries.c.listing_date],
                        message_id=m[deliveries.c.message_id],
                        created_at=_aware(m[deliveries.c.created_at]) or _now(),
                        paper_keys=tuple(k for k, _ in keys),
                        shown=sum(1 for _, s in keys if s),
                        attempts=m[deliveries.c.attempts],
                    )
                )
        return result

    def claim(self, delivery_id: str, run_id: int, when: datetime) -> bool:
        """pending → sending, for run ``run_id``: True when this run now owns the delivery.

        One conditional UPDATE: of two runs claiming the same row, exactly one sees a row
        changed (on SQLite the write lock, on PostgreSQL the row lock, orders them).
        """
        with self._begin() as conn:
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
                claimed_at=_aware(r.claimed_at),
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
        with self._begin() as conn:
            result = conn.execute(
                sa.update(deliveries)
                .where(deliveries.c.id == claim.delivery_id, deliveries.c.status == "sending", cond)
                .values(status="pending", claimed_by=None, claimed_at=None)
            )
        return bool(result.rowcount == 1)

    def release_claims(self, run_id: int) -> int:
        """Put back to pending what run ``run_id`` claimed but never handed over (it stops)."""
        with self._begin() as conn:
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
        sent_at = self._bind_sent_at(when or _now())
        with self._begin() as conn:
            # One statement each (not executemany: see _driver_insert), 500 ids at most.
            for start in range(0, len(delivery_ids), INSERT_ROWS):
                part = tuple(delivery_ids[start : start + INSERT_ROWS])
                ids = ", ".join([self._mark] * len(part))
                conn.exec_driver_sql(self._sql_mark_sent.format(ids=ids), (sent_at, *part))
                conn.exec_driver_sql(self._sql_bounces_reset.format(ids=ids), part)

    def mark_failed(
        self, delivery_id: str, error: str, *, max_hard_bounces: int | None = None
    ) -> bool:
        """A permanent failure: record it and release the papers for a later digest.

        It counts as one more hard bounce of the subscriber; at ``max_hard_bounces`` in a
        row they are suspended (status ``suspended``, reason ``bounced``). Returns True when
        this failure suspended them.
        """
        with self._begin() as conn:
            conn.execute(
                sa.update(deliveries)
                .where(deliveries.c.id == delivery_id)
                .values(status="failed", error=error, attempts=deliveries.c.attempts + 1)
            )
            conn.execute(
                sa.delete(delivery_papers).where(delivery_papers.c.delivery_id == delivery_id)
            )
            owner = subscribers.c.id == _subscriber_of(delivery_id)
            conn.execute(
                sa.update(subscribers)
                .where(owner)
                .values(hard_bounces=subscribers.c.hard_bounces + 1)
            )
            if max_hard_bounces is None:
                return False
            result = conn.execute(
                sa.update(subscribers)
                .where(
                    owner,
                    subscribers.c.status == "active",
                    subscribers.c.hard_bounces >= max_hard_bounces,
                )
                .values(status="suspended", status_reason="bounced", updated_at=_now())
            )
        return bool(result.rowcount == 1)

    def mark_deferred(self, delivery_id: str, error: str) -> None:
        """A transient failure: back to pending (unclaimed) for the next run."""
        with self._begin() as conn:
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

    # -- runs and alerts --------------------------------------------------------------------

    def start_run(self, day: date, started_at: datetime, host: str, pid: int) -> int:
        """Record a run as started (outcome ``running``); returns its id."""
        with self._begin() as conn:
            result = conn.execute(
                sa.insert(runs)
                .values(day=day, started_at=started_at, outcome="running", host=host, pid=pid)
                .returning(runs.c.id)
            )
            return int(result.scalar_one())

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
        with self._begin() as conn:
            conn.execute(
                sa.update(runs)
                .where(runs.c.id == run_id)
                .values(
                    finished_at=finished_at,
                    outcome=outcome,
                    stage=stage,
                    error=error,
                    fetched=fetched,
                    sent=sent,
                    failed=failed,
                    deferred=deferred,
                )
            )

    def runs(self, limit: int = 20) -> list[RunRecord]:
        """The most recent runs, newest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(runs).order_by(runs.c.id.desc()).limit(limit)).all()
        return [
            RunRecord(
                id=r.id,
                day=r.day,
                started_at=_aware(r.started_at) or _now(),
                finished_at=_aware(r.finished_at),
                outcome=r.outcome,
                stage=r.stage,
                error=r.error,
                fetched=r.fetched,
                sent=r.sent,
                failed=r.failed,
                deferred=r.deferred,
            )
            for r in rows
        ]

    def swap_meta(self, key: str, old: str | None, new: str) -> bool:
        """Set ``key`` to ``new`` only if it is ``old`` now (None: absent); True if done.

        A compare-and-swap, so that of two runs only one acts on a change (one alert).
        """
        try:
            with self._begin() as conn:
                if old is None:
                    conn.execute(sa.insert(meta).values(key=key, value=new))
                    return True
                result = conn.execute(
                    sa.update(meta).where(meta.c.key == key, meta.c.value == old).values(value=new)
                )
                return bool(result.rowcount == 1)
        except IntegrityError:
            return False

    def get_meta(self, key: str) -> str | None:
        with self.engine.connect() as conn:
            value = conn.execute(sa.select(meta.c.value).where(meta.c.key == key)).scalar()
        return None if value is None else str(value)

    def history(self, subscriber_id: int, limit: int = 20) -> list[DeliveryRecord]:
        counts = (
            sa.select(delivery_papers.c.delivery_id, sa.func.count().label("n"))
            .group_by(delivery_papers.c.delivery_id)
            .subquery()
        )
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(deliveries, counts.c.n)
                .outerjoin(counts, counts.c.delivery_id == deliveries.c.id)
                .where(deliveries.c.subscriber_id == subscriber_id)
                .order_by(deliveries.c.created_at.desc())
                .limit(limit)
            ).all()
        return [
            DeliveryRecord(
                listing_date=r.listing_date,
                status=r.status,
                papers=r.n or 0,
                created_at=_aware(r.created_at) or _now(),
                sent_at=_aware(r.sent_at),
                error=r.error,
            )
            for r in rows
        ]

    def sent_count(self, subscriber_id: int) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.count())
                    .select_from(delivery_papers.join(deliveries))
                    .where(
                        delivery_papers.c.subscriber_id == subscriber_id,
                        deliveries.c.status == "sent",
                    )
                ).scalar_one()
            )


class _Transaction:
    """``with store._begin() as conn``: one transaction, SQLAlchemy errors as StateError."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.ctx: Any = None

    def __enter__(self) -> Connection:
        try:
            self.ctx = self.engine.begin()
            conn: Connection = self.ctx.__enter__()
        except SQLAlchemyError as exc:
            raise StateError(
                f"cannot open database {self.engine.url!r}: {_reason(exc)}",
                hint=_db_hint(str(self.engine.url)),
            ) from exc
        return conn

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        where = _safe_url(str(self.engine.url))
        try:
            self.ctx.__exit__(exc_type, exc, tb)
        except SQLAlchemyError as err:
            reason = _reason(err)
            raise StateError(
                f"database {where}: write failed: {reason}", hint=_hint_for(where, reason)
            ) from err
        if isinstance(exc, SQLAlchemyError) and not isinstance(exc, IntegrityError):
            reason = _reason(exc)
            raise StateError(f"database {where}: {reason}", hint=_hint_for(where, reason)) from exc


def _one_of(conn: Connection, column: Any, values: list[str]) -> Any:
    """``column IN (values)``; on PostgreSQL ``column = ANY(array)``: one parameter instead
    of thousands, which psycopg would parse anew each time (0.15 s per 5,000)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import ARRAY

        return column == sa.any_(sa.bindparam("one_of", values, type_=ARRAY(sa.String)))
    return column.in_(values)


def _subscriber_of(delivery_id: str) -> Any:
    return (
        sa.select(deliveries.c.subscriber_id)
        .where(deliveries.c.id == delivery_id)
        .scalar_subquery()
    )


def _add_columns(conn: Connection) -> None:
    """Upgrade an older database in place: ALTER TABLE for each column it lacks."""
    inspector = sa.inspect(conn)
    for name, added in _ADDED_COLUMNS.items():
        table = metadata.tables[name]
        present = {c["name"] for c in inspector.get_columns(name)}
        for column in (table.c[c] for c in added if c not in present):
            ddl = f"{column.name} {column.type.compile(dialect=conn.dialect)}"
            if column.server_default is not None:
                ddl += f" NOT NULL DEFAULT {column.server_default.arg}"  # type: ignore[attr-defined]
            if conn.dialect.name == "postgresql":
                ddl = "IF NOT EXISTS " + ddl  # two runs upgrading at once
            conn.exec_driver_sql(f"ALTER TABLE {name} ADD COLUMN {ddl}")


def _safe_url(url: str) -> str:
    """The database URL with any password masked, for messages."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except (SQLAlchemyError, ValueError):
        return "<database URL>"


def _reason(exc: SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None)
    return str(orig or exc).splitlines()[0]


def _hint_for(url: str, reason: str) -> str:
    if "locked" in reason:
        return "another process holds a lock on the database; run again once it has finished"
    if "disk" in reason or "full" in reason:
        return "free some disk space where the database lives, then run again"
    return _db_hint(url)


def _db_hint(url: str) -> str:
    if url.startswith("postgresql"):
        return (
            "is the PostgreSQL server running, and is psycopg installed"
            " (pip install 'paper-digest[postgres]')?"
        )
    return "check the database setting and that its folder exists and is writable"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _paper_row(p: Paper, first_seen: datetime) -> dict[str, Any]:
    extra = {
        "num_comments": p.num_comments,
        "thumbnail": p.thumbnail,
        "ai_summary": p.ai_summary,
        "ai_keywords": list(p.ai_keywords),
        "github_repo": p.github_repo,
        "project_page": p.project_page,
    }
    return {
        "key": p.key,
        "arxiv_id": p.arxiv_id,
        "title": p.title,
        "abstract": p.abstract,
        "authors": json.dumps(list(p.authors), ensure_ascii=False),
        "upvotes": p.upvotes,
        "published": p.published,
        "extra": json.dumps({k: v for k, v in extra.items() if v}, ensure_ascii=False),
        "first_seen": first_seen,
    }


def _paper(r: Any) -> Paper:
    extra = json.loads(r["extra"] or "{}")
    return Paper(
        key=r["key"],
        title=r["title"],
        abstract=r["abstract"],
        authors=tuple(json.loads(r["authors"])),
        arxiv_id=r["arxiv_id"],
        upvotes=r["upvotes"],
        published=_aware(r["published"]),
        num_comments=extra.get("num_comments", 0),
        thumbnail=extra.get("thumbnail"),
        ai_summary=extra.get("ai_summary"),
        ai_keywords=tuple(extra.get("ai_keywords", ())),
        github_repo=extra.get("github_repo"),
        project_page=extra.get("project_page"),
    )


def _delivery_row(
    plan: PlannedDelivery, created_at: datetime, claimed_by: int | None
) -> dict[str, Any]:
    return dict(zip(DELIVERY_COLUMNS, _delivery_tuple(plan, created_at, claimed_by), strict=True))


DELIVERY_COLUMNS = (
    "id",
    "subscriber_id",
    "listing_date",
    "message_id",
    "status",
    "attempts",
    "created_at",
    "claimed_by",
    "claimed_at",
)
PAPER_COLUMNS = ("delivery_id", "subscriber_id", "paper_key", "position", "shown")


#: Rows per multi-row INSERT: one statement, one step of the database per this many rows.
INSERT_ROWS = 500


def _driver_insert(
    engine: Engine, table: sa.Table, columns: Sequence[str]
) -> tuple[Callable[[Connection, list[tuple[Any, ...]]], None], Callable[..., tuple[Any, ...]]]:
    """``insert(conn, rows)`` straight to the driver, in multi-row statements of up to
    :data:`INSERT_ROWS` rows, and ``bind(row)`` converting one row's values as SQLAlchemy
    would (dates on SQLite, booleans...).

    Not ``executemany``: SQLite's driver steps each row apart, giving up and taking back
    Python's lock each time; while the event loop's thread composes messages, each take
    can wait for it, and the database's write lock is held all along (other workers' marks
    wait for it). One statement per 500 rows takes it twice.
    """
    dialect = engine.dialect
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    head = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES "
    one = f"({', '.join([mark] * len(columns))})"
    full = head + ", ".join([one] * INSERT_ROWS)

    def insert(conn: Connection, rows: list[tuple[Any, ...]]) -> None:
        for start in range(0, len(rows), INSERT_ROWS):
            part = rows[start : start + INSERT_ROWS]
            sql = full if len(part) == INSERT_ROWS else head + ", ".join([one] * len(part))
            conn.exec_driver_sql(sql, tuple([value for row in part for value in row]))

    procs = [table.c[name].type.bind_processor(dialect) for name in columns]
    if not any(procs):
        return insert, lambda row: row

    def bind(row: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(p(v) if p else v for p, v in zip(procs, row, strict=True))

    return insert, bind


def _delivery_tuple(
    plan: PlannedDelivery, created_at: datetime, claimed_by: int | None
) -> tuple[Any, ...]:
    return (
        plan.id,
        plan.subscriber_id,
        plan.listing_date,
        plan.message_id,
        "pending" if claimed_by is None else "sending",
        0,
        created_at,
        claimed_by,
        None if claimed_by is None else created_at,
    )


def _paper_tuples(plan: PlannedDelivery) -> list[tuple[Any, ...]]:
    return [
        (plan.id, plan.subscriber_id, key, i, i < plan.shown)
        for i, key in enumerate(plan.paper_keys)
    ]


def _paper_rows(plan: PlannedDelivery) -> list[dict[str, Any]]:
    return [
        {
            "delivery_id": plan.id,
            "subscriber_id": plan.subscriber_id,
            "paper_key": key,
            "position": i,
            "shown": i < plan.shown,
        }
        for i, key in enumerate(plan.paper_keys)
    ]


def _subscriber_values(s: Subscriber) -> dict[str, Any]:
    return {
        "email": s.email,
        "name": s.name,
        "keywords": json.dumps(list(s.keywords), ensure_ascii=False),
        "exclude": json.dumps(list(s.exclude), ensure_ascii=False),
        "max_papers": s.max_papers,
    }


def _new_row(
    values: dict[str, Any], status: str, *, now: datetime, in_config: bool = False
) -> dict[str, Any]:
    """A new subscriber row: ``values`` plus its state, a fresh feed token and timestamps."""
    return {
        **values,
        "status": status,
        "token": random_token(),
        "in_config": in_config,
        "hard_bounces": 0,
        "created_at": now,
        "updated_at": now,
    }


def _schedule_values(s: Subscriber) -> dict[str, Any]:
    return {
        "send_at": s.send_at,
        "timezone": s.timezone,
        "frequency": s.frequency,
        "weekday": s.weekday,
        "days": ",".join(s.days) if s.days is not None else None,
    }


def _subscriber(r: Any) -> Subscriber:
    m = r._mapping
    c = subscribers.c
    days = m[c.days]
    return Subscriber(
        send_at=m[c.send_at],
        timezone=m[c.timezone],
        frequency=m[c.frequency],
        weekday=m[c.weekday],
        days=tuple(d for d in days.split(",") if d) if days is not None else None,
        next_send_at=_aware(m[c.next_send_at]),
        covered_until=m[c.covered_until],
        id=m[c.id],
        email=m[c.email],
        name=m[c.name],
        keywords=tuple(json.loads(m[c.keywords])),
        exclude=tuple(json.loads(m[c.exclude])),
        max_papers=m[c.max_papers],
        status=m[c.status],
        token=m[c.token],
        status_reason=m[c.status_reason],
        hard_bounces=m[c.hard_bounces],
    )
