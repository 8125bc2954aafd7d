"""Workers on several machines (``run.queue``): ``digest run`` queues a run's batches in
PostgreSQL and ``digest worker`` processes send them; every reader gets exactly one digest,
a worker killed with SIGKILL mid-batch loses nothing (another takes its batch after the
heartbeat timeout) and sends at most its in-flight messages twice; ``smtp.rate`` holds for
two workers together. Real processes, a real PostgreSQL schema of its own per test, a
real aiosmtpd."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from digest.config import parse
from digest.errors import ConfigError
from digest.models import Subscriber
from digest.run.queue_schema import upgrade_schema
from digest.store import Store
from tests.conftest import PG_HOST, PG_PORT, _pg_problem
from tests.support.listings import item, write_days, write_site_config
from tests.support.smtpd import SmtpServer

DAY = date(2026, 11, 18)
TOPICS = ["diffusion", "agents", "protein folding", "speech"]
_schemas = itertools.count()


def test_the_queue_on_sqlite_is_a_config_error_naming_postgresql() -> None:
    with pytest.raises(ConfigError) as caught:
        parse({"run": {"queue": True}}, base=Path("."))
    text = str(caught.value)
    assert "run.queue" in text and "PostgreSQL" in text
    assert "postgresql+psycopg://" in (caught.value.problems[0].hint or "")
    on_pg = parse(
        {"database": "postgresql+psycopg://u@h/db", "run": {"queue": True}}, base=Path(".")
    )
    assert on_pg.run.queue and on_pg.run.heartbeat_timeout == 60.0
    assert on_pg.smtp.rate is None


@pytest.mark.parametrize("value", [0, -1, "fast", True])
def test_a_bad_rate_is_refused_with_its_key(value: object) -> None:
    with pytest.raises(ConfigError) as caught:
        parse({"smtp": {"rate": value}}, base=Path("."))
    assert "smtp.rate" in str(caught.value)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL schema of this test's own (procrastinate's tables included)."""
    problem = _pg_problem()
    if problem:
        pytest.skip(problem)
    import psycopg

    schema = f"digest_queue_{os.getpid()}_{next(_schemas)}"
    admin = f"host={PG_HOST} port={PG_PORT} dbname=test user=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        conn.execute(f"CREATE SCHEMA {schema}")
    yield (
        f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/test?options=-csearch_path%3D{schema}"
    )
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def _site(folder: Path, server: SmtpServer, db_url: str, readers: int, smtp: str = "") -> Path:
    papers = [
        item(f"2611.{i:05d}", f"{TOPICS[i % 4].title()} paper {i}", f"We study {TOPICS[i % 4]}.")
        for i in range(12)
    ]
    papers.append(item("2611.00099", "Ünïcode <b>agents</b> & diffusion", "Ça marche."))
    write_days(folder / "listings", {DAY.isoformat(): papers})
    config = write_site_config(
        folder,
        server,
        top=f'database = "{db_url}"',
        smtp=f"concurrency = 2\n{smtp}",
        more="[run]\nqueue = true\nheartbeat_timeout = 5",
    )
    with Store(db_url) as store:
        for i in range(readers):
            keywords = () if i % 5 == 0 else (TOPICS[i % 4],)
            store.members.add_subscriber(
                Subscriber(email=f"reader{i:03d}@example.org", keywords=keywords)
            )
    upgrade_schema(db_url)  # `digest db upgrade`: the queue's tables (workers never make them)
    return config


def _digest(config: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "digest", "--config", str(config), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _stop(*procs: subprocess.Popen[str]) -> list[str]:
    """SIGTERM each worker still running; their stderr."""
    errs = []
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        errs.append(err)
    return errs


@pytest.mark.postgres
@pytest.mark.slow
def test_two_workers_share_a_run_and_each_reader_gets_one_digest(
    tmp_path: Path, smtp_server: Callable[..., SmtpServer], pg_url: str
) -> None:
    server = smtp_server()
    readers = 45
    config = _site(tmp_path, server, pg_url, readers)
    # One takes a batch at a time, the other two at once.
    workers = [
        _digest(config, "-v", "worker"),
        _digest(config, "-v", "worker", "--concurrency", "2"),
    ]
    try:
        run = _digest(config, "-v", "run", "--date", DAY.isoformat())
        out, err = run.communicate(timeout=180)
        assert run.returncode == 0, out + err
        assert "batch(es) queued for the workers" in err
        received = Counter(m.rcpt_tos[0] for m in server.messages)
        assert received == Counter(f"reader{i:03d}@example.org" for i in range(readers))
        assert f"sent {readers}, failed 0, deferred 0" in out
        with Store(pg_url) as store:
            assert store.outbox.delivery_counts() == {"sent": readers}
            last = store.run_log.runs(limit=1)[0]
            assert last.outcome == "ok" and last.sent == readers

        status = _digest(config, "status")
        out, err = status.communicate(timeout=60)
        assert status.returncode == 0, err
        assert "workers:    2 (heartbeats" in out, out
        assert "batches:    pending 0, running 0, done 5, failed 0" in out, out

        again = _digest(config, "run", "--date", DAY.isoformat())
        out, err = again.communicate(timeout=120)
        assert again.returncode == 0, out + err
        assert len(server.messages) == readers, "a second run sent something again"
    finally:
        errs = _stop(*workers)
    assert all("Traceback" not in e for e in errs), errs
    # Both took batches: neither sat idle while the other did the run.
    assert all("sent to=" in e for e in errs), errs


@pytest.mark.postgres
@pytest.mark.slow
def test_a_worker_killed_mid_batch_loses_nothing(
    tmp_path: Path, smtp_server: Callable[..., SmtpServer], pg_url: str
) -> None:
    server = smtp_server(stall_on="DATA", stall=0.15)
    readers = 40
    config = _site(tmp_path, server, pg_url, readers)
    doomed = _digest(config, "worker")
    run = _digest(config, "run", "--date", DAY.isoformat())
    deadline = time.monotonic() + 90
    while len(server.messages) < 6:
        assert time.monotonic() < deadline and run.poll() is None, run.communicate()
        time.sleep(0.02)
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.communicate(timeout=30)
    killed_at = len(server.messages)
    assert killed_at < readers, "the kill came too late to test anything"
    rescuer = _digest(config, "-v", "worker")
    try:
        out, err = run.communicate(timeout=180)
        assert run.returncode == 0, out + err
    finally:
        (rescuer_err,) = _stop(rescuer)
    assert "sent to=" in rescuer_err, rescuer_err
    received = Counter(m.rcpt_tos[0] for m in server.messages)
    assert set(received) == {f"reader{i:03d}@example.org" for i in range(readers)}, "lost"
    # Twice only what the dead worker had in flight: one per SMTP connection (2).
    assert sum(received.values()) - readers <= 2, received
    # The run's counts hold the dead worker's messages too (read from the digests its
    # batches took, not only from the batches that ended).
    assert f"sent {readers}, failed 0, deferred 0" in out, out
    with Store(pg_url) as store:
        assert store.outbox.delivery_counts() == {"sent": readers}
        last = store.run_log.runs(limit=1)[0]
        assert last.outcome == "ok" and last.sent == readers
        assert not store.run_log.get_meta(f"queue.run.{last.id}"), "the tally outlived its run"


@pytest.mark.postgres
@pytest.mark.slow
def test_the_rate_holds_for_two_workers_together(
    tmp_path: Path, smtp_server: Callable[..., SmtpServer], pg_url: str
) -> None:
    server = smtp_server()
    readers, rate = 40, 20.0
    config = _site(tmp_path, server, pg_url, readers, smtp=f"rate = {rate}")
    seen: list[tuple[float, int]] = []
    done = threading.Event()

    def sample() -> None:  # when the server's count moved (5 ms granularity)
        while not done.is_set():
            n = len(server.messages)
            if not seen or seen[-1][1] != n:
                seen.append((time.monotonic(), n))
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    workers = [_digest(config, "-v", "worker") for _ in range(2)]
    try:
        sampler.start()
        run = _digest(config, "run", "--date", DAY.isoformat())
        out, err = run.communicate(timeout=180)
        assert run.returncode == 0, out + err
    finally:
        done.set()
        errs = _stop(*workers)
    assert all("sent to=" in e for e in errs), "both workers sent"
    assert len(server.messages) == readers
    first = next(t for t, n in seen if n >= 1)
    last = next(t for t, n in seen if n >= readers)
    # 40 messages at 20/s: 39 intervals of 50 ms at least, whoever sent them.
    assert last - first >= (readers - 1) / rate * 0.9, (last - first, seen)
    # No second holds more than the rate (and one message of slack for the sampling).
    for t, n in seen:
        later = [m for u, m in seen if u <= t + 1.0]
        assert later[-1] - n <= rate + 1, (t, seen)


@pytest.mark.postgres
@pytest.mark.slow
def test_no_wait_queues_the_batches_and_a_worker_sends_them_later(
    tmp_path: Path, smtp_server: Callable[..., SmtpServer], pg_url: str
) -> None:
    server = smtp_server()
    readers = 25
    config = _site(tmp_path, server, pg_url, readers)
    run = _digest(config, "run", "--no-wait", "--date", DAY.isoformat())
    out, err = run.communicate(timeout=120)
    assert run.returncode == 0, out + err
    assert not server.messages and "sent 0, failed 0, deferred 0" in out
    status = _digest(config, "status")
    out, _ = status.communicate(timeout=60)
    assert "workers:    0 (none running)" in out, out
    assert "batches:    pending 3, running 0, done 0, failed 0" in out, out

    worker = _digest(config, "worker", "--once")  # ends once the queue is empty
    out, err = worker.communicate(timeout=120)
    assert worker.returncode == 0, out + err
    received = Counter(m.rcpt_tos[0] for m in server.messages)
    assert received == Counter(f"reader{i:03d}@example.org" for i in range(readers))
    with Store(pg_url) as store:
        assert store.outbox.delivery_counts() == {"sent": readers}
    # The run did not wait: digest status counts what its batches sent since.
    status = _digest(config, "status")
    out, _ = status.communicate(timeout=60)
    assert (
        f"batches:    pending 0, running 0, done 3, failed 0 (run 1; digests sent {readers},"
        " failed 0, to send 0)"
    ) in out, out


@pytest.mark.postgres
@pytest.mark.slow
def test_a_worker_that_loses_the_database_reconnects_and_goes_on(
    tmp_path: Path, smtp_server: Callable[..., SmtpServer], pg_url: str
) -> None:
    import psycopg

    server = smtp_server()
    readers = 20
    name = f"digest-queue-test-{os.getpid()}"
    config = _site(tmp_path, server, f"{pg_url}&application_name={name}", readers)
    worker = _digest(config, "-v", "worker")
    admin = f"host={PG_HOST} port={PG_PORT} dbname=test user=postgres"
    try:
        with psycopg.connect(admin, autocommit=True) as conn:
            deadline = time.monotonic() + 60
            schema = pg_url.rpartition("%3D")[2]
            while not _registered(conn, schema):  # its connections, once it listens
                assert time.monotonic() < deadline and worker.poll() is None
                time.sleep(0.2)
            time.sleep(0.5)
            killed = len(
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE application_name = %s",
                    (name,),
                ).fetchall()
            )
            assert killed >= 2  # the listener and the pool's
        run = _digest(config, "run", "--date", DAY.isoformat())
        out, err = run.communicate(timeout=180)
        assert run.returncode == 0, out + err
        assert worker.poll() is None, "the worker gave up"
    finally:
        _stop(worker)
    received = Counter(m.rcpt_tos[0] for m in server.messages)
    assert received == Counter(f"reader{i:03d}@example.org" for i in range(readers))


def _registered(conn: Any, schema: str) -> bool:
    """Whether a worker is registered in procrastinate's table of ``schema``."""
    found = conn.execute(f"SELECT to_regclass('{schema}.procrastinate_workers')").fetchone()
    if found is None or found[0] is None:
        return False
    return bool(conn.execute(f"SELECT count(*) FROM {schema}.procrastinate_workers").fetchone()[0])
