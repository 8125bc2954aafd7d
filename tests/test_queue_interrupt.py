"""A queued run (``run.queue``) that stops waiting while the workers still send: Ctrl-C or
SIGTERM on ``digest run`` leaves the digests the workers hold claimed (none goes back to
pending, none goes twice), and the next ``digest run`` waits for those batches too, then
sends nothing again. Real PostgreSQL, real ``digest`` processes, a real aiosmtpd."""

from __future__ import annotations

import os
import re
import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from digest.store import Store
from tests.support.smtpd import SmtpServer
from tests.test_queue import DAY, _digest, _site, _stop, pg_url  # noqa: F401  (the fixture)


def _jobs_of(database: str, run: int) -> int:
    import psycopg

    from digest.run.queue_jobs import conninfo

    with psycopg.connect(conninfo(database)) as conn:
        row = conn.execute(
            "SELECT count(*) FROM procrastinate_jobs WHERE (args->>'run')::int = %s", (run,)
        ).fetchone()
    return int(row[0]) if row else 0


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_run_stopped_while_waiting_leaves_the_workers_claims_and_nothing_goes_twice(
    tmp_path: Path,
    smtp_server: Callable[..., SmtpServer],
    pg_url: str,  # noqa: F811
    how: signal.Signals,
) -> None:
    server = smtp_server(stall_on="DATA", stall=0.15)
    readers = 40
    config = _site(tmp_path, server, pg_url, readers)
    text = config.read_text("utf-8")  # a paused worker is not taken for dead here
    config.write_text(text.replace("heartbeat_timeout = 5", "heartbeat_timeout = 120"), "utf-8")
    worker = _digest(config, "-v", "worker")
    workers = [worker]
    try:
        first = _digest(config, "run", "--date", DAY.isoformat())
        deadline = time.monotonic() + 90
        while len(server.messages) < 4:
            assert time.monotonic() < deadline and first.poll() is None, first.communicate()
            time.sleep(0.02)
        os.kill(worker.pid, signal.SIGSTOP)  # mid-batch, its batches unfinished
        first.send_signal(how)
        first.communicate(timeout=60)
        assert first.returncode != 0
        with Store(pg_url) as store:
            counts = store.outbox.delivery_counts()
            run = store.run_log.runs(limit=1)[0]
        assert len(server.messages) < readers, "the interruption came too late to test anything"
        # What the worker took is still its own: nothing was given back to pending.
        assert "pending" not in counts, counts
        if how == signal.SIGINT:
            assert run.outcome == "failed" and run.error == "interrupted"
        # The next run, while the first one's batches are unfinished: it takes back none of
        # the workers' claims, queues its own batches, waits for both runs' batches, and
        # sends nothing twice.
        again = _digest(config, "-v", "run", "--date", DAY.isoformat())
        while not _jobs_of(pg_url, run.id + 1):
            assert time.monotonic() < deadline + 90 and again.poll() is None, again.communicate()
            time.sleep(0.1)
        os.kill(worker.pid, signal.SIGCONT)
        workers.append(_digest(config, "-v", "worker", "--concurrency", "2"))
        out, err = again.communicate(timeout=180)
        assert again.returncode == 0, out + err
        assert "re-queued" not in out, out
        assert "waiting for the batches of earlier run(s) [1]" in err, err
    finally:
        os.kill(worker.pid, signal.SIGCONT)
        errs = _stop(*workers)
    assert all("Traceback" not in e for e in errs), errs
    received = Counter(m.rcpt_tos[0] for m in server.messages)
    assert received == Counter(f"reader{i:03d}@example.org" for i in range(readers))
    # The first run's batches sent most; the next run's own batches may have planned (and
    # sent) the readers of a first-run batch no worker had started yet: a worker takes
    # either batch first, and a reader's digest is planned once, by whichever came first.
    by_next = re.search(r"sent (\d+), failed 0, deferred 0", out)
    assert by_next is not None, out
    assert int(by_next[1]) < readers - 4, out  # 4 were received before the interruption
    with Store(pg_url) as store:
        assert store.outbox.delivery_counts() == {"sent": readers}
        first_run = next(r for r in store.run_log.runs() if r.id == run.id)
        if how == signal.SIGINT:  # it ended: the next run counted what its batches sent
            assert first_run.sent + int(by_next[1]) == readers, (first_run, out)
            assert store.run_log.get_meta(f"queue.run.{run.id}") is None
