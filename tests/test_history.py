"""Bounded history on a real SQLite file and on PostgreSQL: what pruning removes and keeps,
the dry run, a paper sent again after keep_days, and revision 0008's upgrade of old rows."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa

from digest.models import Listing, Paper, Subscriber
from digest.store import PlannedDelivery, Store, migrate, new_delivery_id, open_engine, schema
from digest.store.history import Cutoffs, History, Pruned, prune_after_run

NOW = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=400)  # past archive_days (365)
SENT_LONG_AGO = NOW - timedelta(days=200)  # past keep_days (120), inside archive_days
RECENT = NOW - timedelta(days=10)
CUT = Cutoffs.at(NOW, 120, 365)


def paper(key: str, title: str = "") -> Paper:
    return Paper(key=key, arxiv_id=key, title=title or f"Naïve <b>model</b> {key}")


def listed(store: Store, when: datetime, *keys: str) -> date:
    day = when.date()
    store.papers.save_listing(Listing(date=day, papers=tuple(paper(k) for k in keys)), when)
    return day


def subscriber(store: Store, email: str) -> int:
    sub = store.members.add_subscriber(Subscriber(email=email))
    assert sub.id is not None
    return sub.id


def digest(
    store: Store, sid: int, day: date, keys: tuple[str, ...], when: datetime, status: str
) -> str:
    """A digest recorded at ``when`` and left in ``status`` (sent at ``when`` too)."""
    plan = PlannedDelivery(sid, day, keys, len(keys), new_delivery_id(), f"<{new_delivery_id()}@x>")
    assert store.outbox.record_pending([plan], when) == [plan]
    if status == "sent":
        store.outbox.mark_sent(plan.id, when)
    elif status == "sending":
        run = store.run_log.start_run(day, when, "host", 1)
        assert store.outbox.claim(plan.id, run, when)
    elif status == "failed":
        store.outbox.mark_failed(plan.id, "550 no such user")
    return plan.id


def statuses(store: Store) -> dict[str, str]:
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(schema.deliveries.c.id, schema.deliveries.c.status))
        return dict(rows.all())


def paper_keys(store: Store) -> set[str]:
    with store.engine.connect() as conn:
        return set(conn.execute(sa.select(schema.papers.c.key)).scalars())


def aliases(store: Store) -> set[str]:
    with store.engine.connect() as conn:
        return set(conn.execute(sa.select(schema.paper_aliases.c.paper_key)).scalars())


def test_old_sent_digests_go_and_digests_to_send_stay(store: Store) -> None:
    day = listed(store, SENT_LONG_AGO, "2606.00001", "2606.00002", "2606.00003", "2606.00004")
    ada, bob = subscriber(store, "ada@example.org"), subscriber(store, "bob@example.org")
    old_sent = digest(store, ada, day, ("2606.00001",), SENT_LONG_AGO, "sent")
    old_failed = digest(store, bob, day, ("2606.00001",), SENT_LONG_AGO, "failed")
    old_pending = digest(store, ada, day, ("2606.00002",), SENT_LONG_AGO, "pending")
    old_sending = digest(store, bob, day, ("2606.00003",), SENT_LONG_AGO, "sending")
    recent_sent = digest(store, bob, day, ("2606.00004",), RECENT, "sent")

    pruned = History(store.engine).prune(CUT, batch=1)  # one row a transaction
    assert pruned == Pruned(deliveries=2)
    assert set(statuses(store)) == {old_pending, old_sending, recent_sent}
    assert old_sent not in statuses(store) and old_failed not in statuses(store)
    # what is kept still counts as delivered; the pruned digest's paper does not
    held = store.outbox.delivered_keys([ada, bob], day)
    assert held == {ada: {"2606.00002"}, bob: {"2606.00003", "2606.00004"}}
    assert History(store.engine).prune(CUT) == Pruned()  # nothing left to do


def test_a_paper_pruned_past_keep_days_may_be_sent_again(store: Store) -> None:
    """The documented price of a bounded history (README, [history] keep_days)."""
    first = listed(store, SENT_LONG_AGO, "2606.00010")
    ada = subscriber(store, "ada@example.org")
    digest(store, ada, first, ("2606.00010",), SENT_LONG_AGO, "sent")
    again = listed(store, NOW, "2606.00010")  # listed again today (a new version, say)
    assert store.outbox.delivered_keys([ada], again) == {ada: {"2606.00010"}}
    History(store.engine).prune(CUT)
    assert store.outbox.delivered_keys([ada], again) == {ada: set()}
    plan = PlannedDelivery(ada, again, ("2606.00010",), 1, new_delivery_id(), "<again@x>")
    assert store.outbox.record_pending([plan], NOW) == [plan]


def test_old_papers_and_listings_go_with_their_aliases_but_needed_ones_stay(
    store: Store,
) -> None:
    old_day = listed(
        store, OLD, "2501.00001", "2501.00002", "2501.00003", "2501.00004", "2501.00005"
    )
    listed(store, RECENT, "2501.00004")  # listed again lately: kept
    ada = subscriber(store, "ada@example.org")
    digest(store, ada, old_day, ("2501.00001",), OLD, "sent")
    pending = digest(store, ada, old_day, ("2501.00002",), OLD, "pending")
    with store.engine.begin() as conn:  # liked: the ranker reads its text
        conn.execute(
            sa.insert(schema.likes).values(
                subscriber_id=ada, paper_key="2501.00003", kind="like", origin="cli", created_at=OLD
            )
        )
    assert "2501.00005" in aliases(store)

    history = History(store.engine)
    would = history.prune(CUT, dry_run=True)
    assert paper_keys(store) >= {f"2501.0000{i}" for i in range(1, 6)}  # nothing changed
    assert store.papers.listing(old_day) is not None
    done = history.prune(CUT, batch=2)
    assert done == would
    assert (done.deliveries, done.listings, done.papers) == (1, 1, 2)
    assert done.listing_papers == 5 and done.paper_aliases >= 2
    assert paper_keys(store) == {"2501.00002", "2501.00003", "2501.00004"}
    assert "2501.00005" not in aliases(store) and "2501.00004" in aliases(store)
    assert store.papers.listing(old_day) is None
    assert store.papers.listing(RECENT.date()) is not None
    (still,) = store.outbox.pending()
    assert (still.id, still.paper_keys) == (pending, ("2501.00002",))


def test_pruning_after_a_run_is_a_warning_when_the_database_fails(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    ada = subscriber(store, "ada@example.org")
    digest(store, ada, listed(store, SENT_LONG_AGO, "2606.00020"), ("2606.00020",), OLD, "sent")
    assert prune_after_run(store.engine, 120, 365, NOW) == Pruned(deliveries=1)
    broken = open_engine("sqlite:////nonexistent-folder/digest.db")
    with caplog.at_level("WARNING", logger="digest.history"):
        assert prune_after_run(broken, 120, 365, NOW) is None
    broken.dispose()
    assert "pruning the history failed" in caplog.text
    # a scheduled pass prunes once an hour at most: this database was pruned just now
    assert prune_after_run(store.engine, 120, 365, NOW, every=3600) is None
    assert prune_after_run(store.engine, 120, 365, NOW, every=0.001) == Pruned()


# -- revision 0008 on a database of revision 0007 -------------------------------------------


def test_the_upgrade_from_0007_sends_nothing_twice(db_url: str) -> None:
    engine = open_engine(db_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    migrate.upgrade(engine, "0007")
    day = date(2026, 11, 20)
    with engine.begin() as conn:
        for n, key in enumerate(["2611.00001", "2611.00002", "2611.00003", "title:zoë"]):
            conn.exec_driver_sql(
                "INSERT INTO papers (key, title, abstract, authors, upvotes, extra, first_seen)"
                f" VALUES ('{key}', 'T{n}', '', '[]', 0, '{{}}', '2026-11-20 06:00:00')"
            )
            conn.exec_driver_sql(
                "INSERT INTO listing_papers (date, source, paper_key, position)"
                f" VALUES ('2026-11-20', 'hf', '{key}', {n})"
            )
        conn.exec_driver_sql(
            "INSERT INTO paper_aliases (alias, paper_key) VALUES ('title:old', 'title:zoë')"
        )
        conn.exec_driver_sql(
            "INSERT INTO subscribers (id, email, keywords, exclude, status, token, in_config,"
            " hard_bounces, created_at, updated_at) VALUES (7, 'ada@example.org', '[]', '[]',"
            " 'active', 'tok7', false, 0, '2026-11-01 00:00:00', '2026-11-01 00:00:00')"
        )
        rows = [  # id, status, papers (key, shown) in order
            ("a" * 32, "sent", [("2611.00001", True), ("title:old", False)]),
            ("b" * 32, "pending", [("2611.00003", True), ("2611.00002", False)]),
            ("c" * 32, "failed", []),
        ]
        for did, status, papers in rows:
            conn.exec_driver_sql(
                "INSERT INTO deliveries (id, subscriber_id, listing_date, message_id, status,"
                f" attempts, created_at) VALUES ('{did}', 7, '2026-11-20', '<{did}@x>',"
                f" '{status}', 0, '2026-11-20 07:00:00')"
            )
            for pos, (key, shown) in enumerate(papers):
                conn.exec_driver_sql(
                    "INSERT INTO delivery_papers (delivery_id, subscriber_id, paper_key,"
                    f" position, shown) VALUES ('{did}', 7, '{key}', {pos}, {shown})"
                )
    engine.dispose()
    with Store(db_url) as store:
        assert migrate.current(store.engine) == migrate.HEAD
        keys = store.outbox.delivered_keys([7], day)[7]
        assert keys == {"2611.00001", "title:zoë", "2611.00002", "2611.00003"}
        (pending,) = store.outbox.pending()
        assert (pending.id, pending.paper_keys, pending.shown) == (
            "b" * 32,
            ("2611.00003", "2611.00002"),
            1,
        )
        assert store.outbox.sent_count(7) == 2
        again = PlannedDelivery(7, day, ("2611.00002",), 1, new_delivery_id(), "<again@x>")
        assert store.outbox.record_pending([again], NOW) == []  # the pending one holds it
        store.papers.save_listing(Listing(date=day, papers=(paper("2611.00009"),)), NOW)
        new = PlannedDelivery(7, day, ("2611.00009",), 1, new_delivery_id(), "<new@x>")
        assert store.outbox.record_pending([new], NOW) == [new]  # a new paper gets a number
    engine = open_engine(db_url)
    assert migrate.downgrade(engine, "0007") == "0007"
    with engine.connect() as conn:
        back = conn.exec_driver_sql(
            "SELECT delivery_id, paper_key, position, shown FROM delivery_papers"
            " ORDER BY delivery_id, position"
        ).all()
    engine.dispose()
    assert {(d, k, p, bool(s)) for d, k, p, s in back} == {
        ("a" * 32, "2611.00001", 0, True),
        ("a" * 32, "title:zoë", 1, False),
        ("b" * 32, "2611.00003", 0, True),
        ("b" * 32, "2611.00002", 1, False),
        (new.id, "2611.00009", 0, True),
    }


# -- revision 0009: paper ids never reused, recording reads a bounded history ----------------


def paper_ids(store: Store) -> dict[str, int]:
    with store.engine.connect() as conn:
        return dict(conn.execute(sa.select(schema.papers.c.key, schema.papers.c.id)).all())


def test_pruning_the_newest_paper_does_not_let_a_new_one_take_its_id(store: Store) -> None:
    """With keep_days past archive_days, a digest kept may name a pruned paper's id: a new
    paper given that id would count as sent (on SQLite ids were max + 1 before 0009)."""
    today = listed(store, NOW, "2612.00001")
    listed(store, OLD, "2312.00002")  # the newest id, on a date past archive_days
    ada = subscriber(store, "ada@example.org")
    digest(store, ada, today, ("2312.00002",), RECENT, "sent")
    newest = paper_ids(store)["2312.00002"]
    assert newest == max(paper_ids(store).values())

    History(store.engine).prune(Cutoffs.at(NOW, 500, 365))  # the paper goes, the digest stays
    assert "2312.00002" not in paper_keys(store) and len(statuses(store)) == 1
    listed(store, NOW, "2612.00003")
    assert paper_ids(store)["2612.00003"] > newest
    plan = PlannedDelivery(ada, today, ("2612.00003",), 1, new_delivery_id(), "<new@x>")
    assert store.outbox.record_pending([plan], NOW) == [plan]  # not taken as sent


def test_recording_still_finds_a_paper_sent_long_before_it_was_listed_again(store: Store) -> None:
    """Recording reads only the digests recorded since its papers were first seen (less a
    slack): a paper first seen long ago and listed again is found in an old digest."""
    first = listed(store, SENT_LONG_AGO, "2606.00020", "2606.00021")
    ada = subscriber(store, "ada@example.org")
    digest(store, ada, first, ("2606.00020",), SENT_LONG_AGO, "sent")
    again = listed(store, NOW, "2606.00020", "2612.00022")
    old = PlannedDelivery(ada, again, ("2612.00022", "2606.00020"), 2, new_delivery_id(), "<a@x>")
    new = PlannedDelivery(ada, again, ("2612.00022",), 1, new_delivery_id(), "<b@x>")
    assert store.outbox.record_pending([old], NOW) == []
    assert store.outbox.record_pending([new], NOW) == [new]
    dup = PlannedDelivery(ada, again, ("2612.00022",), 1, new_delivery_id(), "<c@x>")
    assert store.outbox.record_pending([dup], NOW + timedelta(hours=1)) == []
