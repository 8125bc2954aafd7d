"""digest.identity: one paper, one identity. Tables for each way a source writes an arXiv id,
a DOI or a link; properties for keys, dedupe and merge."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from digest.identity import (
    arxiv_id_of,
    arxiv_version,
    canonical_link,
    dedupe,
    doi_of,
    identities,
    key_of,
    merge,
    paper_identities,
)
from digest.models import Paper


def title_hash(folded: str, surname: str) -> str:
    return "title:" + hashlib.sha256(f"{folded}\x1f{surname}".encode()).hexdigest()[:24]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2503.01234", "2503.01234"),
        ("2503.01234v2", "2503.01234"),
        ("arXiv:2503.01234v12", "2503.01234"),
        ("hep-th/9901001v3", "hep-th/9901001"),
        ("math.AG/0601001", "math.AG/0601001"),
        ("https://arxiv.org/abs/2503.01234v2", "2503.01234"),
        ("http://arxiv.org/abs/2503.01234", "2503.01234"),
        ("https://arxiv.org/pdf/2503.01234v1.pdf", "2503.01234"),
        ("https://arxiv.org/pdf/2503.01234", "2503.01234"),
        ("https://export.arxiv.org/abs/2503.01234/", "2503.01234"),
        ("https://arxiv.org/abs/hep-th/9901001v1", "hep-th/9901001"),
        ("https://arxiv.org/abs/2503.01234?context=cs.LG", "2503.01234"),
        ("oai:arXiv.org:2503.01234v1", "2503.01234"),
        ("10.48550/arXiv.2503.01234", "2503.01234"),
        ("https://doi.org/10.48550/arXiv.2503.01234", "2503.01234"),
        ("2503.1234", "2503.1234"),  # 2007-2014 ids have four digits
        ("not an id", None),
        ("https://notarxiv.org/abs/2503.01234", None),
        ("https://arxiv.org/list/cs.LG/new", None),
        ("10.1000/xyz", None),
        ("", None),
    ],
)
def test_an_arxiv_id_is_found_wherever_a_source_writes_it(raw: str, expected: str | None) -> None:
    assert arxiv_id_of(raw) == expected


def test_the_first_candidate_with_an_id_wins() -> None:
    assert arxiv_id_of(None, "", "nothing", "oai:arXiv.org:2503.00001v2", "2503.00002") == (
        "2503.00001"
    )


@pytest.mark.parametrize(
    ("raw", "version"),
    [
        ("2503.01234v3", 3),
        ("oai:arXiv.org:2503.01234v12", 12),
        ("https://arxiv.org/pdf/2503.01234v2.pdf", 2),
        ("2503.01234", None),
        (None, None),
    ],
)
def test_the_version_is_read_from_an_id_or_a_guid(raw: str | None, version: int | None) -> None:
    assert arxiv_version(raw) == version


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("10.1000/XYZ.123", "10.1000/xyz.123"),
        ("https://doi.org/10.1000/ABC", "10.1000/abc"),
        ("http://dx.doi.org/10.1000/abc", "10.1000/abc"),
        ("doi:10.1000/abc", "10.1000/abc"),
        ("DOI: 10.1000/abc", "10.1000/abc"),
        ("  10.1101/2025.01.02.123456  ", "10.1101/2025.01.02.123456"),
        ("11.1000/abc", None),
        ("10.1000/", None),
        ("https://example.org/10.1000/abc", None),
        (None, None),
    ],
)
def test_a_doi_is_bare_and_case_folded(raw: str | None, expected: str | None) -> None:
    assert doi_of(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://www.Example.org/Paper/1/", "example.org/Paper/1"),
        ("http://example.org/paper/1", "example.org/paper/1"),
        ("https://example.org/p?utm_source=rss&utm_medium=feed&id=7", "example.org/p?id=7"),
        ("https://example.org/p?b=2&a=1#section-3", "example.org/p?a=1&b=2"),
        ("https://example.org:8443/p", "example.org:8443/p"),
        ("https://example.org:443/p", "example.org/p"),
        ("https://example.org/p?fbclid=abc&ref=home", "example.org/p"),
        ("ftp://example.org/p", None),
        ("mailto:ada@example.org", None),
        ("/relative/path", None),
        ("https://[::1/", None),
        (None, None),
    ],
)
def test_a_link_is_canonical_however_it_was_shared(raw: str | None, expected: str | None) -> None:
    assert canonical_link(raw) == expected


def test_the_key_prefers_arxiv_then_doi_then_link_then_title() -> None:
    title, authors = "Graphs, Without Tears!", ("Zoë Müller", "Bo Li")
    everything = {
        "arxiv_id": "2503.01234v2",
        "doi": "10.1000/G.1",
        "link": "https://www.journal.example/g1/",
    }
    assert key_of(**everything, title=title, authors=authors) == "2503.01234"
    assert key_of(doi="10.1000/G.1", link=everything["link"], title=title) == "doi:10.1000/g.1"
    assert key_of(link=everything["link"], title=title) == "link:journal.example/g1"
    assert key_of(title=title, authors=authors) == title_hash("graphs without tears", "muller")
    assert identities(**everything, title=title, authors=authors) == [
        "2503.01234",
        "doi:10.1000/g.1",
        "link:journal.example/g1",
        title_hash("graphs without tears", "muller"),
    ]


def test_an_arxiv_doi_or_link_is_the_arxiv_id_not_another_identity() -> None:
    assert identities(doi="10.48550/arXiv.2503.01234", title="T") == [
        "2503.01234",
        title_hash("t", ""),
    ]
    assert identities(link="https://arxiv.org/abs/2503.01234v3") == ["2503.01234"]


def test_the_title_key_ignores_case_accents_punctuation_and_name_order() -> None:
    one = key_of(title="Naïve Bayes: Is It All You Need?", authors=("Ada Okafor",))
    two = key_of(title="naive  bayes is it all you need", authors=("Okafor, Ada", "Bo Li"))
    other_author = key_of(title="Naïve Bayes: Is It All You Need?", authors=("Bo Li",))
    assert one == two != other_author


def paper(key: str, **kw: object) -> Paper:
    return Paper(key=key, title=str(kw.pop("title", "A Title")), **kw)  # type: ignore[arg-type]


def test_merge_keeps_the_first_key_and_unites_the_metadata() -> None:
    hf = paper(
        "2503.01234",
        arxiv_id="2503.01234",
        abstract="Short.",
        upvotes=40,
        sources=("hf",),
        link="https://huggingface.co/papers/2503.01234",
        published=datetime(2025, 3, 3, tzinfo=UTC),
    )
    ax = paper(
        "2503.01234",
        arxiv_id="2503.01234",
        abstract="A much longer abstract.",
        upvotes=2,
        categories=("cs.LG", "stat.ML"),
        sources=("arxiv-ml", "hf"),
        version=2,
        link="https://arxiv.org/abs/2503.01234v2",
    )
    got = merge(hf, ax)
    assert got.key == "2503.01234" and got.upvotes == 40
    assert got.abstract == "A much longer abstract."
    assert got.categories == ("cs.LG", "stat.ML") and got.sources == ("hf", "arxiv-ml")
    assert got.version == 2 and got.link == hf.link and got.published == hf.published
    assert merge(ax, hf).version == 2 and merge(ax, hf).link == ax.link


def test_dedupe_merges_records_sharing_any_identity_in_first_appearance_order() -> None:
    by_doi = paper("doi:10.1000/x", doi="10.1000/x", title="X", sources=("journal",))
    other = paper("2503.00002", arxiv_id="2503.00002", title="Other")
    by_arxiv = paper(  # another title: only the DOI says it is that paper
        "2503.00001", arxiv_id="2503.00001", doi="10.1000/X", title="X (preprint)", upvotes=3
    )
    again = paper("2503.00002", arxiv_id="2503.00002", title="Other", version=4)
    got = dedupe([by_doi, other, by_arxiv, again])
    assert [p.key for p in got] == ["doi:10.1000/x", "2503.00002"]
    assert got[0].arxiv_id == "2503.00001" and got[0].upvotes == 3
    assert got[1].version == 4
    assert paper_identities(got[0])[:2] == ["doi:10.1000/x", "2503.00001"]


titles = st.text(min_size=1, max_size=40)
names = st.lists(st.text(min_size=1, max_size=20), max_size=3)


@given(title=titles, authors=names)
def test_a_title_key_is_stable_under_case_and_spacing(title: str, authors: list[str]) -> None:
    key = key_of(title=title, authors=authors)
    assert key.startswith("title:") and len(key) == len("title:") + 24
    shouted = key_of(title=f"  {title.upper()}  ", authors=authors)
    if title.upper().lower() == title.lower():  # upper() may change the folded letters
        assert shouted == key


@given(
    number=st.integers(min_value=0, max_value=99_999),
    version=st.integers(min_value=1, max_value=30),
    title=titles,
    doi=st.sampled_from([None, "10.1000/abc", "10.5555/X.Y"]),
)
def test_every_form_of_an_arxiv_paper_has_the_bare_id_as_key(
    number: int, version: int, title: str, doi: str | None
) -> None:
    bare = f"2503.{number:05d}"
    for form in (bare, f"{bare}v{version}", f"https://arxiv.org/abs/{bare}v{version}"):
        assert key_of(arxiv_id=form, doi=doi, title=title) == bare
    assert key_of(link=f"https://arxiv.org/pdf/{bare}v{version}.pdf", title=title) == bare


@given(st.lists(st.integers(min_value=0, max_value=5), max_size=12))
def test_dedupe_leaves_no_two_records_of_one_paper(ids: list[int]) -> None:
    records = [paper(f"2503.0000{i}", arxiv_id=f"2503.0000{i}v{n}") for n, i in enumerate(ids)]
    got = dedupe(records)
    assert [p.key for p in got] == list(dict.fromkeys(p.key for p in records))


def test_two_papers_sharing_a_title_and_a_surname_stay_two() -> None:
    survey = {"title": "A Survey", "authors": ("Wang, Li",)}
    one = paper("2503.00001", arxiv_id="2503.00001", **survey)
    two = paper("2503.00002", arxiv_id="2503.00002", **survey)
    hf_copy = paper(key_of(title="A survey", authors=("Li Wang",)), **survey, upvotes=9)
    by_doi = paper("doi:10.1000/a", doi="10.1000/a", **survey)
    other_doi = paper("doi:10.1000/b", doi="10.1000/b", **survey)
    got = dedupe([one, two, hf_copy, by_doi, other_doi])
    # the title-only record joins the first it may be; different ids or DOIs never merge
    assert [p.key for p in got] == ["2503.00001", "2503.00002", "doi:10.1000/b"]
    assert got[0].upvotes == 9 and got[0].doi == "10.1000/a"
