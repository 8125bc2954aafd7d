"""Delivering one share of the subscribers: resume their pending digests, then plan, record,
compose and send theirs in batches; a single-process run, each worker and each scheduled
pass all go through it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime

from digest.compose import make_message_id
from digest.deliver import Outgoing
from digest.errors import PermanentDeliveryError
from digest.models import Listing, Subscriber
from digest.run.claims import Claimer, claimer
from digest.run.context import Context
from digest.run.messages import compose, outgoing
from digest.run.outcomes import Recorder
from digest.run.ranking import Ranked, Ranking, ranked, threshold_of
from digest.run.reasons import BATCH as REASONS_BATCH
from digest.run.reasons import Reasons
from digest.run.report import RunReport, SubscriberReport
from digest.select import DayMatcher, Selection
from digest.store import PendingDelivery, PlannedDelivery, new_delivery_id
from digest.store.likes import Likes

log = logging.getLogger("digest.pipeline")

BATCH = 1000
FIRST_BATCH = 100


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

    _outside: dict[frozenset[str], frozenset[str]] = field(
        default_factory=dict, compare=False, repr=False
    )
    _liked: list[dict[int, set[str]]] = field(default_factory=list, compare=False, repr=False)
    _ranking: list[Ranking] = field(default_factory=list, compare=False, repr=False)

    def outside(self, sources: Collection[str] | None) -> frozenset[str]:
        """The keys of the papers none of ``sources`` listed (None: every source is
        wanted): what a subscriber who chose ``sources`` is not sent."""
        if sources is None:
            return frozenset()
        wanted = frozenset(sources)
        if wanted not in self._outside:
            from digest.run.sources import outside  # here: the sources' modules are dear

            self._outside[wanted] = outside([p.paper for p in self.matcher.papers], wanted)
        return self._outside[wanted]

    def liked(self, likes: Likes) -> dict[int, set[str]]:
        """Who liked or disliked which of the pool's papers (never to be sent to them),
        read once for the pool: from the papers' side, a few queries for the lot."""
        if not self._liked:
            self._liked.append(likes.liked_among(p.paper.key for p in self.matcher.papers))
        return self._liked[0]

    def ranked(self, ctx: Context, subscriber_ids: Sequence[int]) -> Ranked | None:
        """These subscribers' similarity ranking over the pool (None: nobody of them likes
        anything); the model is read once for the pool (see :mod:`digest.run.ranking`)."""
        if not self._ranking:
            self._ranking.append(Ranking(ctx.store, ctx.now))
        return ranked(self._ranking[0], self.matcher, subscriber_ids)

    @classmethod
    def of(cls, listing: Listing) -> Pool:
        """The pool of one listing, with the late papers of earlier dates it carries."""
        dates = (listing.date, *listing.also)
        return cls(listing.date, dates, DayMatcher(listing.papers), len(listing.papers))


def resume_items(
    ctx: Context, pending: Sequence[PendingDelivery], report: RunReport, claim: Claimer
) -> Iterable[Outgoing]:
    """Rebuild the messages of digests recorded earlier but not yet accepted, similarity
    picks with their reasons (:mod:`digest.run.reasons`).

    Each is claimed first; one another run claimed meanwhile is skipped.
    """
    if not pending:
        return
    keys = {k for p in pending for k in p.paper_keys}
    papers = ctx.store.papers.papers_by_key(keys)
    # One matcher and one listing per date, shared by every digest of that date: a restart
    # after a crash may have to resume most of a day's digests.
    by_date: dict[date, tuple[DayMatcher, int]] = {}
    reasons = Reasons(Ranking(ctx.store, ctx.now))  # the picks' reasons, worked out again
    for n, p in enumerate(pending):
        if n % REASONS_BATCH == 0:
            reasons.prefetch([q.subscriber for q in pending[n : n + REASONS_BATCH]])
        if not claim(p.id, p.subscriber.email, p.message_id):
            continue
        found = [papers[k] for k in p.paper_keys if k in papers]
        if p.listing_date not in by_date:
            listing = ctx.store.papers.listing(p.listing_date)
            day_papers = listing.papers if listing else tuple(found)
            by_date[p.listing_date] = (DayMatcher(day_papers), len(day_papers))
        matcher, total = by_date[p.listing_date]
        ranked = {
            m.paper.key: m for m in matcher.select(p.subscriber.keywords, p.subscriber.exclude)
        }
        matches = reasons.matches(p.subscriber, found, ranked)
        selection = Selection(shown=tuple(matches[: p.shown]), more=tuple(matches[p.shown :]))
        report.resumed += 1
        try:
            message = compose(
                ctx,
                p.subscriber,
                p.listing_date,
                selection,
                total,
                message_id=p.message_id,
                created_at=p.created_at,
            )
        except PermanentDeliveryError as exc:
            undeliverable(ctx, report, p.id, exc)
            continue
        yield outgoing(ctx, p.id, p.subscriber.email, message, p.message_id)


def undeliverable(
    ctx: Context,
    report: RunReport,
    key: str,
    error: PermanentDeliveryError,
    rep: SubscriberReport | None = None,
) -> None:
    """Delivery ``key`` failed for good before any SMTP: no message can carry its address
    (a non-ASCII local part stored by an older version, say). It fails as a 5xx to RCPT
    would, once, counted toward ``mail.max_hard_bounces``; never left pending to retry."""
    reason = str(error)
    if not error.recipient.rpartition("@")[0].isascii():
        reason += " (letters outside ASCII before the @ need SMTPUTF8, RFC 6531: not retried)"
    suspended = ctx.store.outbox.mark_failed(
        key, reason, max_hard_bounces=ctx.config.mail.max_hard_bounces
    )
    report.failed += 1
    if rep is not None:
        rep.error = reason
    if suspended:
        report.suspended.append(error.recipient)
    log.warning("failed to=%s delivery=%s error=%s", error.recipient, key, reason)


def paper_cap(ctx: Context, sub: Subscriber) -> int:
    return sub.max_papers or ctx.config.mail.max_papers


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
    ``share``, see :meth:`Members.active_batches`), each marked sent as it is accepted.

    Three threads share the work: this one composes messages and drives SMTP; one plans
    the next batch (matching, recording it as pending) while this batch is sent; one
    records each outcome. The database's commits and lock waits then overlap with the
    CPU work instead of stalling it. A connection still waits for its message to be marked
    sent before it takes the next one: the crash duplicate bound is unchanged.
    """
    marker = ThreadPoolExecutor(1, thread_name_prefix="digest-mark")
    planner = ThreadPoolExecutor(1, thread_name_prefix="digest-plan")
    recorder = Recorder(ctx.store, report, ctx.config.mail.max_hard_bounces, marker)
    claim = claimer(ctx, run_id, clock)
    # A small first batch: the first messages leave while the next batch is planned.
    batches = ctx.store.members.active_batches(BATCH, share, first=FIRST_BATCH)

    def plan_next() -> Iterator[Outgoing] | None:
        batch = next(batches, None)
        if batch is None:
            return None
        return plan_batch(ctx, batch, lambda _: pool, report, recorder, run_id)

    async def items() -> AsyncIterator[Outgoing]:
        for item in resume_items(ctx, pending, report, claim):
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


def plan_batch(
    ctx: Context,
    batch: Sequence[Subscriber],
    pool_of: Callable[[Subscriber], Pool],
    report: RunReport,
    recorder: Recorder,
    run_id: int | None = None,
) -> Iterator[Outgoing]:
    """Record one batch of digests as pending (now), then build their messages (as they
    are taken: a batch's messages are never all in memory at once).

    With ``run_id`` they are recorded already claimed by that run (see
    :meth:`Outbox.record_pending`): hand them to the sender without claiming them again.
    """
    pools = {id(p): p for p in map(pool_of, batch)}
    delivered: dict[int, set[str]] = {}
    rankings: dict[int, Ranked | None] = {}
    for pool in pools.values():
        ids = [s.id for s in batch if s.id is not None and pool_of(s) is pool]
        delivered.update(ctx.store.outbox.delivered_keys(ids, pool.dates))
        liked = pool.liked(ctx.store.likes)  # a paper they liked or disliked: never sent
        for sid in ids:
            delivered[sid] |= liked.get(sid, set())
        rankings[id(pool)] = pool.ranked(ctx, ids)  # those with likes: by similarity
    plans: list[tuple[Subscriber, Selection, PlannedDelivery, Pool]] = []
    for sub in batch:
        assert sub.id is not None
        pool = pool_of(sub)
        seen = delivered[sub.id] | pool.outside(sub.sources)  # only the sources they chose
        ranking = rankings[id(pool)]
        if ranking is not None and sub.id in ranking:
            limit = threshold_of(sub, ctx.config.mail.like_threshold)
            shown, more = ranking.choose(sub, seen, paper_cap(ctx, sub), limit)
        else:
            shown, more = pool.matcher.choose(sub.keywords, sub.exclude, seen, paper_cap(ctx, sub))
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
        for p in ctx.store.outbox.record_pending(
            [p for _, _, p, _ in plans], ctx.now, claimed_by=run_id
        )
    }
    return _messages(ctx, [p for p in plans if p[2].id in recorded], report, recorder)


def _messages(
    ctx: Context,
    plans: list[tuple[Subscriber, Selection, PlannedDelivery, Pool]],
    report: RunReport,
    recorder: Recorder,
) -> Iterator[Outgoing]:
    for sub, selection, plan, pool in plans:
        try:
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
        except PermanentDeliveryError as exc:
            undeliverable(ctx, report, plan.id, exc, recorder.by_email.get(sub.email))
            continue
        yield outgoing(ctx, plan.id, sub.email, message, plan.message_id)
