"""The 100k-subscriber benchmark: our `digest run` beside smtp-source and a naive baseline.

    python bench/run.py                       # 5,000, 10,000 and 100,000 subscribers, 500 papers
    python bench/run.py --subscribers 2000    # a quick look
    python bench/run.py --subscribers 5000 --only-run --repeat 3   # the run and smtp-source only

Needs Postfix's smtp-sink and smtp-source (Debian package ``postfix``; only those two
binaries are started, no mail system). Prints one table per subscriber count. See README.md.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DAY = date(2026, 11, 18)
CONCURRENCY = 16

# Shared by many: what a community list looks like (a few queries most people pick).
POPULAR = [
    "LLM",
    '"diffusion model"',
    "agent*",
    '"large language model"',
    "quantiz*",
    '"mixture of experts"',
    "title:diffusion",
    '"reinforcement learning"',
    "speech",
    "protein",
    'RAG OR "retrieval-augmented"',
    '"vision-language"',
    "robot* manipulation",
    "GPT-4",
    "survey",
]
EXCLUDES = ["medical", "survey", "title:benchmark", '"position paper"']


# -- the case ----------------------------------------------------------------------------------


def make_listing(folder: Path, papers: int, seed: int = 1) -> Path:
    """``papers`` invented papers (150-300 word abstracts) as the day's listing file."""
    from tests.fixtures.make_listings import GENERAL_TOPICS, Maker

    elements: list[dict[str, Any]] = []
    chunk = 0
    while len(elements) < papers:
        # The phrase banks give each generator a few dozen titles per topic: use many.
        maker = Maker(
            seed * 1000 + chunk, (10_000 + chunk * 1000, 11_000 + chunk * 1000), clean=True
        )
        chunk += 1
        for _ in range(min(40, papers - len(elements))):
            topic = maker.rng.choice(GENERAL_TOPICS)
            try:
                draft = maker.draft(DAY.isoformat(), topic, most_authors=12)
            except RuntimeError:
                break
            elements.append(draft.element())
    unique = elements
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{DAY.isoformat()}.json"
    path.write_text(json.dumps(unique), "utf-8")
    return path


def long_tail_query(rng: random.Random, vocab: list[str], titles: list[list[str]]) -> str:
    """A query few people share: phrases, fields, NOT and OR over the day's words."""
    shape = rng.random()
    word = rng.choice(vocab)
    if shape < 0.25:
        t = rng.choice(titles)
        i = rng.randrange(max(1, len(t) - 1))
        return '"' + " ".join(t[i : i + 2]) + '"'
    if shape < 0.45:
        return f"{rng.choice(['title', 'abstract'])}:{word}"
    if shape < 0.65:
        return f"{word} OR {rng.choice(vocab)}"
    if shape < 0.8:
        return f"{word} {rng.choice(vocab)} -{rng.choice(vocab)}"
    if shape < 0.9:
        return f"({word} OR {rng.choice(vocab)}) AND NOT {rng.choice(vocab)}"
    return word[: max(4, len(word) - 2)] + "*"


def make_subscribers(n: int, listing: Path, seed: int = 2) -> list[dict[str, Any]]:
    """``n`` subscribers: 10% everything, most sharing popular queries, a long unique tail."""
    from digest.words import words

    rng = random.Random(seed)
    items = json.loads(listing.read_text("utf-8"))
    titles = [words(e["paper"]["title"]) for e in items]
    vocab = sorted({w for t in titles for w in t if len(w) > 4 and not w.isdigit()})
    subs = []
    for i in range(n):
        r = rng.random()
        if r < 0.10:
            keywords: list[str] = []
        elif r < 0.65:
            keywords = rng.sample(POPULAR, rng.randint(1, 3))
        else:
            keywords = [long_tail_query(rng, vocab, titles) for _ in range(rng.randint(1, 2))]
            if rng.random() < 0.5:
                keywords.append(rng.choice(POPULAR))
        exclude = [rng.choice(EXCLUDES)] if rng.random() < 0.2 else []
        subs.append(
            {"email": f"reader{i}@bench.example.org", "keywords": keywords, "exclude": exclude}
        )
    return subs


def load_subscribers(db_url: str, subs: list[dict[str, Any]]) -> None:
    """Insert the subscribers straight into a fresh database, in big batches."""
    import sqlalchemy as sa

    from digest.compose import tokens
    from digest.store import Store, subscribers

    now = datetime.now(UTC)
    with Store(db_url) as store, store.engine.begin() as conn:
        for start in range(0, len(subs), 10_000):
            conn.execute(
                sa.insert(subscribers),
                [
                    {
                        "email": s["email"],
                        "name": None,
                        "keywords": json.dumps(s["keywords"]),
                        "exclude": json.dumps(s["exclude"]),
                        "max_papers": None,
                        "status": "active",
                        "token": tokens.random_token(),
                        "in_config": False,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for s in subs[start : start + 10_000]
                ],
            )


# -- tools -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Sink:
    """Postfix's smtp-sink on loopback, discarding everything."""

    def __init__(self) -> None:
        exe = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
        self.port = free_port()
        self.proc = subprocess.Popen(
            [exe, "-u", "nobody", f"127.0.0.1:{self.port}", "1024"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise SystemExit("smtp-sink did not start (install Debian's postfix package)")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()


#: CPU seconds (user, system) last seen per process of a measured tree, by pid.
CpuSeen = dict[int, tuple[str, float, float]]


def _tree_rss_mb(root: int, cpu: CpuSeen | None = None) -> float:
    """Resident memory of ``root`` and all its descendants (worker processes), in MB;
    each one's name and CPU seconds so far go into ``cpu``."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    times: dict[int, tuple[str, float, float]] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                head, tail = fh.read().rsplit(b")", 1)
        except OSError:
            continue
        fields = tail.split()
        pid = int(entry)
        parents[pid] = int(fields[1])
        rss[pid] = int(fields[21])  # pages
        name = head.split(b"(", 1)[1].decode(errors="replace")
        times[pid] = (name, int(fields[11]) / tick, int(fields[12]) / tick)
    tree, todo = set(), [root]
    while todo:
        pid = todo.pop()
        tree.add(pid)
        todo.extend(p for p, parent in parents.items() if parent == pid and p not in tree)
    if cpu is not None:
        cpu.update((p, times[p]) for p in tree if p in times)
    return sum(rss.get(p, 0) for p in tree) * os.sysconf("SC_PAGE_SIZE") / 2**20


def run_child(
    argv: list[str], env: dict[str, str] | None = None, cpu: CpuSeen | None = None
) -> tuple[float, int, str, str]:
    """Run ``argv``; wall seconds, peak RSS (MB) of it and its descendants together
    (sampled every 0.2 s, and the kernel's own peak of the largest one), stdout, stderr.
    ``cpu`` gets each process's CPU seconds as last sampled (the root's from the kernel)."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err, text=True, env=env)
        peak = [0.0]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.2):
                peak[0] = max(peak[0], _tree_rss_mb(proc.pid, cpu))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        done.set()
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
        if cpu is not None:  # the whole tree's CPU (waited-for children included)
            cpu[0] = ("tree (kernel)", usage.ru_utime, usage.ru_stime)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:4])}... failed ({proc.returncode}):\n{stderr[-3000:]}")
    return wall, max(int(peak[0]), usage.ru_maxrss // 1024), stdout, stderr


# -- the measurements --------------------------------------------------------------------------


@dataclass
class Row:
    name: str
    seconds: float
    messages: int
    rss_mb: int | None = None
    note: str = ""

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0


def prepare(n: int, papers: int, work: Path) -> tuple[Path, Path, Path]:
    """A fresh folder for ``n`` subscribers: the listing, the subscribers (as JSON too) in a
    database kept as ``fresh.db`` so that every run starts from the same state."""
    folder = work / f"n{n}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    listing = make_listing(folder / "listings", papers)
    subs = make_subscribers(n, listing)
    fresh = folder / "fresh.db"
    load_subscribers(f"sqlite:///{fresh}", subs)
    (folder / "subs.json").write_text(json.dumps(subs), "utf-8")
    return folder, listing, fresh


def write_config(folder: Path, listing: Path, port: int, workers: str) -> Path:
    config = folder / "config.toml"
    config.write_text(
        f"""database = "sqlite:///{folder / "digest.db"}"
base_url = "https://digest.example.org"
[source]
kind = "file"
path = "{listing.parent}"
[mail]
from = "Paper Digest <digest@bench.example.org>"
[smtp]
host = "127.0.0.1"
port = {port}
security = "none"
concurrency = {CONCURRENCY}
[feeds]
dir = "{folder / "public"}"
[run]
workers = {workers if workers == "auto" else int(workers)!r}
""",
        "utf-8",
    )
    return config


def cpu_note(cpu: CpuSeen) -> str:
    """CPU seconds per process of a run (user+system, system in brackets) and the tree's."""
    parts = []
    for pid, (name, user, system) in sorted(cpu.items()):
        label = "all" if pid == 0 else name
        parts.append(f"{label} {user + system:.1f} ({system:.1f})")
    return "CPU s: " + ", ".join(parts)


def digest_run(py: str, folder: Path, fresh: Path, config: Path) -> tuple[Row, str]:
    """One `digest run` from the fresh database, as an operator starts it; its row and the
    CPU seconds of each process."""
    shutil.copyfile(fresh, folder / "digest.db")
    cpu: CpuSeen = {}
    wall, rss, out, _err = run_child(
        [py, "-m", "digest", "--config", str(config), "run", "--date", DAY.isoformat()],
        cpu=cpu,
    )
    sent = int(out.rsplit("sent ", 1)[1].split(",", 1)[0])
    # The run's feed files (~1 GB at 10,000, ~8 GB at 100,000) go now, not when the next
    # run starts: on this VM's ext4 (no journal) creating files in the 30 s after a large
    # delete is slow, and smtp-source and the naive baseline take longer than that.
    shutil.rmtree(folder / "public", ignore_errors=True)
    (folder / "digest.db").unlink()
    return Row("digest run (all, SMTP)", wall, sent, rss), cpu_note(cpu)


def smtp_source(port: int, sent: int, size: float) -> Row:
    """(a) the physical limit: smtp-source, same count and size, same sink."""
    src = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
    swall, _, _, _ = run_child(
        [
            src,
            "-s",
            str(CONCURRENCY),
            "-m",
            str(sent),
            "-l",
            str(int(size)),
            "-f",
            "digest@bench.example.org",
            "-t",
            "reader@bench.example.org",
            f"127.0.0.1:{port}",
        ]
    )
    return Row("(a) smtp-source", swall, sent, None, "physical limit")


#: the average message size when the stages are not measured (--only-run)
AVERAGE_SIZE = 87.7 * 1024


def measure(
    n: int, papers: int, work: Path, naive_sample: int, workers: str, only_run: bool = False
) -> tuple[list[Row], list[str]]:
    """The table's rows for ``n`` subscribers, and each digest run's CPU seconds."""
    folder, listing, fresh = prepare(n, papers, work)
    sink = Sink()
    try:
        config = write_config(folder, listing, sink.port, workers)
        py = sys.executable
        from digest.run import cores, worker_count

        processes = worker_count(workers if workers == "auto" else int(workers), n, cores())
        rows: list[Row] = []
        size = AVERAGE_SIZE
        if not only_run:
            # Stages in isolation, in a child of their own (its peak memory is its own).
            _, stage_rss, out, _ = run_child(
                [
                    py,
                    str(Path(__file__).parent / "stages.py"),
                    str(listing),
                    str(folder / "subs.json"),
                ]
            )
            stages = json.loads(out)
            size = stages["avg_size"]
            rows += [
                Row(
                    "query compilation",
                    stages["compile"],
                    stages["queries"],
                    None,
                    f"{stages['queries']:,} distinct queries",
                ),
                Row("matching", stages["match"], n, None, f"{n:,} subscribers x {papers} papers"),
                Row("rendering", stages["render"], stages["digests"], None),
                Row(
                    "message bytes",
                    stages["build"],
                    stages["digests"],
                    None,
                    f"avg {size / 1024:.1f} KB",
                ),
                Row("stages together", stages["total"], stages["digests"], stage_rss),
            ]
        ours, cpu = digest_run(py, folder, fresh, config)
        ours.note = f"fetch+match+render+send+record+feeds, {processes} process(es)"
        rows.append(ours)
        rows.append(smtp_source(sink.port, ours.messages, size))
        if only_run:
            return rows, [cpu]
        # (b) the naive baseline on a sample, extrapolated.
        k = min(naive_sample, n)
        _nwall, nrss, out, _ = run_child(
            [
                py,
                str(Path(__file__).parent / "naive.py"),
                str(listing),
                str(folder / "subs.json"),
                str(k),
                str(sink.port),
            ]
        )
        naive = json.loads(out)
        rows.append(
            Row(
                "(b) naive baseline",
                naive["seconds"],
                naive["messages"],
                nrss,
                f"first {k:,} subscribers; full run ~{n / max(naive['rate'], 1e-9):,.0f} s",
            )
        )
        return rows, [cpu]
    finally:
        sink.stop()


def table(n: int, rows: list[Row]) -> str:
    ours = next(r for r in rows if r.name.startswith("digest run"))
    limit = next(r for r in rows if r.name.startswith("(a)"))
    naive = next((r for r in rows if r.name.startswith("(b)")), None)
    lines = [
        f"\n{n:,} subscribers",
        f"{'stage':<26}{'seconds':>10}{'items':>10}{'per s':>10}{'peak RSS':>10}  note",
    ]
    for r in rows:
        rss = f"{r.rss_mb} MB" if r.rss_mb else ""
        lines.append(
            f"{r.name:<26}{r.seconds:>10.2f}{r.messages:>10,}{r.rate:>10,.0f}{rss:>10}  {r.note}"
        )
    ratio = f"ours / (a) smtp-source: {ours.rate / limit.rate:.0%}"
    if naive is not None:
        ratio += f"   ours / (b) naive: {ours.rate / naive.rate:.1f}x"
    lines.append(ratio)
    return "\n".join(lines)


def repeat_run(n: int, papers: int, work: Path, workers: str, times: int) -> str:
    """``times`` more runs and smtp-source measurements of the same case (noise)."""
    folder = work / f"n{n}"
    listing = folder / "listings" / f"{DAY.isoformat()}.json"
    sink = Sink()
    lines = []
    try:
        config = write_config(folder, listing, sink.port, workers)
        for _ in range(times):
            ours, cpu = digest_run(sys.executable, folder, folder / "fresh.db", config)
            limit = smtp_source(sink.port, ours.messages, AVERAGE_SIZE)
            lines.append(
                f"again: {ours.seconds:.2f} s ({ours.rate:,.0f}/s, {ours.rss_mb} MB), smtp-source "
                f"{limit.seconds:.2f} s ({limit.rate:,.0f}/s): {ours.rate / limit.rate:.0%}; {cpu}"
            )
    finally:
        sink.stop()
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscribers", default="5000,10000,100000")
    parser.add_argument("--papers", type=int, default=500)
    parser.add_argument("--naive-sample", type=int, default=1000)
    parser.add_argument("--workers", default="auto", help='run.workers: "auto" or a count')
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "digest-bench")
    parser.add_argument(
        "--only-run", action="store_true", help="only the digest run and smtp-source rows"
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="run and smtp-source this many times per count"
    )
    args = parser.parse_args()
    # As installed (pip compiles every module): with PYTHONDONTWRITEBYTECODE set (as on the
    # machines these figures come from), each process compiled digest's ~150 modules again
    # (~0.25 CPU-s a process: the run's and each worker's).
    compileall.compile_dir(ROOT / "digest", quiet=1)
    results = {}
    for n in (int(x) for x in args.subscribers.split(",")):
        rows, cpus = measure(
            n, args.papers, args.work, args.naive_sample, args.workers, args.only_run
        )
        results[n] = rows
        print(table(n, rows), flush=True)
        print(cpus[0], flush=True)
        if args.repeat > 1:
            print(repeat_run(n, args.papers, args.work, args.workers, args.repeat - 1), flush=True)
    counts = sorted(results)
    if len(counts) > 1:
        a, b = counts[-2], counts[-1]
        ta = next(r for r in results[a] if r.name.startswith("digest run")).seconds
        tb = next(r for r in results[b] if r.name.startswith("digest run")).seconds
        print(f"\n{a:,} -> {b:,} subscribers: time x{tb / ta:.1f} (x{b / a:.0f} subscribers)")


if __name__ == "__main__":
    main()
