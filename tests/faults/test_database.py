"""The real ``digest run`` when its database fails under it: locked by another program for
longer than the busy timeout, or its disk full in the middle of sending. Either way: exit 1,
one clear line on stderr and no traceback, nothing marked sent that the SMTP server did not
receive, and the next run delivers every digest (a duplicate only for a message in flight
when the disk filled, at most ``smtp.concurrency``).

(Two runs at once as two processes: ``tests/test_claims.py``.)
"""

from __future__ import annotations

import resource
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.harness import (
    KillingServer,
    Tally,
    World,
    listing_folder,
    make_world,
    template_db,
)

#: One worker runs all the fault tests, one after another (see pyproject.toml).
pytestmark = pytest.mark.xdist_group("faults")

CONCURRENCY = 3
Row = tuple[str, ...]


def _world(tmp_path: Path, n: int) -> Iterator[World]:
    server = KillingServer(stall_on="DATA", stall=0.002).start()
    try:
        shared = tmp_path / "shared"
        shared.mkdir()
        yield make_world(
            tmp_path, template_db(shared, n), listing_folder(shared), server, n, CONCURRENCY
        )
    finally:
        server.stop()


@pytest.fixture
def small_world(tmp_path: Path) -> Iterator[World]:
    yield from _world(tmp_path, 20)


@pytest.fixture
def big_world(tmp_path: Path) -> Iterator[World]:
    yield from _world(tmp_path, 300)


def _sent(world: World) -> int:
    """How many digests the run has marked sent so far."""
    try:
        return int(world.query("SELECT count(*) FROM deliveries WHERE status = 'sent'")[0][0])
    except sqlite3.OperationalError:  # locked for a moment, or not made yet
        return 0


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def _delivered_once_each(world: World) -> Tally:
    tally = Tally.of(world.server)
    assert set(tally.ids_per_rcpt) == world.emails
    assert all(len(ids) == 1 for ids in tally.ids_per_rcpt.values())
    assert world.statuses() == {"sent": world.n}
    assert world.marked_sent() == set(tally.per_id)
    return tally


@pytest.mark.slow  # waits out SQLite's busy timeout (10 s)
def test_a_database_locked_for_the_whole_run_fails_it_cleanly(
    small_world: World, faults_summary: list[Row]
) -> None:
    world = small_world
    holder = sqlite3.connect(world.db, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")  # another program's long write transaction
        locked = world.run()  # waits out the busy timeout (10 s), then gives up
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert locked.returncode == 1, locked.stderr
    assert "Traceback" not in locked.stderr
    [error] = _error_lines(locked.stderr)
    assert "database is locked" in error
    assert world.server.messages == []
    assert world.statuses() == {}

    again = world.run()
    assert again.returncode == 0, again.stderr
    tally = _delivered_once_each(world)
    assert tally.duplicated == 0
    faults_summary.append(
        ("database locked (whole run)", "0", "0", "1", "0", str(tally.duplicated), "= 0")
    )
    if str(world.db) not in error:
        pytest.xfail(f"the message does not name the database: {error!r}")


@pytest.mark.slow  # a real run on a filling disk, then a second: ~8 s
def test_a_disk_full_in_the_middle_of_sending_marks_nothing_unsent_as_sent(
    big_world: World, faults_summary: list[Row]
) -> None:
    world = big_world
    # The disk fills once some messages were marked sent: from then on no file of the run
    # may grow past 512 KB (RLIMIT_FSIZE set on the running process; Python ignores
    # SIGXFSZ, so a write fails with EFBIG as on a full disk). The write-ahead log passes
    # that within the next few dozen marks, whatever the machine's speed (a limit set at
    # the start, sized to be reached mid-run, was not reached on a loaded machine).
    proc = world.start()
    deadline = time.monotonic() + 60
    while _sent(world) < 20 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (512_000, 512_000))
    full = world.wait(proc)
    assert full.returncode == 1, full.stderr
    assert "Traceback" not in full.stderr
    [error] = _error_lines(full.stderr)
    assert "database" in error
    received_at = len(world.server.messages)
    assert 0 < received_at < world.n, "the disk should fill up in the middle of sending"
    assert world.marked_sent() <= set(Tally.of(world.server).per_id)

    again = world.run()
    assert again.returncode == 0, again.stderr
    tally = _delivered_once_each(world)
    faults_summary.append(
        (
            "disk full (EFBIG) mid-send",
            "0",
            str(received_at),
            "1",
            "0",
            str(tally.duplicated),
            f"<= {CONCURRENCY}",
        )
    )
    assert tally.duplicated <= CONCURRENCY
