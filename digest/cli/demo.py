"""``digest demo``: the pipeline run over the bundled sample listings, in a folder of its own."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path

import click

from digest.cli.run import print_report
from digest.cli.shared import guard, run_async
from digest.config import load
from digest.files import write_atomic
from digest.store import Store

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "data" / "sample"

DEMO_CONFIG = """\
# Written by `digest demo`: the bundled sample listings, mail to ./outbox, feeds in ./public.
database = "sqlite:///demo.db"
timezone = "UTC"
base_url = "http://localhost:8000"

[source]
kind = "file"
path = {sample}

[mail]
from = "Paper Digest <digest@example.org>"
outbox_dir = "outbox"

[feeds]
dir = "public"
title = "Trending papers (demo)"
days = 14

[[subscribers]]
email = "ada@example.org"
name = "Ada"
keywords = ['"large language model"', "LLM", "agent*"]
exclude = ["medical"]
max_papers = 30

[[subscribers]]
email = "grace@example.org"
name = "Grace Müller"
keywords = ["diffusion", "title:quantiz*", '"mixture of experts"']

[[subscribers]]
email = "everything@example.org"
name = "Reads Everything"
keywords = []
max_papers = 10
"""


def write_demo_config(folder: Path) -> Path:
    """Write the demo's config.toml into ``folder`` and return its path."""
    path = folder / "config.toml"
    text = DEMO_CONFIG.format(sample=json.dumps(str(SAMPLE_DIR)))
    write_atomic(path, text.encode("utf-8"))
    return path


@click.command()
@click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("digest-demo"),
    show_default=True,
    help="Folder for the demo.",
)
def demo(folder: Path) -> None:
    """Run the pipeline on the bundled sample listings: no network, no SMTP."""
    from digest.run import make_context
    from digest.run import run as run_pipeline

    folder = folder.resolve()
    for name in ("demo.db", "demo.db-wal", "demo.db-shm"):
        (folder / name).unlink(missing_ok=True)
    for name in ("outbox", "public"):
        shutil.rmtree(folder / name, ignore_errors=True)
    config_path = write_demo_config(folder)
    cfg = guard(lambda: load(config_path))
    days = sorted(date.fromisoformat(p.stem) for p in SAMPLE_DIR.glob("*.json"))
    with Store(cfg.database) as store:
        for day in days:
            now = datetime.combine(day, datetime.min.time(), tzinfo=UTC).replace(hour=7)
            ctx = guard(partial(make_context, cfg, store, now=now))
            report = run_async(run_pipeline(ctx, day))
            print_report(report)
            click.echo()
    click.echo(f"config:  {config_path}")
    click.echo(f"emails:  {cfg.mail.outbox_dir}  (open the .eml files in a mail program)")
    click.echo(f"feeds:   {cfg.feeds.dir / 'feed.xml'}, {cfg.feeds.dir / 'feed.atom'}")
    click.echo(
        f"again:   digest --config {config_path} run --date {days[-1]}  (sends nothing twice)"
    )
