"""store.queue_state.Pace and run.pace.SharedPace: one sending schedule in the database for
every process (SQLite and PostgreSQL): slots ``1 / rate`` apart whoever takes them, a
relay's throttling answer holding every taker back."""

from __future__ import annotations

import asyncio
import itertools
import time
from concurrent.futures import ThreadPoolExecutor

from digest.errors import TransientDeliveryError
from digest.run.pace import SharedPace
from digest.store import Store
from digest.store.queue_state import Pace


def test_slots_are_spaced_by_the_interval_across_takers(db_url: str) -> None:
    slots = []
    with Store(db_url) as one, Store(db_url) as two:  # two engines: two processes' worth
        for pace in [Pace(one.engine), Pace(two.engine)] * 5:
            wait = pace.take(0.05)
            slots.append(time.monotonic() + wait)  # when this taker may send
    gaps = [b - a for a, b in itertools.pairwise(slots)]
    assert all(0.03 <= g <= 0.07 for g in gaps), gaps


def test_concurrent_takers_never_share_a_slot(db_url: str) -> None:
    with Store(db_url) as store:
        pace = Pace(store.engine, key="pace.test")

        def take(_: int) -> float:
            wait = pace.take(0.02)
            return time.monotonic() + wait

        with ThreadPoolExecutor(4) as pool:
            slots = sorted(pool.map(take, range(40)))
    # 40 slots 20 ms apart, whichever thread took which: the last ~0.78 s after the first.
    assert slots[-1] - slots[0] >= 0.78 - 0.08, slots
    gaps = [b - a for a, b in itertools.pairwise(slots)]
    # Never two at once: the gaps are the interval, give or take a thread's wake-up.
    assert sorted(gaps)[len(gaps) // 2] >= 0.015 and max(gaps) < 0.1, gaps


def test_a_hold_delays_every_taker(db_url: str) -> None:
    with Store(db_url) as store:
        pace = Pace(store.engine)
        pace.hold(0.5)
        assert 0.4 <= pace.take(0.01) <= 0.51
        pace.hold(0.1)  # an earlier end than the schedule's: no change
        assert 0.4 <= pace.take(0.01) <= 0.52


def test_a_421_holds_the_shared_pace_and_a_550_does_not(db_url: str) -> None:
    async def scenario(store: Store) -> tuple[float, float]:
        shared = SharedPace(store, rate=100, hold=0.4)
        await shared.throttled(TransientDeliveryError("a@example.org", "busy", code=550))
        started = time.monotonic()
        await shared.wait()
        free = time.monotonic() - started
        await shared.throttled(TransientDeliveryError("a@example.org", "slow down", code=421))
        started = time.monotonic()
        await shared.wait()
        return free, time.monotonic() - started

    with Store(db_url) as store:
        free, held = asyncio.run(scenario(store))
    assert free < 0.1 and 0.3 <= held <= 0.6, (free, held)
