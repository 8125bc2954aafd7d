"""Fetch and store a 2,000-paper arXiv day as a run does: the RSS feed over loopback from a
local fake of rss.arxiv.org, through :class:`SourceSet` (the source's state recorded) and
:func:`store_listing` into a fresh SQLite database; then the same day again (a conditional
GET answered 304: the stored listing, nothing parsed or written).

    python bench/sources.py                   # 2,000 items, 3 runs
    python bench/sources.py --items 500 --runs 5

The feed is bench/arxiv_day.py's (invented items, 60% new, 20% cross, 20% replacements;
abstracts of 120-260 words), every item kept (``--new-cross``: only the default announce
types, about 1,600 papers). It prints the wall-clock and CPU seconds of each step and the
stored bytes per paper: the growth of the database file (WAL checkpointed) divided by the
papers stored. On a busy machine the CPU seconds (of this process: the fake server's
threads included) say more than the wall clock.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.arxiv_day import feed  # noqa: E402
from digest.run.fetch import NamedSource, SourceSet, store_listing  # noqa: E402
from digest.sources.arxiv import ANNOUNCE_TYPES, EASTERN  # noqa: E402
from digest.sources.arxiv_http import ArxivSource  # noqa: E402
from digest.store import Store  # noqa: E402
from tests.support.arxiv_server import ArxivServer  # noqa: E402

DAY = date(2026, 11, 10)  # the generated feed's date
NOW = datetime(2026, 11, 10, 8, 0, tzinfo=EASTERN)


def db_bytes(store: Store, path: Path) -> int:
    """The database file's size once the write-ahead log is checkpointed into it."""
    with store.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    return path.stat().st_size


def sources(server: ArxivServer, store: Store, announce: Sequence[str]) -> SourceSet:
    validators = store.sources.validators("arxiv-ml")
    fetcher = ArxivSource(
        "arxiv-ml",
        ["cs.CL", "cs.LG"],
        announce=announce,
        rss_url=server.rss_url,
        api_url=server.api_url,
        min_interval=0.0,  # loopback is not arXiv
        clock=lambda: NOW,
        validators=validators,
    )
    return SourceSet([NamedSource("arxiv-ml", "arxiv", fetcher, 60.0, validators)], store, NOW)


async def one_run(
    server: ArxivServer, folder: Path, announce: Sequence[str]
) -> tuple[float, float, float, float, int, int]:
    """Seconds (wall, CPU) of the first fetch and store, of the second (304), the papers
    stored and the bytes the database grew by."""
    path = folder / "bench.db"
    with Store(f"sqlite:///{path}") as store:
        empty = db_bytes(store, path)
        start, cpu = time.perf_counter(), time.process_time()
        listing = await sources(server, store, announce).fetch(DAY)
        stored = store_listing(store, listing, NOW)
        first = (time.perf_counter() - start, time.process_time() - cpu)
        grown = db_bytes(store, path) - empty
        start, cpu = time.perf_counter(), time.process_time()
        repeat = sources(server, store, announce)
        again = await repeat.fetch(DAY)
        store_listing(store, again, NOW)
        assert repeat.parts[0].unchanged, "the feed was not fetched conditionally"
        second = (time.perf_counter() - start, time.process_time() - cpu)
        assert len(again.papers) == len(stored.papers)
    return (*first, *second, len(stored.papers), grown)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--new-cross", action="store_true", help="keep new and cross only (default: all four)"
    )
    args = parser.parse_args()
    announce = ("new", "cross") if args.new_cross else ANNOUNCE_TYPES
    body = feed(args.items)
    print(f"feed: {args.items:,} items, {len(body) / 1e6:.2f} MB; kept: {', '.join(announce)}")
    results = []
    with ArxivServer(rss=body) as server:
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory() as tmp:
                results.append(asyncio.run(one_run(server, Path(tmp), announce)))
    papers, grown = results[-1][4], results[-1][5]
    for label, wall, cpu in (("fetch + store", 0, 1), ("again (304, stored)", 2, 3)):
        walls = [r[wall] for r in results]
        print(
            f"{label:22} best {min(walls):6.2f} s  median {statistics.median(walls):6.2f} s"
            f"  CPU {min(r[cpu] for r in results):6.2f} s"
        )
    print(f"papers stored: {papers:,}; database grew {grown / 1e6:.2f} MB")
    print(f"stored bytes per paper: {grown / papers:,.0f}")


if __name__ == "__main__":
    main()
