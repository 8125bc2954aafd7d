"""Benchmark: the sent-state over simulated months, pruned daily (issue 18).

    python bench/history.py                            # SQLite in /tmp/digest-bench-history/
    python bench/history.py --url postgresql+psycopg://postgres@127.0.0.1/test
    python bench/history.py --upgrade 1000000          # revisions 0008, 0009 on 1M sent pairs

Each simulated day stores a listing of ``--papers`` papers and records a digest for every one
of ``--subscribers`` subscribers through the real outbox (``record_pending``, then
``mark_sent_many``), then prunes with ``keep_days`` (``--keep``, 14) as each run does.
Digest sizes follow a fixed distribution, not keyword matching: uniform from 1 to 32 papers
(16.5 on average; the issue's measurement of ~16.5 sent pairs per subscriber a day).
After days 30 and 60 it prints the bytes per (subscriber, paper) pair the sent-state holds
(``deliveries`` with all its indexes: SQLite's dbstat, PostgreSQL's
pg_total_relation_size, with a plain VACUUM after each day's prune as autovacuum would
do: each digest's row is written twice, recorded then marked sent) and the whole
database's size. ``--upgrade N`` instead builds a revision-0007 database of N
``delivery_papers`` rows (``--per`` a digest, ``--subscribers`` subscribers) and times the
upgrades to 0008 and to 0009, and ``delivered_keys`` of every subscriber before and after.
"""

from __future__ import annotations

import argparse
import random
import shutil
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from digest.models import Listing, Paper
from digest.store import PlannedDelivery, Store, metadata, migrate, new_delivery_id, open_engine
from digest.store.history import Cutoffs, History

START = datetime(2026, 1, 1, 7, tzinfo=UTC)
HOME = Path("/tmp/digest-bench-history")


def fresh(url: str | None, home: Path) -> str:
    """An empty database: a new SQLite file in ``home``, or the PostgreSQL one emptied."""
    if url is None:
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        return f"sqlite:///{home / 'digest.db'}"
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


def parts(store: Store) -> list[tuple[str, int]]:
    """Bytes of ``deliveries``' table and of each of its indexes, by name."""
    with store.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            rows = conn.exec_driver_sql(
                "SELECT name, sum(pgsize) FROM dbstat WHERE name IN (SELECT name FROM"
                " sqlite_master WHERE tbl_name = 'deliveries') GROUP BY name"
            ).all()
        else:
            rows = conn.exec_driver_sql(
                "SELECT 'deliveries', pg_relation_size('deliveries') UNION ALL"
                " SELECT indexrelid::regclass::text, pg_relation_size(indexrelid)"
                " FROM pg_index WHERE indrelid = 'deliveries'::regclass"
            ).all()
    return [(str(name), int(size)) for name, size in rows]


def simulate(url: str, subscribers: int, papers: int, days: int, keep: int) -> None:
    rng = random.Random(18)
    with Store(url) as store:
        when = f"{START:%Y-%m-%d %H:%M:%S}"
        with store.engine.begin() as conn:  # one statement: adding them one by one took minutes
            conn.exec_driver_sql(
                "INSERT INTO subscribers (id, email, keywords, exclude, status, token,"
                " in_config, hard_bounces, created_at, updated_at) SELECT x, 'r' || x ||"
                f" '@example.org', '[]', '[]', 'active', 't' || x, false, 0, '{when}', '{when}'"
                f" FROM ({_series(subscribers)}) s"
            )
        ids: list[int | None] = list(range(1, subscribers + 1))
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
            recording = time.perf_counter() - t0
            t0 = time.perf_counter()
            store.outbox.mark_sent_many([p.id for p in recorded], now)
            marking = time.perf_counter() - t0
            t0 = time.perf_counter()
            pruned = History(store.engine).prune(Cutoffs.at(now, keep, 365))
            pruning = time.perf_counter() - t0
            if store.engine.dialect.name == "postgresql":  # as autovacuum would, daily
                with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                    conn.exec_driver_sql("VACUUM (ANALYZE) deliveries")
            if n == 1 or n % 15 == 0 or n == days:
                table, total, held = sizes(store)
                print(
                    f"day {n:3d}: {held:,} pairs held, deliveries {table / held:.1f} bytes a"
                    f" pair ({table / 2**20:.1f} MiB), database {total / 2**20:.1f} MiB;"
                    f" recorded {recording:.1f} s, marked sent {marking:.1f} s, pruned"
                    f" {pruned.deliveries:,} digests in {pruning:.2f} s",
                    flush=True,
                )
                print("   ", ", ".join(f"{k} {v / held:.1f}" for k, v in parts(store)), flush=True)


def upgrade(url: str, pairs: int, subscribers: int, per: int) -> None:
    """A revision-0007 database of ``pairs`` sent pairs (digests of ``per`` papers, all of
    one listing date, shared by ``subscribers``), timed up to 0008 and 0009; each side's
    ``delivered_keys`` of that date for every subscriber timed too (revision 0007's query is
    the old code's, copied here); then 0009 timed on its own."""
    engine = open_engine(url)
    migrate.upgrade(engine, "0007")
    digests = pairs // per
    build_0007(engine, subscribers, digests, per)
    every = list(range(1, subscribers + 1))
    t0 = time.perf_counter()
    before = old_delivered_keys(engine, every, date(2026, 11, 20))
    looked = time.perf_counter() - t0
    print(f"revision 0007: delivered_keys of {subscribers:,} subscribers: {looked:.1f} s")
    for revision in ("0008", "0009"):
        t0 = time.perf_counter()
        migrate.upgrade(engine, revision)
        print(
            f"revision {revision} on {pairs:,} sent pairs ({digests:,} digests): "
            f"{time.perf_counter() - t0:.1f} s",
            flush=True,
        )
    assert migrate.current(engine) == migrate.HEAD
    with Store(url) as store:
        t0 = time.perf_counter()
        after = store.outbox.delivered_keys(every, date(2026, 11, 20))
        looked = time.perf_counter() - t0
    print(f"revision {migrate.HEAD}: delivered_keys of {subscribers:,} subscribers: {looked:.1f} s")
    assert after == before, "the upgrade changed what was delivered"


def build_0007(engine: sa.engine.Engine, subscribers: int, digests: int, per: int) -> None:
    """Digest ``d`` goes to subscriber ``d mod subscribers`` + 1 and carries papers
    ``(d div subscribers) * per + 1..per``: no subscriber has a paper twice."""
    n_papers = (digests // subscribers + 1) * per
    when = "2026-11-20 07:00:00"
    sub = f"d - (d / {subscribers}) * {subscribers} + 1"
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO papers (key, title, abstract, authors, upvotes, extra, first_seen)"
            f" SELECT 'k' || x, 't', '', '[]', 0, '{{}}', '{when}' FROM ({_series(n_papers)}) s"
        )
        conn.exec_driver_sql(
            "INSERT INTO listings (date, source, fetched_at, count)"
            f" VALUES ('2026-11-20', 'hf', '{when}', {n_papers})"
        )
        conn.exec_driver_sql(
            "INSERT INTO listing_papers (date, source, paper_key, position)"
            f" SELECT '2026-11-20', 'hf', 'k' || x, x FROM ({_series(n_papers)}) s"
        )
        conn.exec_driver_sql(
            "INSERT INTO subscribers (id, email, keywords, exclude, status, token, in_config,"
            " hard_bounces, created_at, updated_at) SELECT x, 'r' || x || '@x.org', '[]', '[]',"
            f" 'active', 't' || x, false, 0, '{when}', '{when}' FROM ({_series(subscribers)}) s"
        )
        conn.exec_driver_sql(
            "INSERT INTO deliveries (id, subscriber_id, listing_date, message_id, status,"
            f" attempts, created_at) SELECT 'd' || CAST(d AS TEXT), {sub}, '2026-11-20',"
            f" '<' || d || '@x.org>', 'sent', 1, '{when}'"
            f" FROM (SELECT x AS d FROM ({_series(digests)}) a) s"
        )
        conn.exec_driver_sql(
            "INSERT INTO delivery_papers (delivery_id, subscriber_id, paper_key, position,"
            f" shown) SELECT 'd' || CAST(d AS TEXT), {sub},"
            f" 'k' || ((d / {subscribers}) * {per} + p + 1), p, p < 5 FROM"
            f" (SELECT x AS d FROM ({_series(digests)}) a) ds"
            f" CROSS JOIN (SELECT x - 1 AS p FROM ({_series(per)}) b) ps"
        )


def old_delivered_keys(engine: sa.engine.Engine, ids: list[int], day: date) -> dict[int, set[str]]:
    """``Outbox.delivered_keys`` as revision 0007's code read it (delivery_papers)."""
    t = sa.MetaData()
    t.reflect(engine, only=["delivery_papers", "listing_papers"])
    dp, lp = t.tables["delivery_papers"], t.tables["listing_papers"]
    found: dict[int, set[str]] = {i: set() for i in ids}
    with engine.connect() as conn:
        for start in range(0, len(ids), 900):
            chunk = ids[start : start + 900]
            rows = conn.execute(
                sa.select(dp.c.subscriber_id, dp.c.paper_key)
                .join(lp, lp.c.paper_key == dp.c.paper_key)
                .where(lp.c.date.in_([day]), dp.c.subscriber_id.in_(chunk))
                .distinct()
            )
            for sid, key in rows:
                found[sid].add(key)
    return found


def _series(n: int) -> str:
    """Rows x = 1..n, in SQL both databases read."""
    return (
        f"WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r WHERE x < {n})"
        " SELECT x FROM r"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a PostgreSQL URL (default: a SQLite file)")
    parser.add_argument("--dir", type=Path, default=HOME, help="the SQLite file's folder")
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--papers", type=int, default=100)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--keep", type=int, default=14)
    parser.add_argument("--upgrade", type=int, metavar="PAIRS")
    parser.add_argument("--per", type=int, default=10, help="papers a digest (--upgrade)")
    args = parser.parse_args()
    url = fresh(args.url, args.dir)
    if args.upgrade:
        upgrade(url, args.upgrade, args.subscribers, args.per)
    else:
        simulate(url, args.subscribers, args.papers, args.days, args.keep)


if __name__ == "__main__":
    main()
