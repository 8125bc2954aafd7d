"""The profiles repository: the similarity ranker's fitted model and each subscriber's
profile (tables ``ranker_models`` and ``profiles``; reads ``papers`` and ``likes``).

The model is fitted on the stored papers, not per run: :meth:`Profiles.ranker` refits it
when there is none, when the stored papers have grown by :data:`REFIT_GROWTH` (20%) since
it was fitted, or when it is older than :data:`REFIT_DAYS` (30) days; each refit bumps its
version. A profile is rebuilt only when it was made by another model version or when its
subscriber's likes changed (the hash of their likes it carries differs): see
:meth:`Profiles.current`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from digest.errors import StateError
from digest.select.similar import (
    Liked,
    Profile,
    TfidfRanker,
    build_profile,
    hash_of_likes,
    load,
    text_of,
)
from digest.store.schema import (
    aware,
    begin,
    chunks,
    likes,
    paper_aliases,
    papers,
    profiles,
    ranker_models,
    retried,
    utc_now,
)

#: Refit when the stored papers are this much more than the model was fitted on.
REFIT_GROWTH = 0.2
#: Refit a model older than this many days (the words of a field drift).
REFIT_DAYS = 30
#: The most recent papers a model is fitted on, at most.
FIT_PAPERS = 50_000

TextsFor = Callable[[Sequence[int]], Mapping[int, Sequence[Liked]]]


class Profiles:
    """Reads and writes of the ranker's model and the subscribers' profiles; raises
    :class:`StateError`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._ranker: TfidfRanker | None = None

    # -- the model ---------------------------------------------------------------------

    def stored_ranker(self) -> TfidfRanker | None:
        """The stored model, or None when there is none or it cannot be read."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(ranker_models.c.version, ranker_models.c.data).where(
                    ranker_models.c.name == TfidfRanker.name
                )
            ).first()
        if row is None:
            return None
        cached = self._ranker
        if cached is not None and cached.version == row.version:
            return cached
        try:
            self._ranker = load(bytes(row.data))
        except StateError:
            return None
        return self._ranker

    def ranker(self, now: datetime | None = None) -> TfidfRanker | None:
        """The model to rank with: the stored one, refitted first when the rule of this
        module says so; None when no paper is stored yet."""
        now = now or utc_now()
        count = self.paper_count()
        if not count:
            return None
        head = self._model_head()
        current = self.stored_ranker() if head is not None else None
        if head is not None and current is not None:
            _, fitted_on, fitted_at = head
            fresh = fitted_at is not None and now - fitted_at < timedelta(days=REFIT_DAYS)
            if fresh and count < fitted_on * (1 + REFIT_GROWTH):
                return current
        return self.refit(now, version=(head[0] + 1) if head else 1)

    def refit(self, now: datetime | None = None, version: int | None = None) -> TfidfRanker:
        """Fit a new model on the most recent :data:`FIT_PAPERS` stored papers and store it
        (``version``: the stored one's plus one). Raises StateError when no paper has words."""
        now = now or utc_now()
        if version is None:
            head = self._model_head()
            version = head[0] + 1 if head else 1
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(papers.c.title, papers.c.abstract)
                .order_by(papers.c.first_seen.desc(), papers.c.key)
                .limit(FIT_PAPERS)
            ).all()
        ranker = TfidfRanker.fit([text_of(t, a or "") for t, a in rows], version=version)
        self.save_ranker(ranker, now)
        return ranker

    def save_ranker(self, ranker: TfidfRanker, fitted_at: datetime) -> None:
        """Store ``ranker`` as the model (replacing the one stored)."""
        values = {
            "version": ranker.version,
            "data": ranker.to_bytes(),
            "papers": ranker.papers,
            "fitted_at": fitted_at,
        }

        def write() -> None:
            with begin(self.engine) as conn:
                here = ranker_models.c.name == ranker.name
                done = conn.execute(sa.update(ranker_models).where(here).values(**values))
                if not done.rowcount:
                    conn.execute(sa.insert(ranker_models).values(name=ranker.name, **values))

        retried(write, "store the similarity model")
        self._ranker = ranker

    def paper_count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(papers)).scalar_one())

    def _model_head(self) -> tuple[int, int, datetime | None] | None:
        """The stored model's version, paper count and time of fitting, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(
                    ranker_models.c.version, ranker_models.c.papers, ranker_models.c.fitted_at
                ).where(ranker_models.c.name == TfidfRanker.name)
            ).first()
        return None if row is None else (int(row[0]), int(row[1]), aware(row[2]))

    # -- profiles ----------------------------------------------------------------------

    def get_many(self, subscriber_ids: Sequence[int]) -> dict[int, Profile]:
        """The stored profiles of these subscribers (an unreadable one is left out)."""
        found: dict[int, Profile] = {}
        with self.engine.connect() as conn:
            for chunk in chunks(list(subscriber_ids), 900):
                rows = conn.execute(
                    sa.select(profiles.c.subscriber_id, profiles.c.data).where(
                        profiles.c.subscriber_id.in_(chunk), profiles.c.name == TfidfRanker.name
                    )
                )
                for sid, data in rows:
                    try:
                        found[sid] = Profile.from_bytes(bytes(data))
                    except StateError:
                        continue
        return found

    def put_many(self, made: Mapping[int, Profile], now: datetime | None = None) -> None:
        """Store these subscribers' profiles (replacing theirs)."""
        if not made:
            return
        now = now or utc_now()
        rows = [
            {
                "subscriber_id": sid,
                "name": TfidfRanker.name,
                "version": p.version,
                "data": p.to_bytes(),
                "updated_at": now,
            }
            for sid, p in made.items()
        ]

        def write() -> None:
            with begin(self.engine) as conn:
                _delete(conn, list(made))
                for chunk in chunks(rows, 500):
                    conn.execute(sa.insert(profiles), list(chunk))

        retried(write, "store the similarity profiles")

    def forget(self, subscriber_ids: Sequence[int]) -> None:
        """Delete these subscribers' profiles."""
        with begin(self.engine) as conn:
            _delete(conn, subscriber_ids)

    def current(
        self,
        subscriber_ids: Sequence[int],
        ranker: TfidfRanker,
        texts_for: TextsFor,
        now: datetime | None = None,
    ) -> dict[int, Profile]:
        """The up-to-date profile of each of these subscribers who likes or dislikes
        anything (the others have none): the stored one, else built from ``texts_for``
        (``store.likes.texts_for``) and stored. Call it per batch of subscribers (the
        run's 1,000): it reads their likes' keys, not their texts, unless rebuilding.
        """
        hashes = self.likes_hashes(subscriber_ids)
        stored = self.get_many(subscriber_ids)
        gone = [sid for sid in stored if sid not in hashes]
        if gone:
            self.forget(gone)
        up_to_date = {
            sid: p
            for sid, p in stored.items()
            if sid in hashes and p.version == ranker.version and p.likes_hash == hashes[sid]
        }
        stale = [sid for sid in hashes if sid not in up_to_date]
        if not stale:
            return up_to_date
        texts = texts_for(stale)
        made = {
            sid: build_profile(ranker, texts.get(sid, ()), likes_hash=hashes[sid]) for sid in stale
        }
        self.put_many(made, now)
        return up_to_date | made

    def likes_hashes(self, subscriber_ids: Sequence[int]) -> dict[int, str]:
        """For each of these subscribers with a like or dislike, the hash of their likes:
        each like's kind, the key of the paper it names and whether there is text for it
        (a liked arXiv id whose paper arrives later changes the hash)."""
        pairs: dict[int, list[tuple[str, str]]] = {}
        with self.engine.connect() as conn:
            for chunk in chunks(list(subscriber_ids), 900):
                for sid, kind, key, text in conn.execute(_keys_query(chunk)):
                    pairs.setdefault(sid, []).append((kind, f"{key} {text}"))
        return {sid: hash_of_likes(found) for sid, found in pairs.items()}


def _keys_query(chunk: Sequence[int]) -> Any:
    """Each like of these subscribers: kind, the stored paper's key (else its own) and
    ``p`` (a stored paper), ``t`` (text given with it) or ``-`` (no text yet)."""
    target = sa.func.coalesce(paper_aliases.c.paper_key, likes.c.paper_key)
    given = likes.c.title.isnot(None) | likes.c.abstract.isnot(None)
    text = sa.case((papers.c.key.isnot(None), "p"), (given, "t"), else_="-")
    return (
        sa.select(
            likes.c.subscriber_id,
            likes.c.kind,
            sa.func.coalesce(papers.c.key, likes.c.paper_key),
            text,
        )
        .select_from(likes)
        .outerjoin(paper_aliases, paper_aliases.c.alias == likes.c.paper_key)
        .outerjoin(papers, papers.c.key == target)
        .where(likes.c.subscriber_id.in_(chunk))
    )


def _delete(conn: Connection, subscriber_ids: Sequence[int]) -> None:
    for chunk in chunks(list(subscriber_ids), 900):
        conn.execute(
            sa.delete(profiles).where(
                profiles.c.subscriber_id.in_(chunk), profiles.c.name == TfidfRanker.name
            )
        )
