"""Recording a batch of digests in several transactions (Outbox.record_pending), on a real
SQLite file and on PostgreSQL: each paper's id and first sighting are read once per call,
and what one chunk reserved still stops a later chunk's digest that holds it."""

from __future__ import annotations

from datetime import UTC, date, datetime

import sqlalchemy as sa

from digest.models import Listing, Paper, Subscriber
from digest.store import PlannedDelivery, Store, new_delivery_id
from digest.store.outbox import RECORD_ROWS
from digest.store.schema import papers

D1 = date(2026, 3, 2)
NOW = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)


def test_a_call_of_several_chunks_numbers_and_reserves_each_paper_once(store: Store) -> None:
    stored = [f"2603.{i:05d}" for i in range(1, 181)]
    listing = tuple(Paper(key=k, arxiv_id=k, title=f"Paper {k}") for k in stored)
    store.papers.save_listing(Listing(date=D1, papers=listing), NOW)
    unstored = ("feed:never-stored-1", "feed:never-stored-2")  # numbered by a row of their key
    keys = (*stored, *unstored)
    subs = [store.members.add_subscriber(Subscriber(email=f"r{i}@example.org")) for i in range(30)]
    ids = [s.id for s in subs if s.id is not None]
    plans = [PlannedDelivery(i, D1, keys, 30, new_delivery_id(), f"<m{i}@x>") for i in ids]
    # The first reader again, last, so in a later chunk than their first digest: it holds a
    # paper that one reserved, and is dropped.
    again = PlannedDelivery(ids[0], D1, (unstored[1],), 1, new_delivery_id(), "<again@x>")
    assert len(plans) * len(keys) > RECORD_ROWS + len(keys)  # at least two chunks
    assert store.outbox.record_pending([*plans, again], NOW, claimed_by=None) == plans
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(papers.c.key).where(papers.c.key.in_(unstored))).all()
    assert sorted(key for (key,) in rows) == sorted(unstored)  # one row each
    pending = store.outbox.pending()
    assert sorted(p.id for p in pending) == sorted(p.id for p in plans)
    assert all(p.paper_keys == keys for p in pending)
    assert store.outbox.delivered_keys(ids, D1) == {i: set(stored) for i in ids}
    # A later call reads them again: still reserved, nothing recorded twice.
    late = PlannedDelivery(ids[-1], D1, (stored[0],), 1, new_delivery_id(), "<late@x>")
    assert store.outbox.record_pending([late], NOW) == []
