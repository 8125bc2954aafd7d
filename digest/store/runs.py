"""The runs repository: each ``digest run`` recorded (table ``runs``) and the service's own
keys (table ``meta``: the signing secret, alert state)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from digest.compose import random_token
from digest.store.schema import aware, begin, meta, runs, utc_now


@dataclass(frozen=True)
class RunRecord:
    """One recorded ``digest run`` (or fetch attempt), newest first from :meth:`RunLog.runs`."""

    id: int
    day: date
    started_at: datetime
    finished_at: datetime | None
    outcome: str  # running, ok, empty, failed
    stage: str | None  # where a failed run stopped: "fetch", "deliver", "feeds"
    error: str | None
    fetched: int
    sent: int
    failed: int
    deferred: int
    host: str | None = None  #: the machine the run's process ran on
    pid: int | None = None  #: that process's id there


@dataclass(frozen=True)
class RunTotals:
    """What every recorded run adds up to: runs by outcome, messages, failed fetches."""

    runs: dict[str, int]  # by outcome: running, ok, empty, failed
    sent: int
    failed: int
    deferred: int
    fetch_failures: int  # runs that failed fetching the listing


class RunLog:
    """Reads and writes of runs and meta keys; raises :class:`StateError`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def start_run(self, day: date, started_at: datetime, host: str, pid: int) -> int:
        """Record a run as started (outcome ``running``); returns its id."""
        with begin(self.engine) as conn:
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
        with begin(self.engine) as conn:
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
                started_at=aware(r.started_at) or utc_now(),
                finished_at=aware(r.finished_at),
                outcome=r.outcome,
                stage=r.stage,
                error=r.error,
                fetched=r.fetched,
                sent=r.sent,
                failed=r.failed,
                deferred=r.deferred,
                host=r.host,
                pid=r.pid,
            )
            for r in rows
        ]

    def unfinished(self, host: str) -> list[tuple[int, int]]:
        """The runs started on ``host`` whose end is not recorded: (run id, pid), oldest
        first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(runs.c.id, runs.c.pid)
                .where(runs.c.host == host, runs.c.finished_at.is_(None))
                .order_by(runs.c.id)
            ).all()
        return [(int(r.id), int(r.pid)) for r in rows]

    def end_gone(self, run_id: int, finished_at: datetime, error: str) -> bool:
        """Record that run ``run_id`` ended without recording it (its process died):
        outcome ``failed`` with ``error``; True unless its end was recorded meanwhile."""
        with begin(self.engine) as conn:
            done = conn.execute(
                sa.update(runs)
                .where(runs.c.id == run_id, runs.c.finished_at.is_(None))
                .values(finished_at=finished_at, outcome="failed", error=error)
            )
        return bool(done.rowcount)

    def since(self, when: datetime) -> list[RunRecord]:
        """The runs started at ``when`` or later, newest first."""
        return [r for r in self.runs(10_000) if r.started_at >= when]

    def totals(self) -> RunTotals:
        """Counts over every recorded run (only ever growing: Prometheus counters)."""
        c = runs.c
        with self.engine.connect() as conn:
            by_outcome = {
                str(outcome): int(n)
                for outcome, n in conn.execute(
                    sa.select(c.outcome, sa.func.count()).group_by(c.outcome)
                )
            }
            sent, failed, deferred = conn.execute(
                sa.select(
                    sa.func.coalesce(sa.func.sum(c.sent), 0),
                    sa.func.coalesce(sa.func.sum(c.failed), 0),
                    sa.func.coalesce(sa.func.sum(c.deferred), 0),
                )
            ).one()
            fetch_failures = conn.execute(
                sa.select(sa.func.count()).where(c.outcome == "failed", c.stage == "fetch")
            ).scalar_one()
        return RunTotals(by_outcome, int(sent), int(failed), int(deferred), int(fetch_failures))

    def swap_meta(self, key: str, old: str | None, new: str) -> bool:
        """Set ``key`` to ``new`` only if it is ``old`` now (None: absent); True if done.

        A compare-and-swap, so that of two runs only one acts on a change (one alert).
        """
        try:
            with begin(self.engine) as conn:
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

    def secret(self) -> bytes:
        """The signing secret kept in the database, made on first use."""
        made = random_token() + random_token()
        if not self.swap_meta("secret", None, made):  # another run made it first: use theirs
            made = self.get_meta("secret") or made
        return made.encode()
