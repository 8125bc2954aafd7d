"""Scheduled sends: each subscriber's digest at their own hour, one fetch per pass.

:func:`send_due` is one pass at an instant: it places newly active subscribers on their
schedule (their first send is the next one: starting never sends by itself), fetches the
listings the due subscribers need once (today's and ``lookback_days`` before it; after
downtime, every date since their last digest, at most ``catch_up_days``), and sends each of
them one digest of what is new and matching, through the same crash-safe outbox as
``digest run``. A subscriber who missed several sends gets one catch-up digest; the
history of sent papers (kept ``[history] keep_days``) makes a second send impossible. With
``run.queue`` (PostgreSQL) a pass sends nothing itself: its due subscribers go as batches to
``digest worker`` processes (:func:`digest.run.queue.deliver_due_queued`), and it waits.

:class:`Service` runs passes every minute with APScheduler's ``AsyncIOScheduler`` in the web
app's event loop, rebuilds feeds when something changed, and stops cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from digest.config import Config
from digest.deliver import FileOutboxSender, Outgoing
from digest.errors import DigestError, SourceError
from digest.models import Listing, Paper, Subscriber
from digest.run import (
    BATCH,
    Context,
    Pool,
    Recorder,
    RunReport,
    SourceSet,
    claimer,
    describe,
    known_papers,
    plan_batch,
    recorded_run,
    requeue_stale,
    resume_items,
    store_listing,
    write_feeds,
)
from digest.schedule import Schedule, ScheduleError, next_send, window
from digest.select import DayMatcher
from digest.serve.mailbox import MailboxJob, add_mailbox_job
from digest.store import Store
from digest.store.history import prune_after_run

log = logging.getLogger("digest.scheduler")


@dataclass
class PassReport(RunReport):
    """What one scheduled pass did."""

    due: int = 0
    placed: int = 0
    dates: list[date] = field(default_factory=list)
    stopped: bool = False


def schedule_of(config: Config, sub: Subscriber) -> Schedule:
    """The subscriber's schedule; a stored value that no longer validates (edited by hand
    in the database) falls back to the configuration's default, with a warning."""
    try:
        return config.schedule_of(sub)
    except ScheduleError as exc:
        log.warning("subscriber=%s has an invalid schedule (%s): using the default", sub.email, exc)
        return config.schedule_of(Subscriber(email=sub.email))


def place_new(ctx: Context, now: datetime) -> int:
    """Give every active subscriber without one their next send time (never ``now``)."""
    placed = 0
    while batch := ctx.store.members.unscheduled(BATCH):
        marks = [(s.id, next_send(schedule_of(ctx.config, s), now), None) for s in batch]
        ctx.store.members.set_next_sends(
            [(i, n, c) for i, n, c in marks if i is not None], only_if_due=None
        )
        placed += len(batch)
    return placed


def today_of(ctx: Context, now: datetime) -> date:
    """The listing date "today" names: the date in the configured zone."""
    return now.astimezone(ctx.config.zone).date()


def dates_for(ctx: Context, sub: Subscriber, today: date) -> tuple[date, ...]:
    """The listing dates one subscriber's digest looks at now, newest first."""
    cfg = ctx.config.schedule
    return tuple(
        window(
            sub.covered_until,
            today,
            period_days=schedule_of(ctx.config, sub).period().days,
            lookback_days=cfg.lookback_days,
            max_days=cfg.catch_up_days,
        )
    )


def merged(listings: dict[date, Listing], dates: tuple[date, ...]) -> tuple[Paper, ...]:
    """The papers of several listings, newest date first, each paper once."""
    seen: set[str] = set()
    out: list[Paper] = []
    for day in dates:
        listing = listings.get(day)
        for paper in listing.papers if listing else ():
            if paper.key not in seen:
                seen.add(paper.key)
                out.append(paper)
    return tuple(out)


async def fetch_dates(
    ctx: Context, dates: set[date], today: date, report: PassReport
) -> dict[date, Listing]:
    """Fetch each date once from every source and store it. Today's failure (every source
    failed) fails the pass (SourceError); an older date's falls back to what is stored,
    with a warning. Older dates go first, so that today's fetch, which also catches up the
    dates a source missed lately (:class:`~digest.run.fetch.SourceSet`), finds them done."""
    found: dict[date, Listing] = {}
    for day in sorted(dates):
        try:
            if isinstance(ctx.source, SourceSet):
                listing = await ctx.source.fetch(day, catch_up=day == today)
            else:
                listing = await ctx.source.fetch(day)
        except SourceError as exc:
            if day == today:
                raise
            stored = ctx.store.papers.listing(day)
            report.warnings.append(f"{day}: {exc}; using the stored listing")
            if stored is not None:
                found[day] = stored
            continue
        report.new += len(listing.papers) - len(known_papers(ctx.store, listing.papers))
        report.fetched += len(listing.papers)
        report.warnings.extend(listing.warnings)
        report.warnings.extend(f"{day}: {line}" for line in describe(listing.failures))
        if day == today:
            report.source_failures = list(listing.failures)
        stored = store_listing(ctx.store, listing, ctx.now)
        # every source's papers of the date, with those added on earlier fetches
        found[day] = ctx.store.papers.listing(day) or stored
    return found


async def send_due(
    ctx: Context,
    *,
    should_stop: Callable[[], bool] = lambda: False,
    refresh: bool = False,
    sync: bool = True,
) -> PassReport:
    """One scheduled pass at ``ctx.now``; see the module docstring.

    With ``refresh``, today's listing (and ``lookback_days`` before it) is fetched even if
    nobody is due, so the feeds follow the listing. Recorded in the ``runs`` table only
    when something was fetched or resumed. Raises SourceError when today's listing cannot
    be fetched (the due subscribers stay due), StateError.
    """
    now = ctx.now
    today = today_of(ctx, now)
    report = PassReport(day=today)
    if sync:  # the config's [[subscribers]] into the database
        ctx.store.members.sync_config_subscribers(ctx.config.subscribers)
        ctx.store.likes.sync_config(ctx.config.subscribers)  # their like lists
    report.placed = place_new(ctx, now)
    first = ctx.store.members.due(now, BATCH)
    if not first and not refresh and not ctx.store.outbox.pending():
        return report

    async with recorded_run(ctx, report, today) as record:
        windows: dict[int, tuple[date, ...]] = {}
        after = 0
        batch = first
        while batch:  # first pass over the due: which dates are needed
            for sub in batch:
                assert sub.id is not None
                windows[sub.id] = dates_for(ctx, sub, today)
            after = batch[-1].id or after
            batch = ctx.store.members.due(now, BATCH, after)
        report.due = len(windows)
        needed = {d for dates in windows.values() for d in dates}
        if refresh:
            lookback = ctx.config.schedule.lookback_days
            needed.update(today - timedelta(days=i) for i in range(lookback + 1))
        report.dates = sorted(needed, reverse=True)
        listings = await fetch_dates(ctx, needed, today, report) if needed else {}
        record.stage = "deliver"
        # with run.queue: batches for `digest worker` processes, on any machine
        deliver = _deliver_queued if ctx.config.run.queue else _deliver_due
        await deliver(
            ctx, listings, windows, today, report, record.run_id, record.clock, should_stop
        )
        keep = ctx.config.history  # the sent-state kept bounded, once an hour at most
        prune_after_run(ctx.store.engine, keep.keep_days, keep.archive_days, now, every=3600)
    return report


async def _deliver_due(
    ctx: Context,
    listings: dict[date, Listing],
    windows: dict[int, tuple[date, ...]],
    today: date,
    report: PassReport,
    run_id: int,
    clock: Callable[[], datetime],
    should_stop: Callable[[], bool],
) -> None:
    now = ctx.now
    recorder = Recorder(ctx.store, report, ctx.config.mail.max_hard_bounces)
    report.requeued = requeue_stale(ctx)
    pending = ctx.store.outbox.pending()
    pools: dict[tuple[date, ...], Pool] = {}

    def pool_of(sub: Subscriber) -> Pool:
        assert sub.id is not None
        dates = windows.get(sub.id) or dates_for(ctx, sub, today)
        pool = pools.get(dates)
        if pool is None:
            papers = merged(listings, dates)
            # Labelled as a period only when it covers more than today and the lookback
            # (weekly, catch-up): re-reading yesterday's listing is a detail.
            regular = 1 + ctx.config.schedule.lookback_days
            since = dates[-1] if len(dates) > regular else None
            pool = pools[dates] = Pool(today, dates, DayMatcher(papers), len(papers), since)
        return pool

    claim = claimer(ctx, run_id, clock)

    async def items() -> AsyncIterator[Outgoing]:
        for item in resume_items(ctx, pending, report, claim):
            if should_stop():
                report.stopped = True
                return
            yield item
        after = 0
        while batch := ctx.store.members.due(now, BATCH, after):
            if should_stop():
                report.stopped = True
                return
            after = batch[-1].id or after
            # Subscribers who became due after the first pass (just confirmed) wait for the
            # next pass, when the listings they need have been fetched.
            batch = [s for s in batch if s.id in windows]
            outgoing = plan_batch(ctx, batch, pool_of, report, recorder, run_id)
            # Their digests are recorded as pending: move them on to their next send.
            ctx.store.members.set_next_sends(
                [
                    (s.id, next_send(schedule_of(ctx.config, s), now), today)
                    for s in batch
                    if s.id is not None
                ],
                only_if_due=now,
            )
            for item in outgoing:
                if should_stop():  # recorded claimed: released at the end of the pass
                    report.stopped = True
                    return
                yield item

    if isinstance(ctx.sender, FileOutboxSender):
        report.outbox = ctx.config.mail.outbox_dir
    await ctx.sender.deliver(items(), recorder)
    if report.new or report.placed or report.suspended:
        report.feeds = write_feeds(ctx)


async def _deliver_queued(
    ctx: Context,
    listings: dict[date, Listing],
    windows: dict[int, tuple[date, ...]],
    today: date,
    report: PassReport,
    run_id: int,
    _clock: Callable[[], datetime],
    should_stop: Callable[[], bool],
) -> None:
    """The pass's digests as batches for the workers (``run.queue``): the due subscribers
    grouped by their window of dates, and the pending digests; this process sends nothing.
    Waits for the workers, then writes the feeds (not when it stopped waiting)."""
    from digest.run.queue import Window, deliver_due_queued  # procrastinate: optional extra

    report.requeued = requeue_stale(ctx)
    pending = ctx.store.outbox.pending()

    groups: dict[tuple[date, ...], list[int]] = {}
    for sid, dates in windows.items():
        groups.setdefault(dates, []).append(sid)
    regular = 1 + ctx.config.schedule.lookback_days  # as the pools of _deliver_due
    due = [
        Window(dates, [p.key for p in merged(listings, dates)], since, ids)
        for dates, ids in groups.items()
        for since in [dates[-1] if len(dates) > regular else None]
    ]
    await deliver_due_queued(
        ctx, due, today, report, run_id, resume=bool(pending), should_stop=should_stop
    )
    report.stopped = report.workers_hold
    if not report.stopped and (report.new or report.placed or report.suspended):
        report.feeds = write_feeds(ctx)


def next_sends(
    config: Config, store: Store, now: datetime
) -> list[tuple[Subscriber, Schedule, datetime]]:
    """Every active subscriber's next send (stored, else computed from ``now``), soonest
    first."""
    out: list[tuple[Subscriber, Schedule, datetime]] = []
    for batch in store.members.active_batches(BATCH):
        for sub in batch:
            sched = schedule_of(config, sub)
            out.append((sub, sched, sub.next_send_at or next_send(sched, now)))
    out.sort(key=lambda t: (t[2], t[0].email))
    return out


def pass_fields(report: PassReport | None) -> dict[str, object]:
    """What the log line of a pass says (``outcome``: ok, idle (nothing fetched or
    sent), failed), as logfmt fields."""
    if report is None:
        return {"outcome": "failed"}
    return {
        "outcome": "ok" if report.run_id is not None else "idle",
        "due": report.due,
        "dates": ",".join(d.isoformat() for d in report.dates),
        "fetched": report.fetched,
        "new": report.new,
        "sent": report.sent,
        "failed": report.failed,
        "deferred": report.deferred,
    }


class Service:
    """The long-running side of ``digest serve``: a pass every minute, one at a time.

    Besides the due subscribers, a pass fetches today's listing at least every
    ``refresh_every`` (and at start), so that feeds and the archive follow the listing on
    days nobody is due. ``make_context(now)`` builds the context of a pass (so the clock
    is injectable).
    """

    def __init__(
        self,
        make_context: Callable[[datetime], Context],
        *,
        tick_seconds: int = 60,
        refresh_every: timedelta = timedelta(hours=1),
    ):
        self.make_context = make_context
        self.tick_seconds = tick_seconds
        self.refresh_every = refresh_every
        self._fetched_at: datetime | None = None
        self._synced = False
        self.scheduler: object | None = None
        self.running = False
        self.stopping = False
        self.last_error: str | None = None
        self.feeds_dirty = True  # built at the first pass
        self.last_tick: float | None = None  # time.monotonic() of the last tick
        self._busy = asyncio.Lock()
        self._current: asyncio.Task[None] | None = None
        self._retry_at: datetime | None = None
        self._failures = 0
        self.last_pass_at: datetime | None = None  # when the last pass ran (ok or not)
        self.last_good_pass_at: datetime | None = None
        self.mailbox: MailboxJob | None = None  # the bounce mailbox's job, once started

    def start(self) -> None:
        """Start APScheduler in the running event loop: a pass at once, then every minute."""
        from apscheduler.schedulers.asyncio import AsyncIOScheduler
        from apscheduler.triggers.date import DateTrigger
        from apscheduler.triggers.interval import IntervalTrigger

        scheduler = AsyncIOScheduler(timezone=UTC)
        # Ticks on round instants (every minute at :00), so an 08:00 send leaves at 08:00:00.
        step = self.tick_seconds
        aligned = datetime.fromtimestamp(-(-time.time() // step) * step, UTC)
        scheduler.add_job(
            self.tick,
            IntervalTrigger(seconds=step, start_date=aligned, timezone=UTC),
            id="tick",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )
        # And one pass at once: catch-up digests and the first fetch need not wait.
        scheduler.add_job(self.tick, DateTrigger(datetime.now(UTC)), id="start")
        # The bounce mailbox, every mailbox.every_minutes (digest.serve.mailbox).
        self.mailbox = add_mailbox_job(scheduler, self.make_context)
        scheduler.start()
        self.scheduler = scheduler
        self.running = True

    async def tick(self, now: datetime | None = None) -> PassReport | None:
        """One pass (skipped while another runs, or while backing off after a failure)."""
        self.last_tick = time.monotonic()
        if self.stopping or self._busy.locked():
            return None
        now = now or datetime.now(UTC)
        if self._retry_at is not None and now < self._retry_at:
            return None
        async with self._busy:
            self._current = asyncio.current_task()
            try:
                return await self._pass(now)
            finally:
                self._current = None

    async def _pass(self, now: datetime) -> PassReport | None:
        ctx = self.make_context(now)
        refresh = self._fetched_at is None or now - self._fetched_at >= self.refresh_every
        self.last_pass_at = now
        try:
            report = await send_due(
                ctx, should_stop=lambda: self.stopping, refresh=refresh, sync=not self._synced
            )
            self._synced = True  # the config does not change while the process runs
        except DigestError as exc:
            self._back_off(now, str(exc))
            return None
        except Exception as exc:  # a bug: counted as a failed pass all the same
            log.exception("scheduled pass crashed")
            self._back_off(now, f"{type(exc).__name__}: {exc}")
            return None
        if report.deferred:
            self._back_off(now, f"{report.deferred} digest(s) left pending", report)
        else:
            self._failures, self._retry_at, self.last_error = 0, None, None
            self.last_good_pass_at = now
            log.info("scheduled pass", extra={"fields": pass_fields(report)})
        if report.dates:
            self._fetched_at = now
        if self.feeds_dirty and not report.feeds:
            write_feeds(ctx)
        self.feeds_dirty = False
        return report

    @property
    def healthy(self) -> bool:
        """Running, and ticking: a scheduler whose ticks stopped coming is not healthy."""
        if not self.running:
            return False
        if self.last_tick is None:
            return True  # just started
        return time.monotonic() - self.last_tick < max(300, 5 * self.tick_seconds)

    @property
    def failed_passes(self) -> int:
        """How many passes in a row failed (0 after a good one)."""
        return self._failures

    def _back_off(self, now: datetime, error: str, report: PassReport | None = None) -> None:
        """Wait 2, 4, 8 ... 30 minutes before the next pass: a failing source or server is
        not hammered every minute, and the admin alert counts real attempts."""
        self._failures += 1
        minutes = min(30, 2 ** min(self._failures, 5))
        self._retry_at = now + timedelta(minutes=minutes)
        self.last_error = error
        fields = {**pass_fields(report), "outcome": "failed", "failed_passes": self._failures}
        log.error(
            "scheduled pass failed: %s; next attempt in %s min",
            error,
            minutes,
            extra={"fields": {**fields, "error": error, "retry_in_min": minutes}},
        )

    async def stop(self, timeout: float) -> None:
        """Take no new work, let the pass in flight finish its SMTP transactions (at most
        ``timeout`` seconds, then cancel it: its claims are given back), stop APScheduler."""
        self.stopping = True
        scheduler: Any = self.scheduler
        if scheduler is not None:
            scheduler.pause()  # no new pass; shutting it down now would cancel this one
        self.running = False
        current = self._current
        if current is not None and not current.done():
            log.info("stopping: letting the messages in flight finish (at most %ss)", timeout)
            try:
                await asyncio.wait_for(asyncio.shield(current), timeout)
            except TimeoutError:
                log.warning("the pass in flight did not finish in %ss: cancelling it", timeout)
                current.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await current
            except Exception:  # its error was logged by the pass
                pass
        if scheduler is not None:
            scheduler.shutdown(wait=False)
