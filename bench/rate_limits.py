"""What a rate-limited request pays for its limit: ``RateLimiter.allow`` over the database
(``store.limits``), with a table already holding many live keys, and in memory.

    python bench/rate_limits.py                       # SQLite in a temporary folder
    python bench/rate_limits.py --url postgresql+psycopg://postgres@127.0.0.1/test
    python bench/rate_limits.py --keys 100000 --calls 5000

Prints microseconds per call (median and 99th percentile) for new keys, for a key at its
limit (refused), and for the in-memory limiter.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from digest.serve import MemoryEvents, RateLimiter
from digest.store import Store


def timed(calls: int, one: Callable[[int], object]) -> tuple[float, float]:
    """(median, 99th percentile) of ``one(i)`` in microseconds."""
    took = []
    for i in range(calls):
        started = time.perf_counter()
        one(i)
        took.append((time.perf_counter() - started) * 1e6)
    took.sort()
    return statistics.median(took), took[int(len(took) * 0.99)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="database URL (default: a new SQLite file)")
    parser.add_argument("--keys", type=int, default=100_000, help="live keys in the table")
    parser.add_argument("--calls", type=int, default=3000, help="calls timed per row")
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="digest-limits-")
    url = args.url or f"sqlite:///{Path(folder) / 'limits.db'}"
    with Store(url) as store:
        limiter = RateLimiter(10, 3600, name="bench", events=store.limits)
        now = time.time()
        filling = time.perf_counter()
        for i in range(args.keys):
            limiter.allow(f"198.51.{i // 256 % 256}.{i % 256}/{i}", now=now)
        fill = (time.perf_counter() - filling) / max(args.keys, 1) * 1e6
        for _ in range(10):
            limiter.allow("at-limit", now=now)
        rows = {
            f"database, new key ({store.limits.live():,} live events)": timed(
                args.calls, lambda i: limiter.allow(f"new/{i}", now=now)
            ),
            "database, a key at its limit (refused)": timed(
                args.calls, lambda i: limiter.allow("at-limit", now=now)
            ),
        }
        memory = RateLimiter(10, 3600, events=MemoryEvents())
        rows["memory, new key"] = timed(args.calls, lambda i: memory.allow(f"k{i}", now=now))
        print(f"{store.engine.dialect.name}: filling {args.keys:,} keys: {fill:.0f} µs each")
        for name, (median, p99) in rows.items():
            print(f"  {name:<50} median {median:8.0f} µs   p99 {p99:8.0f} µs")


if __name__ == "__main__":
    main()
