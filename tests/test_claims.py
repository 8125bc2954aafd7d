"""The sending claim (pending → sending → sent | failed), re-queueing what a dead run held,
the schema upgrade that brought it, two runs at once, and hard-bounce suspension.

Real SMTP server, real databases (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from digest.config import load
from digest.models import Subscriber
from digest.run import HOST, make_context, run, stale_claim
from digest.store import Claim, PlannedDelivery, Store, migrate, new_delivery_id, schema
from tests.support import site as sites
from tests.support.listings import item, write_days
from tests.support.smtpd import SmtpServer

Server = Callable[..., SmtpServer]
D1 = date(2026, 11, 16)
NOW = datetime(2026, 11, 16, 7, tzinfo=UTC)


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                          capture_output=True, text=True)  # fmt: skip
    return int(proc.stdout)


def plan(store: Store, email: str, keys: tuple[str, ...] = ("k1",)) -> str:
    sub = store.members.subscriber(email) or store.members.add_subscriber(Subscriber(email=email))
    assert sub.id is not None
    delivery = PlannedDelivery(
        subscriber_id=sub.id,
        listing_date=D1,
        paper_keys=keys,
        shown=len(keys),
        id=new_delivery_id(),
        message_id=f"<{new_delivery_id()}@example.org>",
    )
    assert store.outbox.record_pending([delivery], NOW) == [delivery]
    return delivery.id


def status_of(store: Store, delivery_id: str) -> str:
    with store.engine.connect() as conn:
        d = schema.deliveries
        return str(conn.execute(sa.select(d.c.status).where(d.c.id == delivery_id)).scalar_one())


# -- the claim ------------------------------------------------------------------------------


def test_a_pending_delivery_is_claimed_by_one_run_only(db_url: str) -> None:
    with Store(db_url) as a, Store(db_url) as b:
        delivery = plan(a, "ada@example.org")
        run_a = a.run_log.start_run(D1, NOW, HOST, os.getpid())
        run_b = b.run_log.start_run(D1, NOW, HOST, os.getpid())
        assert a.outbox.claim(delivery, run_a, NOW)
        assert not b.outbox.claim(delivery, run_b, NOW)
        assert not a.outbox.claim(delivery, run_a, NOW)  # not pending any more
        assert [p.id for p in b.outbox.pending()] == []  # a claimed delivery is not resumable
        assert status_of(a, delivery) == "sending"
        assert b.outbox.release_claims(run_b) == 0
        assert a.outbox.release_claims(run_a) == 1
        assert [p.id for p in b.outbox.pending()] == [delivery]


def claim(
    *,
    host: str | None = HOST,
    pid: int | None = 1234,
    finished: bool = False,
    age: timedelta = timedelta(minutes=1),
) -> Claim:
    return Claim("d1", 7, NOW - age, host, pid, finished)


@pytest.mark.parametrize(
    ("the_claim", "alive", "stale"),
    [
        (claim(), True, False),  # its run is alive here: hands off
        (claim(), False, True),  # its process is gone (SIGKILL): re-queue
        (claim(finished=True), True, True),  # its run ended without giving it back
        (claim(host=None, pid=None), True, True),  # no such run recorded
        (claim(host="other-host"), False, False),  # another host: cannot check, trust it
        (claim(host="other-host", age=timedelta(hours=7)), True, True),  # past the lease
        (claim(age=timedelta(hours=7)), True, True),  # pid reused since: the lease decides
    ],
)
def test_a_stale_claim_is_one_whose_run_is_gone(the_claim: Claim, alive: bool, stale: bool) -> None:
    assert stale_claim(the_claim, NOW, HOST, lambda pid: alive) is stale


def test_claims_of_dead_and_live_runs(db_url: str) -> None:
    with Store(db_url) as store:
        held_by_dead = plan(store, "ada@example.org", ("a",))
        held_by_live = plan(store, "bob@example.org", ("b",))
        dead = store.run_log.start_run(D1, NOW, HOST, dead_pid())
        live = store.run_log.start_run(D1, NOW, HOST, os.getpid())
        assert store.outbox.claim(held_by_dead, dead, NOW)
        assert store.outbox.claim(held_by_live, live, NOW)
        claims = {c.delivery_id: c for c in store.outbox.claims()}
        assert claims[held_by_dead].run_pid != os.getpid()
        from digest.run import pid_alive

        stale = [c for c in claims.values() if stale_claim(c, NOW, HOST, pid_alive)]
        assert [c.delivery_id for c in stale] == [held_by_dead]
        assert store.outbox.requeue(stale[0])
        assert not store.outbox.requeue(stale[0])  # only once
        assert [p.id for p in store.outbox.pending()] == [held_by_dead]
        assert status_of(store, held_by_live) == "sending"


# -- upgrade from schema version 1 ----------------------------------------------------------


#: The tables paper-digest 1 made, and the columns of theirs that came later: in version 2
#: or 3 (added by ALTER TABLE when a database is adopted), or by a revision since.
V1_TABLES = {
    "meta",
    "papers",
    "listings",
    "listing_papers",
    "subscribers",
    "deliveries",
    "delivery_papers",
}
LATER_COLUMNS = {**migrate.LEGACY_COLUMNS}
LATER_COLUMNS["subscribers"] += ("confirm_nonce", "abstract", "sources", "like_threshold")
LATER_COLUMNS["deliveries"] += ("papers", "shown")  # revision 0008
LATER_COLUMNS["papers"] = ("id",)  # revision 0008


def v1_delivery_papers(v1: sa.MetaData) -> sa.Table:
    """Each digest's papers, a row per paper, as versions 1 to revision 0007 kept them."""
    return sa.Table(
        "delivery_papers",
        v1,
        sa.Column("delivery_id", sa.String(32), sa.ForeignKey("deliveries.id"), nullable=False),
        sa.Column("subscriber_id", sa.Integer, nullable=False),
        sa.Column("paper_key", sa.String(512), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("shown", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("subscriber_id", "paper_key"),
    )


def make_v1_database(url: str) -> None:
    """The tables as paper-digest 1 made them: no claim columns, no hard_bounces, no runs."""
    added = {(t, c) for t, cols in LATER_COLUMNS.items() for c in cols}
    v1 = sa.MetaData()
    for table in schema.metadata.sorted_tables:
        if table.name not in V1_TABLES:
            continue
        columns = [c._copy() for c in table.columns if (table.name, c.name) not in added]
        sa.Table(table.name, v1, *columns)
    v1_delivery_papers(v1)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        v1.create_all(conn)
        conn.execute(sa.insert(v1.tables["meta"]).values(key="schema_version", value="1"))
        conn.execute(
            sa.insert(v1.tables["subscribers"]).values(
                id=1,
                email="ada@example.org",
                keywords="[]",
                exclude="[]",
                status="active",
                token="t" * 20,
                in_config=False,
                created_at=NOW,
                updated_at=NOW,
            )
        )
        conn.execute(
            sa.insert(v1.tables["deliveries"]).values(
                id="d" * 32,
                subscriber_id=1,
                listing_date=D1,
                message_id="<old@example.org>",
                status="pending",
                attempts=0,
                created_at=NOW,
            )
        )
    engine.dispose()


def test_a_version_1_database_is_upgraded_in_place(db_url: str) -> None:
    make_v1_database(db_url)
    with Store(db_url) as store:
        inspector = sa.inspect(store.engine)
        assert {"claimed_by", "claimed_at"} <= {
            c["name"] for c in inspector.get_columns("deliveries")
        }
        assert "hard_bounces" in {c["name"] for c in inspector.get_columns("subscribers")}
        assert "runs" in inspector.get_table_names()
        assert store.run_log.get_meta("schema_version") == str(migrate.LEGACY_VERSION)
        sub = store.members.subscriber("ada@example.org")
        assert sub is not None and sub.hard_bounces == 0
        [old] = store.outbox.pending()
        run_id = store.run_log.start_run(D1, NOW, HOST, os.getpid())
        assert store.outbox.claim(old.id, run_id, NOW)
        store.outbox.mark_sent(old.id)
        assert status_of(store, old.id) == "sent"
    with Store(db_url) as again:  # opening an upgraded database changes nothing
        assert again.run_log.get_meta("schema_version") == str(migrate.LEGACY_VERSION)


# -- whole runs ------------------------------------------------------------------------------


def write_config(
    tmp_path: Path, db_url: str, server: SmtpServer, n: int, extra_mail: str = ""
) -> Path:
    listings = write_days(
        tmp_path / "listings",
        {"2026-11-16": [item("2511.00001", "Diffusion one"), item("2511.00002", "Diffusion 2")]},
    )
    readers = [f"reader{i:03}@example.org" for i in range(n)]
    smtp = "max_attempts = 1\nconcurrency = 2"
    return sites.write_config(
        tmp_path, db_url, listings, server=server, mail=extra_mail, smtp=smtp, readers=readers
    )


async def test_two_runs_at_once_send_each_digest_once(
    tmp_path: Path, db_url: str, smtp_server: Server
) -> None:
    server = smtp_server()
    cfg = load(write_config(tmp_path, db_url, server, 30))
    with Store(cfg.database) as first:  # the database exists before the race
        first.members.sync_config_subscribers(cfg.subscribers)
        # Left pending by an earlier run that died after recording them: both runs resume.
        leftovers = [plan(first, f"late{i}@example.org", (f"x{i}",)) for i in range(10)]
    assert len(leftovers) == 10
    with Store(cfg.database) as a, Store(cfg.database) as b:
        reports = await asyncio.gather(
            run(make_context(cfg, a, now=NOW), D1), run(make_context(cfg, b, now=NOW), D1)
        )
    # each of the 40 leftovers and fresh digests once; the late ten also get today's digest
    assert Counter(Counter(m.message["Message-ID"] for m in server.messages).values()) == {1: 50}
    received = Counter(m.rcpt_tos[0] for m in server.messages)
    assert len(received) == 40
    assert {k for k, v in received.items() if v != 1} == {f"late{i}@example.org" for i in range(10)}
    assert set(received.values()) == {1, 2}
    assert sum(r.sent for r in reports) == 50
    assert all(r.failed == r.deferred == 0 for r in reports)
    assert all(r.sent for r in reports)  # both runs did part of the work
    with Store(cfg.database) as store:
        assert store.outbox.delivery_counts() == {"sent": 50}


async def test_a_digest_left_sending_by_a_killed_run_goes_out_once(
    tmp_path: Path, db_url: str, smtp_server: Server
) -> None:
    server = smtp_server()
    cfg = load(write_config(tmp_path, db_url, server, 0))
    with Store(cfg.database) as store:
        delivery = plan(store, "ada@example.org", ("2511.00001",))
        killed = store.run_log.start_run(D1, NOW, HOST, dead_pid())
        assert store.outbox.claim(delivery, killed, NOW)
        [held] = store.outbox.claims()
        report = await run(make_context(cfg, store, now=NOW + timedelta(minutes=5)), D1)
        # the re-queued digest (paper 1), then today's with what it left (paper 2)
        assert (report.requeued, report.resumed, report.sent) == (1, 1, 2)
        again = await run(make_context(cfg, store, now=NOW + timedelta(minutes=10)), D1)
        assert (again.requeued, again.resumed, again.sent) == (0, 0, 0)
        assert store.outbox.claims() == []
    assert [m.rcpt_tos for m in server.messages] == [("ada@example.org",)] * 2
    assert len({m.message["Message-ID"] for m in server.messages}) == 2
    assert held.delivery_id == delivery


async def test_a_claim_of_a_live_run_is_left_alone(
    tmp_path: Path, db_url: str, smtp_server: Server
) -> None:
    server = smtp_server()
    cfg = load(write_config(tmp_path, db_url, server, 0))
    with Store(cfg.database) as store:
        delivery = plan(store, "ada@example.org", ("2511.00001",))
        other = store.run_log.start_run(D1, NOW, HOST, os.getpid())  # alive: this very process
        assert store.outbox.claim(delivery, other, NOW)
        report = await run(make_context(cfg, store, now=NOW), D1)
        # not resumed; today's digest has only what the held one did not reserve (paper 2)
        assert (report.requeued, report.resumed, report.sent) == (0, 0, 1)
        assert status_of(store, delivery) == "sending"
    [message] = server.messages
    assert "2511.00002" in message.data.decode() and "2511.00001" not in message.data.decode()


# -- hard bounces ----------------------------------------------------------------------------


async def test_hard_bounces_in_a_row_suspend_a_subscriber(
    tmp_path: Path, db_url: str, smtp_server: Server
) -> None:
    server = smtp_server(rcpt_replies={"reader001@example.org": "550 5.1.1 No such user"})
    cfg = load(write_config(tmp_path, db_url, server, 2, "max_hard_bounces = 2"))
    with Store(cfg.database) as store:
        first = await run(make_context(cfg, store, now=NOW), D1)
        assert (first.sent, first.failed, first.suspended) == (1, 1, [])
        sub = store.members.subscriber("reader001@example.org")
        assert sub is not None and (sub.status, sub.hard_bounces) == ("active", 1)
        # the failure released the papers: the rerun tries again, and bounces again
        second = await run(make_context(cfg, store, now=NOW), D1)
        assert (second.sent, second.failed) == (0, 1)
        assert second.suspended == ["reader001@example.org"]
        sub = store.members.subscriber("reader001@example.org")
        assert sub is not None
        assert (sub.status, sub.status_reason, sub.hard_bounces) == ("suspended", "bounced", 2)
        third = await run(make_context(cfg, store, now=NOW), D1)  # suspended: nothing for them
        assert (third.sent, third.failed) == (0, 0)
        assert [s.email for s in store.members.subscribers("suspended")] == [
            "reader001@example.org"
        ]
    assert sum(1 for m in server.messages if "reader001@example.org" in m.rcpt_tos) == 0


def test_a_success_resets_the_hard_bounce_count(db_url: str) -> None:
    with Store(db_url) as store:
        bounced = plan(store, "ada@example.org", ("a",))
        assert not store.outbox.mark_failed(bounced, "550 no", max_hard_bounces=3)
        assert not store.outbox.mark_failed(plan(store, "ada@example.org", ("b",)), "550 no",
                                     max_hard_bounces=3)  # fmt: skip
        assert store.members.subscriber("ada@example.org").hard_bounces == 2  # type: ignore[union-attr]
        store.outbox.mark_sent(plan(store, "ada@example.org", ("c",)))
        assert store.members.subscriber("ada@example.org").hard_bounces == 0  # type: ignore[union-attr]
        for key in ("d", "e"):
            assert not store.outbox.mark_failed(
                plan(store, "ada@example.org", (key,)), "550", max_hard_bounces=3
            )
        assert store.outbox.mark_failed(
            plan(store, "ada@example.org", ("f",)), "550", max_hard_bounces=3
        )
        sub = store.members.subscriber("ada@example.org")
        assert sub is not None and sub.status == "suspended"
        store.members.add_subscriber(Subscriber(email="ada@example.org"))  # the operator reinstates
        sub = store.members.subscriber("ada@example.org")
        assert sub is not None and (sub.status, sub.hard_bounces) == ("active", 0)


def test_two_digest_processes_at_once_send_each_digest_once(
    tmp_path: Path, db_url: str, smtp_server: Server
) -> None:
    server = smtp_server()
    config = write_config(tmp_path, db_url, server, 40)
    with Store(load(config).database) as store:  # the schema exists before the race
        for i in range(10):
            plan(store, f"late{i}@example.org", (f"x{i}",))
    command = [
        sys.executable,
        "-m",
        "digest",
        "--config",
        str(config),
        "run",
        "--date",
        "2026-11-16",
    ]
    procs = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=60)[0] for p in procs]
    errors = [
        line
        for out in outputs
        for line in out.splitlines()
        if "error" in line.lower() or "unique" in line.lower()
    ]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(errors)
    assert Counter(Counter(m.message["Message-ID"] for m in server.messages).values()) == {1: 60}
    received = Counter(m.rcpt_tos[0] for m in server.messages)
    assert all(n == 1 for a, n in received.items() if a.startswith("reader"))
    assert len(received) == 50
    with Store(load(config).database) as store:
        assert store.outbox.delivery_counts() == {"sent": 60}
        assert [r.outcome for r in store.run_log.runs()] == ["ok", "ok"]
