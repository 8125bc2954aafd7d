"""The papers repository: papers, the identities they are known by and the daily listings
of each source that name them (tables ``papers``, ``paper_aliases``, ``listings``,
``listing_papers``).

One paper, one row: a listing's papers are matched to the stored ones through every
identity they have (:func:`digest.identity.paper_identities`: arXiv id, DOI, canonical link,
title hash, and the old ``title:`` keys the upgrade to revision 0006 kept as aliases), so the
same paper from two sources, on two days or as a new version keeps the key it was first
stored (and sent) under.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import replace
from datetime import date, datetime
from itertools import chain
from operator import attrgetter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from digest.identity import dedupe, merge, paper_identities, same_paper
from digest.models import Listing, Paper
from digest.store.paper_rows import (
    CHUNK,
    add_aliases,
    known_keys,
    lookups,
    paper_of,
    paper_row,
    stored_papers,
)
from digest.store.schema import (
    begin,
    chunks,
    listing_papers,
    listings,
    papers,
    retried,
    utc_now,
)

_NAME = re.compile(r"^[a-z0-9-]{1,64}$")
#: The fields a paper's identities are made of (besides its key, an identity of its own).
_IDENTIFYING = attrgetter("arxiv_id", "doi", "link", "title", "authors")


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

    def save_listing(self, listing: Listing, fetched_at: datetime | None = None) -> Listing:
        """Record one source's listing of a date (``listing.source``: the source's name)
        and return it as stored: its papers under the keys they are stored under, merged
        with what was known of them (upvotes, categories, sources, abstract...).

        Each paper is matched to a stored one by any identity (see the module docstring),
        merged with it (:func:`digest.identity.merge`), its identities recorded as aliases;
        the date's membership for that source is extended, and its ``listings`` row written
        (a date fetched empty gets one with count 0). Two processes saving at once collide
        on a key; the one that loses does it again, finding the other's rows there.
        """
        when = fetched_at or utc_now()
        return retried(lambda: self._save_listing(listing, when), "save the listing")

    def _save_listing(self, listing: Listing, fetched_at: datetime) -> Listing:
        name = source_name(listing.source)
        incoming = [
            p if name in p.sources else replace(p, sources=(*p.sources, name))
            for p in dedupe(listing.papers)
        ]
        with begin(self.engine) as conn:
            if conn.dialect.name == "sqlite":
                # pysqlite begins only before the first write: take the write lock now, so
                # what is read below is still true when it is written.
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            merged = _merge_with_stored(conn, incoming, fetched_at)
            _extend_listing(conn, listing.date, name, list(merged), fetched_at)
        return replace(listing, papers=tuple(merged.values()))

    # -- reads ---------------------------------------------------------------------------

    def listing(self, day: date, sources: Collection[str] | None = None) -> Listing | None:
        """The stored listing of ``day``: every source's papers (or those of ``sources``),
        each once, by position then source; None when none of them was fetched that day."""
        with self.engine.connect() as conn:
            query = sa.select(listings.c.source).where(listings.c.date == day)
            if sources is not None:
                query = query.where(listings.c.source.in_(list(sources)))
            heads = list(conn.execute(query.order_by(listings.c.source)).scalars())
            if not heads:
                return None
            members = listing_papers.c.date == day
            if sources is not None:
                members &= listing_papers.c.source.in_(heads)
            rows = conn.execute(
                sa.select(papers)
                .join(listing_papers, listing_papers.c.paper_key == papers.c.key)
                .where(members)
                .order_by(listing_papers.c.position, listing_papers.c.source, papers.c.key)
            ).mappings()
            seen: dict[str, Paper] = {}
            for r in rows:
                if r["key"] not in seen:
                    seen[r["key"]] = paper_of(r)
            return Listing(date=day, papers=tuple(seen.values()), source="+".join(heads))

    def source_listing(self, day: date, name: str) -> Listing | None:
        """The listing source ``name`` gave for ``day``, or None if it has none."""
        return self.listing(day, (name,))

    def fetched_dates(self, name: str, since: date) -> set[date]:
        """The dates from ``since`` on that source ``name`` has a listing of (empty ones
        included: a fetched weekend is fetched)."""
        with self.engine.connect() as conn:
            query = sa.select(listings.c.date).where(
                listings.c.source == name, listings.c.date >= since
            )
            return set(conn.execute(query).scalars())

    def resolve(self, ids: Iterable[str]) -> dict[str, str]:
        """For each of ``ids`` that names a stored paper, the key it is stored under.

        An id may be a key, an alias, an arXiv id with or without version
        (``2503.01234v2``), an abs/pdf link, a DOI (``10.1000/xyz``, ``doi:…``,
        ``https://doi.org/…``) or a link to the paper's page; ids naming nothing are left out.
        """
        wanted = {raw: lookups(raw) for raw in ids if raw.strip()}
        with self.engine.connect() as conn:
            found = known_keys(conn, chain.from_iterable(wanted.values()))
        out: dict[str, str] = {}
        for raw, candidates in wanted.items():
            key = next((found[c] for c in candidates if c in found), None)
            if key is not None:
                out[raw] = key
        return out

    def papers_by_key(self, keys: Iterable[str]) -> dict[str, Paper]:
        """The stored papers of ``keys``, by the key asked for; a key the paper is known by
        (an old key, an alias) finds it too (its ``Paper.key`` is the stored key)."""
        with self.engine.connect() as conn:
            names = known_keys(conn, keys)
            stored = stored_papers(conn, set(names.values()))
        return {asked: stored[key] for asked, key in names.items() if key in stored}

    def recent_dates(self, n: int) -> list[date]:
        """The ``n`` most recent listing dates stored (of any source), newest first."""
        with self.engine.connect() as conn:
            query = sa.select(listings.c.date).distinct().order_by(listings.c.date.desc())
            return list(conn.execute(query.limit(n)).scalars())

    def day_counts(self, n: int) -> list[tuple[date, int]]:
        """The ``n`` most recent listing dates that hold papers, newest first, with how many
        different papers every source together gave (a date fetched empty is left out)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    listing_papers.c.date, sa.func.count(sa.distinct(listing_papers.c.paper_key))
                )
                .group_by(listing_papers.c.date)
                .order_by(listing_papers.c.date.desc())
                .limit(n)
            )
            return [(r[0], r[1]) for r in rows]

    def recent_papers(self, days: int, limit: int) -> list[Paper]:
        """The papers of the ``days`` most recent listing dates (every source), at most
        ``limit`` of them (those of the newest dates first), each once: what the archive's
        search looks in."""
        with self.engine.connect() as conn:
            dates = (
                sa.select(listings.c.date)
                .distinct()
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
            return [paper_of(r) for r in rows]

    def paper_count_by_source(self) -> dict[str, int]:
        """How many different papers each source has listed, over every date stored."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    listing_papers.c.source, sa.func.count(sa.distinct(listing_papers.c.paper_key))
                ).group_by(listing_papers.c.source)
            )
            return {r[0]: r[1] for r in rows}


def _merge_with_stored(
    conn: Connection, incoming: list[Paper], fetched_at: datetime
) -> dict[str, Paper]:
    """The papers of ``incoming`` (deduplicated) as they are now stored, by stored key, in
    their order; their rows inserted or updated and their identities recorded."""
    names = {p.key: paper_identities(p) for p in incoming}
    found = known_keys(conn, chain.from_iterable(names.values()))
    stored = stored_papers(conn, set(found.values()))
    merged: dict[str, Paper] = {}
    matched: dict[str, str] = {}  # incoming key -> stored key
    for p in incoming:
        key = matched[p.key] = _match(p, names[p.key], found, merged, stored)
        mine = p if key == p.key else replace(p, key=key)
        base = merged.get(key) or stored.get(key)
        merged[key] = merge(base, mine) if base is not None else mine
    # rows written in key order: two PostgreSQL transactions writing some of the same papers
    # then wait for each other in one order, never in a cycle (a deadlock)
    new = [paper_row(merged[k], fetched_at) for k in sorted(merged) if k not in stored]
    if new:
        conn.execute(sa.insert(papers), new)
    changed = [
        _update_row(merged[k]) for k in sorted(merged) if k in stored and stored[k] != merged[k]
    ]
    if changed:
        conn.execute(
            sa.update(papers).where(papers.c.key == sa.bindparam("old_key")),
            changed,
        )
    aliases: dict[str, str] = {}
    for p in incoming:
        key = matched[p.key]
        known_as = names[p.key]
        if _IDENTIFYING(merged[key]) != _IDENTIFYING(p):  # the stored record adds identities
            known_as = [*known_as, *paper_identities(merged[key])]
        for alias in (key, *known_as):
            if alias not in found:
                aliases.setdefault(alias, key)
    add_aliases(conn, aliases)
    return merged


def _match(
    p: Paper,
    names: list[str],
    found: dict[str, str],
    merged: dict[str, Paper],
    stored: dict[str, Paper],
) -> str:
    """The key ``p`` is stored under: that of the first of its identities naming a paper it
    may be (:func:`digest.identity.same_paper`), else its own."""
    for name in names:
        key = found.get(name)
        if key is None:
            continue
        other = merged.get(key) or stored.get(key)
        if other is None or same_paper(other, p):
            return key
    return p.key


def _update_row(p: Paper) -> dict[str, Any]:
    row = paper_row(p, utc_now())
    del row["first_seen"]
    row["old_key"] = row.pop("key")
    return row


def _extend_listing(
    conn: Connection, day: date, name: str, keys: list[str], fetched_at: datetime
) -> None:
    """Add ``keys`` to source ``name``'s listing of ``day`` (after the papers it has) and
    write its ``listings`` row with the count it now holds."""
    here = (listing_papers.c.date == day) & (listing_papers.c.source == name)
    query = sa.select(listing_papers.c.paper_key, listing_papers.c.position).where(here)
    present: dict[str, int] = {key: position for key, position in conn.execute(query)}
    start = max(present.values(), default=-1) + 1
    fresh = [k for k in keys if k not in present]
    rows = [
        {"date": day, "source": name, "paper_key": k, "position": start + i}
        for i, k in enumerate(fresh)
    ]
    for chunk in chunks(rows, CHUNK * 4):
        conn.execute(sa.insert(listing_papers), list(chunk))
    head = (listings.c.date == day) & (listings.c.source == name)
    values = {"fetched_at": fetched_at, "count": len(present) + len(rows)}
    if conn.execute(sa.select(listings.c.date).where(head)).first():
        conn.execute(sa.update(listings).where(head).values(**values))
    else:
        conn.execute(sa.insert(listings).values(date=day, source=name, **values))
