"""store.queue_state.Pace and run.pace.SharedPace: one sending schedule in the database for
every process (SQLite and PostgreSQL): slots ``1 / rate`` apart whoever takes them, a
relay's throttling answer holding every taker back.

The schedule is read back from the database (on the database's clock), not timed: the
machine may be slow, never the schedule wrong."""

from __future__ import annotations

import asyncio
import itertools
import time
from concurrent.futures import ThreadPoolExecutor

import sqlalchemy as sa

from digest.errors import TransientDeliveryError
from digest.run.pace import SharedPace
from digest.store import Store
from digest.store.queue_state import _PG_NOW, _SQLITE_NOW, Pace


def _db_now(store: Store) -> float:
    """The database clock the schedule is kept on, in seconds."""
    expr = _PG_NOW if store.engine.dialect.name == "postgresql" else _SQLITE_NOW
    with store.engine.connect() as conn:
        return float(conn.execute(sa.text(f"SELECT {expr}")).scalar_one())


def _next(store: Store, key: str = "pace.smtp") -> float | None:
    """When the schedule's next slot is (None: no schedule yet)."""
    value = store.run_log.get_meta(key)
    return None if value is None else float(value)


def test_slots_are_spaced_by_the_interval_across_takers(db_url: str) -> None:
    schedule = []
    with Store(db_url) as one, Store(db_url) as two:  # two engines: two processes' worth
        for pace in [Pace(one.engine), Pace(two.engine)] * 5:
            assert pace.take(0.05) >= 0.0
            found = _next(one)
            assert found is not None
            schedule.append(found)
    gaps = [b - a for a, b in itertools.pairwise(schedule)]
    # Each taker's slot comes 0.05 s after the one before it, or later (never sooner).
    assert all(g >= 0.05 - 1e-4 for g in gaps), gaps  # (SQLite keeps 15 digits)


def test_concurrent_takers_never_share_a_slot(db_url: str) -> None:
    with Store(db_url) as store:
        pace = Pace(store.engine, key="pace.test")
        started = _db_now(store)
        with ThreadPoolExecutor(4) as pool:
            waits = list(pool.map(lambda _: pace.take(0.02), range(40)))
        end = _next(store, "pace.test")
    assert all(w >= 0.0 for w in waits)
    # 40 slots 20 ms apart, whichever thread took which: the schedule moved on 0.8 s at least.
    assert end is not None and end - started >= 40 * 0.02 - 1e-4, (end, started)


def test_a_hold_delays_every_taker(db_url: str) -> None:
    with Store(db_url) as store:
        pace = Pace(store.engine)
        before = _db_now(store)
        pace.hold(30)
        held = _next(store)
        assert held is not None and held >= before + 30 - 1e-3  # float seconds: rounding
        # this taker waits for the hold to end (SQLite's clock: float days, a few microseconds off)
        assert 20 <= pace.take(0.01) <= 30 + 1e-3
        assert abs((_next(store) or 0) - (held + 0.01)) < 1e-4
        pace.hold(0.1)  # an earlier end than the schedule's: no change
        assert abs((_next(store) or 0) - (held + 0.01)) < 1e-4
        assert pace.take(0.01) >= 20


def test_a_421_holds_the_shared_pace_and_a_550_does_not(db_url: str) -> None:
    async def scenario(store: Store) -> float:
        shared = SharedPace(store, rate=100, hold=30)
        await shared.throttled(TransientDeliveryError("a@example.org", "busy", code=550))
        assert _next(store) is None  # not a throttling answer: no hold
        before = _db_now(store)
        await shared.throttled(TransientDeliveryError("a@example.org", "slow down", code=421))
        held = _next(store)
        assert held is not None and held >= before + 30 - 1e-3  # float seconds: rounding
        return shared.pace.take(shared.interval)

    with Store(db_url) as store:
        assert asyncio.run(scenario(store)) >= 20


def test_the_shared_pace_sleeps_until_its_slot(db_url: str) -> None:
    async def scenario(store: Store) -> float:
        shared = SharedPace(store, rate=100, hold=0.3)
        await shared.throttled(TransientDeliveryError("a@example.org", "slow down", code=451))
        started = time.monotonic()
        await shared.wait()
        return time.monotonic() - started

    with Store(db_url) as store:
        assert asyncio.run(scenario(store)) >= 0.2  # a lower bound: sleeping is never shorter
