"""The ``digest`` command: the only place that turns errors into words and exit codes.

Exit codes: 0 done; 1 the run failed (message on stderr); 2 usage or config error.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import shutil
import signal
import sys
from collections.abc import Callable, Coroutine, Iterable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, NoReturn, TypeVar

import click

from digest import GC_THRESHOLDS, __version__
from digest.config import Config, Invalid, find_config, load, normalise_address, roster
from digest.errors import ConfigError, DigestError, QueryError, RosterError
from digest.files import open_atomic
from digest.models import Subscriber
from digest.select import validate as validate_query
from digest.store import ImportCounts, Store

if TYPE_CHECKING:
    from digest.run import Status

EXIT_FAILED = 1
EXIT_USAGE = 2
T = TypeVar("T")


def _fail(error: DigestError) -> NoReturn:
    usage = isinstance(error, ConfigError | QueryError | RosterError)
    code = EXIT_USAGE if usage else EXIT_FAILED
    click.echo(f"error: {error}", err=True)
    if error.hint:
        click.echo(f"hint: {error.hint}", err=True)
    sys.exit(code)


def _guard(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except DigestError as exc:
        _fail(exc)


def _run_async(coro: Coroutine[Any, Any, T]) -> T:
    return _guard(lambda: asyncio.run(coro))


class _State:
    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path
        self._config: Config | None = None

    def config(self) -> Config:
        if self._config is None:
            path = find_config(self.config_path, os.environ)
            self._config = _guard(lambda: load(path))
        return self._config

    def store(self) -> Store:
        cfg = self.config()
        return _guard(lambda: Store(cfg.database))


def _parse_date(value: str | None, cfg: Config) -> date:
    if value is None:
        return datetime.now(cfg.zone).date()
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"expected a date YYYY-MM-DD, got {value!r}") from None


def _check_queries(option: str, queries: Sequence[str]) -> tuple[str, ...]:
    for q in queries:
        try:
            validate_query(q)
        except QueryError as exc:
            raise click.BadParameter(str(exc), param_hint=option) from None
    return tuple(queries)


def _check_address(value: str) -> str:
    try:
        return normalise_address(value)
    except Invalid as exc:
        raise click.BadParameter(f"{value!r}: {exc}") from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    metavar="PATH",
    help="Config file (default: $DIGEST_CONFIG, else ./config.toml).",
)
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(__version__, prog_name="digest")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, verbose: int) -> None:
    """paper-digest: the day's trending papers, by email and feed, to those who asked."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    ctx.obj = _State(config_path)


@cli.command()
@click.option(
    "--date", "day", metavar="YYYY-MM-DD", help="Listing date (default: today in `timezone`)."
)
@click.option("--dry-run", is_flag=True, help="Fetch and render, but send and record nothing.")
@click.pass_obj
def run(state: _State, day: str | None, dry_run: bool) -> None:
    """Run the daily cycle for every active subscriber."""
    from digest.run import make_context
    from digest.run import run as run_pipeline

    cfg = state.config()
    the_day = _parse_date(day, cfg)
    with state.store() as store:
        ctx = _guard(lambda: make_context(cfg, store))
        report = _run_async(run_pipeline(ctx, the_day, dry_run=dry_run))
    _print_report(report)
    if report.deferred or report.failed:
        # Some digest did not reach its reader: a failed run for cron and systemd.
        click.echo(
            f"error: {report.failed} digest(s) refused by the mail server,"
            f" {report.deferred} left pending for the next run",
            err=True,
        )
        sys.exit(EXIT_FAILED)


def _print_report(report: Any) -> None:
    mode = " (dry run: nothing sent or recorded)" if report.dry_run else ""
    click.echo(f"{report.day}: fetched {report.fetched} papers, {report.new} new{mode}")
    for warning in report.warnings:
        click.echo(f"  warning: {warning}", err=True)
    if report.fetched == 0:
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
            status = f"not sent: {sub.error}"
        else:
            status = "nothing new" if not sub.matched else "not sent"
        click.echo(f"  {sub.email}: {sub.matched} matched, {status}")
    if not report.dry_run:
        click.echo(f"sent {report.sent}, failed {report.failed}, deferred {report.deferred}")
        for address in report.suspended:
            click.echo(f"  {address}: suspended after repeated permanent failures")
        if report.outbox:
            click.echo(f"emails: {report.outbox}")
        if report.feeds:
            click.echo(f"feeds: {', '.join(str(p) for p in report.feeds)}")


@cli.command()
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
    state: _State,
    to: str,
    keywords: tuple[str, ...],
    exclude: tuple[str, ...],
    day: str | None,
    out: Path | None,
) -> None:
    """Send one digest to any address now; no subscriber's history is touched."""
    from digest.run import make_context, send_once

    address = _check_address(to)
    kw = _check_queries("--keywords", keywords)
    ex = _check_queries("--exclude", exclude)
    cfg = state.config()
    the_day = _parse_date(day, cfg)
    with state.store() as store:
        ctx = _guard(lambda: make_context(cfg, store))
        count = _run_async(send_once(ctx, the_day, address, kw, ex, out=out))
    if not count:
        click.echo(f"{the_day}: no paper matches; nothing sent")
    elif out:
        click.echo(f"{the_day}: {count} papers written to {out}")
    else:
        click.echo(f"{the_day}: {count} papers sent to {address}")


@cli.command()
@click.option("--host", metavar="H", help="Address to listen on (default: web.host).")
@click.option(
    "--port", type=click.IntRange(1, 65535), metavar="P", help="Port (default: web.port)."
)
@click.pass_obj
def serve(state: _State, host: str | None, port: int | None) -> None:
    """Run the scheduler and the web app (subscribe, confirm, manage, feeds) until stopped."""
    import uvicorn

    from digest.run import SECRET_ENV, make_context
    from digest.serve import Service, create_app

    secret = os.environ.get(SECRET_ENV, "")
    if len(secret) < 16:
        click.echo(
            f"error: {SECRET_ENV} is {'too short' if secret else 'not set'}: digest serve signs "
            "the confirm, manage and unsubscribe links with it\n"
            f"  hint: make one with  export {SECRET_ENV}=$(python3 -c 'import secrets; "
            "print(secrets.token_urlsafe(32))')  and keep it: changing it breaks the links "
            "in emails already sent",
            err=True,
        )
        sys.exit(EXIT_USAGE)
    cfg = state.config()
    store = state.store()
    base = _guard(lambda: make_context(cfg, store))
    service = Service(lambda now: replace(base, now=now), tick_seconds=cfg.schedule.check_every)
    app = create_app(lambda: base, service, secret.encode())
    the_host, the_port = host or cfg.web.host, port or cfg.web.port
    click.echo(f"serving {cfg.base_url} on http://{the_host}:{the_port} (Ctrl-C to stop)", err=True)
    level = logging.getLogger().getEffectiveLevel()
    if level > logging.DEBUG:  # a line per tick otherwise: our own pass log says what matters
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
    # uvicorn handles SIGTERM/SIGINT (graceful shutdown: the service finishes what is in
    # flight), then re-raises the signal with the handler it found: make that one a no-op
    # so that a clean stop exits 0, as systemd and Docker expect.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: None)
    uvicorn.run(
        app,
        host=the_host,
        port=the_port,
        log_level="info" if level <= logging.INFO else "warning",
        proxy_headers=True,
        timeout_graceful_shutdown=int(cfg.web.shutdown_timeout) + 5,
    )
    store.close()


@cli.command()
@click.pass_obj
def schedule(state: _State) -> None:
    """Print every active subscriber's next send time, in their zone and in UTC."""
    from digest.serve import next_sends

    cfg = state.config()
    now = datetime.now(UTC)
    with state.store() as store:
        _guard(lambda: store.sync_config_subscribers(cfg.subscribers))  # as every pass does
        rows = _guard(lambda: next_sends(cfg, store, now))
        states = _guard(store.state_counts)
    inactive = sum(n for state, n in states.items() if state not in ("active", "unscheduled"))
    if not rows:
        click.echo("no active subscribers")
    for sub, sched, when in rows:
        local = when.astimezone(sched.zone)
        late = "  (due now: catch-up)" if when <= now else ""
        click.echo(
            f"{sub.email}\t{local:%Y-%m-%d %H:%M %Z} ({sched.timezone})\t"
            f"{when:%Y-%m-%d %H:%M} UTC\t{sched.describe()}{late}"
        )
    if inactive:
        click.echo(
            f"({inactive} subscriber(s) pending, paused, unsubscribed or suspended: no sends)"
        )


@cli.command()
@click.option(
    "--keywords", "keywords", multiple=True, metavar="Q", help="Keyword query (repeatable)."
)
@click.option(
    "--exclude", "exclude", multiple=True, metavar="Q", help="Exclude query (repeatable)."
)
@click.option(
    "--days", type=click.IntRange(1, 365), default=1, show_default=True,
    help="How many of the most recent stored listing dates to look at.",
)  # fmt: skip
@click.pass_obj
def preview(state: _State, keywords: tuple[str, ...], exclude: tuple[str, ...], days: int) -> None:
    """Show which papers of the last stored days a query would have brought (changes nothing)."""
    from digest.run import Previewer

    kw = _check_queries("--keywords", keywords)
    ex = _check_queries("--exclude", exclude)
    with state.store() as store:
        found = _guard(lambda: Previewer(store).preview(kw, ex, days))
    if not found:
        click.echo("no listing stored yet: run `digest run` (or `digest serve`) first")
        return
    for day in found:
        click.echo(f"{day.day}: {len(day.matches)} of {day.total} papers")
        for m in day.matches:
            ident = m.paper.arxiv_id or m.paper.key
            terms = f"  [{', '.join(m.terms)}]" if m.terms else ""
            click.echo(f"  {ident}  {' '.join(m.paper.title.split())}{terms}")


@cli.command()
@click.pass_obj
def feed(state: _State) -> None:
    """Rebuild the feeds from the database."""
    from digest.run import make_context, write_feeds

    cfg = state.config()
    with state.store() as store:
        ctx = _guard(lambda: make_context(cfg, store))
        written = _guard(lambda: write_feeds(ctx))
    for path in written:
        click.echo(str(path))


@cli.command()
@click.pass_obj
def status(state: _State) -> None:
    """Show the last run, the delivery queue and suspended subscribers."""
    from digest.run import status as read_status

    with state.store() as store:
        st = _guard(lambda: read_status(store))
    for line in status_lines(st):
        click.echo(line)


def _at(moment: datetime | None) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC" if moment else "?"


def status_lines(st: Status) -> list[str]:
    """``digest status`` as lines of ``label: text``; see the README for the format."""
    lines = []
    last = st.last
    if last is None:
        lines.append("last run:   none recorded yet")
    else:
        lines.append(
            f"last run:   {_at(last.started_at)} for {last.day}: {last.outcome}"
            f" (fetched {last.fetched}, sent {last.sent}, failed {last.failed},"
            f" deferred {last.deferred})"
        )
    for r in st.running:
        lines.append(f"running:    since {_at(r.started_at)} for {r.day} (run {r.id})")
    if st.failing:
        first, latest = st.failing[-1], st.failing[0]
        what = "fetch failing" if latest.stage == "fetch" else "delivery failing"
        lines.append(
            f"listing:    {what} since {_at(first.started_at)}"
            f" ({len(st.failing)} failed run(s) in a row): {latest.error or 'unknown error'}"
        )
    elif last is not None and last.outcome == "empty":
        lines.append("listing:    listing empty (weekend or holiday?)")
    elif last is not None:
        lines.append(f"listing:    ok, {last.fetched} papers")
    counts = st.deliveries
    lines.append(
        f"deliveries: pending {counts.get('pending', 0)}, sending {counts.get('sending', 0)},"
        f" failed {counts.get('failed', 0)}, sent {counts.get('sent', 0)}"
    )
    lines.append(f"suspended:  {len(st.suspended)}")
    for sub in st.suspended:
        lines.append(f"  {sub.email}  {_status_text(sub)}")
    states = st.states or {}
    if states:
        order = ("active", "pending", "paused", "unsubscribed", "suspended")
        lines.append("subscribers: " + ", ".join(f"{name} {states.get(name, 0)}" for name in order))
    now = datetime.now(UTC)
    for when, count in st.upcoming:
        due = "  (due: goes at the next pass of digest serve)" if when <= now else ""
        lines.append(f"next send:  {_at(when)} to {count} subscriber(s){due}")
    if states.get("unscheduled"):
        lines.append(
            f"next send:  {states['unscheduled']} active subscriber(s) not placed yet"
            " (digest serve places them at its next pass)"
        )
    if not st.upcoming and not states.get("unscheduled"):
        lines.append("next send:  none scheduled")
    if st.alerting:
        lines.append("alert:      the admin was told runs are failing")
    return lines


@cli.group()
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
@click.option("--send-at", metavar="HH:MM", help="Send time (default: schedule.send_at).")
@click.option("--timezone", "zone", metavar="ZONE", help="IANA zone (default: timezone).")
@click.option("--frequency", type=click.Choice(["daily", "weekly"]), help="Default: daily.")
@click.option("--weekday", metavar="DAY", help="Day of a weekly digest: mon .. sun.")
@click.option("--days", metavar="DAYS", help="Daily digests only on these days: mon,wed,fri.")
@click.pass_obj
def subscribers_add(
    state: _State,
    email: str,
    name: str | None,
    keywords: tuple[str, ...],
    exclude: tuple[str, ...],
    max_papers: int | None,
    send_at: str | None,
    zone: str | None,
    frequency: str | None,
    weekday: str | None,
    days: str | None,
) -> None:
    """Add a subscriber (or update one with the same address)."""
    from digest.schedule import (
        ScheduleError,
        check_days,
        check_weekday,
        check_zone,
        parse_send_at,
    )

    option = {"send_at": "--send-at", "timezone": "--timezone", "weekday": "--weekday"}
    try:
        send_text = parse_send_at(send_at).strftime("%H:%M") if send_at else None
        zone_name = check_zone(zone) if zone else None
        day_name = check_weekday(weekday) if weekday else None
        day_list = check_days(days) if days else None
    except ScheduleError as exc:
        raise click.BadParameter(exc.message, param_hint=option.get(exc.field, "--days")) from None
    sub = Subscriber(
        email=_check_address(email),
        name=name,
        keywords=_check_queries("--keyword", keywords),
        exclude=_check_queries("--exclude", exclude),
        max_papers=max_papers,
        send_at=send_text,
        timezone=zone_name,
        frequency=frequency,
        weekday=day_name,
        days=day_list or None,
    )
    with state.store() as store:
        added = _guard(lambda: store.add_subscriber(sub))
    click.echo(f"{added.email}: active")


@subscribers.command("list")
@click.pass_obj
def subscribers_list(state: _State) -> None:
    """List every subscriber with their state."""
    with state.store() as store:
        subs = _guard(lambda: store.subscribers())
    if not subs:
        click.echo("no subscribers")
    for s in subs:
        keywords = "; ".join(s.keywords) or "(everything)"
        click.echo(f"{s.email}\t{_status_text(s)}\t{keywords}")


def _status_text(sub: Subscriber) -> str:
    """``active``, ``unsubscribed (removed)``, ``suspended (bounced: 3 in a row)``..."""
    if sub.status == "active":
        return "active"
    if sub.status_reason == "bounced":
        return f"{sub.status} (bounced: {sub.hard_bounces} in a row)"
    return f"{sub.status} ({sub.status_reason})" if sub.status_reason else sub.status


@subscribers.command("show")
@click.argument("email")
@click.pass_obj
def subscribers_show(state: _State, email: str) -> None:
    """Show one subscriber, their queries and their recent deliveries."""
    from digest.serve import schedule_of

    address = _check_address(email)
    cfg = state.config()
    with state.store() as store:
        sub = _guard(lambda: store.subscriber(address))
        if sub is None:
            click.echo(f"error: no subscriber {address}", err=True)
            sys.exit(EXIT_FAILED)
        assert sub.id is not None
        sub_id = sub.id
        history = _guard(lambda: store.history(sub_id))
        total = _guard(lambda: store.sent_count(sub_id))
    click.echo(f"email:      {sub.email}")
    click.echo(f"name:       {sub.name or ''}")
    click.echo(f"status:     {_status_text(sub)}")
    click.echo(f"keywords:   {'; '.join(sub.keywords) or '(everything)'}")
    click.echo(f"exclude:    {'; '.join(sub.exclude) or '(none)'}")
    click.echo(f"max papers: {sub.max_papers or '(default)'}")
    sched = _guard(lambda: schedule_of(cfg, sub))
    click.echo(f"schedule:   {sched.describe()}")
    if sub.status == "active":
        when = sub.next_send_at
        click.echo(
            f"next send:  {when.astimezone(sched.zone):%Y-%m-%d %H:%M %Z} ({_at(when)})"
            if when
            else "next send:  not placed yet (digest serve places it at its next pass)"
        )
    click.echo(f"papers sent: {total}")
    for rec in history:
        line = f"  {rec.listing_date}  {rec.status:8} {rec.papers} papers"
        if rec.error:
            line += f"  ({rec.error})"
        click.echo(line)


@subscribers.command("remove")
@click.argument("email")
@click.pass_obj
def subscribers_remove(state: _State, email: str) -> None:
    """Unsubscribe someone (their history is kept, so nothing is ever resent)."""
    address = _check_address(email)
    with state.store() as store:
        removed = _guard(lambda: store.remove_subscriber(address))
    if not removed:
        click.echo(f"error: no subscriber {address}", err=True)
        sys.exit(EXIT_FAILED)
    click.echo(f"{address}: unsubscribed")


@subscribers.command("import")
@click.argument("file", metavar="FILE")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(roster.FORMATS),
    help="csv or jsonl (default: from FILE's extension: .csv, .jsonl, .ndjson).",
)
@click.pass_obj
def subscribers_import(state: _State, file: str, fmt: str | None) -> None:
    """Add or update subscribers from a CSV or JSON Lines file (FILE - reads stdin).

    Columns: email (required), name, keywords, exclude (queries separated by ";"),
    max_papers; status is ignored. A known address is updated, never duplicated, and no
    one unsubscribed or suspended is reactivated. Bad rows are reported with their line
    and skipped; of two rows with one address, the later wins.

    Exit codes: 0 every row imported; 1 some rows rejected (the others imported);
    2 the file cannot be read, its header is wrong, or its format is unknown.
    """
    source = "<stdin>" if file == "-" else file
    kind = fmt or (None if file == "-" else roster.format_for(file))
    if kind is None:
        raise click.UsageError(f"cannot tell the format of {source}: give --format csv|jsonl")
    try:
        data = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
    except OSError as exc:
        _fail(RosterError(source, f"cannot read it: {exc.strerror or exc}"))
    read = _guard(lambda: roster.read(roster.decode(data, source), kind, source))
    notes: list[roster.RowError | roster.Duplicate] = [*read.errors, *read.duplicates]
    for note in sorted(notes, key=lambda n: n.line):
        prefix = "warning: " if isinstance(note, roster.Duplicate) else ""
        click.echo(prefix + str(note), err=True)
    counts = ImportCounts()
    if read.subscribers:
        with state.store() as store:
            counts = _guard(lambda: store.import_subscribers(read.subscribers))
    click.echo(
        f"{source}: added {counts.added}, updated {counts.updated}, unchanged {counts.unchanged},"
        f" kept unsubscribed {counts.kept_unsubscribed}, rejected {read.rejected}"
    )
    if read.rejected:
        sys.exit(EXIT_FAILED)


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
@click.pass_obj
def subscribers_export(state: _State, fmt: str | None, out: Path | None) -> None:
    """Write every subscriber, with their status, as CSV or JSON Lines.

    `digest subscribers import` reads the file back (ignoring status). Tokens are not
    exported: they are the private feed addresses.
    """
    kind = fmt or (roster.format_for(out.name) if out else None) or "csv"
    with state.store() as store:
        subs = store.iter_subscribers()
        if out is None:
            _guard(lambda: _export(sys.stdout.buffer, subs, kind))
            return
        try:
            with open_atomic(out) as fh:
                count = _guard(lambda: _export(fh, subs, kind))
        except OSError as exc:
            click.echo(f"error: cannot write {out}: {exc.strerror or exc}", err=True)
            sys.exit(EXIT_FAILED)
    click.echo(f"{out}: {count} subscribers")


def _export(stream: BinaryIO, subs: Iterable[Subscriber], kind: str) -> int:
    """Write ``subs`` to ``stream`` a thousand lines at a time; returns how many."""
    count = 0

    def counted() -> Iterator[Subscriber]:
        nonlocal count
        for sub in subs:
            problem = roster.export_problem(sub, kind)
            if problem:
                click.echo(f"warning: {problem}; use --format jsonl", err=True)
            count += 1
            yield sub

    pending: list[str] = []
    for line in roster.export_lines(counted(), kind):
        pending.append(line)
        if len(pending) >= 1000:
            stream.write("".join(pending).encode())
            pending.clear()
    stream.write("".join(pending).encode())
    stream.flush()
    return count


@cli.group("config")
def config_group() -> None:
    """Inspect configuration."""


@config_group.command("example")
def config_example() -> None:
    """Print a config file with every key, its default and its meaning."""
    from digest.config import example_toml

    click.echo(example_toml(), nl=False)


@config_group.command("check")
@click.pass_obj
def config_check(state: _State) -> None:
    """Validate the config file and say what it sets up."""
    cfg = state.config()
    mail = (
        f"SMTP {cfg.smtp.host}:{cfg.smtp.port}"
        if cfg.smtp.host
        else f"outbox {cfg.mail.outbox_dir}"
    )
    click.echo(f"{cfg.path}: ok; {len(cfg.subscribers)} subscribers, mail via {mail}")


@cli.command()
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
    from digest.cli.demo import SAMPLE_DIR, write_demo_config
    from digest.run import make_context
    from digest.run import run as run_pipeline

    folder = folder.resolve()
    for name in ("demo.db", "demo.db-wal", "demo.db-shm"):
        (folder / name).unlink(missing_ok=True)
    for name in ("outbox", "public"):
        shutil.rmtree(folder / name, ignore_errors=True)
    config_path = write_demo_config(folder)
    cfg = _guard(lambda: load(config_path))
    days = sorted(date.fromisoformat(p.stem) for p in SAMPLE_DIR.glob("*.json"))
    with Store(cfg.database) as store:
        for day in days:
            now = datetime.combine(day, datetime.min.time(), tzinfo=UTC).replace(hour=7)
            ctx = _guard(partial(make_context, cfg, store, now=now))
            report = _run_async(run_pipeline(ctx, day))
            _print_report(report)
            click.echo()
    click.echo(f"config:  {config_path}")
    click.echo(f"emails:  {cfg.mail.outbox_dir}  (open the .eml files in a mail program)")
    click.echo(f"feeds:   {cfg.feeds.dir / 'feed.xml'}, {cfg.feeds.dir / 'feed.atom'}")
    click.echo(
        f"again:   digest --config {config_path} run --date {days[-1]}  (sends nothing twice)"
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``digest`` command."""
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        cli.main(
            args=list(argv) if argv is not None else None, prog_name="digest", standalone_mode=True
        )
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
