"""The similarity model and profiles in the store (a real SQLite file and PostgreSQL): the
refit rule, profiles kept until their subscriber's likes change, bytes that do not read."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
import sqlalchemy as sa

from digest.models import Listing, Paper, Subscriber
from digest.run.ranking import Ranking
from digest.select.blend import select_similar
from digest.select.similar import Liked, Profile
from digest.store import Store
from digest.store.like_rows import LikeEntry
from digest.store.schema import likes, profiles, ranker_models
from tests.test_similar import DAY, DIFFUSION, GNN, LLM, STORED

NOW = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store(db_url)
    s.papers.save_listing(Listing(date(2026, 3, 1), tuple(STORED), source="file"))
    yield s
    s.close()


def subscriber(store: Store, email: str) -> int:
    sid = store.members.add_subscriber(Subscriber(email=email)).id
    assert sid is not None
    return sid


def like(store: Store, sid: int, kind: str, paper: Paper, **given: str) -> None:
    with store.engine.begin() as conn:
        conn.execute(
            sa.insert(likes).values(
                subscriber_id=sid,
                paper_key=paper.key,
                kind=kind,
                origin="cli",
                created_at=NOW,
                **given,
            )
        )


class TextsFor:
    """``store.likes.texts_for``, counting who it was asked for."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.asked: list[list[int]] = []

    def __call__(self, ids: Sequence[int]) -> Mapping[int, Sequence[Liked]]:
        self.asked.append(sorted(ids))
        return self.store.likes.texts_for(ids)


def test_the_model_is_fitted_once_and_refitted_by_the_rule(store: Store) -> None:
    first = store.profiles.ranker(NOW)
    assert first is not None and first.version == 1 and first.papers == len(STORED)
    again = Store(store.url)  # another process: reads it back from the database
    try:
        loaded = again.profiles.ranker(NOW + timedelta(days=1))
        assert loaded is not None and loaded.version == 1 and loaded.terms == first.terms
    finally:
        again.close()
    # Two papers more: less than 20% growth, same model.
    extra = [
        Paper(f"2602.{i:05d}", f"Denoising diffusion {i}", "Diffusion models.") for i in range(4)
    ]
    store.papers.save_listing(Listing(date(2026, 3, 2), tuple(extra[:2]), source="file"))
    assert store.profiles.ranker(NOW).version == 1  # type: ignore[union-attr]
    store.papers.save_listing(Listing(date(2026, 3, 3), tuple(extra[2:]), source="file"))
    grown = store.profiles.ranker(NOW)
    assert grown is not None and grown.version == 2 and grown.papers == len(STORED) + 4
    old = store.profiles.ranker(NOW + timedelta(days=31))
    assert old is not None and old.version == 3
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(ranker_models)).scalar() == 1


def test_no_paper_no_model(db_url: str) -> None:
    with Store(db_url) as empty:
        assert empty.profiles.ranker(NOW) is None
        assert empty.profiles.stored_ranker() is None


def test_an_unreadable_model_is_fitted_again(store: Store) -> None:
    assert store.profiles.ranker(NOW) is not None
    with store.engine.begin() as conn:
        conn.execute(sa.update(ranker_models).values(data=b"garbage"))
    fresh = Store(store.url)
    try:
        assert fresh.profiles.stored_ranker() is None
        ranker = fresh.profiles.ranker(NOW)
        assert ranker is not None and ranker.version == 2
    finally:
        fresh.close()


def test_profiles_round_trip_through_the_store(store: Store) -> None:
    ranker = store.profiles.ranker(NOW)
    assert ranker is not None
    a, b = subscriber(store, "a@example.org"), subscriber(store, "zoë@example.org")
    like(store, a, "like", GNN[0])
    like(store, a, "like", GNN[1])
    like(store, b, "like", DIFFUSION[0])
    like(store, b, "dislike", LLM[0])
    texts = TextsFor(store)
    made = store.profiles.current([a, b], ranker, texts, NOW)
    assert set(made) == {a, b} and texts.asked == [[a, b]]
    stored = store.profiles.get_many([a, b, 999])
    assert set(stored) == {a, b}
    for sid in (a, b):
        assert stored[sid].titles == made[sid].titles
        assert stored[sid].keys == made[sid].keys
        assert np.array_equal(stored[sid].centre, made[sid].centre)
    picks = select_similar(stored[a], ranker.day(DAY), threshold=0.15)
    assert picks and all(m.like in (GNN[0].title, GNN[1].title) for m in picks)


def test_a_profile_is_rebuilt_only_when_its_likes_change(store: Store) -> None:
    ranker = store.profiles.ranker(NOW)
    assert ranker is not None
    a, b, c = (subscriber(store, f"{n}@example.org") for n in "abc")
    like(store, a, "like", GNN[0])
    like(store, b, "like", DIFFUSION[0])
    texts = TextsFor(store)
    first = store.profiles.current([a, b, c], ranker, texts, NOW)
    assert set(first) == {a, b}  # c likes nothing: no profile
    assert store.profiles.current([a, b, c], ranker, texts, NOW).keys() == {a, b}
    assert texts.asked == [[a, b]]  # the second time, nothing was rebuilt
    like(store, a, "dislike", GNN[3])
    changed = store.profiles.current([a, b, c], ranker, texts, NOW)
    assert texts.asked[-1] == [a] and GNN[3].key in changed[a].keys
    # A liked id we have no paper for yet, with no text: its arrival changes the hash.
    late = Paper("2603.09999", "Graph neural networks that arrive late", "Message passing.")
    like(store, b, "like", late)
    store.profiles.current([b], ranker, texts, NOW)
    store.papers.save_listing(Listing(date(2026, 3, 4), (late,), source="file"))
    store.profiles.current([b], ranker, texts, NOW)
    assert texts.asked[-2:] == [[b], [b]]
    # Removing every like removes the profile.
    with store.engine.begin() as conn:
        conn.execute(sa.delete(likes).where(likes.c.subscriber_id == a))
    assert a not in store.profiles.current([a, b], ranker, texts, NOW)
    assert a not in store.profiles.get_many([a])


def test_a_refit_rebuilds_every_profile(store: Store) -> None:
    ranker = store.profiles.ranker(NOW)
    assert ranker is not None
    a = subscriber(store, "a@example.org")
    like(store, a, "like", GNN[0])
    texts = TextsFor(store)
    assert store.profiles.current([a], ranker, texts, NOW)[a].version == 1
    refitted = store.profiles.refit(NOW)
    assert refitted.version == 2
    assert store.profiles.current([a], refitted, texts, NOW)[a].version == 2
    assert len(texts.asked) == 2


def test_an_unreadable_profile_is_rebuilt(store: Store) -> None:
    ranker = store.profiles.ranker(NOW)
    assert ranker is not None
    a = subscriber(store, "a@example.org")
    like(store, a, "like", GNN[0], title="ignored: the stored paper's title wins")
    texts = TextsFor(store)
    store.profiles.current([a], ranker, texts, NOW)
    with store.engine.begin() as conn:
        conn.execute(sa.update(profiles).values(data=b"\x00\x01"))
    assert store.profiles.get_many([a]) == {}
    rebuilt = store.profiles.current([a], ranker, texts, NOW)
    assert isinstance(rebuilt[a], Profile) and rebuilt[a].titles == (GNN[0].title,)
    assert len(texts.asked) == 2


def test_a_like_turned_dislike_rebuilds_the_profile(store: Store) -> None:
    ranker = store.profiles.ranker(NOW)
    assert ranker is not None
    a = subscriber(store, "a@example.org")
    store.likes.add(a, [LikeEntry(GNN[0].key), LikeEntry(DIFFUSION[0].key)], "like", "cli", NOW)
    texts = TextsFor(store)
    before = store.profiles.current([a], ranker, texts, NOW)[a]
    assert set(before.titles) == {GNN[0].title, DIFFUSION[0].title}
    assert store.profiles.current([a], ranker, texts, NOW)[a].titles == before.titles
    assert len(texts.asked) == 1
    # The person changes their mind: same key, another kind.
    counts = store.likes.add(a, [LikeEntry(DIFFUSION[0].key)], "dislike", "web", NOW)
    assert counts.changed == 1
    after = store.profiles.current([a], ranker, texts, NOW)[a]
    assert after.titles == (GNN[0].title,) and DIFFUSION[0].key in after.keys
    assert len(texts.asked) == 2
    day = ranker.day(DAY)
    diffusion = [day.number[DIFFUSION[0].key]]
    assert (day.vectors[diffusion] @ after.centre)[0] < (day.vectors[diffusion] @ before.centre)[0]


def test_a_dry_run_fits_the_model_the_run_will_fit_once_it_stores_the_day(db_url: str) -> None:
    """A young site (no model stored): the dry run fits on the stored papers and the day's
    new ones, as the real run does after storing them, so both rank alike."""
    new = list(reversed(STORED[4:]))  # in the listing's order, not the store's
    with Store(db_url) as s:
        s.papers.save_listing(Listing(date(2026, 3, 1), tuple(STORED[:4]), "file"), NOW)
        dry = Ranking(s, NOW + timedelta(hours=1), write=False, unstored=new).ranker()
        with s.engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(ranker_models)).scalar() == 0
        s.papers.save_listing(
            Listing(date(2026, 3, 2), tuple(new), "file"), NOW + timedelta(hours=1)
        )
        real = Ranking(s, NOW + timedelta(hours=1)).ranker()
    assert dry is not None and real is not None
    assert dry.papers == real.papers == len(STORED)
    assert dry.to_bytes() == real.to_bytes()
