"""The papers store with several sources, on a real SQLite file and on PostgreSQL: one paper
is one row however many sources, days and versions list it, and every identity finds it."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from digest.identity import key_of
from digest.models import Listing, Paper
from digest.store import Store
from digest.store.schema import listing_papers, listings, paper_aliases, papers

D1 = date(2026, 11, 16)
D2 = date(2026, 11, 17)
D3 = date(2026, 11, 18)
NOW = datetime(2026, 11, 16, 7, 0, tzinfo=UTC)
SHORT = "We study diffusion agents."
LONG = (
    "We study diffusion agents that plan with a learned world model. "
    "Our agents reach 91% of the oracle's return on long-horizon tasks with 10x fewer samples."
)


def hf(arxiv_id: str, title: str, upvotes: int = 5, abstract: str = SHORT) -> Paper:
    """A paper as the Hugging Face source gives it: upvotes, its HF page as the link."""
    return Paper(
        key=key_of(arxiv_id=arxiv_id, title=title),
        title=title,
        abstract=abstract,
        authors=("Ada Okafor", "Bo Li"),
        arxiv_id=arxiv_id,
        upvotes=upvotes,
        link=f"https://huggingface.co/papers/{arxiv_id}",
        thumbnail=f"https://cdn.example/{arxiv_id}.png",
    )


def arxiv(arxiv_id: str, title: str, version: int = 1, abstract: str = LONG, **kw: object) -> Paper:
    """A paper as the arXiv source gives it: categories, a version, the long abstract."""
    return Paper(
        key=key_of(arxiv_id=arxiv_id, title=title),
        title=title,
        abstract=abstract,
        authors=("Okafor, Ada", "Li, Bo"),
        arxiv_id=arxiv_id,
        categories=("cs.LG", "stat.ML"),
        version=version,
        **kw,  # type: ignore[arg-type]
    )


def feed(title: str, link: str, doi: str | None = None, authors: tuple[str, ...] = ()) -> Paper:
    """A paper from a generic feed: a link, maybe a DOI, no arXiv id."""
    return Paper(
        key=key_of(doi=doi, link=link, title=title, authors=authors),
        title=title,
        abstract="From a journal's feed.",
        authors=authors,
        doi=doi,
        link=link,
    )


def rows(store: Store, table: sa.Table) -> list[dict[str, object]]:
    with store.engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(table)).mappings()]


def test_the_same_paper_from_two_sources_on_one_day_is_one_paper(store: Store) -> None:
    title = "Diffusion Agents Plan Ahead"
    saved_hf = store.papers.save_listing(
        Listing(D1, (hf("2511.00001", title, upvotes=42), hf("2511.00009", "Other")), "hf"), NOW
    )
    saved_ax = store.papers.save_listing(
        Listing(D1, (arxiv("2511.00001v1", title),), "arxiv-ml"), NOW + timedelta(hours=1)
    )
    assert len(rows(store, papers)) == 2
    members = {(r["source"], r["paper_key"]) for r in rows(store, listing_papers)}
    assert members == {("hf", "2511.00001"), ("hf", "2511.00009"), ("arxiv-ml", "2511.00001")}
    heads = {(r["source"], r["count"]) for r in rows(store, listings)}
    assert heads == {("hf", 2), ("arxiv-ml", 1)}

    (merged,) = saved_ax.papers
    assert saved_hf.papers[0].key == merged.key == "2511.00001"
    assert merged.upvotes == 42  # from HF
    assert merged.categories == ("cs.LG", "stat.ML")  # from arXiv
    assert merged.abstract == LONG  # the longest
    assert merged.sources == ("hf", "arxiv-ml")
    assert merged.link == "https://huggingface.co/papers/2511.00001"  # the first source's
    assert merged.thumbnail == "https://cdn.example/2511.00001.png"
    assert merged.version == 1

    day = store.papers.listing(D1)
    assert day is not None
    assert [p.key for p in day.papers] == ["2511.00001", "2511.00009"]  # each once
    assert day.papers[0] == merged  # what save_listing returned is what is stored
    assert day.source == "arxiv-ml+hf"
    assert store.papers.day_counts(5) == [(D1, 2)]  # not 3: the paper is counted once
    assert store.papers.paper_count_by_source() == {"hf": 2, "arxiv-ml": 1}


def test_a_new_version_keeps_the_key_and_the_newest_version(store: Store) -> None:
    store.papers.save_listing(Listing(D1, (arxiv("2511.00002v1", "Sparse Mixtures"),), "ax"), NOW)
    again = store.papers.save_listing(
        Listing(D2, (arxiv("2511.00002v2", "Sparse Mixtures", version=2),), "ax"), NOW
    )
    assert [p.key for p in again.papers] == ["2511.00002"]
    assert again.papers[0].version == 2
    older = store.papers.save_listing(Listing(D3, (arxiv("2511.00002", "Sparse Mixtures"),), "ax"))
    assert older.papers[0].version == 2  # a listing that repeats v1 does not go back
    assert len(rows(store, papers)) == 1
    assert store.papers.resolve(["2511.00002v1", "arXiv:2511.00002v2"]) == {
        "2511.00002v1": "2511.00002",
        "arXiv:2511.00002v2": "2511.00002",
    }


def test_a_paper_met_first_by_its_doi_then_with_its_arxiv_id_is_one_paper(store: Store) -> None:
    first = feed(
        "Élan: Graphs <i>without</i> Tears",
        "https://www.journal.example/article/77/?utm_source=rss",
        doi="10.5555/Journal.77",
        authors=("Zoë Müller",),
    )
    saved = store.papers.save_listing(Listing(D1, (first,), "journal"), NOW)
    assert saved.papers[0].key == "doi:10.5555/journal.77"
    later = arxiv("2511.00003", "Elan: graphs without tears", doi="10.5555/JOURNAL.77")
    again = store.papers.save_listing(Listing(D2, (later,), "arxiv-ml"), NOW)
    (paper,) = again.papers
    assert paper.key == "doi:10.5555/journal.77"  # the key it was first stored (and sent) under
    assert paper.arxiv_id == "2511.00003" and paper.sources == ("journal", "arxiv-ml")
    assert len(rows(store, papers)) == 1
    asked = [
        "2511.00003",
        "2511.00003v4",
        "https://arxiv.org/abs/2511.00003v2",
        "https://arxiv.org/pdf/2511.00003.pdf",
        "10.5555/JOURNAL.77",
        "https://doi.org/10.5555/journal.77",
        "doi:10.5555/journal.77",
        "http://journal.example/article/77",
        "title:nothing",
        "1999.99999",
    ]
    found = store.papers.resolve(asked)
    assert found == {a: "doi:10.5555/journal.77" for a in asked[:8]}
    by_key = store.papers.papers_by_key(["2511.00003", "doi:10.5555/journal.77", "nope"])
    assert set(by_key) == {"2511.00003", "doi:10.5555/journal.77"}
    assert by_key["2511.00003"].key == "doi:10.5555/journal.77"


def test_two_records_of_one_stored_paper_in_one_listing_become_one(store: Store) -> None:
    stored = feed("Quiet Models", "https://lab.example/quiet", doi="10.5555/q.1")
    store.papers.save_listing(Listing(D1, (stored,), "lab"), NOW)
    by_doi = arxiv("2511.00004", "Quiet Models", doi="10.5555/q.1")
    by_link = feed("Quiet Models (preprint)", "https://lab.example/quiet/", authors=("Ann Bee",))
    # the two records share no identity with each other, both with the stored paper
    saved = store.papers.save_listing(Listing(D2, (by_doi, by_link), "mixed"), NOW)
    assert [p.key for p in saved.papers] == ["doi:10.5555/q.1"]
    assert saved.papers[0].arxiv_id == "2511.00004"
    day = store.papers.source_listing(D2, "mixed")
    assert day is not None and [p.key for p in day.papers] == ["doi:10.5555/q.1"]
    assert {(r["source"], r["count"]) for r in rows(store, listings) if r["date"] == D2} == {
        ("mixed", 1)
    }


def test_a_duplicate_inside_one_listing_is_merged_before_it_is_stored(store: Store) -> None:
    one = hf("2511.00005", "Twice Listed", upvotes=3)
    two = arxiv("2511.00005v2", "Twice  listed!", version=2)
    saved = store.papers.save_listing(Listing(D1, (one, two), "hf"), NOW)
    assert len(saved.papers) == 1
    assert (saved.papers[0].upvotes, saved.papers[0].version) == (3, 2)
    assert rows(store, listings)[0]["count"] == 1


def test_an_alias_already_naming_a_paper_stays_with_it(store: Store) -> None:
    a = feed("Shared Title", "https://a.example/1", authors=("Ann Bee",))
    store.papers.save_listing(Listing(D1, (a,), "a"), NOW)
    b = feed("Another Paper", "https://b.example/2", doi="10.5555/b.2")
    store.papers.save_listing(Listing(D1, (b,), "b"), NOW)
    # a third record naming b's DOI and a's link: it is b (its best identity wins) ...
    c = feed("Another Paper", "https://a.example/1", doi="10.5555/b.2")
    (saved,) = store.papers.save_listing(Listing(D2, (c,), "c"), NOW).papers
    assert saved.key == "doi:10.5555/b.2"
    # ... and a's link still names a
    assert store.papers.resolve(["https://a.example/1"]) == {"https://a.example/1": a.key}


def test_saving_a_listing_again_changes_nothing(store: Store) -> None:
    listing = Listing(D1, (hf("2511.00006", "Stable"), hf("2511.00007", "Also Stable")), "hf")
    first = store.papers.save_listing(listing, NOW)
    before = (rows(store, papers), rows(store, paper_aliases), rows(store, listing_papers))
    second = store.papers.save_listing(listing, NOW + timedelta(hours=1))
    assert second.papers == first.papers
    assert (rows(store, papers), rows(store, paper_aliases), rows(store, listing_papers)) == before


def test_an_empty_date_is_fetched_and_reads_are_per_source(store: Store) -> None:
    store.papers.save_listing(Listing(D1, (), "arxiv-ml"), NOW)  # a weekend
    store.papers.save_listing(Listing(D1, (hf("2511.00010", "Sunday Paper"),), "hf"), NOW)
    store.papers.save_listing(Listing(D2, (arxiv("2511.00011", "Monday"),), "arxiv-ml"), NOW)
    assert store.papers.fetched_dates("arxiv-ml", D1) == {D1, D2}
    assert store.papers.fetched_dates("arxiv-ml", D2) == {D2}
    assert store.papers.fetched_dates("hf", D1) == {D1}
    assert store.papers.fetched_dates("nobody", D1) == set()
    empty = store.papers.source_listing(D1, "arxiv-ml")
    assert empty is not None and empty.papers == () and empty.source == "arxiv-ml"
    assert store.papers.source_listing(D2, "hf") is None
    only = store.papers.listing(D1, ["arxiv-ml"])
    assert only is not None and only.papers == ()
    both = store.papers.listing(D1)
    assert both is not None and [p.key for p in both.papers] == ["2511.00010"]
    assert store.papers.listing(D3) is None and store.papers.listing(D1, []) is None
    assert store.papers.recent_dates(5) == [D2, D1]  # each date once
    assert store.papers.day_counts(5) == [(D2, 1), (D1, 1)]
    assert [p.key for p in store.papers.recent_papers(5, 10)] == ["2511.00011", "2511.00010"]


def test_a_day_of_several_sources_is_ordered_by_position_then_source(store: Store) -> None:
    store.papers.save_listing(
        Listing(D1, tuple(hf(f"2511.0010{i}", f"H{i}") for i in range(3)), "hf"), NOW
    )
    store.papers.save_listing(
        Listing(D1, (arxiv("2511.00200", "A0"), arxiv("2511.00101", "H1")), "arxiv-ml"), NOW
    )
    day = store.papers.listing(D1)
    assert day is not None
    assert [p.key for p in day.papers] == ["2511.00200", "2511.00100", "2511.00101", "2511.00102"]
    hf_only = store.papers.listing(D1, {"hf"})
    assert hf_only is not None
    assert [p.key for p in hf_only.papers] == ["2511.00100", "2511.00101", "2511.00102"]


def test_an_old_style_source_is_stored_under_its_kind(store: Store) -> None:
    url = "https://huggingface.co/api/daily_papers"
    store.papers.save_listing(Listing(D1, (hf("2511.00300", "Old"),), url), NOW)
    store.papers.save_listing(Listing(D1, (hf("2511.00301", "File"),), "/srv/listings"), NOW)
    assert store.papers.fetched_dates("huggingface", D1) == {D1}
    assert store.papers.fetched_dates("file", D1) == {D1}


def test_two_writers_saving_overlapping_listings_at_once_both_succeed(db_url: str) -> None:
    """Two stores (two connections, as two processes have) save the same new papers at the
    same moment, three times: the loser of each collision does it again and finds them."""
    Store(db_url).close()  # migrated once, before the race
    shared = [hf(f"2511.{i:05d}", f"Shared {i}") for i in range(400, 460)]
    errors: list[BaseException] = []
    together = threading.Barrier(2)

    def save(name: str, extra: int) -> None:
        with Store(db_url) as s:
            mine = [arxiv(f"2511.{i:05d}", f"Own {i}") for i in range(extra, extra + 20)]
            # the shared papers in the opposite order: no deadlock on PostgreSQL either
            order = shared if name == "a" else shared[::-1]
            try:
                for day in (D1, D2, D3):
                    together.wait(timeout=30)
                    s.papers.save_listing(Listing(day, (*order, *mine), name), NOW)
            except BaseException as exc:  # reported below, in the test's thread
                errors.append(exc)

    threads = [threading.Thread(target=save, args=(n, e)) for n, e in (("a", 600), ("b", 700))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with Store(db_url) as s:
        assert len(rows(s, papers)) == 60 + 40
        day = s.papers.listing(D2)
        assert day is not None and len(day.papers) == 100
        assert s.papers.paper_count_by_source() == {"a": 80, "b": 80}
        assert s.papers.papers_by_key(["2511.00400"])["2511.00400"].sources in (
            ("a", "b"),
            ("b", "a"),
        )


def test_a_2000_paper_listing_is_stored_in_a_few_statements(tmp_path: Path) -> None:
    """Storing a day is a handful of bulk statements whatever its size, never one or more
    per paper (its speed is measured by bench/upgrade_0006.py, not here)."""
    with Store(f"sqlite:///{tmp_path / 'big.db'}") as store:
        day = tuple(
            arxiv(
                f"2511.{i:05d}",
                f"Paper number {i} on sparse attention",
                abstract=f"Abstract {i}. " + "words " * 150,
            )
            for i in range(2000)
        )
        statements: list[str] = []

        def count(*args: object) -> None:
            statements.append(str(args[2]))

        sa.event.listen(store.engine, "before_cursor_execute", count)
        saved = store.papers.save_listing(Listing(D1, day, "arxiv-cs"), NOW)
        first = len(statements)
        store.papers.save_listing(Listing(D2, day, "arxiv-cs"), NOW)
        again = len(statements) - first
        sa.event.remove(store.engine, "before_cursor_execute", count)
        assert len(saved.papers) == 2000 and len(rows(store, papers)) == 2000
        # chunks of rows a statement, not a statement a paper
        assert first < 200 and again < 200, (first, again, statements[:20])


def test_papers_sharing_a_title_and_a_surname_stay_apart_across_days(store: Store) -> None:
    first = arxiv("2511.00501", "A Survey of Surveys")
    store.papers.save_listing(Listing(D1, (first,), "arxiv-ml"), NOW)
    # another paper of that title by another Li: its title hash names the first one
    second = arxiv("2511.00502", "A survey of surveys")
    (saved,) = store.papers.save_listing(Listing(D2, (second,), "arxiv-ml"), NOW).papers
    assert saved.key == "2511.00502"
    # a Hugging Face record with no id and that title is the first (its title alias)
    bare = replace(hf("2511.00501", "A Survey of Surveys"), arxiv_id=None, link=None)
    bare = replace(bare, key=key_of(title=bare.title, authors=bare.authors))
    (known,) = store.papers.save_listing(Listing(D3, (bare,), "hf"), NOW).papers
    assert known.key == "2511.00501" and known.sources == ("arxiv-ml", "hf")
    assert len(rows(store, papers)) == 2
