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
#: The next listing day: a service's usual day (a database and feed folder from the day before).
DAY2 = date(2026, 11, 19)
#: The share of day one's papers listed again on day two (trending lists repeat many).
RELISTED = 0.25
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


def make_listing(
    folder: Path,
    papers: int,
    seed: int = 1,
    day: date = DAY,
    again: list[dict[str, Any]] | None = None,
) -> Path:
    """``papers`` invented papers (150-300 word abstracts) as ``day``'s listing file; the
    elements ``again`` (papers of an earlier day listed again) first, then new ones."""
    from tests.fixtures.make_listings import GENERAL_TOPICS, Maker

    elements: list[dict[str, Any]] = list(again or [])
    chunk = 0
    base = 10_000 + (seed - 1) * 20_000  # each seed's arXiv numbers apart from the others'
    while len(elements) < papers:
        # The phrase banks give each generator a few dozen titles per topic: use many.
        maker = Maker(
            seed * 1000 + chunk, (base + chunk * 1000, base + 1000 + chunk * 1000), clean=True
        )
        chunk += 1
        for _ in range(min(40, papers - len(elements))):
            topic = maker.rng.choice(GENERAL_TOPICS)
            try:
                draft = maker.draft(day.isoformat(), topic, most_authors=12)
            except RuntimeError:
                break
            elements.append(draft.element())
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{day.isoformat()}.json"
    path.write_text(json.dumps(elements), "utf-8")
    return path


def make_next_listing(listing: Path, papers: int) -> Path:
    """Day two's listing beside day one's: ``RELISTED`` of day one's papers (the most
    upvoted, as a trending list keeps them) listed again, the rest new."""
    first = json.loads(listing.read_text("utf-8"))
    kept = sorted(first, key=lambda e: -int(e["paper"].get("upvotes", 0)))
    return make_listing(
        listing.parent, papers, seed=2, day=DAY2, again=kept[: int(len(first) * RELISTED)]
    )


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
    """A fresh folder for ``n`` subscribers: the listing (and day two's beside it), the
    subscribers (as JSON too) in a database kept as ``fresh.db`` so that every run starts
    from the same state."""
    folder = work / f"n{n}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    listing = make_listing(folder / "listings", papers)
    make_next_listing(listing, papers)
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


#: Day one's end state, kept in the case's folder: the database and the feed folder.
DAY1_DB, DAY1_PUBLIC = "day1.db", "day1-public"


def digest_run(
    py: str, folder: Path, fresh: Path, config: Path, keep: bool = False
) -> tuple[Row, str]:
    """Day one: `digest run` from the fresh database (no feed files yet), as an operator
    starts it; its row and the CPU seconds of each process. ``keep``: its end state is
    kept aside (``day1.db``, ``day1-public``) for :func:`next_day_run`."""
    shutil.copyfile(fresh, folder / "digest.db")
    row, cpu = _run_day(py, folder, config, DAY, "digest run (all, SMTP)")
    if keep:
        shutil.rmtree(folder / DAY1_PUBLIC, ignore_errors=True)
        os.replace(folder / "public", folder / DAY1_PUBLIC)
        os.replace(folder / "digest.db", folder / DAY1_DB)
    else:
        _clean(folder)
    return row, cpu


def next_day_run(py: str, folder: Path, config: Path) -> tuple[Row, str]:
    """Day two: `digest run` of the next listing on day one's database and feed folder
    (copied from what :func:`digest_run` kept, unmeasured), as a service's usual day."""
    shutil.copyfile(folder / DAY1_DB, folder / "digest.db")
    # A real copy, not hard links: a rewrite may reuse the inode it replaces, which must
    # not be one day one's kept folder shares.
    subprocess.run(["cp", "-a", str(folder / DAY1_PUBLIC), str(folder / "public")], check=True)
    row, cpu = _run_day(py, folder, config, DAY2, "day 2: digest run")
    _clean(folder)
    return row, cpu


def _run_day(py: str, folder: Path, config: Path, day: date, name: str) -> tuple[Row, str]:
    cpu: CpuSeen = {}
    wall, rss, out, _err = run_child(
        [py, "-m", "digest", "--config", str(config), "run", "--date", day.isoformat()],
        cpu=cpu,
    )
    sent = int(out.rsplit("sent ", 1)[1].split(",", 1)[0])
    return Row(name, wall, sent, rss), f"{name}: {cpu_note(cpu)}"


def _clean(folder: Path) -> None:
    # The run's feed files (~1 GB at 10,000, ~8 GB at 100,000) go now, not when the next
    # run starts: on this VM's ext4 (no journal) creating files in the 30 s after a large
    # delete is slow, and smtp-source and the naive baseline take longer than that.
    shutil.rmtree(folder / "public", ignore_errors=True)
    (folder / "digest.db").unlink()


def smtp_source(port: int, sent: int, size: float, name: str = "(a) smtp-source") -> Row:
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
    return Row(name, swall, sent, None, "physical limit")


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
        ours, cpu = digest_run(py, folder, fresh, config, keep=True)
        ours.note = f"fetch+match+render+send+record+feeds, {processes} process(es)"
        rows.append(ours)
        rows.append(smtp_source(sink.port, ours.messages, size))
        later, cpu2 = next_day_run(py, folder, config)
        later.note = f"{DAY2}: day one's database and feed folder, {RELISTED:.0%} relisted"
        rows.append(later)
        rows.append(smtp_source(sink.port, later.messages, size, "day 2: (a) smtp-source"))
        if only_run:
            return rows, [cpu, cpu2]
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
        return rows, [cpu, cpu2]
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
    later = next((r for r in rows if r.name == "day 2: digest run"), None)
    if later is not None:
        limit2 = next(r for r in rows if r.name == "day 2: (a) smtp-source")
        ratio += f"   day 2: {later.rate / limit2.rate:.0%}"
    lines.append(ratio)
    return "\n".join(lines)


def repeat_run(n: int, papers: int, work: Path, workers: str, times: int) -> str:
    """``times`` more runs and smtp-source measurements of the same case, each day (noise)."""
    folder = work / f"n{n}"
    listing = folder / "listings" / f"{DAY.isoformat()}.json"
    sink = Sink()
    lines = []
    try:
        config = write_config(folder, listing, sink.port, workers)
        py = sys.executable
        for _ in range(times):
            for day in (1, 2):
                # Each day's smtp-source right after it, as in the first table.
                if day == 1:
                    ours, cpu = digest_run(py, folder, folder / "fresh.db", config)
                else:
                    ours, cpu = next_day_run(py, folder, config)
                limit = smtp_source(sink.port, ours.messages, AVERAGE_SIZE)
                lines.append(
                    f"again, day {day}: {ours.seconds:.2f} s ({ours.messages:,} at "
                    f"{ours.rate:,.0f}/s, {ours.rss_mb} MB), smtp-source {limit.seconds:.2f} s "
                    f"({limit.rate:,.0f}/s): {ours.rate / limit.rate:.0%}; {cpu}"
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
        for cpu in cpus:
            print(cpu, flush=True)
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
