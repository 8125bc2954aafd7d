"""Bounded history (``[history]``): what proves a paper was sent is kept ``keep_days`` after
its digest was sent, papers and listings ``archive_days``; older rows are pruned.

A digest still pending or being sent is never touched, nor a paper one of them carries, a
paper still listed on a date kept, or a paper someone liked or disliked (the ranker reads
its text). Rows go in batches of :data:`BATCH`, each its own short transaction, so no
write lock is held long while runs and the web write too. A paper pruned past
``keep_days`` and listed again may be sent again: that is the price of a bounded state.

Reads ``likes`` (which papers are liked) besides the tables it prunes: ``deliveries``,
``listings``, ``listing_papers``, ``papers`` and ``paper_aliases``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from digest.errors import StateError
from digest.store.outbox_rows import unpack_ids
from digest.store.queue_state import prune_run_rows
from digest.store.schema import (
    begin,
    deliveries,
    likes,
    listing_papers,
    listings,
    paper_aliases,
    papers,
)

log = logging.getLogger("digest.history")
#: When each database was last pruned by this process (see :func:`prune_after_run`).
_last_prune: dict[str, float] = {}

#: Rows deleted per transaction.
BATCH = 5_000


@dataclass(frozen=True)
class Pruned:
    """Rows removed (or, in a dry run, that would be), per table."""

    deliveries: int = 0
    listings: int = 0
    listing_papers: int = 0
    papers: int = 0
    paper_aliases: int = 0

    @property
    def total(self) -> int:
        return sum(getattr(self, f.name) for f in fields(self))

    def lines(self) -> list[str]:
        """``deliveries: 1,234`` per table."""
        return [f"{f.name}: {getattr(self, f.name):,}" for f in fields(self)]


@dataclass(frozen=True)
class Cutoffs:
    """What is old: digests sent before ``sent_before``; papers first seen before
    ``seen_before`` and listings (and digests) of dates before ``listed_before``."""

    sent_before: datetime
    seen_before: datetime
    listed_before: date

    @classmethod
    def at(cls, now: datetime, keep_days: int, archive_days: int) -> Cutoffs:
        archive = now - timedelta(days=archive_days)
        return cls(now - timedelta(days=keep_days), archive, archive.date())


class History:
    """Pruning of the sent-state, papers and listings; raises :class:`StateError`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def prune(
        self,
        cutoffs: Cutoffs,
        *,
        dry_run: bool = False,
        advance: Callable[[int], None] | None = None,
        batch: int = BATCH,
    ) -> Pruned:
        """Remove what is older than ``cutoffs`` (digests, then listings, then papers);
        ``dry_run``: count it and change nothing. ``advance(n)`` is told of each batch."""
        step = advance or (lambda _n: None)
        old_digests = self._old_digests(cutoffs)
        old_dates = self._old_dates(cutoffs)
        if dry_run:
            keys = self._old_papers(cutoffs)
            return Pruned(
                deliveries=self._count(deliveries, old_digests),
                listings=self._count(listings, listings.c.date.in_(old_dates)),
                listing_papers=self._count_listed(old_dates),
                papers=len(keys),
                paper_aliases=self._count_aliases(keys),
            )
        gone = self._delete_digests(old_digests, batch, step)
        dropped, listed = self._delete_listings(old_dates, step)
        keys = self._old_papers(cutoffs)
        n_papers, n_aliases = self._delete_papers(keys, batch, step)
        return Pruned(gone, dropped, listed, n_papers, n_aliases)

    # -- what is old ------------------------------------------------------------------------

    def _old_digests(self, cutoffs: Cutoffs) -> Any:
        c = deliveries.c
        return sa.or_(
            sa.and_(c.status == "sent", c.sent_at < cutoffs.sent_before),
            sa.and_(c.status == "failed", c.created_at < cutoffs.sent_before),
            sa.and_(c.status.in_(("sent", "failed")), c.listing_date < cutoffs.listed_before),
        )

    def _old_dates(self, cutoffs: Cutoffs) -> list[date]:
        with self.engine.connect() as conn:
            found = conn.execute(
                sa.select(listings.c.date)
                .where(listings.c.date < cutoffs.listed_before)
                .union(
                    sa.select(listing_papers.c.date).where(
                        listing_papers.c.date < cutoffs.listed_before
                    )
                )
            ).scalars()
            return sorted(set(found))

    def _old_papers(self, cutoffs: Cutoffs) -> list[str]:
        """Keys of the papers first seen before the cutoff that no kept listing lists,
        nobody liked or disliked, and no digest still to send carries."""
        p = papers.c
        still_listed = sa.exists().where(
            listing_papers.c.paper_key == p.key, listing_papers.c.date >= cutoffs.listed_before
        )
        liked = sa.exists().where(likes.c.paper_key == p.key)
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(p.key, p.id)
                .where(p.first_seen < cutoffs.seen_before, ~still_listed, ~liked)
                .order_by(p.key)
            ).all()
            needed = self._needed_ids(conn)
        return [key for key, paper_id in rows if paper_id not in needed]

    @staticmethod
    def _needed_ids(conn: Any) -> set[int]:
        """Ids of the papers of digests still pending or being sent."""
        needed: set[int] = set()
        for status in ("pending", "sending"):  # each by its partial index
            blobs = conn.execute(
                sa.select(deliveries.c.papers).where(deliveries.c.status == status)
            ).scalars()
            needed.update(i for blob in blobs for i in unpack_ids(blob))
        return needed

    # -- counting (dry run) -----------------------------------------------------------------

    def _count(self, table: sa.Table, cond: Any) -> int:
        with self.engine.connect() as conn:
            query = sa.select(sa.func.count()).select_from(table).where(cond)
            return int(conn.execute(query).scalar_one())

    def _count_listed(self, dates: Sequence[date]) -> int:
        if not dates:
            return 0
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.count()).where(listing_papers.c.date.in_(dates))
                ).scalar_one()
            )

    def _count_aliases(self, keys: Sequence[str]) -> int:
        total = 0
        with self.engine.connect() as conn:
            for start in range(0, len(keys), 900):
                part = keys[start : start + 900]
                total += int(
                    conn.execute(
                        sa.select(sa.func.count()).where(paper_aliases.c.paper_key.in_(part))
                    ).scalar_one()
                )
        return total

    # -- deleting ---------------------------------------------------------------------------

    def _delete_digests(self, cond: Any, batch: int, step: Callable[[int], None]) -> int:
        """Old digests, ``batch`` at a time: their ids read first, then deleted (the
        condition checked again, so a digest requeued meanwhile stays)."""
        gone = 0
        while True:
            with self.engine.connect() as conn:
                ids = (
                    conn.execute(sa.select(deliveries.c.id).where(cond).limit(batch))
                    .scalars()
                    .all()
                )
            if not ids:
                return gone
            with begin(self.engine) as conn:
                n = conn.execute(sa.delete(deliveries).where(deliveries.c.id.in_(ids), cond))
            gone += int(n.rowcount)
            step(int(n.rowcount))
            if len(ids) < batch:
                return gone

    def _delete_listings(
        self, dates: Sequence[date], step: Callable[[int], None]
    ) -> tuple[int, int]:
        """Each old date's listings and their papers' places, a date a transaction."""
        dropped = listed = 0
        for day in dates:
            with begin(self.engine) as conn:
                a = conn.execute(sa.delete(listing_papers).where(listing_papers.c.date == day))
                b = conn.execute(sa.delete(listings).where(listings.c.date == day))
            listed += int(a.rowcount)
            dropped += int(b.rowcount)
            step(int(a.rowcount) + int(b.rowcount))
        return dropped, listed

    def _delete_papers(
        self, keys: Sequence[str], batch: int, step: Callable[[int], None]
    ) -> tuple[int, int]:
        """Papers of ``keys`` and their aliases, ``batch`` at a time; one listed again
        meanwhile stays, with its aliases."""
        n_papers = n_aliases = 0
        relisted = sa.exists().where(listing_papers.c.paper_key == papers.c.key)
        orphan = ~sa.exists().where(papers.c.key == paper_aliases.c.paper_key)
        size = min(batch, 900)
        for start in range(0, len(keys), size):
            part = keys[start : start + size]
            with begin(self.engine) as conn:
                a = conn.execute(sa.delete(papers).where(papers.c.key.in_(part), ~relisted))
                b = conn.execute(
                    sa.delete(paper_aliases).where(paper_aliases.c.paper_key.in_(part), orphan)
                )
            n_papers += int(a.rowcount)
            n_aliases += int(b.rowcount)
            step(int(a.rowcount) + int(b.rowcount))
        return n_papers, n_aliases


def prune_after_run(
    engine: Engine, keep_days: int, archive_days: int, now: datetime, *, every: float = 0.0
) -> Pruned | None:
    """What each run does once its digests and feeds are done: :meth:`History.prune`,
    whose failure (a locked or full database) is a logged warning, never the run's.

    ``every``: seconds this process lets pass between two prunes of one database (the
    scheduled passes of ``digest serve``, every minute, prune once an hour); None returned
    when skipped.
    """
    where = str(engine.url)
    if every and time.monotonic() - _last_prune.get(where, -every) < every:
        return None
    _last_prune[where] = time.monotonic()
    try:
        cutoffs = Cutoffs.at(now, keep_days, archive_days)
        pruned = History(engine).prune(cutoffs)
        prune_run_rows(engine, cutoffs.sent_before)  # queued runs' tallies (run.queue)
    except (StateError, SQLAlchemyError) as exc:
        log.warning("pruning the history failed (digest prune does it by hand): %s", exc)
        return None
    if pruned.total:
        log.info("pruned the history: %s", ", ".join(pruned.lines()))
    return pruned
