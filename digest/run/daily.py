"""The daily cycle, where the edges meet the core: fetch → diff → match → render → deliver → feeds.

Delivery is crash-safe: each digest is recorded as pending (its papers reserved) before any
SMTP traffic, and marked sent right after the server accepts it. A run that dies leaves its
pending digests to the next run, which sends them first.

A delivery moves pending → sending → sent | failed. A run records the digests it plans
already claimed by itself (sending, with its id); a digest an earlier run left pending is
*claimed* right before it is handed to the sender (``Store.claim``: one conditional UPDATE,
pending → sending with the run's id), so two runs resuming the same pending digests never
both send one. A run gives back what it claimed but did not hand over when it stops; a
claim left by a run that died (SIGKILL, power cut) is re-queued by the next run once
:func:`stale_claim` says that run is gone. The only duplicate window: a message the server
had accepted when its run died, before ``mark_sent`` recorded it; it is sent again, with the
same Message-ID. At most the messages in flight at that instant are affected: one per
connection (``smtp.concurrency``); claimed messages still queued were not sent, and go out
once.

Every run is recorded in the ``runs`` table (what ``digest status`` reads) and may alert the
admin (:mod:`digest.status`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from digest.compose import (
    EmailLinks,
    Renderer,
    build_message,
    clean_for_smtp,
    list_id_for,
    make_message_id,
    sender_address,
    tokens,
)
from digest.config import Config
from digest.deliver import FileOutboxSender, Outcome, Outgoing, Sender, SmtpSender, send_one
from digest.errors import DigestError
from digest.files import write_atomic
from digest.models import Listing, Match, Subscriber
from digest.run.publish import publish_feeds
from digest.run.status import alert_admin
from digest.run.workers import WorkerError, WorkerPool, cores, worker_count
from digest.select import DayMatcher, Selection, select
from digest.sources import ListingSource, make_source
from digest.store import (
    Claim,
    PendingDelivery,
    PlannedDelivery,
    Store,
    new_delivery_id,
)

log = logging.getLogger("digest.pipeline")
T = TypeVar("T")

SECRET_ENV = "DIGEST_SECRET"
BATCH = 1000
FIRST_BATCH = 100
#: A claim by a run on another host (whose process cannot be checked) is taken back after
#: this long: far more than one message can spend queued and sent (attempts × timeouts).
CLAIM_LEASE = timedelta(hours=6)


@dataclass
class SubscriberReport:
    email: str
    matched: int
    sent: bool = False
    error: str | None = None


@dataclass
class RunReport:
    """What a run did, for the summary the CLI prints."""

    day: date
    fetched: int = 0
    new: int = 0
    warnings: list[str] = field(default_factory=list)
    subscribers: list[SubscriberReport] = field(default_factory=list)
    resumed: int = 0
    requeued: int = 0
    suspended: list[str] = field(default_factory=list)
    run_id: int | None = None
    sent: int = 0
    failed: int = 0
    deferred: int = 0
    dry_run: bool = False
    feeds: list[Path] = field(default_factory=list)
    outbox: Path | None = None


@dataclass(frozen=True)
class Context:
    """Everything a run needs from the outside world, injected."""

    config: Config
    store: Store
    source: ListingSource
    sender: Sender
    renderer: Renderer
    secret: bytes
    now: datetime


@dataclass(frozen=True)
class Pool:
    """The papers one group of digests is chosen from: one listing, or several merged.

    ``day`` is the date the digests are recorded and labelled under; ``dates`` are the
    listing dates whose papers the subscriber may already have had; ``since`` the oldest
    of them when the digest covers several (None: one day).
    """

    day: date
    dates: tuple[date, ...]
    matcher: DayMatcher
    total: int
    since: date | None = None

    @classmethod
    def of(cls, listing: Listing) -> Pool:
        return cls(listing.date, (listing.date,), DayMatcher(listing.papers), len(listing.papers))


def make_sender(config: Config) -> Sender:
    """SMTP when ``smtp.host`` is set, else ``.eml`` files in ``mail.outbox_dir``."""
    smtp = config.smtp
    if not smtp.host:
        return FileOutboxSender(config.mail.outbox_dir)
    context = None
    if not smtp.verify_tls:
        import ssl

        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return SmtpSender(
        smtp.host,
        smtp.port,
        security=smtp.security,  # type: ignore[arg-type]
        username=smtp.username,
        password=smtp.password(),
        timeout=smtp.timeout,
        concurrency=smtp.concurrency,
        max_attempts=smtp.max_attempts,
        tls_context=context,
    )


def make_context(
    config: Config, store: Store, *, now: datetime | None = None, sender: Sender | None = None
) -> Context:
    secret_text = os.environ.get(SECRET_ENV)
    secret = secret_text.encode() if secret_text else store.secret()
    src = config.source
    return Context(
        config=config,
        store=store,
        source=make_source(
            src.kind,
            str(src.path) if src.kind == "file" else src.url,
            timeout=src.timeout,
            max_retries=src.retries,
            max_bytes=src.max_bytes,
        ),
        sender=sender or make_sender(config),
        renderer=Renderer(
            config.templates_dir, site_title=config.feeds.title, base_url=config.base_url
        ),
        secret=secret,
        now=now or datetime.now(UTC),
    )


def links_for(ctx: Context, sub: Subscriber, day: date) -> EmailLinks:
    base = ctx.config.base_url
    ident = str(sub.id) if sub.id is not None else "email:" + sub.email
    return EmailLinks(
        unsubscribe_url=f"{base}/unsubscribe?token={tokens.sign(ctx.secret, 'unsubscribe', ident)}",
        manage_url=f"{base}/manage?token={tokens.sign(ctx.secret, 'manage', ident)}"
        if sub.id is not None
        else None,
        feed_url=f"{base}/feeds/{sub.token}.atom" if sub.token else f"{base}/feed.atom",
        archive_url=f"{base}/archive/{day.isoformat()}",
    )


class Composed(NamedTuple):
    data: bytes
    clean: bool  #: see :attr:`Outgoing.clean`


def compose(
    ctx: Context,
    sub: Subscriber,
    day: date,
    selection: Selection,
    total: int,
    *,
    message_id: str,
    created_at: datetime,
    since: date | None = None,
) -> Composed:
    """The message bytes of one subscriber's digest."""
    cfg = ctx.config
    links = links_for(ctx, sub, day)
    rendered = ctx.renderer.render_digest(
        day=day,
        subscriber=sub,
        matches=selection.all,
        links=links,
        total_in_listing=total,
        max_papers=len(selection.shown),
        since=since,
    )
    from_addr = sender_address(cfg.mail.sender)
    data = build_message(
        sender=cfg.mail.sender,
        to=sub.email,
        to_name=sub.name,
        subject=rendered.subject,
        text=rendered.text_body,
        html=rendered.html_body,
        message_id=message_id,
        date=created_at,
        list_id=cfg.mail.list_id or list_id_for(cfg.mail.sender),
        unsubscribe_url=links.unsubscribe_url,
        unsubscribe_mailto=f"mailto:{from_addr}?subject=unsubscribe",
    )
    return Composed(data, clean_for_smtp(rendered.text_body, rendered.html_body))


def _settle(batch: list[tuple[str, asyncio.Future[None]]], error: Exception | None) -> None:
    for _, done in batch:
        if done.done():  # cancelled meanwhile
            continue
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)


class _Recorder:
    """Marks each delivery's fate in the store as soon as it is known."""

    def __init__(
        self,
        store: Store | None,
        report: RunReport,
        max_hard_bounces: int | None = None,
        writer: Executor | None = None,
    ) -> None:
        self.store = store
        self.report = report
        self.max_hard_bounces = max_hard_bounces
        self.by_email: dict[str, SubscriberReport] = {}
        #: Where the store's writes run (a thread: the event loop goes on composing and
        #: sending while the database commits or waits for its lock); None: inline.
        self.writer = writer
        #: Sent marks have a thread of their own, which commits what was queued, group
        #: after group, without a round trip through the (busy) event loop between two.
        self._sent_writer = (
            ThreadPoolExecutor(1, thread_name_prefix="digest-sent") if writer else None
        )
        self._unmarked: queue.SimpleQueue[tuple[str, asyncio.Future[None]]] = queue.SimpleQueue()
        self._marking: asyncio.Future[None] | None = None
        self._running = False
        self._lock = threading.Lock()
        #: Marks written, in how many commits, and the seconds messages waited for them.
        self.marks = self.commits = 0
        self.mark_wait = 0.0

    async def _mark_sent(self, key: str) -> None:
        """Mark one delivery sent; returns once it is committed. The messages accepted
        while a commit runs are marked together by the next one (a group commit), so each
        connection still waits for its own message to be recorded before it takes another:
        the crash duplicate bound stays one message per connection."""
        assert self.store is not None
        if self._sent_writer is None:
            self.store.mark_sent(key)
            return
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        self._unmarked.put((key, done))
        with self._lock:  # the thread stops only when it saw the queue empty, under it
            if not self._running:
                self._running = True
                self._marking = loop.run_in_executor(self._sent_writer, self._mark_queued, loop)
        started = time.monotonic()
        await done
        self.marks += 1
        self.mark_wait += time.monotonic() - started

    def _mark_queued(self, loop: asyncio.AbstractEventLoop) -> None:
        """In the marks' thread: commit what is queued, group after group, until nothing
        is; each group's connections are woken by one callback in the event loop."""
        assert self.store is not None
        while True:
            with self._lock:
                if self._unmarked.empty():
                    self._running = False
                    return
            batch: list[tuple[str, asyncio.Future[None]]] = []
            with contextlib.suppress(queue.Empty):
                while True:
                    batch.append(self._unmarked.get_nowait())
            self.commits += 1
            error: Exception | None = None
            try:
                self.store.mark_sent_many([key for key, _ in batch])
            except Exception as exc:  # each waiting connection gets the error
                error = exc
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
                loop.call_soon_threadsafe(_settle, batch, error)

    async def close(self) -> None:
        """Wait for the marks still being written (none are left once sending ends)."""
        if self._marking is not None:
            await asyncio.gather(self._marking, return_exceptions=True)
        if self._sent_writer is not None:
            self._sent_writer.shutdown(wait=True)

    async def _write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self.writer is None:
            return fn(*args, **kwargs)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.writer, partial(fn, *args, **kwargs))

    async def __call__(self, outcome: Outcome) -> None:
        item = outcome.item
        rep = self.by_email.get(item.recipients[0])
        if outcome.ok:
            if self.store is not None:
                await self._mark_sent(str(item.key))
            self.report.sent += 1
            if rep:
                rep.sent = True
            log.info("sent to=%s message_id=%s", item.recipients[0], item.message_id)
            return
        error = str(outcome.error) if outcome.error else "unknown error"
        if rep:
            rep.error = error
        if outcome.error is not None and not outcome.error.transient:
            suspended = False
            if self.store is not None:
                suspended = await self._write(
                    self.store.mark_failed,
                    str(item.key),
                    error,
                    max_hard_bounces=self.max_hard_bounces,
                )
            self.report.failed += 1
            log.warning(
                "failed to=%s message_id=%s error=%s", item.recipients[0], item.message_id, error
            )
            if suspended:
                self.report.suspended.append(item.recipients[0])
                log.warning(
                    "suspended to=%s after %s permanent failures in a row",
                    item.recipients[0],
                    self.max_hard_bounces,
                )
        else:
            if self.store is not None:
                await self._write(self.store.mark_deferred, str(item.key), error)
            self.report.deferred += 1
            log.warning(
                "deferred to=%s message_id=%s error=%s", item.recipients[0], item.message_id, error
            )


def _envelope_from(ctx: Context) -> str:
    return sender_address(ctx.config.mail.sender)


def _resume_items(
    ctx: Context, pending: Sequence[PendingDelivery], report: RunReport, claim: _Claimer
) -> Iterable[Outgoing]:
    """Rebuild the messages of digests recorded earlier but not yet accepted.

    Each is claimed first; one another run claimed meanwhile is skipped.
    """
    keys = {k for p in pending for k in p.paper_keys}
    papers = ctx.store.papers_by_key(keys)
    # One matcher and one listing per date, shared by every digest of that date: a restart
    # after a crash may have to resume most of a day's digests.
    by_date: dict[date, tuple[DayMatcher, int]] = {}
    for p in pending:
        if not claim(p.id, p.subscriber.email, p.message_id):
            continue
        found = [papers[k] for k in p.paper_keys if k in papers]
        if p.listing_date not in by_date:
            listing = ctx.store.listing(p.listing_date)
            day_papers = listing.papers if listing else tuple(found)
            by_date[p.listing_date] = (DayMatcher(day_papers), len(day_papers))
        matcher, total = by_date[p.listing_date]
        ranked = {
            m.paper.key: m for m in matcher.select(p.subscriber.keywords, p.subscriber.exclude)
        }
        matches = [ranked.get(paper.key) or Match(paper=paper, score=0.0) for paper in found]
        selection = Selection(shown=tuple(matches[: p.shown]), more=tuple(matches[p.shown :]))
        message = compose(
            ctx,
            p.subscriber,
            p.listing_date,
            selection,
            total,
            message_id=p.message_id,
            created_at=p.created_at,
        )
        report.resumed += 1
        yield Outgoing(
            key=p.id,
            sender=_envelope_from(ctx),
            recipients=(p.subscriber.email,),
            data=message.data,
            message_id=p.message_id,
            clean=message.clean,
        )


def _cap(ctx: Context, sub: Subscriber) -> int:
    return sub.max_papers or ctx.config.mail.max_papers


# -- claims: pure policy, then the I/O ------------------------------------------------------


_Claimer = Callable[[str, str, str], bool]


def claimer(ctx: Context, run_id: int, clock: Callable[[], datetime]) -> _Claimer:
    """``claim(delivery_id, to, message_id)``: take a pending digest for this run right
    before it is handed to the sender; False (and a log line) when another run has it."""

    def claim(delivery_id: str, to: str, message_id: str) -> bool:
        if ctx.store.claim(delivery_id, run_id, clock()):
            return True
        log.info("skipped to=%s message_id=%s: claimed by another run", to, message_id)
        return False

    return claim


HOST = socket.gethostname()


def stale_claim(
    claim: Claim,
    now: datetime,
    host: str,
    alive: Callable[[int], bool],
    lease: timedelta = CLAIM_LEASE,
) -> bool:
    """Whether a delivery stuck in ``sending`` may be re-queued: the run holding it is gone.

    Gone means: that run recorded its end (it stops by giving back its claims, so this one
    escaped), or no such run is recorded, or it ran on ``host`` and its process is not
    ``alive`` (killed), or the claim is older than ``lease`` (a run on another host, whose
    process cannot be checked, or a pid reused since).
    """
    if claim.run_host is None or claim.run_finished:
        return True
    if claim.run_host == host and claim.run_pid is not None and not alive(claim.run_pid):
        return True
    return claim.claimed_at is None or now - claim.claimed_at > lease


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host (signal 0 checks without sending)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists, owned by someone else
    return True


def requeue_stale(ctx: Context, *, host: str = HOST) -> int:
    """Put back to pending the deliveries claimed by runs that died; returns how many."""
    count = 0
    for claim in ctx.store.claims():
        if stale_claim(claim, ctx.now, host, pid_alive) and ctx.store.requeue(claim):
            log.warning(
                "requeued delivery=%s claimed by run %s, which is gone",
                claim.delivery_id,
                claim.run_id,
            )
            count += 1
    return count


def run_outcome(report: RunReport) -> str:
    """``failed`` when digests were left pending, ``empty`` for an empty listing, else ``ok``.

    A digest refused for good (5xx) is the recipient's problem, not the run's: still ``ok``.
    """
    if report.deferred:
        return "failed"
    return "empty" if report.fetched == 0 else "ok"


async def run(ctx: Context, day: date, *, dry_run: bool = False) -> RunReport:
    """The whole daily cycle for ``day``, recorded in the ``runs`` table (a dry run is not).

    Raises SourceError (nothing recorded but the failed run), DeliveryError or StateError.
    """
    report = RunReport(day=day, dry_run=dry_run)
    if dry_run:
        listing = await ctx.source.fetch(day)
        _fetched(ctx, listing, report)
        await _dry_run(ctx, listing, report)
        return report

    started = time.monotonic()

    def clock() -> datetime:
        return ctx.now + timedelta(seconds=time.monotonic() - started)

    run_id = ctx.store.start_run(day, ctx.now, HOST, os.getpid())
    report.run_id = run_id
    stage: str | None = "fetch"
    error: str | None = None
    interrupted = False
    workers: WorkerPool | None = None
    try:
        workers = _start_workers(ctx)
        listing = await ctx.source.fetch(day)
        stage = "deliver"
        await _deliver(ctx, listing, report, run_id, clock, workers)
        stage = None
        return report
    except Exception as exc:
        error = str(exc) or type(exc).__name__
        raise
    except BaseException:  # Ctrl-C, cancelled: recorded, but no reason to alert anyone
        error, interrupted = "interrupted", True
        raise
    finally:
        if workers is not None:
            workers.close()
        await _finish(ctx, report, run_id, clock(), stage, error, alert=not interrupted)


def _start_workers(ctx: Context) -> WorkerPool | None:
    """Worker processes for this run (``run.workers``), or None to do it all here.

    Only for SMTP delivery: the outbox and injected test senders stay in this process.
    """
    if not isinstance(ctx.sender, SmtpSender):
        return None
    active = ctx.store.state_counts().get("active", 0)
    parts = worker_count(ctx.config.run.workers, active, cores())
    if parts == 1:
        return None
    log.info("%s worker processes", parts)
    return WorkerPool(parts)


def _fetched(ctx: Context, listing: Listing, report: RunReport) -> None:
    report.fetched = len(listing.papers)
    report.warnings = list(listing.warnings)
    known = ctx.store.papers_by_key(p.key for p in listing.papers)
    report.new = sum(1 for p in listing.papers if p.key not in known)


async def _deliver(
    ctx: Context,
    listing: Listing,
    report: RunReport,
    run_id: int,
    clock: Callable[[], datetime],
    workers: WorkerPool | None = None,
) -> None:
    _fetched(ctx, listing, report)
    ctx.store.save_listing(listing, ctx.now)
    ctx.store.sync_config_subscribers(ctx.config.subscribers)
    report.requeued = requeue_stale(ctx)
    if isinstance(ctx.sender, FileOutboxSender):
        report.outbox = ctx.config.mail.outbox_dir
    if workers is None:
        pending = ctx.store.pending()
        await deliver_share(ctx, Pool.of(listing), pending, report, run_id, clock)
        report.feeds = write_feeds(ctx)
        return
    results, report.feeds = await workers.run(
        ctx.config,
        listing,
        run_id,
        ctx.now,
        lambda: (clock() - ctx.now).total_seconds(),
        lambda: write_feeds(ctx),
    )
    for done in results:
        report.sent += done.sent
        report.failed += done.failed
        report.deferred += done.deferred
        report.resumed += done.resumed
        report.suspended += done.suspended
        report.subscribers += [SubscriberReport(*s) for s in done.subscribers]
    errors = [d for d in results if d.error is not None]
    if errors:
        raise WorkerError(errors[0].error or "a worker failed", hint=errors[0].hint)


async def deliver_share(
    ctx: Context,
    pool: Pool,
    pending: Sequence[PendingDelivery],
    report: RunReport,
    run_id: int,
    clock: Callable[[], datetime],
    share: tuple[int, int] | None = None,
) -> None:
    """Resume ``pending``, then plan and send the digests of the active subscribers (of
    ``share``, see :meth:`Store.active_batches`), each marked sent as it is accepted.

    Three threads share the work: this one composes messages and drives SMTP; one plans
    the next batch (matching, recording it as pending) while this batch is sent; one
    records each outcome. The database's commits and lock waits then overlap with the
    CPU work instead of stalling it. A connection still waits for its message to be marked
    sent before it takes the next one: the crash duplicate bound is unchanged.
    """
    marker = ThreadPoolExecutor(1, thread_name_prefix="digest-mark")
    planner = ThreadPoolExecutor(1, thread_name_prefix="digest-plan")
    recorder = _Recorder(ctx.store, report, ctx.config.mail.max_hard_bounces, marker)
    claim = claimer(ctx, run_id, clock)
    # A small first batch: the first messages leave while the next batch is planned.
    batches = ctx.store.active_batches(BATCH, share, first=FIRST_BATCH)

    def plan_next() -> Iterator[Outgoing] | None:
        batch = next(batches, None)
        if batch is None:
            return None
        return plan_batch(ctx, batch, lambda _: pool, report, recorder, run_id)

    async def items() -> AsyncIterator[Outgoing]:
        for item in _resume_items(ctx, pending, report, claim):
            yield item
        loop = asyncio.get_running_loop()
        upcoming = loop.run_in_executor(planner, plan_next)
        while (outgoing := await upcoming) is not None:
            upcoming = loop.run_in_executor(planner, plan_next)
            for item in outgoing:
                yield item

    try:
        await ctx.sender.deliver(items(), recorder)
    finally:
        await recorder.close()
        if recorder.marks:
            log.info(
                "marked %d sent in %d commits; a message waited %.1f ms for its mark",
                recorder.marks,
                recorder.commits,
                1000 * recorder.mark_wait / recorder.marks,
            )
        # What was planned is recorded (claimed: released when the run ends); what was
        # accepted is marked before the run records its end.
        planner.shutdown(wait=True, cancel_futures=True)
        marker.shutdown(wait=True)


async def _finish(
    ctx: Context,
    report: RunReport,
    run_id: int,
    finished: datetime,
    stage: str | None,
    error: str | None,
    *,
    alert: bool = True,
) -> None:
    """Give back unsent claims, record the run's end, alert the admin: never raises."""
    outcome = "failed" if error is not None else run_outcome(report)
    if outcome == "failed" and stage is None:
        stage = "deliver"
        error = f"{report.deferred} digest(s) left pending"
    try:
        released = ctx.store.release_claims(run_id)
        if released:
            log.info("released %s unsent digest(s) for the next run", released)
        ctx.store.finish_run(
            run_id,
            finished,
            outcome,
            stage=stage,
            error=error,
            fetched=report.fetched,
            sent=report.sent,
            failed=report.failed,
            deferred=report.deferred,
        )
        if alert:
            await alert_admin(ctx.config, ctx.store, ctx.sender, ctx.now, outcome, error)
    except DigestError as exc:  # the run's own error, if any, matters more
        log.error("cannot record the end of run %s: %s", run_id, exc)


def plan_batch(
    ctx: Context,
    batch: Sequence[Subscriber],
    pool_of: Callable[[Subscriber], Pool],
    report: RunReport,
    recorder: _Recorder,
    run_id: int | None = None,
) -> Iterator[Outgoing]:
    """Record one batch of digests as pending (now), then build their messages (as they
    are taken: a batch's messages are never all in memory at once).

    With ``run_id`` they are recorded already claimed by that run (see
    :meth:`Store.record_pending`): hand them to the sender without claiming them again.
    """
    pools = {id(p): p for p in map(pool_of, batch)}
    delivered: dict[int, set[str]] = {}
    for pool in pools.values():
        ids = [s.id for s in batch if s.id is not None and pool_of(s) is pool]
        delivered.update(ctx.store.delivered_keys(ids, pool.dates))
    plans: list[tuple[Subscriber, Selection, PlannedDelivery, Pool]] = []
    for sub in batch:
        assert sub.id is not None
        pool = pool_of(sub)
        shown, more = pool.matcher.choose(
            sub.keywords, sub.exclude, delivered[sub.id], _cap(ctx, sub)
        )
        selection = Selection(tuple(shown), tuple(more))
        rep = SubscriberReport(email=sub.email, matched=len(selection.all))
        report.subscribers.append(rep)
        recorder.by_email[sub.email] = rep
        if not selection:
            continue
        delivery_id = new_delivery_id()
        plans.append(
            (
                sub,
                selection,
                PlannedDelivery(
                    subscriber_id=sub.id,
                    listing_date=pool.day,
                    paper_keys=tuple(m.paper.key for m in selection.all),
                    shown=len(selection.shown),
                    id=delivery_id,
                    message_id=make_message_id(ctx.config.mail.sender),
                ),
                pool,
            )
        )
    recorded = {
        p.id
        for p in ctx.store.record_pending([p for _, _, p, _ in plans], ctx.now, claimed_by=run_id)
    }
    return _messages(ctx, [p for p in plans if p[2].id in recorded])


def _messages(
    ctx: Context, plans: list[tuple[Subscriber, Selection, PlannedDelivery, Pool]]
) -> Iterator[Outgoing]:
    for sub, selection, plan, pool in plans:
        message = compose(
            ctx,
            sub,
            pool.day,
            selection,
            pool.total,
            message_id=plan.message_id,
            created_at=ctx.now,
            since=pool.since,
        )
        yield Outgoing(
            key=plan.id,
            sender=_envelope_from(ctx),
            recipients=(sub.email,),
            data=message.data,
            message_id=plan.message_id,
            clean=message.clean,
        )


async def _dry_run(ctx: Context, listing: Listing, report: RunReport) -> None:
    """Match and render for every subscriber without sending or recording anything."""
    matcher = DayMatcher(listing.papers)
    stored = {s.email: s for s in ctx.store.subscribers("active")}
    for sub in ctx.config.subscribers:
        stored.setdefault(sub.email, sub)
    ids = [s.id for s in stored.values() if s.id is not None]
    delivered = ctx.store.delivered_keys(ids, listing.date)
    for sub in stored.values():
        seen = delivered.get(sub.id, set()) if sub.id is not None else set()
        selection = select(matcher.select(sub.keywords, sub.exclude), seen, _cap(ctx, sub))
        report.subscribers.append(SubscriberReport(email=sub.email, matched=len(selection.all)))
        if selection:
            compose(
                ctx,
                sub,
                listing.date,
                selection,
                len(listing.papers),
                message_id=make_message_id(ctx.config.mail.sender),
                created_at=ctx.now,
            )


def write_feeds(ctx: Context) -> list[Path]:
    """Rebuild the public feeds and every active subscriber's private pair."""
    return publish_feeds(ctx.config, ctx.store, ctx.now, BATCH)


async def send_once(
    ctx: Context,
    day: date,
    to: str,
    keywords: Sequence[str],
    exclude: Sequence[str],
    *,
    out: Path | None = None,
) -> int:
    """A one-off digest of ``day`` to any address; touches no subscriber's history.

    Returns the number of papers in it (0: nothing matched and nothing was sent).
    """
    listing = ctx.store.listing(day) or await ctx.source.fetch(day)
    matches = DayMatcher(listing.papers).select(keywords, exclude)
    if not matches:
        return 0
    sub = Subscriber(email=to, keywords=tuple(keywords), exclude=tuple(exclude))
    selection = select(matches, set(), ctx.config.mail.max_papers)
    message_id = make_message_id(ctx.config.mail.sender)
    message = compose(
        ctx, sub, day, selection, len(listing.papers), message_id=message_id, created_at=ctx.now
    )
    if out is not None:
        write_atomic(out, message.data)
        return len(selection.all)
    outcome = await send_one(
        ctx.sender,
        Outgoing(
            key="manual",
            sender=_envelope_from(ctx),
            recipients=(to,),
            data=message.data,
            message_id=message_id,
            clean=message.clean,
        ),
    )
    if outcome is not None and not outcome.ok and outcome.error is not None:
        raise outcome.error
    return len(selection.all)
