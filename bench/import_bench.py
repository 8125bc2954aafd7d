"""Time ``digest subscribers import`` and ``export`` on 100,000 rows, SQLite and PostgreSQL.

    python bench/import_bench.py                  # 100,000 rows, SQLite then PostgreSQL
    python bench/import_bench.py --rows 20000 --no-postgres

Each step is the ``digest`` command as an operator runs it (a fresh process, so start-up is
included): a first import into an empty database, the same file again (nothing changes), a
file where every row changed, and an export. PostgreSQL is the test server the suite uses
(127.0.0.1:5432, database ``test``, user ``postgres``), in a schema of its own, dropped after.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

QUERIES = ["LLM", '"diffusion model"', "agent*", "title:(robot OR robotic)", "-survey", "GPT-4"]
NAMES = ["Ada Okafor", "Zoë Müller", "李伟", "O'Brien, Pat", "José", "Ngozi"]


def write_csv(path: Path, rows: int, seed: int) -> None:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as fh:
        fh.write("email,name,keywords,exclude,max_papers\n")
        for i in range(rows):
            keywords = ";".join(rng.sample(QUERIES, rng.randint(0, 3))).replace('"', '""')
            name = rng.choice(NAMES).replace('"', '""')
            fh.write(
                f'user{i}@example{i % 97}.org,"{name}","{keywords}",survey,{rng.randint(1, 50)}\n'
            )


def digest(config: Path, *args: str) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "digest", "--config", str(config), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    took = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"digest {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return took, proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""


def bench(label: str, url: str, work: Path, first: Path, changed: Path) -> None:
    config = work / f"{label}.toml"
    config.write_text(f'database = "{url}"\n', "utf-8")
    print(f"\n{label}")
    steps = [
        ("import (empty database)", ("subscribers", "import", str(first))),
        ("import again (unchanged)", ("subscribers", "import", str(first))),
        ("import (every row changed)", ("subscribers", "import", str(changed))),
        ("export csv", ("subscribers", "export", "--out", str(work / f"{label}.csv"))),
        ("export jsonl", ("subscribers", "export", "--out", str(work / f"{label}.jsonl"))),
    ]
    for name, args in steps:
        took, summary = digest(config, *args)
        print(f"  {name:28} {took:6.2f} s   {summary}")


def postgres_url(schema: str) -> str | None:
    try:
        import psycopg

        with psycopg.connect(
            "host=127.0.0.1 port=5432 dbname=test user=postgres", connect_timeout=3, autocommit=True
        ) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            conn.execute(f"CREATE SCHEMA {schema}")
    except Exception as exc:  # any reason: say it and go on with SQLite alone
        print(f"PostgreSQL skipped: {exc}")
        return None
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"


def drop_schema(schema: str) -> None:
    import psycopg

    with psycopg.connect(
        "host=127.0.0.1 port=5432 dbname=test user=postgres", autocommit=True
    ) as c:
        c.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--no-postgres", action="store_true")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="digest-import-") as tmp:
        work = Path(tmp)
        first, changed = work / "first.csv", work / "changed.csv"
        write_csv(first, opts.rows, seed=1)
        write_csv(changed, opts.rows, seed=2)
        size = first.stat().st_size / 1e6
        print(f"{opts.rows:,} rows, {size:.1f} MB CSV; each time is one `digest` process")
        bench("sqlite", f"sqlite:///{work / 'bench.db'}", work, first, changed)
        schema = f"digest_import_bench_{os.getpid()}"
        url = None if opts.no_postgres else postgres_url(schema)
        if url:
            try:
                bench("postgresql", url, work, first, changed)
            finally:
                drop_schema(schema)


if __name__ == "__main__":
    main()
