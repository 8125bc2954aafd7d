"""The papers repository: papers and the daily listings that name them (tables ``papers``,
``listings``, ``listing_papers``)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from digest.models import Listing, Paper
from digest.store.schema import (
    aware,
    begin,
    chunks,
    listing_papers,
    listings,
    papers,
    retried,
    utc_now,
)

_NAME = re.compile(r"^[a-z0-9-]{1,64}$")


def source_name(source: str) -> str:
    """The name a listing is stored under: ``source`` when it is a source's name, else (a
    listing from code that named the URL or path) the kind such a source has."""
    if _NAME.match(source):
        return source
    return "huggingface" if source.startswith("http") else "file"


class Papers:
    """Reads and writes of papers and listings; raises :class:`StateError`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def save_listing(self, listing: Listing, fetched_at: datetime | None = None) -> None:
        """Record the listing of a date: its papers upserted, its membership extended.

        Two runs saving the same listing at once collide on its keys; the one that loses
        does it again, finding the papers there (an update).
        """
        when = fetched_at or utc_now()
        retried(lambda: self._save_listing(listing, when), "save the listing")

    def _save_listing(self, listing: Listing, fetched_at: datetime) -> None:
        name = source_name(listing.source)
        here = (listing_papers.c.date == listing.date) & (listing_papers.c.source == name)
        with begin(self.engine) as conn:
            _upsert_papers(conn, listing, fetched_at)
            present = set(conn.execute(sa.select(listing_papers.c.paper_key).where(here)).scalars())
            start = len(present)
            rows = [
                {"date": listing.date, "source": name, "paper_key": k, "position": start + i}
                for i, k in enumerate(p.key for p in listing.papers if p.key not in present)
            ]
            if rows:
                conn.execute(sa.insert(listing_papers), rows)
            count = start + len(rows)
            head = (listings.c.date == listing.date) & (listings.c.source == name)
            exists = conn.execute(sa.select(listings.c.date).where(head)).first()
            values = {"fetched_at": fetched_at, "count": count}
            if exists:
                conn.execute(sa.update(listings).where(head).values(**values))
            else:
                conn.execute(sa.insert(listings).values(date=listing.date, source=name, **values))

    def listing(self, day: date) -> Listing | None:
        """The stored listing of ``day`` (every source's papers, each once), or None if it
        was never fetched."""
        with self.engine.connect() as conn:
            heads = (
                conn.execute(
                    sa.select(listings.c.source)
                    .where(listings.c.date == day)
                    .order_by(listings.c.source)
                )
                .scalars()
                .all()
            )
            if not heads:
                return None
            rows = conn.execute(
                sa.select(papers)
                .join(listing_papers, listing_papers.c.paper_key == papers.c.key)
                .where(listing_papers.c.date == day)
                .order_by(listing_papers.c.position, listing_papers.c.source)
            ).mappings()
            seen: dict[str, Paper] = {}
            for r in rows:
                seen.setdefault(r["key"], _paper(r))
            return Listing(date=day, papers=tuple(seen.values()), source="+".join(heads))

    def recent_dates(self, n: int) -> list[date]:
        """The ``n`` most recent listing dates stored, newest first."""
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    sa.select(listings.c.date).order_by(listings.c.date.desc()).limit(n)
                ).scalars()
            )

    def day_counts(self, n: int) -> list[tuple[date, int]]:
        """The ``n`` most recent listing dates that hold papers, newest first, with how many
        (a date fetched empty, a weekend's, is left out)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(listings.c.date, listings.c.count)
                .where(listings.c.count > 0)
                .order_by(listings.c.date.desc())
                .limit(n)
            )
            return [(r[0], r[1]) for r in rows]

    def recent_papers(self, days: int, limit: int) -> list[Paper]:
        """The papers of the ``days`` most recent listing dates, at most ``limit`` of them
        (those of the newest dates first), each once: what the archive's search looks in."""
        with self.engine.connect() as conn:
            dates = (
                sa.select(listings.c.date)
                .order_by(listings.c.date.desc())
                .limit(days)
                .scalar_subquery()
            )
            newest = (
                sa.select(listing_papers.c.paper_key, sa.func.max(listing_papers.c.date).label("d"))
                .where(listing_papers.c.date.in_(dates))
                .group_by(listing_papers.c.paper_key)
                .subquery()
            )
            rows = conn.execute(
                sa.select(papers)
                .join(newest, newest.c.paper_key == papers.c.key)
                .order_by(newest.c.d.desc(), papers.c.key)
                .limit(limit)
            ).mappings()
            return [_paper(r) for r in rows]

    def papers_by_key(self, keys: Iterable[str]) -> dict[str, Paper]:
        found: dict[str, Paper] = {}
        with self.engine.connect() as conn:
            for chunk in chunks(list(keys), 500):
                for r in conn.execute(sa.select(papers).where(papers.c.key.in_(chunk))).mappings():
                    found[r["key"]] = _paper(r)
        return found


def _upsert_papers(conn: Connection, listing: Listing, fetched_at: datetime) -> None:
    """Insert the listing's new papers, update those known (their first_seen kept)."""
    keys = [p.key for p in listing.papers]
    known = set()
    for chunk in chunks(keys, 500):
        known |= set(conn.execute(sa.select(papers.c.key).where(papers.c.key.in_(chunk))).scalars())
    new_rows = [_paper_row(p, fetched_at) for p in listing.papers if p.key not in known]
    if new_rows:
        conn.execute(sa.insert(papers), new_rows)
    for p in listing.papers:
        if p.key in known:
            row = _paper_row(p, fetched_at)
            del row["first_seen"], row["key"]
            conn.execute(sa.update(papers).where(papers.c.key == p.key).values(**row))


def _paper_row(p: Paper, first_seen: datetime) -> dict[str, Any]:
    extra = {
        "num_comments": p.num_comments,
        "thumbnail": p.thumbnail,
        "ai_summary": p.ai_summary,
        "ai_keywords": list(p.ai_keywords),
        "github_repo": p.github_repo,
        "project_page": p.project_page,
    }
    return {
        "key": p.key,
        "arxiv_id": p.arxiv_id,
        "title": p.title,
        "abstract": p.abstract,
        "authors": json.dumps(list(p.authors), ensure_ascii=False),
        "upvotes": p.upvotes,
        "published": p.published,
        "extra": json.dumps({k: v for k, v in extra.items() if v}, ensure_ascii=False),
        "first_seen": first_seen,
    }


def _paper(r: Any) -> Paper:
    extra = json.loads(r["extra"] or "{}")
    return Paper(
        key=r["key"],
        title=r["title"],
        abstract=r["abstract"],
        authors=tuple(json.loads(r["authors"])),
        arxiv_id=r["arxiv_id"],
        upvotes=r["upvotes"],
        published=aware(r["published"]),
        num_comments=extra.get("num_comments", 0),
        thumbnail=extra.get("thumbnail"),
        ai_summary=extra.get("ai_summary"),
        ai_keywords=tuple(extra.get("ai_keywords", ())),
        github_repo=extra.get("github_repo"),
        project_page=extra.get("project_page"),
    )
