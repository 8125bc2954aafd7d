"""What a queued run (``run.queue``) keeps in the store besides procrastinate's own tables:
the active subscribers of one batch (an id range), and the sending pace shared by every
worker of every machine (``smtp.rate``: one row of ``meta`` per key).

The pace is a virtual schedule (GCRA): the row holds the time the next message may leave;
each message takes the slot ``max(next, now)`` and moves it on by ``1 / rate``, in one
``UPDATE … RETURNING`` (the row lock orders concurrent takers). On PostgreSQL the time is
the database server's own clock, so workers on machines whose clocks differ still share one
schedule. A relay's throttling answer pushes the schedule back for everyone (:meth:`hold`).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Engine

from digest.models import Subscriber
from digest.store.schema import begin, meta, subscribers
from digest.store.subscriber_rows import to_subscriber

_PG_NOW = "extract(epoch from clock_timestamp())"
_SQLITE_NOW = "((julianday('now') - 2440587.5) * 86400.0)"


def active_between(engine: Engine, low: int, high: int) -> list[Subscriber]:
    """The active subscribers whose id is in ``low..high`` (both included), in id order:
    one batch of a queued run (the batch is an id range, read when a worker takes it)."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(subscribers)
            .where(
                subscribers.c.status == "active",
                subscribers.c.id >= low,
                subscribers.c.id <= high,
            )
            .order_by(subscribers.c.id)
        ).all()
    return [to_subscriber(r) for r in rows]


class Pace:
    """The shared sending schedule of ``key`` (a row of ``meta``); raises StateError."""

    def __init__(self, engine: Engine, key: str = "pace.smtp") -> None:
        self.engine = engine
        self.key = key

    def _now(self, conn: Connection) -> str:
        return _PG_NOW if conn.dialect.name == "postgresql" else _SQLITE_NOW

    def _greatest(self, conn: Connection) -> str:
        return "GREATEST" if conn.dialect.name == "postgresql" else "MAX"

    def take(self, interval: float) -> float:
        """Take the next slot and move the schedule on by ``interval`` seconds; returns the
        seconds to wait before sending (0.0: at once)."""
        with begin(self.engine) as conn:
            now, greatest = self._now(conn), self._greatest(conn)
            slot = f"{greatest}(CAST(value AS FLOAT), {now})"
            update = sa.text(
                f"UPDATE meta SET value = CAST({slot} + :interval AS TEXT)"
                f" WHERE key = :key RETURNING CAST(value AS FLOAT) - :interval - {now}"
            )
            while True:
                row = conn.execute(update, {"interval": interval, "key": self.key}).first()
                if row is not None:
                    return max(0.0, float(row[0]))
                if self._create(conn, interval):  # else another taker made it: take after it
                    return 0.0

    def _create(self, conn: Connection, after: float) -> bool:
        """Make the row, the schedule starting ``after`` seconds from now; False when a
        concurrent taker made it first (then its schedule stands)."""
        value: Any = sa.text(f"CAST({self._now(conn)} + {float(after)!r} AS TEXT)")
        if conn.dialect.name == "postgresql":
            insert: Any = postgresql.insert(meta).on_conflict_do_nothing()
        else:
            insert = sa.insert(meta).prefix_with("OR IGNORE")
        return bool(conn.execute(insert.values(key=self.key, value=value)).rowcount == 1)

    def hold(self, seconds: float) -> None:
        """Nobody sends for ``seconds`` from now (a relay asked to slow down): the schedule
        moves to now + ``seconds`` unless it is later already."""
        with begin(self.engine) as conn:
            now, greatest = self._now(conn), self._greatest(conn)
            hold = sa.text(
                f"UPDATE meta SET value = CAST({greatest}(CAST(value AS FLOAT),"
                f" {now} + :seconds) AS TEXT) WHERE key = :key"
            )
            while not conn.execute(hold, {"seconds": seconds, "key": self.key}).rowcount:
                if self._create(conn, seconds):
                    return
