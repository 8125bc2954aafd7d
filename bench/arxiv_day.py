"""Time parsing and keying a 2,000-item arXiv RSS day, and fetching it over loopback.

    python bench/arxiv_day.py                 # 2,000 items, best and median of 7 runs
    python bench/arxiv_day.py --items 747 --runs 3

The feed is generated (invented papers in the shape of shared/FORMATS.md §3): 60% ``new``,
20% ``cross``, 15% ``replace``, 5% ``replace-cross``; abstracts of 120-260 words with some
LaTeX and HTML; 1-12 authors (some non-ASCII, some joined by ``and``); 1-4 categories. It
prints the body's size and, in milliseconds: :func:`parse_rss` with the default announce
types (``new``, ``cross``) and with all four, and :class:`ArxivSource.fetch` of the day from
a local fake of rss.arxiv.org (the HTTP edge, no interval: loopback is not arXiv).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from datetime import date, datetime
from functools import partial
from pathlib import Path
from xml.sax.saxutils import escape

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from digest.sources.arxiv import ANNOUNCE_TYPES, EASTERN, parse_rss
from digest.sources.arxiv_http import ArxivSource
from tests.support.arxiv_server import ArxivServer

WORDS = [
    "sparse",
    "lattice",
    "adapter",
    "speech",
    "encoder",
    "language",
    "model",
    "retrieval",
    "graph",
    "prior",
    "benchmark",
    "calibrated",
    "refusal",
    "token",
    "budget",
    "decoding",
    "diffusion",
    "policy",
    "agent",
    "reward",
    "transformer",
    "attention",
    "kernel",
    "bound",
    "convex",
    "sample",
    "complexity",
    "robust",
    "federated",
    "private",
    "causal",
]
NAMES = [
    "Mira Okonkwo",
    "Tobias Lindqvist",
    "Zoë Ødegård",
    "Nguyễn Thị Hoa",
    "李伟",
    "Ana Ferreira",
]
CATEGORIES = ["cs.CL", "cs.LG", "cs.AI", "stat.ML", "cs.CV", "eess.AS", "math.OC", "q-bio.BM"]
TYPES = ["new"] * 12 + ["cross"] * 4 + ["replace"] * 3 + ["replace-cross"]
DAY = "Tue, 10 Nov 2026 00:00:00 -0500"


def item(rng: random.Random, index: int) -> str:
    kind = rng.choice(TYPES)
    ident = f"2611.{index:05d}"
    version = 1 if kind in ("new", "cross") else rng.randint(2, 4)
    title = " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 14))).title()
    if index % 50 == 0:
        title += " with <i>Emphasis</i> and $a<b$"
    words = [rng.choice(WORDS) for _ in range(rng.randint(120, 260))]
    words.insert(10, "$O(n \\log n)$")
    authors = [rng.choice(NAMES) for _ in range(rng.randint(1, 12))]
    creator = ", ".join(authors[:-1]) + (" and " if len(authors) > 1 else "") + authors[-1]
    cats = "".join(f"<category>{c}</category>" for c in rng.sample(CATEGORIES, rng.randint(1, 4)))
    description = f"arXiv:{ident}v{version} Announce Type: {kind} \nAbstract: {' '.join(words)}."
    return (
        f"<item><title>{escape(title)}</title><link>https://arxiv.org/abs/{ident}</link>"
        f"<description>{escape(description)}</description>"
        f'<guid isPermaLink="false">oai:arXiv.org:{ident}v{version}</guid>{cats}'
        f"<pubDate>{DAY}</pubDate><arxiv:announce_type>{kind}</arxiv:announce_type>"
        "<dc:rights>http://creativecommons.org/licenses/by/4.0/</dc:rights>"
        f"<dc:creator>{escape(creator)}</dc:creator></item>\n"
    )


def feed(items: int, seed: int = 7) -> bytes:
    """An arXiv RSS day of ``items`` invented items."""
    rng = random.Random(seed)
    body = "".join(item(rng, i) for i in range(1, items + 1))
    return (
        "<?xml version='1.0' encoding='UTF-8'?>\n"
        '<rss xmlns:arxiv="http://arxiv.org/schemas/atom"'
        ' xmlns:dc="http://purl.org/dc/elements/1.1/"'
        ' xmlns:atom="http://www.w3.org/2005/Atom" version="2.0"><channel>'
        "<title>cs.CL+cs.LG updates on arXiv.org</title>"
        f"<pubDate>{DAY}</pubDate>{body}</channel></rss>"
    ).encode()


def timed(runs: int, work: Callable[[], int]) -> tuple[float, float, float, int]:
    """Best and median wall-clock milliseconds of ``runs`` calls, the best CPU milliseconds
    of this process (less disturbed by a busy machine), and what the last call counted."""
    times: list[float] = []
    cpu: list[float] = []
    count = 0
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        count = work()
        times.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    return min(times), statistics.median(times), min(cpu), count


def _parse(body: bytes, announce: Sequence[str]) -> int:
    return len(parse_rss(body, name="bench", announce=announce).papers)


def _row(label: str, best: float, median: float, cpu: float, count: int) -> None:
    print(
        f"{label:26} best {best:6.0f} ms  median {median:6.0f} ms  CPU {cpu:6.0f} ms"
        f"  papers {count:,}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    body = feed(args.items)
    print(f"feed: {args.items:,} items, {len(body) / 1e6:.2f} MB")
    rows = [
        ("parse_rss new+cross", ("new", "cross")),
        ("parse_rss all four types", ANNOUNCE_TYPES),
    ]
    for label, announce in rows:
        best, median, cpu, count = timed(args.runs, partial(_parse, body, announce))
        _row(label, best, median, cpu, count)
    with ArxivServer(rss=body) as server:
        source = ArxivSource(
            "bench",
            ["cs.CL", "cs.LG"],
            rss_url=server.rss_url,
            api_url=server.api_url,
            min_interval=0.0,
            clock=lambda: datetime(2026, 11, 10, 8, 0, tzinfo=EASTERN),
        )

        def fetch() -> int:
            return len(asyncio.run(source.fetch(date(2026, 11, 10))).papers)

        best, median, cpu, count = timed(args.runs, fetch)
        _row("fetch over loopback", best, median, cpu, count)


if __name__ == "__main__":
    main()
