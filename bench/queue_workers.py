"""Workers on several machines, measured on one: `digest run` with ``run.queue`` and one
`digest worker` process, then two, over the same subscribers and papers.

    python bench/queue_workers.py                          # 2,000 subscribers, 300 papers
    python bench/queue_workers.py --subscribers 10000 --url postgresql+psycopg://postgres@127.0.0.1/test

Needs PostgreSQL (each measure gets a fresh schema, dropped after). Mail goes to a real
aiosmtpd on loopback (tests/support/smtpd.py) that keeps every message. Prints, per number
of workers, the run's wall time (the workers already started and waiting), messages per
second and the gain over one worker: near-linear while the CPU is the limit and there are
cores to spare (2 on this machine, shared with the sink and PostgreSQL).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Not bench/ first on the path: this file's name would hide the standard library's queue.
sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench")]

from bench.run import DAY, load_subscribers, make_listing, make_subscribers  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def fresh_schema(url: str, name: str) -> str:
    """``url`` with ``name`` as a fresh, empty schema on its search path."""
    import psycopg

    from digest.run.queue import conninfo

    with psycopg.connect(conninfo(url), autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        conn.execute(f"CREATE SCHEMA {name}")
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{name}"


def drop_schema(url: str, name: str) -> None:
    import psycopg

    from digest.run.queue import conninfo

    with psycopg.connect(conninfo(url), autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


def registered(db_url: str) -> int:
    """How many workers procrastinate knows (0 before its tables exist)."""
    from digest.run.queue import queue_state

    return len(queue_state(db_url).heartbeats)


def measure(workers: int, args: argparse.Namespace, work: Path) -> tuple[float, int]:
    """(seconds, messages) of one queued run with ``workers`` worker processes."""
    from tests.support.smtpd import SmtpServer

    schema = f"bench_queue_{os.getpid()}_{workers}"
    db_url = fresh_schema(args.url, schema)
    folder = work / f"w{workers}"
    folder.mkdir(parents=True, exist_ok=True)
    listing = make_listing(folder / "listings", args.papers)
    load_subscribers(db_url, make_subscribers(args.subscribers, listing))
    procs: list[subprocess.Popen[bytes]] = []
    with SmtpServer() as server:
        config = folder / "config.toml"
        config.write_text(
            f"""database = "{db_url}"
[source]
kind = "file"
path = "{listing.parent}"
[mail]
from = "Paper Digest <digest@bench.example.org>"
[smtp]
host = "{server.host}"
port = {server.port}
security = "none"
concurrency = {args.concurrency}
[feeds]
dir = "{folder / "public"}"
[run]
queue = true
""",
            "utf-8",
        )
        digest = [sys.executable, "-m", "digest", "--config", str(config)]
        try:  # the queue's tables first: a worker refuses a database without them
            subprocess.run([*digest, "db", "upgrade"], check=True, stdout=subprocess.DEVNULL)
            procs = [subprocess.Popen([*digest, "worker"]) for _ in range(workers)]
            deadline = time.monotonic() + 120
            while registered(db_url) < workers:
                if time.monotonic() > deadline:
                    raise SystemExit("the workers did not start")
                time.sleep(0.2)
            started = time.monotonic()
            subprocess.run(
                [*digest, "run", "--date", DAY.isoformat()], check=True, stdout=subprocess.DEVNULL
            )
            took = time.monotonic() - started
            sent = len(server.messages)
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(timeout=60)
            drop_schema(args.url, schema)
    return took, sent


def main() -> None:
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=2000)
    parser.add_argument("--papers", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8, help="smtp.concurrency")
    parser.add_argument("--url", default=DEFAULT_URL, help="PostgreSQL (SQLAlchemy URL)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (1, 2):
            took, sent = measure(workers, args, Path(tmp))
            rows.append((workers, took, sent))
            print(f"{workers} worker(s): {sent} messages in {took:.1f} s", flush=True)
    base = rows[0][2] / rows[0][1]
    print(f"\n{args.subscribers} subscribers x {args.papers} papers, queued (run.queue)")
    print(f"{'workers':>8} {'seconds':>8} {'msg/s':>8} {'gain':>6}")
    for workers, took, sent in rows:
        rate = sent / took
        print(f"{workers:>8} {took:>8.1f} {rate:>8.0f} {rate / base:>5.2f}x")


if __name__ == "__main__":
    main()
