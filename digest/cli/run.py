"""``digest run``, ``send``, ``preview`` and ``feed``: the daily cycle and its one-off variants."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from digest.cli.shared import (
    EXIT_FAILED,
    State,
    check_address,
    check_queries,
    fail,
    guard,
    parse_date,
    run_async,
    shown,
)


@click.command()
@click.option(
    "--date", "day", metavar="YYYY-MM-DD", help="Listing date (default: today in `timezone`)."
)
@click.option("--dry-run", is_flag=True, help="Fetch and render, but send and record nothing.")
@click.option(
    "--no-wait",
    is_flag=True,
    help="With run.queue: end once the batches are queued for the workers.",
)
@click.pass_obj
def run(state: State, day: str | None, dry_run: bool, no_wait: bool) -> None:
    """Run the daily cycle for every active subscriber."""
    from digest.cli.progress import reporting
    from digest.run import Progress, make_context
    from digest.run import run as run_pipeline

    cfg = state.config()
    the_day = parse_date(day, cfg)
    with state.store() as store:
        ctx = guard(lambda: make_context(cfg, store))
        with reporting(Progress("digests"), "run") as progress:
            report = run_async(
                run_pipeline(ctx, the_day, dry_run=dry_run, progress=progress, wait=not no_wait)
            )
    print_report(report)
    if report.deferred or report.failed:
        # Some digest did not reach its reader: a failed run for cron and systemd.
        click.echo(
            f"error: {report.failed} digest(s) refused by the mail server,"
            f" {report.deferred} left pending for the next run",
            err=True,
        )
        sys.exit(EXIT_FAILED)


def print_report(report: Any) -> None:
    """Say what a run (``digest run``, ``digest demo``) did: per subscriber, then the totals."""
    mode = " (dry run: nothing sent or recorded)" if report.dry_run else ""
    click.echo(f"{report.day}: fetched {report.fetched} papers, {report.new} new{mode}")
    failed = list(getattr(report, "source_failures", ()))
    said = {f"source {f.source} failed: {f.error}" for f in failed}  # a line of their own
    for warning in report.warnings:
        if warning not in said:
            click.echo(f"  warning: {shown(warning)}", err=True)
    for f in failed:
        hint = f" ({' '.join(f.hint.split())})" if f.hint else ""
        click.echo(f"  source {shown(f.source)} failed: {shown(' '.join(f.error.split()) + hint)}")
    if report.fetched == 0 and failed:
        click.echo("  the sources that answered listed nothing: nothing to send")
    elif report.fetched == 0:
        click.echo("  the listing is empty (a weekend or holiday?): nothing to send")
    if report.requeued:
        click.echo(f"  re-queued {report.requeued} digest(s) held by a run that died")
    if report.resumed:
        click.echo(f"  resumed {report.resumed} digest(s) left pending by an earlier run")
    for sub in report.subscribers:
        if report.dry_run:
            status = "would send" if sub.matched else "nothing new"
        elif sub.sent:
            status = "sent"
        elif sub.error:
            status = f"not sent: {shown(sub.error)}"
        else:
            status = "nothing new" if not sub.matched else "not sent"
        click.echo(f"  {shown(sub.email)}: {sub.matched} matched, {status}")
    if not report.dry_run:
        click.echo(f"sent {report.sent}, failed {report.failed}, deferred {report.deferred}")
        for address in report.suspended:
            click.echo(f"  {shown(address)}: suspended after repeated permanent failures")
        if report.outbox:
            click.echo(f"emails: {shown(report.outbox)}")
        if report.feeds:
            click.echo(f"feeds: {shown(', '.join(str(p) for p in report.feeds))}")


@click.command()
@click.option("--to", "to", required=True, metavar="ADDRESS", help="Where to send it.")
@click.option(
    "--keywords", "keywords", multiple=True, metavar="Q", help="Keyword query (repeatable)."
)
@click.option(
    "--exclude", "exclude", multiple=True, metavar="Q", help="Exclude query (repeatable)."
)
@click.option("--date", "day", metavar="YYYY-MM-DD", help="Listing date (default: today).")
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the message to this .eml file instead of sending it.",
)
@click.pass_obj
def send(
    state: State,
    to: str,
    keywords: tuple[str, ...],
    exclude: tuple[str, ...],
    day: str | None,
    out: Path | None,
) -> None:
    """Send one digest to any address now; no subscriber's history is touched."""
    from digest.run import make_context, send_once

    address = check_address(to)
    kw = check_queries("--keywords", keywords)
    ex = check_queries("--exclude", exclude)
    cfg = state.config()
    the_day = parse_date(day, cfg)
    with state.store() as store:
        ctx = guard(lambda: make_context(cfg, store))
        count = run_async(send_once(ctx, the_day, address, kw, ex, out=out))
    if not count:
        click.echo(f"{the_day}: no paper matches; nothing sent")
    elif out:
        click.echo(f"{the_day}: {count} papers written to {shown(out)}")
    else:
        click.echo(f"{the_day}: {count} papers sent to {shown(address)}")


@click.command()
@click.option(
    "--keywords", "keywords", multiple=True, metavar="Q", help="Keyword query (repeatable)."
)
@click.option(
    "--exclude", "exclude", multiple=True, metavar="Q", help="Exclude query (repeatable)."
)
@click.option(
    "--like", "likes", multiple=True, metavar="ID",
    help="A stored paper liked (arXiv id, link, DOI or key; repeatable): rank by similarity.",
)  # fmt: skip
@click.option(
    "--subscriber", metavar="EMAIL",
    help="Preview a subscriber's digest: their keywords and likes together.",
)  # fmt: skip
@click.option(
    "--days", type=click.IntRange(1, 365), default=None,
    help="How many of the most recent stored listing dates to look at"
    " [default: 7 with --like or --subscriber, else 1].",
)  # fmt: skip
@click.pass_obj
def preview(
    state: State,
    keywords: tuple[str, ...],
    exclude: tuple[str, ...],
    likes: tuple[str, ...],
    subscriber: str | None,
    days: int | None,
) -> None:
    """Show which papers of the last stored days a query, likes or a subscriber would have
    brought, with why (changes nothing)."""
    from digest.run import Previewer

    kw = check_queries("--keywords", keywords)
    ex = check_queries("--exclude", exclude)
    if likes or subscriber:
        _preview_likes(state, kw, ex, likes, subscriber, days or 7)
        return
    with state.store() as store:
        found = guard(lambda: Previewer(store).preview(kw, ex, days or 1))
    _print_preview(found)


def _preview_likes(
    state: State,
    keywords: tuple[str, ...],
    exclude: tuple[str, ...],
    likes: tuple[str, ...],
    email: str | None,
    days: int,
) -> None:
    """``digest preview --like ... | --subscriber EMAIL``: ranked by similarity too."""
    from datetime import UTC, datetime

    from digest.errors import StateError
    from digest.models import Subscriber
    from digest.run.preview import Previewer, liked_profile, read_only_ranking, subscriber_profile
    from digest.run.ranking import threshold_of

    cfg = state.config()
    with state.store() as store:
        sub = Subscriber(email="preview", keywords=keywords, exclude=exclude)
        if email is not None:
            found = store.members.subscriber(email)
            if found is None:
                fail(
                    StateError(
                        f"no subscriber {shown(email)}", hint="see `digest subscribers list`"
                    )
                )
            sub = replace(
                found, keywords=keywords or found.keywords, exclude=exclude or found.exclude
            )
        ranking = read_only_ranking(store, datetime.now(UTC))
        profile = guard(lambda: subscriber_profile(ranking, sub)) if email else None
        if likes:
            profile, unknown = guard(lambda: liked_profile(store, ranking, likes, days))
            for raw in unknown:
                click.echo(f"warning: --like {shown(raw)}: no stored paper has this id", err=True)
            if profile is None:
                fail(StateError(
                    "none of the --like ids names a stored paper",
                    hint="give arXiv ids, links or DOIs of papers of stored listings"
                    " (`digest run` stores them)",
                ))  # fmt: skip
        cap = sub.max_papers or cfg.mail.max_papers
        limit = threshold_of(sub, cfg.mail.like_threshold)
        found_days = guard(
            lambda: Previewer(store).preview_likes(
                sub, profile, ranking, days=days, cap=cap, threshold=limit
            )
        )
    _print_preview(found_days)


def _print_preview(found: Sequence[Any]) -> None:
    if not found:
        click.echo("no listing stored yet: run `digest run` (or `digest serve`) first")
        return
    for day in found:
        click.echo(f"{day.day}: {len(day.matches)} of {day.total} papers")
        for m in day.matches:
            ident = m.paper.arxiv_id or m.paper.key
            if m.terms:
                why = f"  [{', '.join(m.terms)}]"
            elif m.like is not None:
                percent = round(100 * (m.similarity or 0.0))
                why = f'  (like "{" ".join(m.like.split())}", {percent}% similar)'
            else:
                why = ""
            click.echo(shown(f"  {ident}  {' '.join(m.paper.title.split())}{why}"))


@click.command()
@click.pass_obj
def feed(state: State) -> None:
    """Rebuild the feeds from the database."""
    from digest.run import make_context, write_feeds

    cfg = state.config()
    with state.store() as store:
        ctx = guard(lambda: make_context(cfg, store))
        written = guard(lambda: write_feeds(ctx))
    for path in written:
        click.echo(shown(path))
