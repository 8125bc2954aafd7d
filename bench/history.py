"""Benchmark: the sent-state over simulated months, pruned daily (issue 18).

    python bench/history.py                            # SQLite in /tmp/digest-bench-history/
    python bench/history.py --url postgresql+psycopg://postgres@127.0.0.1/test
    python bench/history.py --upgrade 1000000          # revision 0008 on 1M sent pairs

Each simulated day stores a listing of ``--papers`` papers and records a digest for every one
of ``--subscribers`` subscribers through the real outbox (``record_pending``, then
``mark_sent_many``), then prunes with ``keep_days`` (``--keep``, 14) as each run does.
Digest sizes follow a fixed distribution, not keyword matching: uniform from 1 to 32 papers
(16.5 on average; the issue's measurement of ~16.5 sent pairs per subscriber a day).
After days 30 and 60 it prints the bytes per (subscriber, paper) pair the sent-state holds
(``deliveries`` with all its indexes: SQLite's dbstat, PostgreSQL's
pg_total_relation_size, after a plain VACUUM as autovacuum would do) and the whole
database's size. ``--upgrade N`` instead builds a revision-0007 database of N
``delivery_papers`` rows (10 a digest) and times the upgrade to 0008.
"""

from __future__ import annotations

import argparse
import random
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from digest.models import Listing, Paper, Subscriber
from digest.store import PlannedDelivery, Store, metadata, migrate, new_delivery_id, open_engine
from digest.store.history import Cutoffs, History

START = datetime(2026, 1, 1, 7, tzinfo=UTC)
HOME = Path("/tmp/digest-bench-history")


def fresh(url: str | None) -> str:
    """An empty database: a new SQLite file, or the PostgreSQL one emptied."""
    if url is None:
        shutil.rmtree(HOME, ignore_errors=True)
        HOME.mkdir(parents=True)
        return f"sqlite:///{HOME / 'digest.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS delivery_papers")
        metadata.drop_all(conn)
        conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    engine.dispose()
    return url


def sizes(store: Store) -> tuple[int, int, int]:
    """(bytes of deliveries and its indexes, bytes of the database, pairs held)."""
    with store.engine.connect() as conn:
        pairs = conn.exec_driver_sql("SELECT coalesce(sum(length(papers)), 0) FROM deliveries")
        held = int(pairs.scalar_one()) // 4
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            names = conn.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE tbl_name = 'deliveries'"
            ).scalars()
            marks = ", ".join(f"'{n}'" for n in names)
            table = conn.exec_driver_sql(
                f"SELECT sum(pgsize) FROM dbstat WHERE name IN ({marks})"
            ).scalar_one()
            count = conn.exec_driver_sql("PRAGMA page_count").scalar_one()
            free = conn.exec_driver_sql("PRAGMA freelist_count").scalar_one()
            size = conn.exec_driver_sql("PRAGMA page_size").scalar_one()
            return int(table), int(count - free) * int(size), held
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM deliveries")
        table = conn.exec_driver_sql("SELECT pg_total_relation_size('deliveries')").scalar_one()
        total = conn.exec_driver_sql(
            "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relkind = 'r' AND n.nspname = current_schema()"
        ).scalar_one()
        return int(table), int(total), held


def simulate(url: str, subscribers: int, papers: int, days: int, keep: int) -> None:
    rng = random.Random(18)
    with Store(url) as store:
        ids = [
            store.members.add_subscriber(Subscriber(email=f"r{i}@example.org")).id
            for i in range(subscribers)
        ]
        for n in range(1, days + 1):
            now = START + timedelta(days=n)
            day = now.date()
            keys = [f"{day:%y%m}.{n:02d}{i:03d}" for i in range(papers)]
            listing = Listing(date=day, papers=tuple(Paper(key=k, title=k) for k in keys))
            store.papers.save_listing(listing, now)
            t0 = time.perf_counter()
            plans = []
            for sid in ids:
                sample = tuple(rng.sample(keys, rng.randint(1, 32)))
                message_id = f"<{new_delivery_id()}@example.org>"
                assert sid is not None
                plans.append(
                    PlannedDelivery(
                        sid, day, sample, min(10, len(sample)), new_delivery_id(), message_id
                    )
                )
            recorded = store.outbox.record_pending(plans, now)
            store.outbox.mark_sent_many([p.id for p in recorded], now)
            recording = time.perf_counter() - t0
            t0 = time.perf_counter()
            pruned = History(store.engine).prune(Cutoffs.at(now, keep, 365))
            pruning = time.perf_counter() - t0
            if n in (1, 15, 30, 45, 60) or n == days:
                table, total, held = sizes(store)
                print(
                    f"day {n:3d}: {held:,} pairs held, deliveries {table / held:.1f} bytes a"
                    f" pair ({table / 2**20:.1f} MiB), database {total / 2**20:.1f} MiB;"
                    f" recorded+sent {recording:.1f} s, pruned {pruned.deliveries:,}"
                    f" digests in {pruning:.2f} s",
                    flush=True,
                )


def upgrade(url: str, pairs: int) -> None:
    """A revision-0007 database of ``pairs`` sent pairs, then timed up to 0008."""
    engine = open_engine(url)
    migrate.upgrade(engine, "0007")
    n_papers, per = 20_000, 10
    when = "2026-11-20 07:00:00"
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO papers (key, title, abstract, authors, upvotes, extra, first_seen)"
            f" SELECT 'k' || x, 't', '', '[]', 0, '{{}}', '{when}' FROM ("
            + _series(n_papers)
            + ") s"
        )
        conn.exec_driver_sql(
            "INSERT INTO subscribers (id, email, keywords, exclude, status, token, in_config,"
            " hard_bounces, created_at, updated_at) SELECT x, 'r' || x || '@x.org', '[]', '[]',"
            f" 'active', 't' || x, false, 0, '{when}', '{when}' FROM (" + _series(10_000) + ") s"
        )
        digests = pairs // per
        conn.exec_driver_sql(
            "INSERT INTO deliveries (id, subscriber_id, listing_date, message_id, status,"
            " attempts, created_at) SELECT 'd' || CAST(x AS TEXT), x % 10000 + 1,"
            f" '2026-11-20', '<' || x || '@x.org>', 'sent', 1, '{when}' FROM ("
            + _series(digests)
            + ") s"
        )
        conn.exec_driver_sql(
            "INSERT INTO delivery_papers (delivery_id, subscriber_id, paper_key, position,"
            " shown) SELECT 'd' || CAST(d AS TEXT), d % 10000 + 1,"
            f" 'k' || (((d / 10000) * {per} + p) % {n_papers} + 1), p, p < 5 FROM"
            f" (SELECT x AS d FROM ({_series(digests)}) a) ds"
            f" CROSS JOIN (SELECT x - 1 AS p FROM ({_series(per)}) b) ps"
        )
    t0 = time.perf_counter()
    migrate.upgrade(engine)
    print(
        f"revision 0008 on {pairs:,} sent pairs ({pairs // per:,} digests): "
        f"{time.perf_counter() - t0:.1f} s"
    )


def _series(n: int) -> str:
    """Rows x = 1..n, in SQL both databases read."""
    return (
        f"WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r WHERE x < {n})"
        " SELECT x FROM r"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a PostgreSQL URL (default: a SQLite file)")
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--papers", type=int, default=100)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--keep", type=int, default=14)
    parser.add_argument("--upgrade", type=int, metavar="PAIRS")
    args = parser.parse_args()
    url = fresh(args.url)
    if args.upgrade:
        upgrade(url, args.upgrade)
    else:
        simulate(url, args.subscribers, args.papers, args.days, args.keep)


if __name__ == "__main__":
    main()
