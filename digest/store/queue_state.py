"""What a queued run (``run.queue``) keeps in the store besides procrastinate's own tables:
the active subscribers of one batch (an id range), the run's tally and the digests each of
its batches took (rows of ``meta`` named ``queue.run.<run id>...``, pruned with the run's
history), and the sending pace shared by every worker of every machine (``smtp.rate``: one
row of ``meta`` per key).

The pace is a virtual schedule (GCRA): the row holds the time the next message may leave;
each message takes the slot ``max(next, now)`` and moves it on by ``1 / rate``, in one
``UPDATE … RETURNING`` (the row lock orders concurrent takers). On PostgreSQL the time is
the database server's own clock, so workers on machines whose clocks differ still share one
schedule. A relay's throttling answer pushes the schedule back for everyone (:meth:`hold`).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from digest.models import Subscriber
from digest.store.schema import begin, deliveries, meta, runs, subscribers
from digest.store.subscriber_rows import to_subscriber

_PG_NOW = "extract(epoch from clock_timestamp())"
_SQLITE_NOW = "((julianday('now') - 2440587.5) * 86400.0)"


#: The rows of ``meta`` a queued run keeps: ``queue.run.<id>`` (its tally) and
#: ``queue.run.<id>.job.<job id>`` (the digests one batch took).
RUN_PREFIX = "queue.run."


def active_between(
    engine: Engine, low: int, high: int, ids: Collection[int] | None = None
) -> list[Subscriber]:
    """The active subscribers whose id is in ``low..high`` (both included; with ``ids``:
    only those of them), in id order: one batch of a queued run (read when a worker takes
    it)."""
    cond = [subscribers.c.status == "active", subscribers.c.id >= low, subscribers.c.id <= high]
    if ids is not None:
        cond.append(subscribers.c.id.in_(sorted(ids)))
    with engine.connect() as conn:
        rows = conn.execute(sa.select(subscribers).where(*cond).order_by(subscribers.c.id)).all()
    return [to_subscriber(r) for r in rows]


def claimed_by_run(
    engine: Engine, run_id: int, low: int, high: int, ids: Collection[int] | None = None
) -> list[str]:
    """The digests run ``run_id`` holds (status sending) for the subscribers of a batch."""
    c = deliveries.c
    cond = [c.status == "sending", c.claimed_by == run_id]
    cond += [c.subscriber_id >= low, c.subscriber_id <= high]
    if ids is not None:
        cond.append(c.subscriber_id.in_(sorted(ids)))
    with engine.connect() as conn:
        return [str(r) for r in conn.execute(sa.select(c.id).where(*cond)).scalars()]


def note_taken(engine: Engine, run_id: int, job_id: int, delivery_ids: Sequence[str]) -> None:
    """Add ``delivery_ids`` to what batch job ``job_id`` of run ``run_id`` took (each
    attempt of a job adds to the same row: a killed attempt's digests stay counted)."""
    if not delivery_ids:
        return
    key = f"{RUN_PREFIX}{run_id}.job.{job_id}"
    for attempt in range(3):  # two attempts of one job both making the row: the loser again
        try:
            with begin(engine) as conn:
                _add_taken(conn, key, delivery_ids)
            return
        except IntegrityError:
            if attempt == 2:
                raise


def _add_taken(conn: Connection, key: str, delivery_ids: Sequence[str]) -> None:
    if conn.dialect.name == "postgresql":  # the row locked: concurrent adds wait their turn
        conn.execute(sa.select(meta.c.key).where(meta.c.key == key).with_for_update()).all()
    old = conn.execute(sa.select(meta.c.value).where(meta.c.key == key)).scalar()
    taken = json.dumps(sorted(set(json.loads(old) if old else ()) | set(delivery_ids)))
    if old is None:
        conn.execute(sa.insert(meta).values(key=key, value=taken))
    else:
        conn.execute(sa.update(meta).where(meta.c.key == key).values(value=taken))


def taken_counts(engine: Engine, run_id: int) -> dict[str, int]:
    """How many of the digests run ``run_id``'s batches took are in each status (sent,
    failed, pending: deferred, sending: still held)."""
    taken: set[str] = set()
    with engine.connect() as conn:
        for text in conn.execute(
            sa.select(meta.c.value).where(meta.c.key.like(f"{RUN_PREFIX}{run_id}.job.%"))
        ).scalars():
            taken.update(json.loads(text))
        counts: dict[str, int] = {}
        ordered = sorted(taken)
        for start in range(0, len(ordered), 5_000):
            part = ordered[start : start + 5_000]
            rows = conn.execute(
                sa.select(deliveries.c.status, sa.func.count())
                .where(deliveries.c.id.in_(part))
                .group_by(deliveries.c.status)
            ).all()
            for status, n in rows:
                counts[str(status)] = counts.get(str(status), 0) + int(n)
    return counts


def drop_run_rows(engine: Engine, run_ids: Iterable[int]) -> int:
    """Remove the tally and batch rows of runs ``run_ids``; how many rows went."""
    gone = 0
    with begin(engine) as conn:
        for run_id in run_ids:
            gone += conn.execute(
                sa.delete(meta).where(
                    sa.or_(
                        meta.c.key == f"{RUN_PREFIX}{run_id}",
                        meta.c.key.like(f"{RUN_PREFIX}{run_id}.%"),
                    )
                )
            ).rowcount
    return gone


def prune_run_rows(engine: Engine, started_before: datetime) -> int:
    """Remove the tally and batch rows of queued runs started before ``started_before`` (or
    no longer recorded), as the history of what was sent is pruned; how many rows went."""
    with engine.connect() as conn:
        keys = conn.execute(
            sa.select(meta.c.key).where(meta.c.key.like(f"{RUN_PREFIX}%"))
        ).scalars()
        named = {_run_of(k) for k in keys} - {None}
        if not named:
            return 0
        kept = conn.execute(
            sa.select(runs.c.id).where(
                runs.c.id.in_(sorted(i for i in named if i is not None)),
                runs.c.started_at >= started_before,
            )
        ).scalars()
        old = named - set(kept)
    return drop_run_rows(engine, sorted(i for i in old if i is not None))


def settle_runs(engine: Engine, keep: Collection[int]) -> list[int]:
    """Runs that ended without waiting for their batches (``--no-wait``, interrupted), all
    of whose batches have ended since (none in ``keep``, the runs still queued or waiting):
    their record gets the counts of the digests their batches took, and their rows go.
    Returns the runs settled."""
    with engine.connect() as conn:
        keys = conn.execute(
            sa.select(meta.c.key).where(meta.c.key.like(f"{RUN_PREFIX}%"))
        ).scalars()
        named = sorted({r for r in map(_run_of, keys) if r is not None} - set(keep))
        ended = conn.execute(
            sa.select(runs.c.id).where(runs.c.id.in_(named), runs.c.finished_at.is_not(None))
        ).scalars()
        done = sorted(int(r) for r in ended)
    for run_id in done:
        counts = taken_counts(engine, run_id)
        with begin(engine) as conn:
            conn.execute(
                sa.update(runs)
                .where(runs.c.id == run_id)
                .values(
                    sent=counts.get("sent", 0),
                    failed=counts.get("failed", 0),
                    deferred=counts.get("pending", 0),
                )
            )
        drop_run_rows(engine, [run_id])
    return done


def _run_of(key: str) -> int | None:
    head = key[len(RUN_PREFIX) :].partition(".")[0]
    return int(head) if head.isdigit() else None


def queued_runs(engine: Engine) -> set[int]:
    """The runs whose batches are still in procrastinate's queue (waiting for a worker or
    being worked on): the digests they hold are the workers', not to be taken back."""
    if engine.dialect.name != "postgresql":
        return set()
    with engine.connect() as conn:
        if not conn.execute(sa.text("SELECT to_regclass('procrastinate_jobs')")).scalar():
            return set()
        found = conn.execute(
            sa.text(
                "SELECT DISTINCT (args->>'run')::int FROM procrastinate_jobs"
                " WHERE task_name = 'digest.batch' AND status IN ('todo', 'doing')"
            )
        ).scalars()
        return {int(r) for r in found}


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
