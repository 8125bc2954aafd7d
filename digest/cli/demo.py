"""``digest demo``: the pipeline run over the bundled sample listings, in a folder of its own.

The bundled files are templates: the demo writes them into its folder dated as the last
listing days (weekdays) up to today, so ``digest serve`` on the demo's config finds today's
(or the last weekday's) listing and every page shows papers on the day it is run.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, date, datetime, timedelta
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


def write_demo_config(folder: Path, listings: Path = SAMPLE_DIR) -> Path:
    """Write the demo's config.toml (its source: the files in ``listings``) into ``folder``
    and return its path."""
    path = folder / "config.toml"
    text = DEMO_CONFIG.format(sample=json.dumps(str(listings)))
    write_atomic(path, text.encode("utf-8"))
    return path


def listing_days(today: date, count: int) -> list[date]:
    """The last ``count`` weekdays up to ``today`` (itself if a weekday), oldest first:
    the days the Hugging Face listing has papers. ``listing_days(Mon 7 Dec, 3)`` is
    Thu 3, Fri 4 and Mon 7 Dec."""
    days: list[date] = []
    day = today
    while len(days) < count:
        if day.weekday() < 5:
            days.append(day)
        day -= timedelta(days=1)
    return days[::-1]


def redated(document: object, shift: timedelta) -> object:
    """A sample listing's JSON with every ``publishedAt`` moved by ``shift`` (the papers'
    ids, titles and upvotes as they were)."""
    if isinstance(document, list):
        return [redated(item, shift) for item in document]
    if isinstance(document, dict):
        out: dict[str, object] = {}
        for key, value in document.items():
            if key == "publishedAt" and isinstance(value, str):
                moment = datetime.fromisoformat(value.replace("Z", "+00:00")) + shift
                value = moment.strftime("%Y-%m-%dT%H:%M:%S.") + value[-4:]
            out[key] = redated(value, shift)
        return out
    return document


def write_listings(folder: Path, today: date) -> list[date]:
    """The bundled sample listings written into ``folder`` as ``YYYY-MM-DD.json``, re-dated
    to the last listing days up to ``today``, in their order; returns those days."""
    templates = sorted(SAMPLE_DIR.glob("*.json"))
    days = listing_days(today, len(templates))
    folder.mkdir(parents=True, exist_ok=True)
    for template, day in zip(templates, days, strict=True):
        shift = day - date.fromisoformat(template.stem)
        document = redated(json.loads(template.read_bytes()), shift)
        text = json.dumps(document, ensure_ascii=False, indent=1) + "\n"
        write_atomic(folder / f"{day.isoformat()}.json", text.encode("utf-8"))
    return days


def demo_today(value: str | None) -> date:
    """``--today``: the date given, else today in UTC (the demo's zone)."""
    if value is None:
        return datetime.now(UTC).date()
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"expected a date YYYY-MM-DD, got {value!r}", param_hint="--today"
        ) from None


@click.command()
@click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("digest-demo"),
    show_default=True,
    help="Folder for the demo.",
)
@click.option(
    "--today",
    metavar="YYYY-MM-DD",
    help="The day the sample listings end on (default: today in UTC).",
)
def demo(folder: Path, today: str | None) -> None:
    """Run the pipeline on the bundled sample listings, dated as the last listing days up
    to today: no network, no SMTP."""
    from digest.run import make_context
    from digest.run import run as run_pipeline

    folder = folder.resolve()
    for name in ("demo.db", "demo.db-wal", "demo.db-shm"):
        (folder / name).unlink(missing_ok=True)
    for name in ("outbox", "public", "listings"):
        shutil.rmtree(folder / name, ignore_errors=True)
    days = write_listings(folder / "listings", demo_today(today))
    config_path = write_demo_config(folder, folder / "listings")
    cfg = guard(lambda: load(config_path))
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
