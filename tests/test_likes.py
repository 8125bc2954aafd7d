"""The likes repository on a real SQLite file and on PostgreSQL: ids of every form resolved
to stored papers, unknown arXiv ids and DOIs kept until the paper arrives, what each origin
may change, the config's lists, and the bulk reads the run and the ranker use."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from threading import Barrier

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.identity import arxiv_id_of, key_of
from digest.models import Listing, Paper, Subscriber
from digest.store import Store
from digest.store.like_rows import LikeEntry, identities_of
from digest.store.likes import LikeCounts, LikedText

DAY = date(2026, 11, 16)
NOW = datetime(2026, 11, 16, 7, 0, tzinfo=UTC)

PAPERS = (
    Paper(
        key="2511.00001",
        arxiv_id="2511.00001",
        title="Diffusion Agents Plan in Latent Space",
        abstract="Diffusion models plan.",
    ),
    Paper(
        key="2511.00002",
        arxiv_id="2511.00002",
        title="A Survey of Large Language Model Agents",
        abstract="We survey LLM agents.",
    ),
)


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store(db_url)
    s.papers.save_listing(Listing(date=DAY, papers=PAPERS, source="file"), NOW)
    yield s
    s.close()


def subscriber(store: Store, email: str = "ada@example.org") -> int:
    sub = store.members.add_subscriber(Subscriber(email=email))
    assert sub.id is not None
    return sub.id


def entries(*ids: str) -> list[LikeEntry]:
    return [LikeEntry(i) for i in ids]


@pytest.mark.parametrize(
    "given",
    [
        "2511.00001",
        "2511.00001v3",
        "arXiv:2511.00001v2",
        " https://arxiv.org/abs/2511.00001v2 ",
        "http://arxiv.org/pdf/2511.00001v1.pdf",
        "https://arxiv.org/pdf/2511.00001",
        "10.48550/arXiv.2511.00001",
        "https://doi.org/10.48550/ARXIV.2511.00001",
    ],
)
def test_every_form_of_an_arxiv_id_names_the_stored_paper(store: Store, given: str) -> None:
    sid = subscriber(store)
    counts = store.likes.add(sid, entries(given), "like", "cli", NOW)
    (result,) = counts.results
    assert (result.id, result.key, result.outcome, result.stored) == (
        given,
        "2511.00001",
        "added",
        True,
    )
    assert counts.added == 1 and counts.linked == 1
    (like,) = store.likes.of(sid)
    assert (like.key, like.kind, like.origin, like.stored) == ("2511.00001", "like", "cli", True)
    assert like.title == "Diffusion Agents Plan in Latent Space"
    assert like.created_at == NOW


def test_liking_again_by_another_form_records_nothing_more(store: Store) -> None:
    sid = subscriber(store)
    store.likes.add(sid, entries("2511.00001"), "like", "cli", NOW)
    again = store.likes.add(
        sid, entries("https://arxiv.org/abs/2511.00001v2", "2511.00001"), "like", "web"
    )
    assert [r.outcome for r in again.results] == ["unchanged", "unchanged"]
    assert again.added == 0 and again.unchanged == 2
    assert [(x.key, x.origin) for x in store.likes.of(sid)] == [("2511.00001", "cli")]


def test_an_arxiv_id_or_doi_we_do_not_have_is_kept_until_the_paper_arrives(store: Store) -> None:
    sid = subscriber(store)
    counts = store.likes.add(
        sid, entries("2512.09999v2", "https://doi.org/10.1000/ABC.42"), "like", "cli", NOW
    )
    assert [(r.key, r.stored, r.outcome) for r in counts.results] == [
        ("2512.09999", False, "added"),
        ("doi:10.1000/abc.42", False, "added"),
    ]
    assert store.likes.keys_of([sid]) == {sid: {"2512.09999", "doi:10.1000/abc.42"}}
    assert store.likes.texts_for([sid]) == {sid: []}  # nothing to read yet
    assert [x.title for x in store.likes.of(sid)] == ["", ""]

    # Both arrive: one by its arXiv id, the other by its arXiv id with that DOI.
    later = (
        Paper(key="2512.09999", arxiv_id="2512.09999", title="Arrived Later", abstract="Late."),
        Paper(
            key="2512.00007",
            arxiv_id="2512.00007",
            doi="10.1000/abc.42",
            title="Known by Its DOI",
            abstract="A journal paper, also on arXiv.",
        ),
    )
    store.papers.save_listing(Listing(date=DAY + timedelta(days=1), papers=later, source="file"))
    assert store.likes.keys_of([sid]) == {sid: {"2512.09999", "doi:10.1000/abc.42", "2512.00007"}}
    assert store.likes.texts_for([sid]) == {
        sid: [
            LikedText("like", "2512.09999", "Arrived Later", "Late."),
            LikedText("like", "2512.00007", "Known by Its DOI", "A journal paper, also on arXiv."),
        ]
    }
    assert [(x.key, x.stored) for x in store.likes.of(sid)] == [
        ("2512.09999", True),
        ("2512.00007", True),
    ]


def test_an_id_that_names_no_paper_is_rejected_and_the_others_recorded(store: Store) -> None:
    sid = subscriber(store)
    counts = store.likes.add(
        sid,
        entries("not a paper", "title:no such title", "https://example.org/x", "", "2511.00002"),
        "dislike",
        "cli",
        NOW,
    )
    assert [r.outcome for r in counts.results] == ["rejected"] * 4 + ["added"]
    assert [r.id for r in counts.rejected] == [
        "not a paper",
        "title:no such title",
        "https://example.org/x",
        "",
    ]
    assert all("not an arXiv id, a DOI" in r.reason for r in counts.rejected)
    assert [(x.key, x.kind) for x in store.likes.of(sid)] == [("2511.00002", "dislike")]


def test_a_stored_papers_own_key_and_link_are_ids_too(store: Store) -> None:
    other = Paper(
        key="link:example.org/papers/7",
        title="A Paper Only on a Web Page",
        abstract="Not on arXiv.",
        link="https://www.example.org/papers/7/?utm_source=x",
    )
    store.papers.save_listing(Listing(date=DAY, papers=(other,), source="blog"))
    sid = subscriber(store)
    counts = store.likes.add(
        sid,
        entries("link:example.org/papers/7", "https://example.org/papers/7#top"),
        "like",
        "cli",
    )
    assert [(r.key, r.outcome) for r in counts.results] == [
        ("link:example.org/papers/7", "added"),
        ("link:example.org/papers/7", "unchanged"),
    ]


def test_a_like_turned_dislike_changes_its_kind_and_origin_in_place(store: Store) -> None:
    sid = subscriber(store)
    store.likes.add(sid, entries("2511.00001"), "like", "cli", NOW)
    later = NOW + timedelta(hours=1)
    turned = store.likes.add(sid, entries("2511.00001v2"), "dislike", "email", later)
    assert [r.outcome for r in turned.results] == ["changed"]
    (like,) = store.likes.of(sid)
    assert (like.kind, like.origin, like.created_at) == ("dislike", "email", later)
    back = store.likes.add(sid, entries("2511.00001"), "like", "web", later)
    assert back.changed == 1
    assert [(x.kind, x.origin) for x in store.likes.of(sid)] == [("like", "web")]


def test_bulk_origins_add_likes_but_never_change_a_persons_choice(store: Store) -> None:
    sid = subscriber(store)
    store.likes.add(sid, entries("2511.00001"), "dislike", "email", NOW)
    for origin in ("config", "import", "library"):
        counts = store.likes.add(sid, entries("2511.00001"), "like", origin)
        assert [r.outcome for r in counts.results] == ["kept"]
    assert [(x.kind, x.origin) for x in store.likes.of(sid)] == [("dislike", "email")]

    store.likes.add(sid, entries("2511.00002"), "like", "import", NOW)
    # a person liking what an import added makes it theirs: the origin follows
    again = store.likes.add(sid, entries("2511.00002"), "like", "cli")
    assert [r.outcome for r in again.results] == ["unchanged"]
    assert {x.key: x.origin for x in store.likes.of(sid)}["2511.00002"] == "cli"


def test_library_entries_bring_their_text_and_link_to_stored_papers(store: Store) -> None:
    sid = subscriber(store)
    library = [
        # a stored paper found through an alias (its arXiv id), not the entry's own key
        LikeEntry(
            "doi:10.9999/unknown",
            "Diffusion agents plan in latent space",
            "The file's abstract.",
            aliases=("2511.00001",),
        ),
        LikeEntry("title:0123456789abcdef01234567", "A Paper We Do Not Have", "Its abstract."),
        LikeEntry("title:fedcba9876543210fedcba98", "", "Only an abstract."),
    ]
    counts = store.likes.add(sid, library, "like", "library", NOW)
    assert [(r.key, r.stored, r.outcome) for r in counts.results] == [
        ("2511.00001", True, "added"),
        ("title:0123456789abcdef01234567", False, "added"),
        ("title:fedcba9876543210fedcba98", False, "added"),
    ]
    assert counts.linked == 1
    texts = store.likes.texts_for([sid])[sid]
    assert texts == [
        # the stored paper's text wins over the file's
        LikedText(
            "like", "2511.00001", "Diffusion Agents Plan in Latent Space", "Diffusion models plan."
        ),
        LikedText(
            "like", "title:0123456789abcdef01234567", "A Paper We Do Not Have", "Its abstract."
        ),
        LikedText("like", "title:fedcba9876543210fedcba98", "", "Only an abstract."),
    ]
    again = store.likes.add(sid, library, "like", "library")
    assert again.added == 0 and again.unchanged == 3


def test_a_like_given_without_text_takes_the_text_a_library_brings_later(store: Store) -> None:
    sid = subscriber(store)
    store.likes.add(sid, entries("2512.05555"), "like", "cli", NOW)
    store.likes.add(
        sid, [LikeEntry("2512.05555", "From the File", "Its words.")], "like", "library"
    )
    assert store.likes.texts_for([sid])[sid] == [
        LikedText("like", "2512.05555", "From the File", "Its words.")
    ]
    assert [x.origin for x in store.likes.of(sid)] == ["cli"]


def test_unlike_by_any_identity_of_the_paper(store: Store) -> None:
    sid = subscriber(store)
    store.likes.add(sid, entries("2511.00001", "10.1000/later.1"), "like", "cli", NOW)
    store.papers.save_listing(
        Listing(
            date=DAY + timedelta(days=1),
            papers=(
                Paper(key="2512.00123", arxiv_id="2512.00123", doi="10.1000/LATER.1", title="L"),
            ),
            source="file",
        )
    )
    assert store.likes.remove(sid, ["https://arxiv.org/abs/2511.00001v4"]) == 1
    assert store.likes.remove(sid, ["2512.00123"]) == 1  # liked by its DOI, before it came
    assert store.likes.remove(sid, ["2511.00001", "nonsense"]) == 0
    assert store.likes.of(sid) == []


def test_likes_are_each_subscribers_own(store: Store) -> None:
    ada, bob = subscriber(store), subscriber(store, "bob@example.org")
    store.likes.add(ada, entries("2511.00001"), "like", "cli")
    store.likes.add(bob, entries("2511.00001"), "dislike", "cli")
    store.likes.add(bob, entries("2511.00002"), "like", "cli")
    assert store.likes.keys_of([ada, bob, 999]) == {
        ada: {"2511.00001"},
        bob: {"2511.00001", "2511.00002"},
        999: set(),
    }
    assert store.likes.remove(ada, ["2511.00001"]) == 1
    assert [x.kind for x in store.likes.of(bob)] == ["dislike", "like"]
    assert store.likes.counts() == {"like": 1, "dislike": 1}
    assert store.likes.forget(bob) == 2
    assert store.likes.of(bob) == []
    assert store.members.delete(bob)  # nothing refers to the row any more


def test_the_config_lists_add_likes_and_take_back_only_their_own(store: Store) -> None:
    ada, bob = subscriber(store), subscriber(store, "bob@example.org")
    store.likes.add(bob, entries("2511.00002"), "dislike", "web")
    config = [
        Subscriber(email="ada@example.org", like=("2511.00001v1", "10.1000/c.1", "junk id")),
        Subscriber(email="bob@example.org", like=("2511.00002",)),
        Subscriber(email="not-stored@example.org", like=("2511.00001",)),
    ]
    first = store.likes.sync_config(config)
    assert (first.added, first.removed) == (2, 0)
    ((email, raw, reason),) = first.rejected
    assert (email, raw) == ("ada@example.org", "junk id") and "not an arXiv id" in reason
    assert [(x.key, x.origin) for x in store.likes.of(ada)] == [  # same time: by key
        ("2511.00001", "config"),
        ("doi:10.1000/c.1", "config"),
    ]
    assert [(x.kind, x.origin) for x in store.likes.of(bob)] == [("dislike", "web")]

    again = store.likes.sync_config(config)
    assert (again.added, again.removed) == (0, 0)

    # ada likes 10.1000/c.1 herself; then the operator empties her list
    store.likes.add(ada, entries("doi:10.1000/c.1"), "like", "cli")
    emptied = store.likes.sync_config([Subscriber(email="ada@example.org"), config[1]])
    assert (emptied.added, emptied.removed) == (0, 1)
    assert [(x.key, x.origin) for x in store.likes.of(ada)] == [("doi:10.1000/c.1", "cli")]
    assert [(x.kind, x.origin) for x in store.likes.of(bob)] == [("dislike", "web")]


def test_an_import_only_adds(store: Store) -> None:
    ada = subscriber(store)
    store.likes.add(ada, entries("2511.00002"), "like", "config")
    done = store.likes.sync_config(
        [Subscriber(email="ada@example.org", like=("2511.00001",))], origin="import"
    )
    assert (done.added, done.removed) == (1, 0)
    assert {(x.key, x.origin) for x in store.likes.of(ada)} == {
        ("2511.00001", "import"),
        ("2511.00002", "config"),
    }


def test_many_subscribers_in_chunks(store: Store) -> None:
    subs = [Subscriber(email=f"r{i:04}@example.org") for i in range(1100)]
    store.members.import_subscribers(subs)
    listed = [
        Subscriber(email=s.email, like=("2511.00001", f"10.1000/r.{i}")) for i, s in enumerate(subs)
    ]
    done = store.likes.sync_config(listed, origin="import")
    assert done.added == 2200 and done.rejected == ()
    ids = [s.id for s in store.members.subscribers() if s.id is not None]
    keys = store.likes.keys_of(ids)
    assert len(keys) == 1100
    assert all(len(k) == 2 and "2511.00001" in k for k in keys.values())
    texts = store.likes.texts_for(ids)
    assert all(
        t == [LikedText("like", "2511.00001", PAPERS[0].title, PAPERS[0].abstract)]
        for t in texts.values()
    )


def test_kinds_and_origins_are_checked(store: Store) -> None:
    sid = subscriber(store)
    with pytest.raises(ValueError, match="'love'"):
        store.likes.add(sid, entries("2511.00001"), "love", "cli")
    with pytest.raises(ValueError, match="'carrier pigeon'"):
        store.likes.add(sid, entries("2511.00001"), "like", "carrier pigeon")
    assert store.likes.of(sid) == []


def test_writers_at_once_record_each_like_once(store: Store, db_url: str) -> None:
    """The web, a run's config sync and the CLI may write one subscriber's likes at the
    same moment (each its own Store, as separate processes would)."""
    sid = subscriber(store)
    ids = [f"2512.{n:05d}" for n in range(30)] + ["2511.00001"]

    origins = ["cli", "web", "email", "library"]
    stores = [Store(db_url) for _ in origins]
    ready = Barrier(len(origins))

    def write(other: Store, origin: str) -> LikeCounts:
        ready.wait()  # all at once
        return other.likes.add(sid, entries(*ids), "like", origin)

    try:
        with ThreadPoolExecutor(len(origins)) as pool:
            done = list(pool.map(write, stores, origins))
    finally:
        for other in stores:
            other.close()
    assert sum(c.added for c in done) == len(ids)
    assert all(not c.rejected for c in done)
    assert len(store.likes.of(sid)) == len(ids)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=80),
        st.from_regex(r"\A(arXiv:)?\d{4}\.\d{4,5}(v\d{1,2})?\Z"),
        st.from_regex(r"\A(https?://)?(doi\.org/|doi:)?10\.\d{4,6}/[a-z0-9.()\-]{1,20}\Z"),
    )
)
def test_any_text_gives_identities_and_keeps_only_arxiv_ids_and_dois(raw: str) -> None:
    keys, keepable = identities_of(raw)
    assert all(k == k.strip() and k for k in keys)
    if keepable:
        (key,) = keys
        assert key.startswith("doi:") or arxiv_id_of(key) == key
        assert key == key_of(arxiv_id=arxiv_id_of(raw), doi=raw if key.startswith("doi:") else None)


def test_who_liked_a_runs_papers_is_read_from_the_papers_side(store: Store) -> None:
    ada, bo, cy = (subscriber(store, f"{n}@example.org") for n in ("ada", "bo", "cy"))
    store.likes.add(ada, entries("2511.00001", "2512.00050"), "like", "cli")
    store.likes.add(bo, entries("10.1000/later.2"), "dislike", "web")  # kept: yet to come
    store.likes.add(cy, entries("2511.00002"), "like", "library")
    store.papers.save_listing(
        Listing(
            date=DAY + timedelta(days=1),
            papers=(
                Paper(key="2512.00123", arxiv_id="2512.00123", doi="10.1000/later.2", title="L"),
            ),
            source="file",
        )
    )
    day_keys = ["2511.00001", "2512.00123", "2599.00000"]  # the last is stored nowhere
    assert store.likes.liked_among(day_keys) == {ada: {"2511.00001"}, bo: {"2512.00123"}}
    assert store.likes.liked_among([]) == {}
