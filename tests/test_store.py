"""The store on a real SQLite file and on PostgreSQL: listings, subscribers, reservations."""

from __future__ import annotations

import ast
import os
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

import digest.store
from digest.errors import StateError
from digest.models import Listing, Paper, Subscriber
from digest.store import INSERT_ROWS, PlannedDelivery, Store, new_delivery_id, schema

D1 = date(2026, 3, 2)
D2 = date(2026, 3, 3)
NOW = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)


def paper(key: str, title: str = "", **kw: object) -> Paper:
    return Paper(key=key, arxiv_id=key, title=title or f"Paper {key}", **kw)  # type: ignore[arg-type]


def test_listing_round_trip_keeps_order_and_fields(store: Store) -> None:
    p = Paper(
        key="2603.00001",
        arxiv_id="2603.00001",
        title="Zoë’s <b>naïve</b> model",
        abstract="Long " * 500,
        authors=("Zoë Müller", "李伟"),
        upvotes=7,
        published=datetime(2026, 3, 1, 12, tzinfo=UTC),
        github_repo="https://github.com/x/y",
        ai_keywords=("a", "b"),
    )
    store.papers.save_listing(Listing(date=D1, papers=(p, paper("2603.00002")), source="test"), NOW)
    got = store.papers.listing(D1)
    assert got is not None
    assert [x.key for x in got.papers] == ["2603.00001", "2603.00002"]
    assert got.papers[0] == replace(p, sources=("test",))  # stored with the source's name
    assert store.papers.listing(D2) is None


def test_refetching_a_day_extends_it(store: Store) -> None:
    store.papers.save_listing(Listing(date=D1, papers=(paper("1111.00001"),)), NOW)
    store.papers.save_listing(
        Listing(date=D1, papers=(paper("1111.00002"), paper("1111.00001", upvotes=9))), NOW
    )
    got = store.papers.listing(D1)
    assert got is not None
    assert [p.key for p in got.papers] == ["1111.00001", "1111.00002"]
    assert got.papers[0].upvotes == 9
    assert store.papers.recent_dates(5) == [D1]


def test_config_sync_adds_updates_and_deactivates(store: Store) -> None:
    a = Subscriber(email="a@example.org", keywords=("llm",))
    b = Subscriber(email="b@example.org")
    assert store.members.sync_config_subscribers([a, b]) == (2, 0, 0)
    assert store.members.sync_config_subscribers([a, b]) == (0, 0, 0)
    token = store.members.subscriber("a@example.org").token  # type: ignore[union-attr]
    a2 = Subscriber(email="a@example.org", keywords=("diffusion",))
    assert store.members.sync_config_subscribers([a2]) == (0, 1, 1)
    got = store.members.subscriber("a@example.org")
    assert got is not None and got.keywords == ("diffusion",) and got.token == token
    assert store.members.subscriber("b@example.org").status == "unsubscribed"  # type: ignore[union-attr]
    store.members.sync_config_subscribers([a2, b])
    assert store.members.subscriber("b@example.org").status == "active"  # type: ignore[union-attr]


def test_config_sync_leaves_other_subscribers_alone_and_adopts_listed_ones(store: Store) -> None:
    web = store.members.add_subscriber(Subscriber(email="web@example.org", keywords=("robots",)))
    both = store.members.add_subscriber(Subscriber(email="both@example.org"))
    listed = [Subscriber(email="both@example.org", keywords=("llm",))]
    assert store.members.sync_config_subscribers(listed) == (0, 1, 0)
    assert store.members.subscriber("web@example.org") == web
    adopted = store.members.subscriber("both@example.org")
    assert adopted is not None and adopted.keywords == ("llm",) and adopted.id == both.id
    assert store.members.sync_config_subscribers([]) == (0, 0, 1)  # listed no more: deactivated
    assert store.members.subscriber("web@example.org") == web
    many = [Subscriber(email=f"c{i}@example.org") for i in range(600)]  # past the IN list
    assert store.members.sync_config_subscribers(many) == (600, 0, 0)
    assert store.members.sync_config_subscribers(many[:100]) == (0, 0, 500)


def test_unsubscribed_config_subscriber_stays_unsubscribed(store: Store) -> None:
    a = Subscriber(email="a@example.org")
    store.members.sync_config_subscribers([a])
    assert store.members.remove_subscriber("a@example.org")
    store.members.sync_config_subscribers([a])
    assert store.members.subscriber("a@example.org").status == "unsubscribed"  # type: ignore[union-attr]


def test_a_paper_is_reserved_once_per_subscriber(store: Store) -> None:
    store.papers.save_listing(
        Listing(date=D1, papers=(paper("1111.00001"), paper("1111.00002"))), NOW
    )
    store.papers.save_listing(
        Listing(date=D2, papers=(paper("1111.00002"), paper("1111.00003"))), NOW
    )
    sub = store.members.add_subscriber(Subscriber(email="a@example.org"))
    assert sub.id is not None
    plan = PlannedDelivery(sub.id, D1, ("1111.00001", "1111.00002"), 2, new_delivery_id(), "<m1@x>")
    assert store.outbox.record_pending([plan], NOW) == [plan]
    assert store.outbox.delivered_keys([sub.id], D2) == {sub.id: {"1111.00002"}}
    again = PlannedDelivery(
        sub.id, D2, ("1111.00002", "1111.00003"), 2, new_delivery_id(), "<m2@x>"
    )
    assert store.outbox.record_pending([again], NOW) == []
    (pending,) = store.outbox.pending()
    assert pending.paper_keys == ("1111.00001", "1111.00002")
    store.outbox.mark_sent(pending.id)
    assert store.outbox.pending() == []
    assert store.outbox.sent_count(sub.id) == 2


def test_many_digests_recorded_and_marked_in_multi_row_statements(store: Store) -> None:
    """More rows than one statement takes (INSERT_ROWS), a chunk that collides with an
    earlier reservation (redone plan by plan), and more ids than one mark statement."""
    keys = [f"2611.{i:05d}" for i in range(1, 181)]
    store.papers.save_listing(Listing(date=D1, papers=tuple(paper(k) for k in keys)), NOW)
    subs = [store.members.add_subscriber(Subscriber(email=f"r{i}@example.org")) for i in range(9)]
    ids = [s.id for s in subs if s.id is not None]
    plans = [PlannedDelivery(i, D1, tuple(keys), 30, new_delivery_id(), f"<m{i}@x>") for i in ids]
    assert len(ids) * len(keys) > 2 * INSERT_ROWS
    assert store.outbox.record_pending(plans[:2], NOW) == plans[:2]
    clash = PlannedDelivery(ids[0], D1, (keys[0],), 1, new_delivery_id(), "<clash@x>")
    assert store.outbox.record_pending([clash, *plans[2:]], NOW, claimed_by=None) == plans[2:]
    pending = store.outbox.pending()
    assert sorted(p.id for p in pending) == sorted(p.id for p in plans)
    assert all(p.paper_keys == tuple(keys) for p in pending)
    store.outbox.mark_sent_many([p.id for p in plans[:7]])
    assert sorted(p.id for p in store.outbox.pending()) == sorted(p.id for p in plans[7:])
    assert [store.outbox.sent_count(i) for i in ids] == [180] * 7 + [0] * 2
    many = [new_delivery_id() for _ in range(INSERT_ROWS + 3)]  # unknown ids: no effect
    store.outbox.mark_sent_many([*many, plans[7].id])
    assert [p.id for p in store.outbox.pending()] == [plans[8].id]


def test_permanent_failure_releases_papers(store: Store) -> None:
    store.papers.save_listing(Listing(date=D1, papers=(paper("1111.00001"),)), NOW)
    sub = store.members.add_subscriber(Subscriber(email="a@example.org"))
    assert sub.id is not None
    plan = PlannedDelivery(sub.id, D1, ("1111.00001",), 1, new_delivery_id(), "<m1@x>")
    store.outbox.record_pending([plan], NOW)
    store.outbox.mark_deferred(plan.id, "451 try later")
    assert [p.attempts for p in store.outbox.pending()] == [1]
    store.outbox.mark_failed(plan.id, "550 no such user")
    assert store.outbox.pending() == []
    assert store.outbox.delivered_keys([sub.id], D1) == {sub.id: set()}
    (record,) = store.outbox.history(sub.id)
    assert record.status == "failed" and record.error == "550 no such user"


def test_secret_is_stable(store: Store) -> None:
    assert store.run_log.secret() == store.run_log.secret()
    assert len(store.run_log.secret()) >= 32


def test_unwritable_database_is_a_state_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(StateError):
        Store(f"sqlite:///{tmp_path / 'missing-dir' / 'x.db'}")


def test_delivery_ids_are_unique_time_ordered_and_new_in_each_process() -> None:
    ids = [new_delivery_id() for _ in range(50_000)]
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    assert len(set(ids)) == len(ids)
    assert [i[:14] for i in ids] == sorted(i[:14] for i in ids)  # microseconds first
    # A forked process must not repeat its parent's random bits.
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, "".join(new_delivery_id() for _ in range(100)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as fh:
        child = fh.read()
    parent = [new_delivery_id()[14:] for _ in range(100)]
    assert not {child[i + 14 : i + 32] for i in range(0, len(child), 32)} & set(parent)


#: The tables each module of the store may name: its repository's own, and the reads (and
#: the bounce count a delivery's outcome changes) that the package docstring explains.
TABLES_NAMED = {
    "papers": {"papers", "listings", "listing_papers"},
    "paper_rows": {"papers", "paper_aliases"},
    "source_state": {"source_state"},
    "members": {"subscribers"},
    "subscriber_rows": {"subscribers"},
    "outbox": {"deliveries", "listing_papers", "papers", "subscribers", "runs"},
    "outbox_rows": {"deliveries", "papers"},
    "runs": {"runs", "meta"},
    "limits": {"rate_events"},
}


@pytest.mark.parametrize("module", sorted(TABLES_NAMED))
def test_a_repository_names_only_its_own_tables_and_the_documented_reads(module: str) -> None:
    source = Path(digest.store.__file__).with_name(f"{module}.py").read_text()
    named = {
        alias.name
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ImportFrom) and node.module == "digest.store.schema"
        for alias in node.names
    }
    assert named & set(schema.metadata.tables) <= TABLES_NAMED[module]
