"""`digest run` with several worker processes (``run.workers``): every active subscriber
gets exactly one digest, the report covers them all, a rerun sends nothing, and a run killed
with SIGKILL takes its workers with it, leaving claims the next run re-queues."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest

from digest.config import parse
from digest.errors import ConfigError
from digest.models import Subscriber
from digest.run import PER_WORKER, worker_count
from digest.store import Store
from tests.support.listings import item, write_days, write_site_config
from tests.support.smtpd import SmtpServer

DAY = date(2026, 11, 18)
TOPICS = ["diffusion", "agents", "protein folding", "speech"]


def test_worker_count() -> None:
    assert worker_count(3, 10, 2) == 3  # a number is taken as given
    assert worker_count(1, 10**6, 8) == 1
    assert worker_count("auto", 0, 2) == 1
    assert worker_count("auto", PER_WORKER - 1, 8) == 1
    assert worker_count("auto", 2 * PER_WORKER, 8) == 2
    assert worker_count("auto", 100 * PER_WORKER, 2) == 2  # never more than the cores
    assert worker_count("auto", 100 * PER_WORKER, 1) == 1


@pytest.mark.parametrize("value", [0, 65, -1, "two", 1.5, True])
def test_bad_workers_setting_is_refused_with_its_key(value: object) -> None:
    with pytest.raises(ConfigError) as caught:
        parse({"run": {"workers": value}}, base=Path("."))
    assert "run.workers" in str(caught.value)
    assert '"auto" or an integer 1-64' in str(caught.value)


def test_workers_setting_defaults_to_auto() -> None:
    assert parse({}, base=Path(".")).run.workers == "auto"
    assert parse({"run": {"workers": 2}}, base=Path(".")).run.workers == 2


def _site(
    folder: Path, server: SmtpServer, db_url: str, workers: int, readers: int, smtp: str = ""
) -> Path:
    papers = [
        item(f"2611.{i:05d}", f"{TOPICS[i % 4].title()} paper {i}", f"We study {TOPICS[i % 4]}.")
        for i in range(12)
    ]
    write_days(folder / "listings", {DAY.isoformat(): papers})
    config = write_site_config(
        folder,
        server,
        top=f'database = "{db_url}"',
        smtp=f"concurrency = 4\n{smtp}",
        more=f"[run]\nworkers = {workers}",
    )
    with Store(db_url) as store:
        for i in range(readers):
            keywords = () if i % 5 == 0 else (TOPICS[i % 4],)
            store.members.add_subscriber(
                Subscriber(email=f"reader{i:03d}@example.org", keywords=keywords)
            )
    return config


def _digest(config: Path, *args: str, **kwargs: object) -> subprocess.Popen[str]:
    return subprocess.Popen(  # type: ignore[no-any-return]
        [sys.executable, "-m", "digest", "--config", str(config), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs,  # type: ignore[call-overload]
    )  # fmt: skip


def test_two_workers_send_each_subscriber_one_digest(
    tmp_path: Path, smtp_server: Callable[..., SmtpServer], db_url: str
) -> None:
    server = smtp_server()
    readers = 41
    config = _site(tmp_path, server, db_url, workers=2, readers=readers)
    proc = _digest(config, "-v", "run", "--date", DAY.isoformat())
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "2 worker processes" in err
    received = Counter(m.rcpt_tos[0] for m in server.messages)
    assert len(received) == readers and max(received.values()) == 1
    # The report lists every subscriber once, each sent, and the totals add up.
    lines = [line for line in out.splitlines() if "@example.org:" in line]
    assert len(lines) == readers and all(line.endswith("sent") for line in lines), out
    assert f"sent {readers}, failed 0, deferred 0" in out
    # Each digest holds its subscriber's papers: "everything" readers all twelve.
    everything = next(m for m in server.messages if m.rcpt_tos[0] == "reader000@example.org")
    assert everything.message["Subject"].endswith(": 12 new papers")
    with Store(db_url) as store:
        counts = store.outbox.delivery_counts()
        assert counts == {"sent": readers}, counts
        runs = store.run_log.runs(limit=1)
        assert runs[0].outcome == "ok" and runs[0].sent == readers

    again = _digest(config, "run", "--date", DAY.isoformat())
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert len(server.messages) == readers, "a rerun sent something again"
    assert "sent 0, failed 0, deferred 0" in out


def test_a_worker_stopped_by_the_server_fails_the_run_and_loses_nothing(
    tmp_path: Path, smtp_server: Callable[..., SmtpServer]
) -> None:
    server = smtp_server(mail_reply="421 4.3.2 Service shutting down")
    db_url = f"sqlite:///{tmp_path / 'digest.db'}"
    # Two tries a message (one short back-off) are enough to see a 421 defer it.
    config = _site(tmp_path, server, db_url, workers=2, readers=10, smtp="max_attempts = 2")
    proc = _digest(config, "run", "--date", DAY.isoformat())
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, out + err
    assert "Traceback" not in err
    assert "421" in err
    with Store(db_url) as store:
        counts = store.outbox.delivery_counts()
    assert counts.get("sending", 0) == 0, counts  # claims given back
    assert sum(counts.values()) == 10 and counts.get("sent", 0) == 0, counts

    server.set_faults()
    again = _digest(config, "run", "--date", DAY.isoformat())
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    received = Counter(m.rcpt_tos[0] for m in server.messages)
    assert len(received) == 10 and max(received.values()) == 1


@pytest.mark.slow  # waits 3 s to see that no worker outlives its run
def test_sigkill_of_the_run_takes_its_workers_along(
    tmp_path: Path, smtp_server: Callable[..., SmtpServer]
) -> None:
    server = smtp_server(stall_on="DATA", stall=0.3)
    db_url = f"sqlite:///{tmp_path / 'digest.db'}"
    readers = 40
    config = _site(tmp_path, server, db_url, workers=2, readers=readers)
    proc = _digest(config, "run", "--date", DAY.isoformat())
    deadline = time.monotonic() + 60
    while len(server.messages) < 4:
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    # The workers die with the run: a moment later nothing is sent any more.
    time.sleep(1.5)
    settled = len(server.messages)
    time.sleep(1.5)
    assert len(server.messages) == settled, "a worker kept sending after its run was killed"
    assert settled < readers, "the kill came too late to test anything"

    server.set_faults()
    again = _digest(config, "run", "--date", DAY.isoformat())
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert "re-queued" in out
    received = Counter(m.rcpt_tos[0] for m in server.messages)
    assert len(received) == readers, "a digest was lost"
    # Sent twice only if accepted in the instant of the kill: at most one per connection.
    assert sum(received.values()) - readers <= 4, received
    with Store(db_url) as store:
        counts = store.outbox.delivery_counts()
    assert counts == {"sent": readers}, counts
