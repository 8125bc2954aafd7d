"""What similarity ranking adds to a whole ``digest run``: the same run with and without
likes, wall seconds and peak memory.

    python bench/ranking_run.py                       # 10,000 subscribers, 2,000 papers
    python bench/ranking_run.py --subscribers 2000    # a quick look

Setup (not timed): bench/run.py's day of invented papers and subscribers (their queries),
stored with the day's listing; half the subscribers like 5-50 papers (a library's entries:
titles and abstracts of other invented papers). The model is fitted and every liker's
profile built once (timed apart: what the first run after the likes arrive pays once), then
the database is copied twice: "no likes" (likes and profiles deleted) and "likes". Each copy
gets ``digest run --date DAY`` in a fresh process, mail to the outbox (one process: no
worker processes, so the ranking's cost is not spread over cores); we print its wall and
CPU seconds and the peak RSS of that process. Then each copy's feeds are removed and
``digest feed`` writes them all again in a fresh process (what a day's run pays for the
feeds when every one gained papers): its CPU seconds, and the private feed files written
(count and MB).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Not bench/ itself first: a module of it named like one of the standard library would shadow it.
sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench")]

from bench.run import DAY, load_subscribers, make_listing, make_subscribers  # noqa: E402


def setup(work: Path, subscribers: int, papers: int) -> tuple[Path, Path, Path]:
    """The listing folder and the two databases (no likes, likes)."""
    import sqlalchemy as sa

    from digest.sources.file import FileSource
    from digest.store import Store
    from digest.store.schema import likes

    if work.exists():
        shutil.rmtree(work)
    listings = work / "listings"
    listing = make_listing(listings, papers)
    base = work / "likes.db"
    url = f"sqlite:///{base}"
    with Store(url):
        pass  # the schema
    load_subscribers(url, make_subscribers(subscribers, listing))
    others = make_listing(work / "others", 5000, seed=7)  # what the likes are of
    liked = json.loads(others.read_text("utf-8"))
    rng = random.Random(3)
    now = datetime.now(UTC)
    with Store(url) as store:
        import asyncio

        day = asyncio.run(FileSource(listings).fetch(DAY))
        store.papers.save_listing(day, now)
        ids = [s.id for s in store.members.subscribers("active") if s.id is not None]
        likers = ids[: len(ids) // 2]
        rows = []
        for sid in likers:
            for item in rng.sample(liked, rng.randint(5, 50)):
                paper = item["paper"]
                rows.append(
                    {
                        "subscriber_id": sid,
                        "paper_key": "title:" + paper["id"],
                        "kind": "like" if rng.random() < 0.9 else "dislike",
                        "origin": "library",
                        "title": paper["title"],
                        "abstract": paper["summary"],
                        "created_at": now,
                    }
                )
        with store.engine.begin() as conn:
            for start in range(0, len(rows), 10_000):
                conn.execute(sa.insert(likes), rows[start : start + 10_000])
        started = time.perf_counter()
        ranker = store.profiles.ranker(now)
        fitted = time.perf_counter() - started
        assert ranker is not None
        started = time.perf_counter()
        for start in range(0, len(likers), 1000):
            store.profiles.current(likers[start : start + 1000], ranker, store.likes.texts_for, now)
        built = time.perf_counter() - started
    print(
        f"setup: {len(likers):,} likers, {len(rows):,} likes; model fitted in {fitted:.1f} s,"
        f" their profiles built in {built:.1f} s (once, when likes arrive)"
    )
    plain = work / "plain.db"
    shutil.copy(base, plain)
    with sqlite3.connect(plain) as conn:
        conn.execute("DELETE FROM profiles")
        conn.execute("DELETE FROM likes")
        conn.execute("DELETE FROM ranker_models")
    return listings, plain, base


def run(work: Path, listings: Path, db: Path, name: str) -> tuple[float, float, float, str]:
    """``digest run`` on ``db`` in a fresh process: wall s, CPU s, peak RSS MB, its summary."""
    config = work / f"{name}.toml"
    config.write_text(
        f"""database = "sqlite:///{db}"
timezone = "UTC"
base_url = "https://digest.example.org"
[source]
kind = "file"
path = "{listings}"
[mail]
from = "Paper Digest <digest@example.org>"
outbox_dir = "{work / (name + "-outbox")}"
[feeds]
dir = "{work / (name + "-feeds")}"
[run]
workers = 1
""",
        "utf-8",
    )
    wall, cpu, rss, stdout = measured(config, "run", "--date", str(DAY))
    summary = next(line for line in stdout.splitlines() if line.startswith("sent "))
    return wall, cpu, rss, summary


def feed_pass(work: Path, name: str) -> tuple[float, int, float]:
    """``digest feed`` after the run of ``name``, its feeds removed first: CPU s, and the
    private feed files it wrote (count, MB)."""
    folder = work / (name + "-feeds")
    shutil.rmtree(folder, ignore_errors=True)
    _, cpu, _, _ = measured(work / f"{name}.toml", "feed")
    files = [p for p in (folder / "feeds" / "shared").iterdir() if p.suffix in (".xml", ".atom")]
    return cpu, len(files), sum(p.stat().st_size for p in files) / 2**20


def measured(config: Path, *args: str) -> tuple[float, float, float, str]:
    """``digest --config CONFIG ARGS`` in a fresh process: wall s, CPU s, peak RSS MB,
    its output."""
    command = [sys.executable, "-m", "digest", "--config", str(config), *args]
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _MEASURED, *command],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(done.stdout[-2000:] + done.stderr[-2000:])
    cpu, rss = map(float, done.stderr.strip().splitlines()[-1].split())
    return wall, cpu, rss / 1024, done.stdout


#: Runs its arguments and says their CPU seconds and peak RSS (kB) on stderr's last line.
_MEASURED = """
import resource, subprocess, sys
code = subprocess.run(sys.argv[1:]).returncode
used = resource.getrusage(resource.RUSAGE_CHILDREN)
print(used.ru_utime + used.ru_stime, used.ru_maxrss, file=sys.stderr)
sys.exit(code)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--papers", type=int, default=2000)
    parser.add_argument(
        "--work", type=Path, default=Path(tempfile.gettempdir()) / "digest-ranking-run"
    )
    args = parser.parse_args()
    listings, plain, liking = setup(args.work, args.subscribers, args.papers)
    results, feeds = {}, {}
    for name, db in (("likes", liking), ("no likes", plain)):
        results[name] = run(args.work, listings, db, name.replace(" ", "-"))
    for name in results:
        feeds[name] = feed_pass(args.work, name.replace(" ", "-"))
    print(f"{args.subscribers:,} subscribers (half with likes) x {args.papers:,} papers")
    print(f"{'':10} {'wall s':>8} {'CPU s':>8} {'peak MB':>8}  digests")
    for name in ("no likes", "likes"):
        wall, cpu, rss, summary = results[name]
        print(f"{name:10} {wall:8.1f} {cpu:8.1f} {rss:8.0f}  {summary}")
    a, b = results["no likes"], results["likes"]
    print(f"{'added':10} {b[0] - a[0]:8.1f} {b[1] - a[1]:8.1f} {b[2] - a[2]:8.0f}")
    print(f"digest feed, every feed written: {'CPU s':>8} {'files':>8} {'MB':>8}")
    for name in ("no likes", "likes"):
        cpu, count, size = feeds[name]
        print(f"{name:32} {cpu:8.1f} {count:8,} {size:8.0f}")
    (a_cpu, a_count, a_size), (b_cpu, b_count, b_size) = feeds["no likes"], feeds["likes"]
    print(f"{'added':32} {b_cpu - a_cpu:8.1f} {b_count - a_count:8,} {b_size - a_size:8.0f}")


if __name__ == "__main__":
    main()
