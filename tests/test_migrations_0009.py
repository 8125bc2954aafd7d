"""Revision 0009 on a revision-0008 database with digests in it (SQLite and PostgreSQL):
nothing sent or pending is sent again, a bounce still finds its digest by Message-ID, paper
ids go on from the largest ever given, and the downgrade gives the 0008 layout back."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from digest.models import Listing, Paper
from digest.store import PlannedDelivery, Store, migrate, new_delivery_id, open_engine
from digest.store.outbox_rows import pack_ids

DAY = date(2026, 11, 20)
NOW = datetime(2026, 11, 21, 7, tzinfo=UTC)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = open_engine(db_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    migrate.upgrade(engine, "0008")
    yield engine
    engine.dispose()


def fill_0008(engine: Engine) -> dict[str, int]:
    """Papers numbered by revision 0008's trigger or sequence, the newest (``p4``) pruned; a
    subscriber with a sent, a pending and a failed digest. ``p3`` was first seen after the
    sent digest carrying it was recorded (a paper merged into a newer row). Returns the ids."""
    with engine.begin() as conn:
        for n in range(1, 5):
            seen = "2026-11-20 06:00:00" if n != 3 else "2026-11-25 06:00:00"
            conn.exec_driver_sql(
                "INSERT INTO papers (key, title, abstract, authors, upvotes, extra, first_seen)"
                f" VALUES ('p{n}', 'T{n}', '', '[]', 0, '{{}}', '{seen}')"
            )
            conn.exec_driver_sql(
                "INSERT INTO listing_papers (date, source, paper_key, position)"
                f" VALUES ('2026-11-20', 'hf', 'p{n}', {n})"
            )
        ids: dict[str, int] = dict(conn.exec_driver_sql("SELECT key, id FROM papers").all())
        conn.exec_driver_sql("DELETE FROM listing_papers WHERE paper_key = 'p4'")
        conn.exec_driver_sql("DELETE FROM papers WHERE key = 'p4'")
        conn.exec_driver_sql(
            "INSERT INTO subscribers (id, email, keywords, exclude, status, token, in_config,"
            " hard_bounces, created_at, updated_at) VALUES (7, 'ada@example.org', '[]', '[]',"
            " 'active', 'tok7', false, 0, '2026-11-01 00:00:00', '2026-11-01 00:00:00')"
        )
        insert = sa.text(
            "INSERT INTO deliveries (id, subscriber_id, listing_date, message_id, status,"
            " attempts, created_at, papers, shown)"
            " VALUES (:id, 7, '2026-11-20', :mid, :status, 0, '2026-11-20 07:00:00', :papers, 1)"
        ).bindparams(sa.bindparam("papers", type_=sa.LargeBinary))
        for did, status, keys in (
            ("a" * 32, "sent", ["p1", "p3"]),
            ("b" * 32, "pending", ["p2"]),
            ("c" * 32, "failed", []),
        ):
            papers = pack_ids(ids[k] for k in keys) + (
                pack_ids([ids["p4"]]) if did[0] == "a" else b""
            )
            conn.execute(
                insert, {"id": did, "mid": f"<{did}@x>", "status": status, "papers": papers}
            )
    return ids


def test_0009_upgrades_a_database_with_digests_and_sends_nothing_twice(
    engine: Engine, db_url: str
) -> None:
    ids = fill_0008(engine)
    with Store(db_url) as store:  # upgrades to head
        assert migrate.current(store.engine) == migrate.HEAD == "0009"
        assert store.outbox.delivered_keys([7], DAY) == {7: {"p1", "p2", "p3"}}
        (pending,) = store.outbox.pending()
        assert (pending.id, pending.paper_keys, pending.message_id) == (
            "b" * 32,
            ("p2",),
            f"<{'b' * 32}@x>",
        )
        ref = store.bounces.delivery_by_message_id(f"<{'a' * 32}@x>")
        assert ref is not None and (ref.id, ref.status) == ("a" * 32, "sent")
        assert store.bounces.delivery_by_message_id("<nobody@x>") is None
        for key in ("p1", "p2", "p3"):  # p3: first seen after its digest, found all the same
            plan = PlannedDelivery(7, DAY, (key,), 1, new_delivery_id(), f"<{new_delivery_id()}@x>")
            assert store.outbox.record_pending([plan], NOW) == [], key
        store.papers.save_listing(Listing(date=DAY, papers=(Paper(key="p5", title="T5"),)), NOW)
        with store.engine.connect() as conn:
            p5 = conn.exec_driver_sql("SELECT id FROM papers WHERE key = 'p5'").scalar_one()
        assert p5 > ids["p4"]  # the pruned newest paper's id is not given again
        plan = PlannedDelivery(7, DAY, ("p5",), 1, new_delivery_id(), f"<{new_delivery_id()}@x>")
        assert store.outbox.record_pending([plan], NOW) == [plan]

    assert migrate.downgrade(engine, "0008") == "0008"
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT id, status FROM deliveries WHERE substr(id, 1, 2) IN ('aa', 'bb', 'cc')"
            " ORDER BY id"
        ).all()
        assert [tuple(r) for r in rows] == [
            ("a" * 32, "sent"),
            ("b" * 32, "pending"),
            ("c" * 32, "failed"),
        ]
    with pytest.raises(IntegrityError), engine.begin() as conn:  # unique again
        conn.exec_driver_sql(
            "INSERT INTO deliveries (id, subscriber_id, listing_date, message_id, status,"
            f" attempts, created_at) VALUES ('{'d' * 32}', 7, '2026-11-20', '<{'a' * 32}@x>',"
            " 'sent', 0, '2026-11-20 07:00:00')"
        )
    assert migrate.upgrade(engine) == "0009"


def test_0009_keeps_every_digest_row_as_it_was(engine: Engine) -> None:
    fill_0008(engine)
    columns = "id, subscriber_id, listing_date, message_id, status, attempts, papers, shown"
    with engine.connect() as conn:
        before = conn.exec_driver_sql(f"SELECT {columns} FROM deliveries ORDER BY id").all()
    assert migrate.upgrade(engine) == "0009"
    with engine.connect() as conn:
        after = conn.exec_driver_sql(f"SELECT {columns} FROM deliveries ORDER BY id").all()
        names = {i["name"] for i in sa.inspect(conn).get_indexes("deliveries")}
    assert after == before
    assert {"ix_deliveries_message_id", "ix_deliveries_subscriber"} <= names
