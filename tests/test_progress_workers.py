"""Live progress of a run in worker processes: the count the parent reads (and reports)
rises while the workers send, not only when they end, and ends at the digests sent."""

from __future__ import annotations

import asyncio
import io
import re
import threading
from collections.abc import Callable
from datetime import date
from pathlib import Path

from digest.cli.progress import reporting
from digest.config import load
from digest.models import Subscriber
from digest.run import Progress, make_context
from digest.run import run as run_pipeline
from digest.store import Store
from tests.support.listings import item, write_days, write_site_config
from tests.support.smtpd import SmtpServer

DAY = date(2026, 11, 18)


def test_a_run_in_two_workers_reports_its_count_while_it_sends(
    tmp_path: Path, smtp_server: Callable[..., SmtpServer]
) -> None:
    # Each DATA answered 50 ms late: 40 digests over 4 connections take about half a second.
    server = smtp_server(stall_on="DATA", stall=0.05)
    readers = 40
    papers = [
        item(f"2611.{i:05d}", f"Sparse agents, part {i}", "We study agents.") for i in range(4)
    ]
    write_days(tmp_path / "listings", {DAY.isoformat(): papers})
    db_url = f"sqlite:///{tmp_path / 'digest.db'}"
    path = write_site_config(
        tmp_path,
        server,
        top=f'database = "{db_url}"',
        smtp="concurrency = 4",
        more="[run]\nworkers = 2",
    )
    with Store(db_url) as store:
        for i in range(readers):
            store.members.add_subscriber(Subscriber(email=f"reader{i:03d}@example.org"))

    progress = Progress("digests")
    samples: list[tuple[int, int]] = []  # (count read by the parent, messages received)
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.01):
            samples.append((progress.value(), len(server.messages)))

    out = io.StringIO()
    with Store(db_url) as store:
        ctx = make_context(load(path), store)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            with reporting(progress, "run", stream=out, every=0.05):
                report = asyncio.run(run_pipeline(ctx, DAY, progress=progress))
        finally:
            stop.set()
            sampler.join()

    assert report.sent == readers and report.failed == report.deferred == 0
    assert len(server.messages) == readers
    assert progress.value() == readers  # ends at the digests sent, not twice that
    # Read from the parent while the workers sent: partial counts, never ahead of the server.
    partial = [count for count, _ in samples if 0 < count < readers]
    assert len(set(partial)) >= 3, samples[-50:]
    assert all(count <= received for count, received in samples), samples
    # The reporter said so too: lines before the last one show a growing count and a rate.
    lines = out.getvalue().splitlines()
    counts = [
        int(m.group(1)) for m in map(re.compile(r"run: (\d+) of 40 digests").match, lines) if m
    ]
    assert any(0 < c < readers for c in counts), lines
    assert counts == sorted(counts) and counts[-1] == readers, lines
    assert lines[-1].endswith("(done)") and "/s" in lines[-1]
