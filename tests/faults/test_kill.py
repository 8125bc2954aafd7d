"""SIGKILL the real ``digest run`` at many points of a 200-subscriber run, start it again until
it exits 0, and check what a real SMTP server received: no digest lost, and a digest sent
twice (same Message-ID) only in the documented window, at most ``smtp.concurrency`` per kill.

Kill points: during planning (keyed on the database, no SMTP traffic yet), when the first
SMTP connection is accepted, right after the server recorded the k-th message and before
its 250 reply (the worst case: that message is surely sent again), a few milliseconds after
the k-th (between replies and ``mark_sent``), after the last message was marked sent but
before the program exits, and twice in a row (the restart killed too).
"""

from __future__ import annotations

import signal
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.faults.harness import (
    KillingServer,
    Tally,
    World,
    count,
    kill_when,
    listing_folder,
    make_world,
    template_db,
)

#: One worker runs all the fault tests, one after another (see pyproject.toml).
pytestmark = pytest.mark.xdist_group("faults")

N = 200
CONCURRENCY = 3
Row = tuple[str, ...]


@dataclass(frozen=True)
class AtMessage:
    k: int
    delay: float = 0.0


@dataclass(frozen=True)
class AtConnection:
    number: int


@dataclass(frozen=True)
class WhenDb:
    """Kill when ``holds(conn, world)`` of the run's database."""

    holds: Callable[[sqlite3.Connection, World], bool]


Kill = AtMessage | AtConnection | WhenDb


def _started_nothing_planned(conn: sqlite3.Connection, world: World) -> bool:
    return count(conn, "SELECT count(*) FROM runs") >= len(world.runs) + 1 and not count(
        conn, "SELECT count(*) FROM deliveries"
    )


def _planned_not_connected(conn: sqlite3.Connection, world: World) -> bool:
    return world.server.connections == 0 and count(conn, "SELECT count(*) FROM deliveries") > 0


def _all_marked_sent(conn: sqlite3.Connection, world: World) -> bool:
    return count(conn, "SELECT count(*) FROM deliveries WHERE status = 'sent'") >= world.n


POINTS: dict[str, tuple[Kill, ...]] = {
    "planning: run recorded, no digest yet": (WhenDb(_started_nothing_planned),),
    "planning: digests recorded, no connection": (WhenDb(_planned_not_connected),),
    "first SMTP connection accepted": (AtConnection(1),),
    **{f"message {k} received, before 250": (AtMessage(k),) for k in (1, 10, 100, 200)},
    "message 50 + 2 ms": (AtMessage(50, 0.002),),
    "message 120 + 5 ms": (AtMessage(120, 0.005),),
    "message 175 + 20 ms": (AtMessage(175, 0.02),),
    "all marked sent, before exit": (WhenDb(_all_marked_sent),),
    "twice: message 40, restart at 80": (AtMessage(40), AtMessage(80)),
    "twice: planning, restart at 120": (WhenDb(_planned_not_connected), AtMessage(120)),
}


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("kill-shared")
    return template_db(tmp, N), listing_folder(tmp)


@pytest.fixture
def world(tmp_path: Path, shared: tuple[Path, Path]) -> Iterator[World]:
    # A small stall per message, so that kills land mid-run with several messages in flight.
    server = KillingServer(stall_on="DATA", stall=0.002).start()
    try:
        yield make_world(tmp_path, *shared, server, N, CONCURRENCY)
    finally:
        server.stop()


def _kill_once(world: World, kill: Kill) -> None:
    proc = world.start()
    if isinstance(kill, WhenDb):
        landed = kill_when(proc, world.db, lambda conn: kill.holds(conn, world))
    else:
        if isinstance(kill, AtMessage):
            world.server.arm(proc.pid, at_message=kill.k, delay=kill.delay)
        else:
            world.server.arm(proc.pid, at_connection=kill.number)
        try:
            proc.wait(60)
        finally:
            world.server.disarm()
        landed = world.server.fired.is_set()
    done = world.wait(proc)
    assert landed and done.returncode == -signal.SIGKILL, (done.returncode, done.stderr)


@pytest.mark.slow  # each case starts, kills and restarts real runs: 5-10 s
@pytest.mark.parametrize("name", list(POINTS))
def test_a_killed_run_started_again_loses_nothing(
    world: World, name: str, faults_summary: list[Row]
) -> None:
    kills = POINTS[name]
    received_at: list[int] = []
    for kill in kills:
        _kill_once(world, kill)
        received_at.append(len(world.server.messages))
        received = set(Tally.of(world.server).per_id)
        # what the database says was sent, the server has
        assert world.marked_sent() <= received
    restarts = 0
    while restarts < 2:
        restarts += 1
        again = world.run()
        assert "Traceback" not in again.stderr
        if again.returncode == 0:
            break
    assert again.returncode == 0, again.stderr

    tally = Tally.of(world.server)
    lost = tally.lost(world.emails)
    # each subscriber got one digest (one Message-ID), none got two different ones
    twice = {r for r, ids in tally.ids_per_rcpt.items() if len(ids) != 1}
    bound = CONCURRENCY * len(kills)
    faults_summary.append(
        (
            f"SIGKILL: {name}",
            str(len(kills)),
            "/".join(map(str, received_at)),
            str(restarts),
            str(len(lost)),
            str(tally.duplicated),
            f"<= {bound}",
        )
    )
    assert not lost
    assert not twice
    assert set(tally.ids_per_rcpt) == world.emails
    assert tally.duplicated <= bound
    # a duplicate is a message the server had before a kill, never one from a finished run
    first_copies = {str(m.message["Message-ID"]) for m in world.server.messages[: received_at[-1]]}
    assert {mid for mid, n in tally.per_id.items() if n > 1} <= first_copies
    # and it is the same message again, byte for byte
    copies: dict[str, set[bytes]] = {}
    for m in world.server.messages:
        copies.setdefault(str(m.message["Message-ID"]), set()).add(m.data)
    assert all(len(versions) == 1 for versions in copies.values())
    assert world.statuses() == {"sent": N}
    assert world.marked_sent() == set(tally.per_id)  # so a rerun has nothing left to send
    # each killed run's record was ended by the next run: none is left "running" for ever
    outcomes = world.query("SELECT outcome, error FROM runs ORDER BY id")
    assert all(outcome != "running" for outcome, _ in outcomes), outcomes
    gone = [e for o, e in outcomes if o == "failed" and "ended before recording its end" in e]
    assert len(gone) == len(kills), outcomes


@pytest.mark.slow  # two real runs, one killed, then a third: ~7 s
def test_two_runs_at_once_one_killed_lose_nothing(world: World, faults_summary: list[Row]) -> None:
    first, second = world.start(), world.start()
    # the first still running at message 60: one may find all the work taken by the other
    world.server.arm(first.pid, second.pid, at_message=60)
    try:
        done = [world.wait(first), world.wait(second)]
    finally:
        world.server.disarm()
    assert world.server.fired.is_set()
    killed, survivor = sorted(done, key=lambda d: d.returncode)
    assert killed.returncode == -signal.SIGKILL
    received_at = world.server.killed_at
    # the survivor leaves the dead run's claims alone (it cannot know yet that it died)
    assert survivor.returncode == 0, survivor.stderr
    assert world.marked_sent() <= set(Tally.of(world.server).per_id)
    again = world.run()
    assert again.returncode == 0, again.stderr
    tally = Tally.of(world.server)
    lost = tally.lost(world.emails)
    faults_summary.append(
        (
            "SIGKILL: one of two runs at once, at message 60",
            "1",
            str(received_at),
            "1",
            str(len(lost)),
            str(tally.duplicated),
            f"<= {CONCURRENCY}",
        )
    )
    assert not lost
    assert all(len(ids) == 1 for ids in tally.ids_per_rcpt.values())
    assert tally.duplicated <= CONCURRENCY
    assert world.statuses() == {"sent": N}
