"""``digest serve`` with ``run.queue``: a scheduled pass defers its due subscribers' digests
(grouped by their window of dates) to ``digest worker`` processes and waits for them; the
pass itself sends nothing. Real PostgreSQL, a real worker process, a real aiosmtpd; the
pass runs in this process at chosen instants, as ``digest serve`` runs it every minute."""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import AsyncIterable, Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from digest.config import load
from digest.deliver import Outgoing
from digest.models import Subscriber
from digest.run import make_context
from digest.run.queue_schema import upgrade_schema
from digest.serve import Service, send_due
from digest.store import Store
from tests.support.listings import item, write_days, write_site_config
from tests.support.smtpd import SmtpServer
from tests.test_queue import _digest, _stop, pg_url  # noqa: F401  (pg_url: the fixture)

DAY = date(2026, 11, 18)
ARXIV = re.compile(r"arxiv\.org/abs/(\d{4}\.\d{5})")


class Refusing:
    """A sender that fails the test if the pass hands it anything."""

    async def deliver(self, items: AsyncIterable[Outgoing], recorder: object) -> None:
        raise AssertionError("the serve pass sent a message itself")


def _papers(day: date) -> list[dict[str, object]]:
    stamp = f"{day.month:02d}{day.day:02d}"
    return [item(f"2611.{stamp}{i}", f"Agents study {i} of {day}", "agents") for i in range(3)]


@pytest.mark.postgres
@pytest.mark.slow
async def test_a_serve_pass_defers_to_the_workers_and_sends_nothing_itself(
    tmp_path: Path,
    smtp_server: Callable[..., SmtpServer],
    pg_url: str,  # noqa: F811
) -> None:
    server = smtp_server()
    days = [DAY - timedelta(days=1) + timedelta(days=i) for i in range(4)]
    write_days(tmp_path / "listings", {d.isoformat(): _papers(d) for d in days})
    config_path = write_site_config(
        tmp_path,
        server,
        top=f'database = "{pg_url}"\ntimezone = "UTC"',
        smtp="concurrency = 2",
        more="[run]\nqueue = true\nheartbeat_timeout = 5\n[mail]\nmax_papers = 50",
    )
    early = [f"early{i:02d}@example.org" for i in range(12)]  # 07:00 UTC
    late = [f"late{i:02d}@example.org" for i in range(14)]  # 08:00 UTC
    with Store(pg_url) as store:
        for email in early:
            store.members.add_subscriber(Subscriber(email=email, send_at="07:00", timezone="UTC"))
        for email in late:
            store.members.add_subscriber(Subscriber(email=email, send_at="08:00", timezone="UTC"))
    upgrade_schema(pg_url)
    config = load(config_path)
    worker = _digest(config_path, "-v", "worker")
    try:
        with Store(pg_url) as store:
            ctx = replace(make_context(config, store), sender=Refusing())  # type: ignore[arg-type]

            async def at(when: datetime) -> int:
                report = await send_due(replace(ctx, now=when))
                assert not report.stopped and not report.deferred and not report.failed
                return report.sent

            start = datetime.combine(DAY, datetime.min.time(), UTC)
            assert await at(start) == 0  # placed on their schedule: nobody due yet
            assert await at(start + timedelta(hours=7, minutes=30)) == len(early)
            assert not {m.rcpt_tos[0] for m in server.messages} & set(late)
            # A day missed (downtime): the early ones catch up two dates, the late ones
            # get their first digest: two windows of dates, in one pass.
            sent = await at(start + timedelta(days=2, hours=9))
            assert sent == len(early) + len(late)
            assert await at(start + timedelta(days=2, hours=9, minutes=30)) == 0
            nexts = {s.email: s.next_send_at for s in store.members.subscribers("active")}
    finally:
        (err,) = _stop(worker)
    assert "Traceback" not in err, err
    received = Counter(m.rcpt_tos[0] for m in server.messages)
    assert received == Counter({**{e: 2 for e in early}, **{e: 1 for e in late}})
    pairs = [
        (m.rcpt_tos[0], paper)
        for m in server.messages
        for paper in set(ARXIV.findall(m.message.get_body(("plain",)).get_content()))  # type: ignore[union-attr]
    ]
    assert len(pairs) == len(set(pairs)), "a paper went twice to someone"
    # The early ones' catch-up digest holds the missed date's papers too.
    third = {p for to, p in pairs if to == early[0]}
    assert {"2611.11190", "2611.11200"} <= third, third
    # The workers moved each subscriber on to their next send.
    assert {e: nexts[e] for e in early} == {e: datetime(2026, 11, 21, 7, tzinfo=UTC) for e in early}
    assert {e: nexts[e] for e in late} == {e: datetime(2026, 11, 21, 8, tzinfo=UTC) for e in late}


@pytest.mark.postgres
@pytest.mark.slow
async def test_serve_stopping_while_it_waits_leaves_the_batches_to_the_workers(
    tmp_path: Path,
    smtp_server: Callable[..., SmtpServer],
    pg_url: str,  # noqa: F811
) -> None:
    server = smtp_server()
    write_days(tmp_path / "listings", {DAY.isoformat(): _papers(DAY)})
    config_path = write_site_config(
        tmp_path,
        server,
        top=f'database = "{pg_url}"\ntimezone = "UTC"',
        more="[run]\nqueue = true\nheartbeat_timeout = 5",
    )
    readers = [f"reader{i:02d}@example.org" for i in range(15)]
    with Store(pg_url) as store:
        for email in readers:
            store.members.add_subscriber(Subscriber(email=email, send_at="07:00", timezone="UTC"))
    upgrade_schema(pg_url)
    start = datetime.combine(DAY, datetime.min.time(), UTC)
    with Store(pg_url) as store:
        ctx = replace(make_context(load(config_path), store), sender=Refusing())  # type: ignore[arg-type]
        service = Service(lambda now: replace(ctx, now=now))
        await service.tick(start)  # placed
        waiting = asyncio.create_task(service.tick(start + timedelta(hours=8)))
        deadline = time.monotonic() + 60
        while not _queued(store):  # no worker yet: the pass waits for its batches
            assert time.monotonic() < deadline and not waiting.done()
            await asyncio.sleep(0.1)
        await service.stop(timeout=30)
        report = await waiting
        assert report is not None and report.stopped and report.sent == 0
        assert not server.messages
    worker = _digest(config_path, "-v", "worker", "--once")
    out, err = await asyncio.to_thread(worker.communicate, timeout=120)
    assert worker.returncode == 0, out + err
    assert Counter(m.rcpt_tos[0] for m in server.messages) == Counter(readers)
    with Store(pg_url) as store:
        assert store.outbox.delivery_counts() == {"sent": len(readers)}
        nexts = {s.next_send_at for s in store.members.subscribers("active")}
    assert nexts == {datetime(2026, 11, 19, 7, tzinfo=UTC)}


def _queued(store: Store) -> bool:
    from digest.store.queue_state import queued_runs

    return bool(queued_runs(store.engine))


@pytest.mark.postgres
@pytest.mark.slow
async def test_a_digest_deferred_in_a_queued_pass_goes_in_the_next_pass(
    tmp_path: Path,
    smtp_server: Callable[..., SmtpServer],
    pg_url: str,  # noqa: F811
) -> None:
    readers = [f"reader{i:02d}@example.org" for i in range(12)]
    server = smtp_server(rcpt_replies={readers[3]: "450 4.2.0 mailbox busy, try later"})
    write_days(tmp_path / "listings", {DAY.isoformat(): _papers(DAY)})
    config_path = write_site_config(
        tmp_path,
        server,
        top=f'database = "{pg_url}"\ntimezone = "UTC"',
        more="[run]\nqueue = true\nheartbeat_timeout = 5",
    )
    with Store(pg_url) as store:
        for email in readers:
            store.members.add_subscriber(Subscriber(email=email, send_at="07:00", timezone="UTC"))
    upgrade_schema(pg_url)
    start = datetime.combine(DAY, datetime.min.time(), UTC)
    worker = _digest(config_path, "-v", "worker")
    try:
        with Store(pg_url) as store:
            ctx = replace(make_context(load(config_path), store), sender=Refusing())  # type: ignore[arg-type]
            await send_due(replace(ctx, now=start))  # placed
            first = await send_due(replace(ctx, now=start + timedelta(hours=7, minutes=5)))
            assert (first.sent, first.deferred) == (len(readers) - 1, 1)
            assert store.outbox.delivery_counts() == {"sent": len(readers) - 1, "pending": 1}
            server.set_faults()
            # Nobody is due: the pass resumes the pending digest through the workers.
            second = await send_due(replace(ctx, now=start + timedelta(hours=7, minutes=35)))
            assert (second.sent, second.deferred, second.due) == (1, 0, 0)
            assert store.outbox.delivery_counts() == {"sent": len(readers)}
    finally:
        (err,) = _stop(worker)
    assert "Traceback" not in err, err
    assert Counter(m.rcpt_tos[0] for m in server.messages) == Counter(readers)
