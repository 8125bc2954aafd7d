"""The daily cycle, where the edges meet the core: fetch → diff → match → render → deliver → feeds.

Delivery is crash-safe: each digest is recorded as pending (its papers reserved) before any
SMTP traffic, and marked sent right after the server accepts it. A run that dies leaves its
pending digests to the next run, which sends them first (:mod:`digest.run.claims` says how two
runs never both send one). The digests are delivered by :func:`digest.run.share.deliver_share`,
in this process or in worker processes (:mod:`digest.run.workers`).

Every run is recorded in the ``runs`` table (what ``digest status`` reads) and may alert the
admin (:mod:`digest.run.alerts`).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path

from digest.compose import make_message_id
from digest.deliver import FileOutboxSender, SmtpSender
from digest.models import Listing
from digest.run.claims import requeue_stale
from digest.run.context import Context
from digest.run.fetch import SourceSet, describe, known_papers, store_listing
from digest.run.messages import compose
from digest.run.progress import Progress
from digest.run.publish import publish_feeds
from digest.run.ranking import Ranking, prepare, ranked, threshold_of
from digest.run.report import RunReport, SubscriberReport, recorded_run
from digest.run.share import BATCH, Pool, deliver_share, paper_cap
from digest.run.sources import outside
from digest.run.workers import Done, WorkerError, WorkerPool, cores, worker_count
from digest.select import DayMatcher, Selection, parse, select
from digest.store.history import prune_after_run

log = logging.getLogger("digest.pipeline")

#: How many of the latest stored listing dates a dry run looks in for what was sent.
DRY_RUN_DATES = 60


async def run(
    ctx: Context,
    day: date,
    *,
    dry_run: bool = False,
    progress: Progress | None = None,
    wait: bool = True,
) -> RunReport:
    """The whole daily cycle for ``day``, recorded in the ``runs`` table (a dry run is not).
    ``progress`` counts the digests sent, failed or deferred (of the active subscribers; a
    run in worker processes reads their live counts, see :meth:`WorkerPool.live`).

    With ``run.queue``, the digests go to ``digest worker`` processes (:mod:`digest.run.queue`);
    ``wait=False`` records the run once its batches are queued, without waiting for them.

    Raises SourceError (nothing recorded but the failed run), DeliveryError or StateError.
    """
    report = RunReport(day=day, dry_run=dry_run)
    if progress is not None:
        progress.counted = lambda: report.sent + report.failed + report.deferred
    if dry_run:
        listing = await _fetch(ctx, day, record=False)
        _fetched(ctx, listing, report)
        await _dry_run(ctx, listing, report)
        return report

    async with recorded_run(ctx, report, day) as record:
        workers = _start_workers(ctx)
        if progress is not None and workers is not None:
            progress.counted = workers.live(progress.counted)
        try:
            listing = await _fetch(ctx, day)
            record.stage = "deliver"
            if progress is not None:
                progress.total = ctx.store.members.state_counts().get("active", 0)
            await _deliver(ctx, listing, report, record.run_id, record.clock, workers, wait)
            keep = ctx.config.history  # the sent-state kept bounded (a failure: a warning)
            prune_after_run(ctx.store.engine, keep.keep_days, keep.archive_days, record.clock())
        finally:
            if workers is not None:
                workers.close()
    return report


def _start_workers(ctx: Context) -> WorkerPool | None:
    """Worker processes for this run (``run.workers``), or None to do it all here.

    Only for SMTP delivery: the outbox and injected test senders stay in this process.
    """
    if not isinstance(ctx.sender, SmtpSender) or ctx.config.run.queue:
        return None
    active = ctx.store.members.state_counts().get("active", 0)
    parts = worker_count(ctx.config.run.workers, active, cores())
    if parts == 1:
        return None
    log.info("%s worker processes", parts)
    return WorkerPool(parts)


async def _fetch(ctx: Context, day: date, *, record: bool = True) -> Listing:
    """``day``'s listing from the context's source (every configured source, with the
    dates some of them missed lately; ``record=False``: leave ``source_state`` alone)."""
    if isinstance(ctx.source, SourceSet):
        return await ctx.source.fetch(day, record=record)
    return await ctx.source.fetch(day)


def _fetched(ctx: Context, listing: Listing, report: RunReport) -> None:
    report.fetched = len(listing.papers)
    report.warnings = list(listing.warnings) + describe(listing.failures)
    report.source_failures = list(listing.failures)
    report.new = len(listing.papers) - len(known_papers(ctx.store, listing.papers))


async def _deliver(
    ctx: Context,
    listing: Listing,
    report: RunReport,
    run_id: int,
    clock: Callable[[], datetime],
    workers: WorkerPool | None = None,
    wait: bool = True,
) -> None:
    """Store the listing, then match, compose and send every digest (here or in the
    workers, see :func:`digest.run.share.deliver_share`), then write the feeds."""
    _fetched(ctx, listing, report)
    # as stored: each paper under the key it was first stored (and sent) under
    listing = store_listing(ctx.store, listing, ctx.now)
    ctx.store.members.sync_config_subscribers(ctx.config.subscribers)
    ctx.store.likes.sync_config(ctx.config.subscribers)  # their like lists (origin "config")
    report.requeued = requeue_stale(ctx)
    if isinstance(ctx.sender, FileOutboxSender):
        report.outbox = ctx.config.mail.outbox_dir
    if ctx.config.run.queue:  # batches for `digest worker` processes, on any machine
        from digest.run.queue import deliver_queued  # procrastinate: the optional extra

        await deliver_queued(ctx, listing, report, run_id, wait=wait)
        report.feeds = write_feeds(ctx)
        return
    if workers is None:
        pending = ctx.store.outbox.pending()
        await deliver_share(ctx, Pool.of(listing), pending, report, run_id, clock)
        report.feeds = write_feeds(ctx)
        return
    prepare(ctx.store, ctx.now)  # the similarity model refitted once, before the workers
    results, report.feeds = await workers.run(
        ctx.config,
        listing,
        run_id,
        ctx.now,
        lambda: (clock() - ctx.now).total_seconds(),
        lambda: _feeds_then_give_back(ctx),
    )
    _add_up(report, results)


def _feeds_then_give_back(ctx: Context) -> list[Path]:
    """:func:`write_feeds` while the workers send, then the memory the feed pass freed
    handed back to the system: the workers are still growing, and the run's peak is the
    sum of its processes' (100,000 subscribers: the parent ~240 -> ~160 MB after it).

    The queries' parse cache goes too (~140,000 nodes there; nothing in the parent parses
    them again), then glibc returns its free pages (``malloc_trim``; elsewhere nothing).
    """
    try:
        return write_feeds(ctx)
    finally:
        parse.cache_clear()
        # The pass's matcher and its results refer to each other: with the run's raised
        # thresholds (digest.GC_THRESHOLDS) the collector would find them much later.
        gc.collect()
        with contextlib.suppress(AttributeError, OSError):
            ctypes.CDLL(None).malloc_trim(0)


def _add_up(report: RunReport, results: Sequence[Done]) -> None:
    """Add the workers' shares to the run's report; raise the first worker's error."""
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


async def _dry_run(ctx: Context, listing: Listing, report: RunReport) -> None:
    """Match and render for every subscriber without sending or recording anything."""
    known = known_papers(ctx.store, listing.papers)  # under their stored keys, as sent
    papers = [replace(p, key=known.get(p.key, p.key)) for p in listing.papers]
    matcher = DayMatcher(papers)
    stored = {s.email: s for s in ctx.store.members.subscribers("active")}
    for sub in ctx.config.subscribers:
        stored.setdefault(sub.email, sub)
    ids = [s.id for s in stored.values() if s.id is not None]
    # Not stored, the listing's papers are found delivered through the dates they were
    # listed on before (a paper listed again, from another source or as a new version).
    dates = {listing.date, *listing.also, *ctx.store.papers.recent_dates(DRY_RUN_DATES)}
    delivered = ctx.store.outbox.delivered_keys(ids, sorted(dates))
    liked = ctx.store.likes.liked_among(p.key for p in papers)  # their stored keys
    for sid, keys in liked.items():  # never a paper they liked or disliked
        delivered.setdefault(sid, set()).update(keys)
    unstored = [p for p in listing.papers if p.key not in known]
    ranking = ranked(Ranking(ctx.store, ctx.now, write=False, unstored=unstored), matcher, ids)
    for sub in stored.values():
        seen = delivered.get(sub.id, set()) if sub.id is not None else set()
        seen = seen | outside(papers, sub.sources)  # only the sources they chose
        if ranking is not None and sub.id in ranking:  # they like papers: by similarity
            limit = threshold_of(sub, ctx.config.mail.like_threshold)
            shown, more = ranking.choose(sub, seen, paper_cap(ctx, sub), limit)
            selection = Selection(tuple(shown), tuple(more))
        else:
            selection = select(matcher.select(sub.keywords, sub.exclude), seen, paper_cap(ctx, sub))
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
    """Rebuild the public feeds (one pair per source too, with several) and every active
    subscriber's private pair."""
    names = [s.name for s in ctx.config.sources if s.enabled]
    return publish_feeds(ctx.config, ctx.store, ctx.now, BATCH, sources=names)
