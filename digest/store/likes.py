"""The likes repository: each subscriber's liked and disliked papers (table ``likes``).

A like names a stored paper's key or, for a paper we do not have yet, its identity (see
:mod:`digest.store.like_rows`); reads map an identity to the stored paper that has it as
an alias, so a like recorded by DOI matches the paper when it arrives by arXiv id.

Origins: a person's own choice (``cli``, ``web``, ``email``) records or changes a like;
the bulk origins (``config``, ``import``, ``library``) only add likes that are not there,
and never change or remove one a person made. The config's lists are declarative for
their own rows: an id taken out of a subscriber's ``like`` list removes that like if it
is still of origin ``config`` (not once the person liked it again themselves); an import
or a library file only ever adds.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from digest.models import Subscriber
from digest.store.like_rows import (
    KINDS,
    ORIGINS,
    PERSONAL,
    LikeEntry,
    identities_of,
    resolve,
)
from digest.store.paper_rows import known_keys
from digest.store.schema import (
    aware,
    begin,
    chunks,
    likes,
    paper_aliases,
    papers,
    profiles,
    retried,
    subscribers,
    utc_now,
)

log = logging.getLogger("digest.store")
_TAKEN = object()


@dataclass(frozen=True)
class LikeResult:
    """What became of one id: ``outcome`` is ``added``, ``changed`` (a like turned dislike
    or back), ``unchanged`` (already there), ``kept`` (a bulk origin met a person's other
    choice and left it) or ``rejected`` (``reason``); ``stored``: ``key`` is a stored
    paper's."""

    id: str
    key: str | None
    outcome: str
    stored: bool = False
    reason: str = ""


@dataclass(frozen=True)
class LikeCounts:
    """What :meth:`Likes.add` did, id by id (``results``), and the counts."""

    results: tuple[LikeResult, ...] = ()

    def _count(self, outcome: str) -> int:
        return sum(1 for r in self.results if r.outcome == outcome)

    @property
    def added(self) -> int:
        return self._count("added")

    @property
    def changed(self) -> int:
        return self._count("changed")

    @property
    def unchanged(self) -> int:
        return self._count("unchanged") + self._count("kept")

    @property
    def linked(self) -> int:
        """Of those recorded, how many name a stored paper."""
        return sum(1 for r in self.results if r.stored and r.outcome != "rejected")

    @property
    def rejected(self) -> tuple[LikeResult, ...]:
        return tuple(r for r in self.results if r.outcome == "rejected")


@dataclass(frozen=True)
class SyncCounts:
    """What :meth:`Likes.sync_config` did: likes added and removed, and the ids it could
    not use (email, id, reason)."""

    added: int = 0
    removed: int = 0
    rejected: tuple[tuple[str, str, str], ...] = ()


@dataclass(frozen=True)
class Like:
    """One of a subscriber's likes as :meth:`Likes.of` reads it: ``title`` and ``abstract``
    are the stored paper's (``stored``) else what was given with it."""

    key: str
    kind: str
    origin: str
    title: str
    abstract: str
    stored: bool
    created_at: datetime | None


@dataclass(frozen=True)
class LikedText:
    """What the ranker reads of a like: ``key`` the stored paper's (else the like's own)."""

    kind: str
    key: str
    title: str
    abstract: str


class Likes:
    """Reads and writes of likes; raises :class:`StateError`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- writing ----------------------------------------------------------------------------

    def add(
        self,
        subscriber_id: int,
        entries: Sequence[LikeEntry],
        kind: str,
        origin: str,
        now: datetime | None = None,
    ) -> LikeCounts:
        """Record ``entries`` as ``kind`` ("like" or "dislike") of ``origin`` (one of
        :data:`ORIGINS`) for one subscriber; never duplicates (see the module's docstring
        for what each origin may change). Unusable ids are rejected, the others recorded."""
        pairs = [(subscriber_id, e) for e in entries]
        when = now or utc_now()
        job = partial(self._add, pairs, kind, origin, when)
        return LikeCounts(tuple(retried(job, "record the likes")))

    def _add(
        self, pairs: Sequence[tuple[int, LikeEntry]], kind: str, origin: str, now: datetime
    ) -> list[LikeResult]:
        with begin(self.engine) as conn:
            return add_rows(conn, pairs, kind, origin, now)

    def remove(self, subscriber_id: int, ids: Iterable[str]) -> int:
        """Remove the subscriber's likes or dislikes of ``ids`` (any identity of the paper,
        as :meth:`add` takes them); returns how many were removed."""
        with begin(self.engine) as conn:
            keys: set[str] = set()
            for raw in ids:
                keys.update(identities_of(raw)[0] or [raw.strip()])
            found = known_keys(conn, keys)
            keys |= set(found.values())
            for chunk in chunks(sorted(set(found.values())), 500):
                aliases = sa.select(paper_aliases.c.alias).where(
                    paper_aliases.c.paper_key.in_(chunk)
                )
                keys.update(conn.execute(aliases).scalars())
            removed = 0
            for chunk in chunks(sorted(keys), 500):
                result = conn.execute(
                    sa.delete(likes).where(
                        likes.c.subscriber_id == subscriber_id, likes.c.paper_key.in_(chunk)
                    )
                )
                removed += result.rowcount
        return removed

    def forget(self, subscriber_id: int) -> int:
        """Remove every like of a subscriber (their data is deleted); returns how many."""
        with begin(self.engine) as conn:
            result = conn.execute(sa.delete(likes).where(likes.c.subscriber_id == subscriber_id))
        return result.rowcount

    def sync_config(self, subs: Sequence[Subscriber], origin: str = "config") -> SyncCounts:
        """Add each of ``subs``' ``like`` ids (subscribers found by address; those not
        stored are left out) with ``origin`` ("config", or "import" after an import).

        For "config", a like of origin "config" no longer in its subscriber's list is
        removed; nothing of any other origin is ever changed or removed.
        """
        counts = SyncCounts()
        for chunk in chunks(list(subs), 1000):
            job = partial(self._sync, chunk, origin, utc_now())
            done = retried(job, "record the likes")
            counts = SyncCounts(
                counts.added + done.added,
                counts.removed + done.removed,
                counts.rejected + done.rejected,
            )
        for email, raw, reason in counts.rejected:
            log.warning("like of %s: %r: %s", email, raw, reason)
        return counts

    def _sync(self, subs: Sequence[Subscriber], origin: str, now: datetime) -> SyncCounts:
        with begin(self.engine) as conn:
            ids = subscriber_ids(conn, [s.email for s in subs])
            pairs = [(ids[s.email], LikeEntry(i)) for s in subs if s.email in ids for i in s.like]
            results = add_rows(conn, pairs, "like", origin, now)
            email_of = {v: k for k, v in ids.items()}
            rejected = tuple(
                (email_of[sid], r.id, r.reason)
                for (sid, _), r in zip(pairs, results, strict=True)
                if r.outcome == "rejected"
            )
            removed = 0
            if origin == "config":
                keep = {(sid, r.key) for (sid, _), r in zip(pairs, results, strict=True) if r.key}
                removed = _drop_config_rows(conn, list(ids.values()), keep)
        added = sum(1 for r in results if r.outcome == "added")
        return SyncCounts(added, removed, rejected)

    # -- reading ----------------------------------------------------------------------------

    def of(self, subscriber_id: int) -> list[Like]:
        """A subscriber's likes and dislikes, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                _texts_query()
                .where(likes.c.subscriber_id == subscriber_id)
                .order_by(likes.c.created_at, likes.c.paper_key)
            ).all()
        return [
            Like(
                key=r.stored_key or r.paper_key,
                kind=r.kind,
                origin=r.origin,
                title=r.paper_title or r.title or "",
                abstract=r.paper_abstract or r.abstract or "",
                stored=r.stored_key is not None,
                created_at=aware(r.created_at),
            )
            for r in rows
        ]

    def keys_of(self, subscriber_ids: Sequence[int]) -> dict[int, set[str]]:
        """For each subscriber, the keys of the papers they liked or disliked (the like's
        own key and the stored paper's it is an alias of): never to be sent to them."""
        found: dict[int, set[str]] = {i: set() for i in subscriber_ids}
        with self.engine.connect() as conn:
            for chunk in chunks(list(subscriber_ids), 900):
                rows = conn.execute(
                    sa.select(likes.c.subscriber_id, likes.c.paper_key, paper_aliases.c.paper_key)
                    .outerjoin(paper_aliases, paper_aliases.c.alias == likes.c.paper_key)
                    .where(likes.c.subscriber_id.in_(chunk))
                )
                for sid, key, stored in rows:
                    found[sid].add(key)
                    if stored:
                        found[sid].add(stored)
        return found

    def liked_among(self, keys: Iterable[str]) -> dict[int, set[str]]:
        """Who liked or disliked which of the stored papers ``keys`` (by any of their
        identities), as subscriber id -> those keys: what a run's papers must not be sent
        to. Reads from the papers' side (``ix_likes_paper``): a day's few thousand papers
        cost a few queries however many subscribers and likes there are."""
        found: dict[int, set[str]] = {}
        wanted = sorted(set(keys))
        with self.engine.connect() as conn:
            # each key as the paper is stored, then every identity of that paper
            given = {stored: k for k, stored in known_keys(conn, wanted).items()}
            names = {k: k for k in wanted}
            for chunk in chunks(sorted(given), 500):
                query = sa.select(paper_aliases.c.alias, paper_aliases.c.paper_key).where(
                    paper_aliases.c.paper_key.in_(chunk)
                )
                names.update({alias: given[key] for alias, key in conn.execute(query)})
            for chunk in chunks(sorted(names), 500):
                query = sa.select(likes.c.subscriber_id, likes.c.paper_key).where(
                    likes.c.paper_key.in_(chunk)
                )
                for sid, name in conn.execute(query):
                    found.setdefault(sid, set()).add(names[name])
        return found

    def texts_for(self, subscriber_ids: Sequence[int]) -> dict[int, list[LikedText]]:
        """For each subscriber, the text of each like and dislike: the stored paper's title
        and abstract when we have it, else what was given with the like (a library
        entry's); a like with no text at all (an arXiv id yet to come) is left out."""
        found: dict[int, list[LikedText]] = {i: [] for i in subscriber_ids}
        with self.engine.connect() as conn:
            for chunk in chunks(list(subscriber_ids), 900):
                rows = conn.execute(
                    _texts_query()
                    .where(likes.c.subscriber_id.in_(chunk))
                    .order_by(likes.c.subscriber_id, likes.c.created_at, likes.c.paper_key)
                )
                for r in rows:
                    title = r.paper_title or r.title or ""
                    abstract = r.paper_abstract or r.abstract or ""
                    if title or abstract:
                        key = r.stored_key or r.paper_key
                        found[r.subscriber_id].append(LikedText(r.kind, key, title, abstract))
        return found

    def liked(self, subscriber_ids: Sequence[int]) -> dict[int, list[str]]:
        """For each of ``subscriber_ids`` with likes, the keys of the papers they like (not
        dislike), oldest first: what ``digest subscribers export`` writes as ``like``."""
        found: dict[int, list[str]] = {}
        with self.engine.connect() as conn:
            for chunk in chunks(list(subscriber_ids), 900):
                rows = conn.execute(
                    sa.select(likes.c.subscriber_id, likes.c.paper_key)
                    .where(likes.c.subscriber_id.in_(chunk), likes.c.kind == "like")
                    .order_by(likes.c.subscriber_id, likes.c.created_at, likes.c.paper_key)
                )
                for sid, key in rows:
                    found.setdefault(sid, []).append(key)
        return found

    def counts(self) -> dict[str, int]:
        """How many likes and dislikes are recorded, by kind."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(likes.c.kind, sa.func.count()).group_by(likes.c.kind))
            return {kind: n for kind, n in rows}


def _texts_query() -> Any:
    """Each like with the stored paper it names (directly or through an alias), if any."""
    target = sa.func.coalesce(paper_aliases.c.paper_key, likes.c.paper_key)
    return (
        sa.select(
            likes,
            papers.c.key.label("stored_key"),
            papers.c.title.label("paper_title"),
            papers.c.abstract.label("paper_abstract"),
        )
        .select_from(likes)
        .outerjoin(paper_aliases, paper_aliases.c.alias == likes.c.paper_key)
        .outerjoin(papers, papers.c.key == target)
    )


def add_rows(
    conn: Connection,
    pairs: Sequence[tuple[int, LikeEntry]],
    kind: str,
    origin: str,
    now: datetime,
) -> list[LikeResult]:
    """Record each (subscriber id, entry) of ``pairs`` (see :meth:`Likes.add`); one result
    per pair, in order."""
    if kind not in KINDS or origin not in ORIGINS:
        raise ValueError(f"kind {kind!r} or origin {origin!r} unknown")
    resolved = resolve(conn, [e for _, e in pairs])
    rows: dict[tuple[int, str], Any] = {}
    for chunk in chunks(sorted({sid for sid, _ in pairs}), 500):
        query = sa.select(likes).where(likes.c.subscriber_id.in_(chunk))
        rows.update({(r.subscriber_id, r.paper_key): r for r in conn.execute(query)})
    results: list[LikeResult] = []
    inserts: list[dict[str, Any]] = []
    for (sid, entry), res in zip(pairs, resolved, strict=True):
        if res.key is None:
            results.append(LikeResult(entry.id, None, "rejected", reason=res.reason))
            continue
        row = rows.get((sid, res.key))
        if row is None:
            values = {
                "subscriber_id": sid,
                "paper_key": res.key,
                "kind": kind,
                "origin": origin,
                "title": entry.title or None,
                "abstract": entry.abstract or None,
                "created_at": now,
            }
            inserts.append(values)
            rows[(sid, res.key)] = _TAKEN  # a second id of the same paper: unchanged
            outcome = "added"
        elif row is _TAKEN:
            outcome = "unchanged"
        else:
            outcome = _update(conn, row, entry, kind, origin, now)
        results.append(LikeResult(entry.id, res.key, outcome, stored=res.stored))
    if inserts:
        conn.execute(sa.insert(likes), inserts)
    return results


def _update(
    conn: Connection, row: Any, entry: LikeEntry, kind: str, origin: str, now: datetime
) -> str:
    """Bring an existing like up to date with ``entry`` of ``origin``; its outcome."""
    values: dict[str, Any] = {}
    outcome = "unchanged"
    if origin in PERSONAL:
        if row.kind != kind:
            values = {"kind": kind, "origin": origin, "created_at": now}
            outcome = "changed"
        elif row.origin not in PERSONAL:
            values = {"origin": origin}  # theirs now: the config no longer removes it
    elif row.kind != kind:
        outcome = "kept"
    if row.title is None and entry.title:
        values.update(title=entry.title, abstract=entry.abstract or None)
    if values:
        conn.execute(
            sa.update(likes)
            .where(likes.c.subscriber_id == row.subscriber_id, likes.c.paper_key == row.paper_key)
            .values(**values)
        )
        # The similarity profile knows the likes by their keys only: a new kind or text
        # does not show there, so it is dropped (store.profiles rebuilds it when asked).
        conn.execute(sa.delete(profiles).where(profiles.c.subscriber_id == row.subscriber_id))
    return outcome


def subscriber_ids(conn: Connection, emails: Sequence[str]) -> dict[str, int]:
    """The ids of the stored subscribers of ``emails``, by address (reads ``subscribers``)."""
    found: dict[str, int] = {}
    for chunk in chunks(sorted(set(emails)), 500):
        query = sa.select(subscribers.c.email, subscribers.c.id).where(
            subscribers.c.email.in_(chunk)
        )
        found.update({email: sid for email, sid in conn.execute(query)})
    return found


def _drop_config_rows(conn: Connection, ids: Sequence[int], keep: set[tuple[int, str]]) -> int:
    """Remove the origin-"config" likes of subscribers ``ids`` not in ``keep``."""
    removed = 0
    for chunk in chunks(sorted(ids), 500):
        query = sa.select(likes.c.subscriber_id, likes.c.paper_key).where(
            likes.c.subscriber_id.in_(chunk), likes.c.origin == "config"
        )
        for sid, key in conn.execute(query).all():
            if (sid, key) not in keep:
                conn.execute(
                    sa.delete(likes).where(likes.c.subscriber_id == sid, likes.c.paper_key == key)
                )
                removed += 1
    return removed
