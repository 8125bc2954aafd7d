"""The profiles repository: the similarity ranker's fitted model and each subscriber's
profile (tables ``ranker_models`` and ``profiles``; reads ``papers`` and ``likes``).

The model is fitted on the stored papers, not per run: :meth:`Profiles.ranker` refits it
when there is none, when the stored papers have grown by :data:`REFIT_GROWTH` (20%) since
it was fitted, or when it is older than :data:`REFIT_DAYS` (30) days; each refit bumps its
version. A profile is rebuilt only when it was made by another model version, when its subscriber's
liked or disliked papers changed (the hash of their keys it carries differs: one aggregate
query over the likes' index), when ``store.likes`` dropped it (a like changed kind) or,
made while some liked paper had no text, when a listing was stored since: see
:meth:`Profiles.current`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from digest.errors import StateError
from digest.store.schema import (
    aware,
    begin,
    chunks,
    likes,
    listings,
    papers,
    profiles,
    ranker_models,
    retried,
    utc_now,
)

if TYPE_CHECKING:  # imported on first use: numpy comes with them (~16 MB a process), which
    # a run where nobody likes anything, and each of its workers, never needs
    from digest.select.similar import Liked, Profile, TfidfRanker

#: The model's name in ``ranker_models`` and ``profiles`` (``TfidfRanker.name``, written here
#: so that reading those tables does not import the ranker; tests/test_profiles checks both).
MODEL_NAME = "tfidf"
#: Refit when the stored papers are this much more than the model was fitted on.
REFIT_GROWTH = 0.2
#: Refit a model older than this many days (the words of a field drift).
REFIT_DAYS = 30
#: The most recent papers a model is fitted on, at most.
FIT_PAPERS = 50_000

TextsFor = Callable[[Sequence[int]], Mapping[int, Sequence["Liked"]]]


class Profiles:
    """Reads and writes of the ranker's model and the subscribers' profiles; raises
    :class:`StateError`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._ranker: TfidfRanker | None = None

    # -- the model ---------------------------------------------------------------------

    def stored_ranker(self) -> TfidfRanker | None:
        """The stored model, or None when there is none or it cannot be read."""
        from digest.select.similar import load

        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(ranker_models.c.version, ranker_models.c.data).where(
                    ranker_models.c.name == MODEL_NAME
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

    def ranker(
        self, now: datetime | None = None, save: bool = True, unstored: Sequence[str] = ()
    ) -> TfidfRanker | None:
        """The model to rank with: the stored one, refitted first when the rule of this
        module says so (``save=False``: refitted in memory only, nothing written); None
        when no paper is stored yet. ``unstored``: the texts of papers a run would store
        first (a dry run's new papers, newest first), counted and fitted on as if stored."""
        now = now or utc_now()
        count = self.paper_count() + len(unstored)
        if not count:
            return None
        head = self._model_head()
        current = self.stored_ranker() if head is not None else None
        if head is not None and current is not None:
            _, fitted_on, fitted_at = head
            fresh = fitted_at is not None and now - fitted_at < timedelta(days=REFIT_DAYS)
            if fresh and count < fitted_on * (1 + REFIT_GROWTH):
                return current
        version = (head[0] + 1) if head else 1
        return self.refit(now, version=version, save=save, unstored=unstored)

    def refit(
        self,
        now: datetime | None = None,
        version: int | None = None,
        save: bool = True,
        unstored: Sequence[str] = (),
    ) -> TfidfRanker:
        """Fit a new model on the most recent :data:`FIT_PAPERS` stored papers (after the
        ``unstored`` texts, the newest) and store it (``version``: the stored one's plus one;
        ``save=False``: do not store it). Raises StateError when no paper has words."""
        from digest.select.similar import TfidfRanker, text_of

        now = now or utc_now()
        if version is None:
            head = self._model_head()
            version = head[0] + 1 if head else 1
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(papers.c.title, papers.c.abstract)
                .order_by(papers.c.first_seen.desc(), papers.c.key)
                .limit(max(0, FIT_PAPERS - len(unstored)))
            ).all()
        texts = [*unstored[:FIT_PAPERS], *(text_of(t, a or "") for t, a in rows)]
        ranker = TfidfRanker.fit(texts, version=version)
        if save:
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
                ).where(ranker_models.c.name == MODEL_NAME)
            ).first()
        return None if row is None else (int(row[0]), int(row[1]), aware(row[2]))

    # -- profiles ----------------------------------------------------------------------

    def get_many(self, subscriber_ids: Sequence[int]) -> dict[int, Profile]:
        """The stored profiles of these subscribers (an unreadable one is left out)."""
        return self._stored(subscriber_ids)

    def put_many(self, made: Mapping[int, Profile], now: datetime | None = None) -> None:
        """Store these subscribers' profiles (replacing theirs)."""
        if not made:
            return
        now = now or utc_now()
        rows = [
            {
                "subscriber_id": sid,
                "name": MODEL_NAME,
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
        """Delete these subscribers' profiles (rebuilt when next asked for)."""
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
        run's 1,000).

        A stored profile is up to date when it was made by ``ranker``'s version, for the
        likes it has the hash of (:meth:`likes_markers`), and, if some of them had no
        text then, no listing was stored since (a liked paper may have arrived).
        """
        from digest.select.similar import build_profile

        markers = self.likes_markers(subscriber_ids)
        stored = self._stored(subscriber_ids)
        gone = [sid for sid in stored if sid not in markers]
        if gone:
            self.forget(gone)
        arrived = self._last_listing()
        # When a profile was made matters only if it lacked some liked paper's text.
        waiting = [sid for sid, p in stored.items() if p.missing] if arrived is not None else []
        made_at = self._made_at(waiting) if waiting else {}

        def fresh(sid: int) -> bool:
            profile = stored[sid]
            if profile.version != ranker.version or profile.likes_hash != markers[sid][0]:
                return False
            return not profile.missing or arrived is None or arrived <= made_at.get(sid, arrived)

        up_to_date = {sid: stored[sid] for sid in markers if sid in stored and fresh(sid)}
        stale = [sid for sid in markers if sid not in up_to_date]
        if not stale:
            return up_to_date
        texts = texts_for(stale)
        made = {}
        for sid in stale:
            found = texts.get(sid, ())
            missing = max(0, markers[sid][1] - len(found))
            made[sid] = build_profile(ranker, found, markers[sid][0], missing)
        self.put_many(made, now)
        return up_to_date | made

    def likes_markers(self, subscriber_ids: Sequence[int]) -> dict[int, tuple[str, int]]:
        """For each of these subscribers with a like or dislike: the hash of the keys of
        the papers they liked or disliked, and how many. One aggregate query per 900
        subscribers that reads the likes' primary key index only (a like's row can be
        long: a library's abstract). A like that changes kind or gains a title keeps its
        key: ``store.likes`` drops the profile then (:meth:`forget`)."""
        from digest.select.similar import hash_of_likes

        found: dict[int, tuple[str, int]] = {}
        if self.engine.dialect.name == "postgresql":
            joined = sa.func.string_agg(likes.c.paper_key, sa.literal("\n"))
        else:
            joined = sa.func.group_concat(likes.c.paper_key, "\n")
        query = sa.select(likes.c.subscriber_id, joined).group_by(likes.c.subscriber_id)
        with self.engine.connect() as conn:
            for chunk in chunks(list(subscriber_ids), 900):
                for sid, keys in conn.execute(query.where(likes.c.subscriber_id.in_(chunk))):
                    ordered = sorted(keys.split("\n"))  # the database's order is not promised
                    found[sid] = (hash_of_likes([("keys", "\n".join(ordered))]), len(ordered))
        return found

    def _stored(self, subscriber_ids: Sequence[int]) -> dict[int, Profile]:
        """The readable stored profiles of these subscribers."""
        from digest.select.similar import Profile

        found: dict[int, Profile] = {}
        for sid, data in self._column(profiles.c.data, subscriber_ids):
            try:
                found[sid] = Profile.from_bytes(bytes(data))
            except StateError:
                continue
        return found

    def _made_at(self, subscriber_ids: Sequence[int]) -> dict[int, datetime]:
        """When the stored profiles of these subscribers were made."""
        column = profiles.c.updated_at
        return {sid: aware(at) or utc_now() for sid, at in self._column(column, subscriber_ids)}

    def _column(
        self, column: sa.Column[Any], subscriber_ids: Sequence[int]
    ) -> Iterator[tuple[int, Any]]:
        """(subscriber id, ``column``) of these subscribers' stored profiles, read by chunks."""
        with self.engine.connect() as conn:
            for chunk in chunks(list(subscriber_ids), 900):
                yield from conn.execute(
                    sa.select(profiles.c.subscriber_id, column).where(
                        profiles.c.subscriber_id.in_(chunk), profiles.c.name == MODEL_NAME
                    )
                )

    def _last_listing(self) -> datetime | None:
        """When a listing was last stored (papers arrive with listings)."""
        with self.engine.connect() as conn:
            return aware(conn.execute(sa.select(sa.func.max(listings.c.fetched_at))).scalar())


def _delete(conn: Connection, subscriber_ids: Sequence[int]) -> None:
    for chunk in chunks(list(subscriber_ids), 900):
        conn.execute(
            sa.delete(profiles).where(
                profiles.c.subscriber_id.in_(chunk), profiles.c.name == MODEL_NAME
            )
        )
