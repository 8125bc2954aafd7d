"""The rate-limits repository: the live events of each rate-limited key (table
``rate_events``), shared by every process on the database, so that a limit holds across
processes and restarts.

The table holds only events whose window has not passed (each call deletes the expired
ones of every key), so at most ``limit`` rows per key, whatever the number of keys.
"""

from __future__ import annotations

import zlib

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from digest.store.schema import begin, rate_events

#: pg_advisory_xact_lock's first key for rate limits (the second is the key's CRC-32): the
#: two-key space does not overlap the one-key lock of ``migrate``.
_PG_LOCK_CLASS = 0x64696773


class RateLimits:
    """Sliding-window counts per key in the database; raises :class:`StateError`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def hit(self, key: str, limit: int, window: float, now: float) -> float:
        """Count one event for ``key`` at ``now`` (seconds since the epoch) if fewer than
        ``limit`` of its events fall in the ``window`` seconds before: then 0.0. Else count
        nothing and return the seconds until one of them leaves the window.

        Atomic per key across connections and processes: SQLite's first write takes the
        database's write lock; PostgreSQL takes a transaction lock on the key.
        """
        with begin(self.engine) as conn:
            if conn.dialect.name == "postgresql":
                key_lock = zlib.crc32(key.encode()) - 2**31  # an int4, as the function takes
                lock = sa.func.pg_advisory_xact_lock(_PG_LOCK_CLASS, key_lock)
                # An event lost to a crash in the next instant costs nothing: no fsync wait.
                quick = sa.func.set_config("synchronous_commit", "off", True)
                conn.execute(sa.select(lock, quick))
            conn.execute(sa.delete(rate_events).where(rate_events.c.expires <= now))
            blocking = _limit_th_newest(conn, key, limit)
            if blocking is not None:
                return max(blocking - now, 0.001)
            conn.execute(sa.insert(rate_events).values(key=key, expires=now + window))
            return 0.0

    def live(self) -> int:
        """How many events the table holds (for tests and the benchmark)."""
        with self.engine.connect() as conn:
            return int(
                conn.execute(sa.select(sa.func.count()).select_from(rate_events)).scalar_one()
            )


def _limit_th_newest(conn: Connection, key: str, limit: int) -> float | None:
    """When the ``limit``-th newest live event of ``key`` expires (None: fewer than
    ``limit`` live events, so one more is allowed)."""
    found = conn.execute(
        sa.select(rate_events.c.expires)
        .where(rate_events.c.key == key)
        .order_by(rate_events.c.expires.desc())
        .limit(1)
        .offset(limit - 1)
    ).scalar()
    return None if found is None else float(found)
