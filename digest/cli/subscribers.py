"""``digest subscribers``: add, list, show, remove, import and export subscribers."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO

import click

from digest.cli.library import like_lines
from digest.cli.shared import (
    EXIT_FAILED,
    State,
    at,
    check_address,
    check_queries,
    fail,
    guard,
    shown,
    shown_lines,
    status_text,
)
from digest.config import roster
from digest.errors import RosterError
from digest.files import open_atomic
from digest.models import ABSTRACT_MODES, Subscriber
from digest.store import ImportCounts, Store


@click.group()
def subscribers() -> None:
    """Manage subscribers (those in the config file are synced at every run)."""


@subscribers.command("add")
@click.argument("email")
@click.option("--name", help="How to greet them.")
@click.option(
    "--keyword", "keywords", multiple=True, metavar="Q", help="Keyword query (repeatable)."
)
@click.option(
    "--exclude", "exclude", multiple=True, metavar="Q", help="Exclude query (repeatable)."
)
@click.option("--max-papers", type=click.IntRange(1, 10_000), help="Papers per email.")
@click.option(
    "--abstract",
    type=click.Choice(ABSTRACT_MODES),
    help="How much of each abstract: full, short or none (default: mail.abstract).",
)
@click.option("--send-at", metavar="HH:MM", help="Send time (default: schedule.send_at).")
@click.option("--timezone", "zone", metavar="ZONE", help="IANA zone (default: timezone).")
@click.option("--frequency", type=click.Choice(["daily", "weekly"]), help="Default: daily.")
@click.option("--weekday", metavar="DAY", help="Day of a weekly digest: mon .. sun.")
@click.option("--days", metavar="DAYS", help="Daily digests only on these days: mon,wed,fri.")
@click.option(
    "--source",
    "sources",
    multiple=True,
    metavar="NAME",
    help="Only papers of this configured source (repeatable; default: every source).",
)
@click.option(
    "--like-threshold",
    type=click.FloatRange(0, 1),
    help="How similar (0-1) to a liked paper a pick must be (default: mail.like_threshold).",
)
@click.pass_obj
def subscribers_add(
    state: State,
    email: str,
    name: str | None,
    keywords: tuple[str, ...],
    exclude: tuple[str, ...],
    max_papers: int | None,
    abstract: str | None,
    send_at: str | None,
    zone: str | None,
    frequency: str | None,
    weekday: str | None,
    days: str | None,
    sources: tuple[str, ...],
    like_threshold: float | None,
) -> None:
    """Add a subscriber, or update and reactivate one with the same address: the options
    given replace those values, the others (name, queries, schedule, sources...) stay as
    they were."""
    config = state.config()
    sub = Subscriber(
        email=check_address(email),
        name=name,
        keywords=check_queries("--keyword", keywords),
        exclude=check_queries("--exclude", exclude),
        max_papers=max_papers,
        abstract=abstract,
        **_schedule_options(send_at, zone, frequency, weekday, days),
        sources=_sources_option(sources, [s.name for s in config.sources]),
        like_threshold=like_threshold,
    )
    with state.store() as store:
        known = store.members.subscriber(sub.email)
        if known is not None:
            sub = _kept(sub, known)
        added = guard(lambda: store.members.add_subscriber(sub))
    click.echo(f"{shown(added.email)}: active")
    if any(listed.email == added.email for listed in config.subscribers):
        click.echo(
            shown(
                f"note: {added.email} is defined in {config.path}: each run writes the"
                " config's name, queries and schedule back over these; to change them,"
                " edit the config"
            ),
            err=True,
        )


def _schedule_options(
    send_at: str | None,
    zone: str | None,
    frequency: str | None,
    weekday: str | None,
    days: str | None,
) -> dict[str, Any]:
    """The schedule options of ``add`` checked, as :class:`Subscriber` fields; a usage
    error (exit 2) naming the option that is wrong."""
    from digest.schedule import (
        ScheduleError,
        check_days,
        check_weekday,
        check_zone,
        parse_send_at,
    )

    option = {"send_at": "--send-at", "timezone": "--timezone", "weekday": "--weekday"}
    try:
        return {
            "send_at": parse_send_at(send_at).strftime("%H:%M") if send_at else None,
            "timezone": check_zone(zone) if zone else None,
            "frequency": frequency,
            "weekday": check_weekday(weekday) if weekday else None,
            "days": (check_days(days) if days else None) or None,
        }
    except ScheduleError as exc:
        raise click.BadParameter(exc.message, param_hint=option.get(exc.field, "--days")) from None


def _sources_option(names: tuple[str, ...], known: list[str]) -> tuple[str, ...] | None:
    """The ``--source`` names (None: every source); a usage error (exit 2) for one that
    names no configured source."""
    from digest.config.preferences import unknown_sources

    for name, hint in unknown_sources(names, known):
        raise click.BadParameter(shown(f'no source "{name}" ({hint})'), param_hint="--source")
    return tuple(dict.fromkeys(names)) or None


def _kept(given: Subscriber, known: Subscriber) -> Subscriber:
    """``given`` (from the options) with what the options left out taken from ``known``: a
    reinstated subscriber keeps their name, queries and schedule. A schedule option given
    replaces the whole schedule (its other parts: the defaults)."""
    schedule = (given.send_at, given.timezone, given.frequency, given.weekday, given.days)
    when = given if any(part is not None for part in schedule) else known
    return replace(
        given,
        name=known.name if given.name is None else given.name,
        keywords=given.keywords or known.keywords,
        exclude=given.exclude or known.exclude,
        max_papers=known.max_papers if given.max_papers is None else given.max_papers,
        abstract=given.abstract or known.abstract,
        send_at=when.send_at,
        timezone=when.timezone,
        frequency=when.frequency,
        weekday=when.weekday,
        days=when.days,
        sources=given.sources or known.sources,
        like_threshold=(
            known.like_threshold if given.like_threshold is None else given.like_threshold
        ),
    )


@subscribers.command("list")
@click.pass_obj
def subscribers_list(state: State) -> None:
    """List every subscriber with their state."""
    with state.store() as store:
        subs = guard(lambda: store.members.subscribers())
    if not subs:
        click.echo("no subscribers")
    for s in subs:
        keywords = "; ".join(s.keywords) or "(everything)"
        click.echo(f"{shown(s.email)}\t{status_text(s)}\t{shown(keywords)}")


@subscribers.command("show")
@click.argument("email")
@click.pass_obj
def subscribers_show(state: State, email: str) -> None:
    """Show one subscriber, their queries and their recent deliveries."""
    from digest.serve import schedule_of

    address = check_address(email, deliverable=False)  # to find, not to send to
    cfg = state.config()
    with state.store() as store:
        sub = guard(lambda: store.members.subscriber(address))
        if sub is None:
            click.echo(f"error: no subscriber {shown(address)}", err=True)
            sys.exit(EXIT_FAILED)
        assert sub.id is not None
        sub_id = sub.id
        history = guard(lambda: store.outbox.history(sub_id))
        total = guard(lambda: store.outbox.sent_count(sub_id))
        liked = guard(lambda: store.likes.of(sub_id))
    click.echo(f"email:      {shown(sub.email)}")
    click.echo(f"name:       {shown(sub.name or '')}")
    click.echo(f"status:     {status_text(sub)}")
    click.echo(f"keywords:   {shown('; '.join(sub.keywords) or '(everything)')}")
    click.echo(f"exclude:    {shown('; '.join(sub.exclude) or '(none)')}")
    click.echo(f"max papers: {sub.max_papers or '(default)'}")
    click.echo(f"abstract: {sub.abstract or '(default)'}")
    click.echo(f"sources:    {shown(', '.join(sub.sources or ()) or '(every source)')}")
    click.echo(
        f"like threshold: {sub.like_threshold if sub.like_threshold is not None else '(default)'}"
    )
    sched = guard(lambda: schedule_of(cfg, sub))
    click.echo(f"schedule:   {shown(sched.describe())}")
    if sub.status == "active":
        when = sub.next_send_at
        click.echo(
            f"next send:  {when.astimezone(sched.zone):%Y-%m-%d %H:%M %Z} ({at(when)})"
            if when
            else "next send:  not placed yet (digest serve places it at its next pass)"
        )
    click.echo(f"papers sent: {total}")
    for rec in history:
        line = f"  {rec.listing_date}  {rec.status:8} {rec.papers} papers"
        if rec.error:
            line += f"  ({shown(rec.error)})"
        click.echo(line)
    click.echo("\n".join(like_lines(liked)))


@subscribers.command("remove")
@click.argument("email")
@click.pass_obj
def subscribers_remove(state: State, email: str) -> None:
    """Unsubscribe someone (their history is kept, so nothing is ever resent)."""
    address = check_address(email, deliverable=False)  # to find, not to send to
    with state.store() as store:
        removed = guard(lambda: store.members.remove_subscriber(address))
    if not removed:
        click.echo(f"error: no subscriber {shown(address)}", err=True)
        sys.exit(EXIT_FAILED)
    click.echo(f"{shown(address)}: unsubscribed")


@subscribers.command("import")
@click.argument("file", metavar="FILE")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(roster.FORMATS),
    help="csv or jsonl (default: from FILE's extension: .csv, .jsonl, .ndjson).",
)
@click.pass_obj
def subscribers_import(state: State, file: str, fmt: str | None) -> None:
    """Add or update subscribers from a CSV or JSON Lines file (FILE - reads stdin).

    Columns: email (required), name, keywords, exclude (queries separated by ";"),
    max_papers, and the schedule (send_at, timezone, frequency, weekday, days: empty is the
    configured default; a file without these columns leaves schedules as they are);
    sources (configured source names separated by ";"; empty: every source), like (papers
    to add to their likes, separated by ";") and like_threshold (0-1); status is ignored.
    A known address is updated, never duplicated, and no one unsubscribed or suspended is
    reactivated. Bad rows are reported with their line
    and skipped; of two rows with one address, the later wins.

    Exit codes: 0 every row imported; 1 some rows rejected (the others imported);
    2 the file cannot be read, its header is wrong, or its format is unknown.
    """
    source = "<stdin>" if file == "-" else file
    kind = fmt or (None if file == "-" else roster.format_for(file))
    if kind is None:
        raise click.UsageError(
            f"cannot tell the format of {shown(source)}: give --format csv|jsonl"
        )
    try:
        data = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
    except OSError as exc:
        fail(RosterError(source, f"cannot read it: {exc.strerror or exc}"))
    names = [s.name for s in state.config().sources]
    text = guard(lambda: roster.decode(data, source))
    read = guard(lambda: roster.read(text, kind, source, sources=names))
    notes: list[roster.RowError | roster.Duplicate] = [*read.errors, *read.duplicates]
    for note in sorted(notes, key=lambda n: n.line):
        prefix = "warning: " if isinstance(note, roster.Duplicate) else ""
        click.echo(prefix + shown(note), err=True)
    counts = ImportCounts()
    if read.subscribers:
        with state.store() as store:
            counts = _import(store, read)
            # The like column adds to their likes, never removes one (origin "import").
            liked = guard(lambda: store.likes.sync_config(read.subscribers, origin="import"))
        for address, raw, why in liked.rejected:
            click.echo(f"warning: {shown(address)}: like {shown(raw)}: {why}", err=True)
        if liked.added:
            click.echo(f"{shown(source)}: likes added {liked.added}")
    click.echo(
        f"{shown(source)}: added {counts.added}, updated {counts.updated},"
        f" unchanged {counts.unchanged}, kept unsubscribed {counts.kept_unsubscribed},"
        f" rejected {read.rejected}"
    )
    if read.rejected:
        sys.exit(EXIT_FAILED)


def _import(store: Store, read: roster.Roster, batch: int = 5000) -> ImportCounts:
    """Import ``read``'s subscribers a batch at a time, with a progress report."""
    from digest.cli.progress import reporting
    from digest.run import Progress

    counts = ImportCounts()
    subs = read.subscribers
    with reporting(Progress("subscribers", len(subs)), "import") as progress:
        for start in range(0, len(subs), batch):
            chunk = subs[start : start + batch]
            job = partial(
                store.members.import_subscribers,
                chunk,
                schedule=read.schedule,
                preferences=read.preferences,
            )
            counts += guard(job)
            progress.advance(len(chunk))
    return counts


@subscribers.command("export")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(roster.FORMATS),
    help="csv or jsonl (default: from --out's extension, else csv).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write this file (it appears complete, or not at all) instead of stdout.",
)
@click.option(
    "--all",
    "everyone",
    is_flag=True,
    help="Also those pending, unsubscribed or suspended (default: active and paused only).",
)
@click.pass_obj
def subscribers_export(state: State, fmt: str | None, out: Path | None, everyone: bool) -> None:
    """Write the active and paused subscribers, with their status, as CSV or JSON Lines.

    Pending requests (never confirmed), the unsubscribed and the suspended are left out
    unless --all. `digest subscribers import` reads the file back (ignoring status). Tokens
    are not exported: they are the private feed addresses. A CSV cell starting with =, +,
    -, @, a tab or a carriage return gets a ' in front, so that a spreadsheet shows it
    as text instead of running it; the import takes it off again.
    """
    kind = fmt or (roster.format_for(out.name) if out else None) or "csv"
    states = None if everyone else roster.EXPORTED
    with state.store() as store:
        subs = _with_likes(store, store.members.iter_subscribers())
        if out is None:
            # A terminal gets its control characters escaped; a pipe or a file, the data.
            screen = sys.stdout.isatty()
            guard(lambda: _export(sys.stdout.buffer, subs, kind, states, screen=screen))
            return
        try:
            with open_atomic(out) as fh:
                count, left = guard(lambda: _export(fh, subs, kind, states))
        except OSError as exc:
            click.echo(f"error: cannot write {shown(out)}: {exc.strerror or exc}", err=True)
            sys.exit(EXIT_FAILED)
    others = ""
    if left:
        others = f" ({left} pending, unsubscribed or suspended left out: --all adds them)"
    click.echo(f"{shown(out)}: {count} subscribers{others}")


def _with_likes(store: Store, subs: Iterable[Subscriber]) -> Iterator[Subscriber]:
    """``subs``, each with ``like``: the keys of the papers they like (read a thousand
    subscribers at a time), for the export's ``like`` column."""
    page: list[Subscriber] = []
    for sub in subs:
        page.append(sub)
        if len(page) >= 1000:
            yield from _liked(store, page)
            page = []
    yield from _liked(store, page)


def _liked(store: Store, page: list[Subscriber]) -> list[Subscriber]:
    liked = store.likes.liked([s.id for s in page if s.id is not None]) if page else {}
    return [replace(s, like=tuple(liked[s.id])) if s.id in liked else s for s in page]


def _export(
    stream: BinaryIO,
    subs: Iterable[Subscriber],
    kind: str,
    states: tuple[str, ...] | None,
    *,
    screen: bool = False,
) -> tuple[int, int]:
    """Write those of ``subs`` in ``states`` (None: all) to ``stream`` a thousand lines at a
    time (``screen``: for a terminal, :func:`shown`); returns how many were written and how
    many left out."""
    count = left = 0

    def counted() -> Iterator[Subscriber]:
        nonlocal count, left
        for sub in subs:
            if states is not None and sub.status not in states:
                left += 1
                continue
            problem = roster.export_problem(sub, kind)
            if problem:
                click.echo(f"warning: {shown(problem)}; use --format jsonl", err=True)
            count += 1
            yield sub

    pending: list[str] = []
    for line in roster.export_lines(counted(), kind):
        pending.append(shown_lines(line) if screen else line)
        if len(pending) >= 1000:
            stream.write("".join(pending).encode())
            pending.clear()
    stream.write("".join(pending).encode())
    stream.flush()
    return count, left
