"""A subscriber as a row of ``subscribers`` and back, and the two bulk upserts made of
such rows (the config's list, an import), each on the caller's connection."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from digest.compose import random_token
from digest.models import Subscriber
from digest.store.schema import aware, subscribers

#: A subscriber's own schedule (None: the configuration's default), as columns.
SCHEDULE_COLUMNS = ("send_at", "timezone", "frequency", "weekday", "days")


@dataclass(frozen=True)
class ImportCounts:
    """What :meth:`Members.import_subscribers` did with each subscriber it was given."""

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


def sync_config_rows(
    conn: Connection, subs: Sequence[Subscriber], now: datetime
) -> tuple[int, int, int]:
    """Upsert the config's subscribers, deactivate config subscribers no longer listed;
    returns (added, updated, deactivated) (see :meth:`Members.sync_config_subscribers`)."""
    added = updated = deactivated = 0
    listed = {s.email for s in subs}
    # Only the rows that can change: those listed, and config subscribers (not the
    # whole table: a scheduled pass does this every minute beside 100,000 others).
    relevant: Any = subscribers.c.in_config.is_(True)
    if len(listed) > 500:  # a long list in the config: reading everyone is simpler
        relevant = sa.true()
    elif listed:
        relevant = sa.or_(relevant, one_of(conn, subscribers.c.email, sorted(listed)))
    existing = {r.email: r for r in conn.execute(sa.select(subscribers).where(relevant))}
    for s in subs:
        values = {**subscriber_values(s), **schedule_values(s)}
        row = existing.get(s.email)
        if row is None:
            conn.execute(
                sa.insert(subscribers).values(new_row(values, "active", in_config=True, now=now))
            )
            added += 1
            continue
        changes: dict[str, Any] = {}
        if any(getattr(row, k) != v for k, v in values.items()) or not row.in_config:
            changes.update(values, in_config=True)
        if any(getattr(row, k) != v for k, v in schedule_values(s).items()):
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


def import_rows(
    conn: Connection,
    chunk: Sequence[Subscriber],
    now: datetime,
    *,
    schedule: bool = False,
    preferences: bool = True,
) -> ImportCounts:
    """One batch of :meth:`Members.import_subscribers`: one SELECT, one executemany
    INSERT, one executemany UPDATE. With ``schedule`` the schedule columns are written too
    (None: the configuration's default), and a changed schedule is placed again; without
    ``preferences`` a known subscriber's sources and like threshold are left as they are."""
    c = subscribers.c
    given = {s.email: s for s in chunk}
    added = updated = unchanged = kept = 0
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    known = {
        r.email: r
        for r in conn.execute(
            sa.select(c.id, c.status, c.next_send_at, *_IMPORTED).where(
                one_of(conn, c.email, list(given))
            )
        )
    }
    for email, sub in given.items():
        values = subscriber_values(sub)
        moved = schedule_values(sub) if schedule else {}
        row = known.get(email)
        if row is not None and not preferences:
            del values["sources"], values["like_threshold"]
        if row is None:
            inserts.append(new_row({**values, **moved}, "active", now=now))
            added += 1
            continue
        if row.status != "active":
            kept += 1
        replaced = any(getattr(row, k) != v for k, v in moved.items())
        if not replaced and all(getattr(row, k) == v for k, v in values.items()):
            unchanged += row.status == "active"
            continue
        updated += row.status == "active"
        changed = {**values, **moved, "updated_at": now}
        if schedule:  # the scheduler places a changed schedule again
            changed["next_send_at"] = None if replaced else row.next_send_at
        updates.append({"b_" + k: v for k, v in changed.items() if k != "email"})
        updates[-1]["b_id"] = row.id
    if inserts:
        conn.execute(sa.insert(subscribers), inserts)
    if updates:
        names = [k[2:] for k in updates[0] if k != "b_id"]
        conn.execute(
            sa.update(subscribers)
            .where(c.id == sa.bindparam("b_id"))
            .values({name: sa.bindparam("b_" + name) for name in names}),
            updates,
        )
    return ImportCounts(added, updated, unchanged, kept)


def one_of(conn: Connection, column: Any, values: list[str]) -> Any:
    """``column IN (values)``; on PostgreSQL ``column = ANY(array)``: one parameter instead
    of thousands, which psycopg would parse anew each time (0.15 s per 5,000)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import ARRAY

        return column == sa.any_(sa.bindparam("one_of", values, type_=ARRAY(sa.String)))
    return column.in_(values)


def subscriber_values(s: Subscriber) -> dict[str, Any]:
    return {
        "email": s.email,
        "name": s.name,
        "keywords": json.dumps(list(s.keywords), ensure_ascii=False),
        "exclude": json.dumps(list(s.exclude), ensure_ascii=False),
        "max_papers": s.max_papers,
        "abstract": s.abstract,
        "sources": None if s.sources is None else json.dumps(list(s.sources), ensure_ascii=False),
        "like_threshold": s.like_threshold,
    }


def new_row(
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


#: The columns an import compares and writes.
_IMPORTED = tuple(
    getattr(subscribers.c, name)
    for name in (
        "email",
        "name",
        "keywords",
        "exclude",
        "max_papers",
        "abstract",
        "sources",
        "like_threshold",
        *SCHEDULE_COLUMNS,
    )
)


def schedule_values(s: Subscriber) -> dict[str, Any]:
    return {
        "send_at": s.send_at,
        "timezone": s.timezone,
        "frequency": s.frequency,
        "weekday": s.weekday,
        "days": ",".join(s.days) if s.days is not None else None,
    }


def to_subscriber(r: Any) -> Subscriber:
    m = r._mapping
    c = subscribers.c
    days = m[c.days]
    sources = m[c.sources]
    return Subscriber(
        send_at=m[c.send_at],
        timezone=m[c.timezone],
        frequency=m[c.frequency],
        weekday=m[c.weekday],
        days=tuple(d for d in days.split(",") if d) if days is not None else None,
        next_send_at=aware(m[c.next_send_at]),
        covered_until=m[c.covered_until],
        id=m[c.id],
        email=m[c.email],
        name=m[c.name],
        keywords=tuple(json.loads(m[c.keywords])),
        exclude=tuple(json.loads(m[c.exclude])),
        max_papers=m[c.max_papers],
        abstract=m[c.abstract],
        status=m[c.status],
        token=m[c.token],
        status_reason=m[c.status_reason],
        hard_bounces=m[c.hard_bounces],
        sources=None if sources is None else tuple(json.loads(sources)),
        like_threshold=m[c.like_threshold],
    )
