"""The daily cycle, where the edges meet the core: fetch → diff → match → render → deliver → feeds.

Delivery is crash-safe: each digest is recorded as pending (its papers reserved) before any
SMTP traffic, and marked sent right after the server accepts it. A run that dies leaves its
pending digests to the next run, which sends them first.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.utils import parseaddr
from pathlib import Path

from digest import tokens
from digest.config import Config
from digest.deliver import FileOutboxSender, Outcome, Outgoing, Sender, SmtpSender
from digest.diff import Selection, select
from digest.fetch import ListingSource, make_source
from digest.files import write_atomic
from digest.match import DayMatcher
from digest.message import build_message, list_id_for, make_message_id, sender_address
from digest.models import Listing, Match, Subscriber
from digest.publish import publish_feeds
from digest.render import EmailLinks, Renderer
from digest.store import PendingDelivery, PlannedDelivery, Store, new_delivery_id

log = logging.getLogger("digest.pipeline")

SECRET_ENV = "DIGEST_SECRET"
BATCH = 1000


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


def _domain(sender: str) -> str:
    addr = parseaddr(sender)[1]
    return addr.rpartition("@")[2] or "localhost"


def compose(
    ctx: Context,
    sub: Subscriber,
    day: date,
    selection: Selection,
    total: int,
    *,
    message_id: str,
    created_at: datetime,
) -> bytes:
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
    )
    from_addr = sender_address(cfg.mail.sender)
    return build_message(
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


class _Recorder:
    """Marks each delivery's fate in the store as soon as it is known."""

    def __init__(self, store: Store | None, report: RunReport) -> None:
        self.store = store
        self.report = report
        self.by_email: dict[str, SubscriberReport] = {}

    async def __call__(self, outcome: Outcome) -> None:
        item = outcome.item
        rep = self.by_email.get(item.recipients[0])
        if outcome.ok:
            if self.store is not None:
                self.store.mark_sent(str(item.key))
            self.report.sent += 1
            if rep:
                rep.sent = True
            log.info("sent to=%s message_id=%s", item.recipients[0], item.message_id)
            return
        error = str(outcome.error) if outcome.error else "unknown error"
        if rep:
            rep.error = error
        if outcome.error is not None and not outcome.error.transient:
            if self.store is not None:
                self.store.mark_failed(str(item.key), error)
            self.report.failed += 1
            log.warning(
                "failed to=%s message_id=%s error=%s", item.recipients[0], item.message_id, error
            )
        else:
            if self.store is not None:
                self.store.mark_deferred(str(item.key), error)
            self.report.deferred += 1
            log.warning(
                "deferred to=%s message_id=%s error=%s", item.recipients[0], item.message_id, error
            )


def _envelope_from(ctx: Context) -> str:
    return parseaddr(ctx.config.mail.sender)[1]


def _resume_items(
    ctx: Context, pending: Sequence[PendingDelivery], report: RunReport
) -> Iterable[Outgoing]:
    """Rebuild the messages of digests recorded earlier but not yet accepted."""
    keys = {k for p in pending for k in p.paper_keys}
    papers = ctx.store.papers_by_key(keys)
    for p in pending:
        found = [papers[k] for k in p.paper_keys if k in papers]
        matcher = DayMatcher(found)
        ranked = {
            m.paper.key: m for m in matcher.select(p.subscriber.keywords, p.subscriber.exclude)
        }
        matches = [ranked.get(paper.key) or Match(paper=paper, score=0.0) for paper in found]
        selection = Selection(shown=tuple(matches[: p.shown]), more=tuple(matches[p.shown :]))
        listing = ctx.store.listing(p.listing_date)
        total = len(listing.papers) if listing else len(found)
        data = compose(
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
            data=data,
            message_id=p.message_id,
        )


def _cap(ctx: Context, sub: Subscriber) -> int:
    return sub.max_papers or ctx.config.mail.max_papers


async def run(ctx: Context, day: date, *, dry_run: bool = False) -> RunReport:
    """The whole daily cycle for ``day``; raises SourceError before recording anything."""
    report = RunReport(day=day, dry_run=dry_run)
    listing = await ctx.source.fetch(day)
    report.fetched = len(listing.papers)
    report.warnings = list(listing.warnings)
    known = ctx.store.papers_by_key(p.key for p in listing.papers)
    report.new = sum(1 for p in listing.papers if p.key not in known)
    if dry_run:
        await _dry_run(ctx, listing, report)
        return report

    ctx.store.save_listing(listing, ctx.now)
    ctx.store.sync_config_subscribers(ctx.config.subscribers)
    recorder = _Recorder(ctx.store, report)
    pending = ctx.store.pending()
    matcher = DayMatcher(listing.papers)

    async def items() -> AsyncIterator[Outgoing]:
        for item in _resume_items(ctx, pending, report):
            yield item
        for batch in ctx.store.active_batches(BATCH):
            for outgoing in _plan_batch(ctx, batch, listing, matcher, report, recorder):
                yield outgoing

    if isinstance(ctx.sender, FileOutboxSender):
        report.outbox = ctx.config.mail.outbox_dir
    await ctx.sender.deliver(items(), recorder)
    report.feeds = write_feeds(ctx)
    return report


def _plan_batch(
    ctx: Context,
    batch: Sequence[Subscriber],
    listing: Listing,
    matcher: DayMatcher,
    report: RunReport,
    recorder: _Recorder,
) -> list[Outgoing]:
    """Record one batch of digests as pending, then build their messages."""
    delivered = ctx.store.delivered_keys([s.id for s in batch if s.id is not None], listing.date)
    plans: list[tuple[Subscriber, Selection, PlannedDelivery]] = []
    for sub in batch:
        assert sub.id is not None
        selection = select(
            matcher.select(sub.keywords, sub.exclude), delivered[sub.id], _cap(ctx, sub)
        )
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
                    listing_date=listing.date,
                    paper_keys=tuple(m.paper.key for m in selection.all),
                    shown=len(selection.shown),
                    id=delivery_id,
                    message_id=make_message_id(ctx.config.mail.sender),
                ),
            )
        )
    recorded = {p.id for p in ctx.store.record_pending([p for _, _, p in plans], ctx.now)}
    out: list[Outgoing] = []
    for sub, selection, plan in plans:
        if plan.id not in recorded:
            continue
        data = compose(
            ctx,
            sub,
            listing.date,
            selection,
            len(listing.papers),
            message_id=plan.message_id,
            created_at=ctx.now,
        )
        out.append(
            Outgoing(
                key=plan.id,
                sender=_envelope_from(ctx),
                recipients=(sub.email,),
                data=data,
                message_id=plan.message_id,
            )
        )
    return out


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
    data = compose(
        ctx, sub, day, selection, len(listing.papers), message_id=message_id, created_at=ctx.now
    )
    if out is not None:
        write_atomic(out, data)
        return len(selection.all)
    outcomes: list[Outcome] = []

    async def keep(outcome: Outcome) -> None:
        outcomes.append(outcome)

    await ctx.sender.deliver(
        [
            Outgoing(
                key="manual",
                sender=_envelope_from(ctx),
                recipients=(to,),
                data=data,
                message_id=message_id,
            )
        ],
        keep,
    )
    if outcomes and not outcomes[0].ok and outcomes[0].error is not None:
        raise outcomes[0].error
    return len(selection.all)
