"""Benchmark: revision 0006 on a big database, then storing a 2,000-paper arXiv day.

    python bench/upgrade_0006.py                       # SQLite in /tmp/digest-bench-0006/
    python bench/upgrade_0006.py --papers 20000 --deliveries 100000    # a quick look
    python bench/upgrade_0006.py --url postgresql+psycopg://postgres@127.0.0.1/test

Builds a database at revision 0005 holding ``--papers`` papers (one in ten without an arXiv
id, under the old ``title:`` key), listings of 1,000 papers a date, 1,000 subscribers and
``--deliveries`` deliveries with as many delivery_papers rows; times ``digest db upgrade``'s
step to 0006 (the listings copied with their source, every paper's identities written to
``paper_aliases``); then times ``Papers.save_listing`` of a 2,000-paper arXiv day (new
papers, then the same day again as a second source) and prints the bytes each stored paper
took (SQLite: pages used before and after).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from digest.identity import key_of
from digest.models import Listing, Paper
from digest.store import migrate, open_engine
from digest.store.papers import Papers

NOW = datetime(2026, 11, 16, 7, tzinfo=UTC)
WORDS = [
    "sparse",
    "diffusion",
    "agent",
    "graph",
    "model",
    "quantum",
    "robust",
    "attention",
    "protein",
    "retrieval",
]


def fill(engine: sa.engine.Engine, n_papers: int, n_deliveries: int) -> None:
    """The 0005 tables, filled in batches of 10,000 rows."""
    rng = random.Random(6)
    meta = sa.MetaData()
    meta.reflect(engine)
    t = meta.tables
    keys: list[str] = []
    with engine.begin() as conn:
        batch = []
        for i in range(n_papers):
            title = " ".join(rng.choices(WORDS, k=8)) + f" {i}"
            key = f"title:{title}" if i % 10 == 0 else f"24{i // 100000:02d}.{i % 100000:05d}"
            keys.append(key)
            batch.append(
                {
                    "key": key,
                    "arxiv_id": None if key.startswith("title:") else key,
                    "title": title,
                    "abstract": "We study " + " ".join(rng.choices(WORDS, k=150)),
                    "authors": json.dumps(["Ada Okafor", "Bo Li"]),
                    "upvotes": rng.randrange(50),
                    "published": NOW,
                    "extra": "{}",
                    "first_seen": NOW,
                }
            )
            if len(batch) == 10_000:
                conn.execute(sa.insert(t["papers"]), batch)
                batch = []
        if batch:
            conn.execute(sa.insert(t["papers"]), batch)
        days = [date(2026, 1, 1) + timedelta(days=d) for d in range(n_papers // 1000 + 1)]
        conn.execute(
            sa.insert(t["listings"]),
            [
                {"date": d, "source": "https://hf.example/api", "fetched_at": NOW, "count": 1000}
                for d in days
            ],
        )
        rows = [
            {"date": days[i // 1000], "paper_key": k, "position": i % 1000}
            for i, k in enumerate(keys)
        ]
        for start in range(0, len(rows), 10_000):
            conn.execute(sa.insert(t["listing_papers"]), rows[start : start + 10_000])
        conn.execute(
            sa.insert(t["subscribers"]),
            [
                {
                    "id": s,
                    "email": f"s{s}@example.org",
                    "keywords": "[]",
                    "exclude": "[]",
                    "status": "active",
                    "token": f"{s:020d}",
                    "in_config": False,
                    "hard_bounces": 0,
                    "created_at": NOW,
                    "updated_at": NOW,
                }
                for s in range(1, 1001)
            ],
        )
        for start in range(0, n_deliveries, 10_000):
            ids = range(start, min(start + 10_000, n_deliveries))
            conn.execute(
                sa.insert(t["deliveries"]),
                [
                    {
                        "id": f"{i:032d}",
                        "subscriber_id": i % 1000 + 1,
                        "listing_date": days[i % len(days)],
                        "message_id": f"<{i}@example.org>",
                        "status": "sent",
                        "attempts": 1,
                        "created_at": NOW,
                    }
                    for i in ids
                ],
            )
            conn.execute(
                sa.insert(t["delivery_papers"]),
                [
                    {
                        "delivery_id": f"{i:032d}",
                        "subscriber_id": i % 1000 + 1,
                        "paper_key": keys[(i // 1000) % len(keys)],
                        "position": 0,
                        "shown": True,
                    }
                    for i in ids
                ],
            )


def arxiv_day(n: int) -> tuple[Paper, ...]:
    rng = random.Random(2000)
    papers = []
    for i in range(n):
        arxiv_id = f"2611.{i:05d}"
        title = " ".join(rng.choices(WORDS, k=9)).capitalize() + f" {i}"
        papers.append(
            Paper(
                key=key_of(arxiv_id=arxiv_id, title=title),
                title=title,
                abstract="We study " + " ".join(rng.choices(WORDS, k=180)),
                authors=("Okafor, Ada", "Li, Bo", "Müller, Zoë"),
                arxiv_id=arxiv_id,
                categories=("cs.LG", "cs.CL", "stat.ML"),
                version=1,
                link=f"https://arxiv.org/abs/{arxiv_id}v1",
            )
        )
    return tuple(papers)


def pages(engine: sa.engine.Engine) -> int | None:
    if engine.dialect.name != "sqlite":
        return None
    with engine.connect() as conn:
        count = conn.exec_driver_sql("PRAGMA page_count").scalar_one()
        free = conn.exec_driver_sql("PRAGMA freelist_count").scalar_one()
        size = conn.exec_driver_sql("PRAGMA page_size").scalar_one()
    return int((count - free) * size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--papers", type=int, default=100_000)
    parser.add_argument("--deliveries", type=int, default=1_000_000)
    parser.add_argument("--url", help="a database to use (its tables are dropped first)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/digest-bench-0006"))
    args = parser.parse_args()
    url = args.url
    if url is None:
        shutil.rmtree(args.work, ignore_errors=True)
        args.work.mkdir(parents=True)
        url = f"sqlite:///{args.work / 'digest.db'}"
    engine = open_engine(url)
    if args.url:
        with engine.begin() as conn:
            meta = sa.MetaData()
            meta.reflect(conn)
            meta.drop_all(conn)
    migrate.upgrade(engine, "0005")
    start = time.perf_counter()
    fill(engine, args.papers, args.deliveries)
    print(
        f"filled {args.papers:,} papers, {args.deliveries:,} deliveries"
        f" in {time.perf_counter() - start:.1f} s"
    )
    start = time.perf_counter()
    migrate.upgrade(engine, "0006")
    print(f"upgrade 0005 -> 0006: {time.perf_counter() - start:.1f} s")
    migrate.upgrade(engine)
    store = Papers(engine)
    day = arxiv_day(2000)
    before = pages(engine)
    start = time.perf_counter()
    store.save_listing(Listing(date(2026, 11, 16), day, "arxiv-cs"), NOW)
    first = time.perf_counter() - start
    after = pages(engine)
    start = time.perf_counter()
    store.save_listing(Listing(date(2026, 11, 16), day, "arxiv-ml"), NOW)
    second = time.perf_counter() - start
    print(
        f"save_listing, 2,000 new arXiv papers: {first:.2f} s;"
        f" the same papers from a second source: {second:.2f} s"
    )
    if before is not None and after is not None:
        print(
            f"stored bytes per paper (row, aliases, listing row, indexes): "
            f"{(after - before) / 2000:,.0f}"
        )
    engine.dispose()


if __name__ == "__main__":
    main()
