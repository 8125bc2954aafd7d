"""Reference libraries read without a database: BibTeX as Zotero, Mendeley and Google
Scholar export it, CSL JSON, LaTeX turned into text, arXiv ids found where each tool puts
them, entries skipped with their reason, files that are neither refused by name."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.errors import RosterError
from digest.identity import key_of
from digest.select.library import LibraryEntry, LibraryRead, read_library

FIXTURES = Path(__file__).parent / "fixtures" / "library"


def fixture(name: str) -> LibraryRead:
    return read_library((FIXTURES / name).read_bytes(), name)


def by_ref(read: LibraryRead) -> dict[str, LibraryEntry]:
    return {e.ref: e for e in read.entries}


def bib(body: str) -> LibraryEntry:
    """The one entry of a BibTeX file holding ``body``."""
    (entry,) = read_library(body.encode(), "one.bib").entries
    return entry


def test_a_zotero_export_gives_titles_abstracts_ids_and_authors_as_text() -> None:
    read = fixture("zotero.bib")
    assert read.kind == "bibtex"
    entries = by_ref(read)
    assert list(entries) == [
        "lindqvist_latent_2025",
        "garcia_retrieval_2024",
        "tanaka_protein_2025",
        "hal_paper_2022",
    ]
    latent = entries["lindqvist_latent_2025"]
    assert latent.title == "Latent Diffusion Planners for Embodied Agents"
    assert latent.abstract.startswith("We plan in the latent space of a diffusion model.")
    assert "40% fewer steps" in latent.abstract and "{" not in latent.abstract
    assert latent.arxiv_id == "2511.00001"
    assert latent.doi is None  # arXiv's own DOI is the arXiv id
    assert latent.authors == ("Lindqvist, Åsa", "Okafor, Dee", "Müller, Jörg")
    assert latent.year == 2025
    assert latent.key == "2511.00001"

    rag = entries["garcia_retrieval_2024"]
    assert rag.title == "Grounded Generation with a Document Store: A Study of RAG in École Data"
    assert "naïve" in rag.abstract and "\\" not in rag.abstract
    assert rag.doi == "10.1162/tacl_a_00999" and rag.arxiv_id is None
    assert rag.link is None  # the url is the DOI's page
    assert rag.key == "doi:10.1162/tacl_a_00999"
    assert rag.authors == ("García, Lucía", "Nguyễn, Văn An")

    assert entries["tanaka_protein_2025"].title == (
        "Protein Folding with Graph Transformers: α-helix and β-sheet"
    )
    hal = entries["hal_paper_2022"]
    assert hal.arxiv_id is None  # an eprint of HAL is not an arXiv id
    assert hal.key == key_of(title="A Paper Kept on HAL, Not arXiv", authors=["Durand, Émile"])


def test_entries_without_text_and_second_entries_of_one_paper_are_skipped_with_reasons() -> None:
    assert fixture("zotero.bib").skipped == (
        ("zhou_empty_2023", "neither a title nor an abstract"),
        ("lindqvist_latent_2025-1", "the same paper as lindqvist_latent_2025"),
    )
    # Google Scholar's two spellings of one arXiv paper (with a version, other case)
    scholar = fixture("scholar.bib")
    assert scholar.skipped == (("okafor2025surveydup", "the same paper as okafor2025survey"),)
    assert [e.ref for e in scholar.entries] == ["okafor2025survey", "brown2024mri"]


def test_a_mendeley_export_with_its_header_and_old_style_ids() -> None:
    read = fixture("mendeley.bib")
    entries = by_ref(read)
    assert entries["Haddad2025"].arxiv_id == "2511.00005"
    assert entries["Haddad2025"].title == "Quantized Diffusion Transformers"
    assert entries["Old1999"].arxiv_id == "hep-th/9901001"
    assert entries["Old1999"].title == "A Note on Branes in Old-Style Identifiers"
    assert read.skipped == (("NoText2020", "neither a title nor an abstract"),)


def test_google_scholar_names_the_arxiv_id_in_the_journal() -> None:
    entries = by_ref(fixture("scholar.bib"))
    survey = entries["okafor2025survey"]
    assert survey.arxiv_id == "2511.00002"
    assert survey.authors == ("Okafor, Dee", "Lindqvist, Åsa")
    mri = entries["brown2024mri"]
    assert (mri.arxiv_id, mri.doi, mri.title) == (
        None,
        None,
        "Medical Diffusion for MRI Reconstruction",
    )
    assert mri.key.startswith("title:")


def test_csl_json_gives_the_same_papers_as_bibtex() -> None:
    read = fixture("zotero.json")
    assert read.kind == "csl-json"
    entries = by_ref(read)
    latent = entries["http://zotero.org/users/1234/items/ABCD1234"]
    assert latent.title == "Latent Diffusion Planners for Embodied Agents"  # <i> dropped
    assert latent.key == "2511.00001"
    assert latent.authors == ("Lindqvist, Åsa", "Okafor, Dee")
    assert latent.year == 2025
    rag = entries["garcia2024"]
    assert rag.key == "doi:10.1162/tacl_a_00999"
    assert rag.authors == ("García, Lucía", "Nguyễn Văn An")
    only = entries["chen-abstract-only"]
    assert only.title == "" and only.abstract.startswith("An entry with an abstract")
    assert only.key.startswith("title:") and only.year == 2023
    assert entries["note-arxiv"].arxiv_id == "2509.11111"
    assert read.skipped == (("empty-one", "neither a title nor an abstract"),)


@pytest.mark.parametrize(
    ("fields", "arxiv_id"),
    [
        ("eprint = {2501.01234v3}, archivePrefix = {arXiv}", "2501.01234"),
        ("eprint = {2501.01234}, eprinttype = {arxiv}", "2501.01234"),
        ("eprint = {2501.01234}", "2501.01234"),
        ("eprint = {2501.01234}, archivePrefix = {HAL}", None),
        ("arxivid = {2501.01234v1}", "2501.01234"),
        ("url = {https://arxiv.org/pdf/2501.01234v2.pdf}", "2501.01234"),
        ("url = {https://export.arxiv.org/abs/math.GT/0309136}", "math.GT/0309136"),
        ("doi = {10.48550/ARXIV.2501.01234}", "2501.01234"),
        ("journal = {arXiv preprint arXiv:2501.01234}", "2501.01234"),
        ("note = {arXiv: 2501.01234v2 [cs.CL]}", "2501.01234"),
        ("howpublished = {arXiv:hep-th/9901001}", "hep-th/9901001"),
        ("journal = {Nature}, number = {2501.01234}", None),
        ("doi = {10.1000/xyz}", None),
    ],
)
def test_the_arxiv_id_is_found_where_each_tool_puts_it(fields: str, arxiv_id: str | None) -> None:
    assert bib(f"@misc{{k, title = {{T}}, {fields}}}").arxiv_id == arxiv_id


@pytest.mark.parametrize(
    ("title", "text"),
    [
        (r"M{\"u}ller's {\'E}tudes", "Müller's Études"),
        (r"{{BERT}} Is {Not} All You Need", "BERT Is Not All You Need"),
        (r"\emph{In vivo} and \textbf{bold} claims", "In vivo and bold claims"),
        (r"{\em Old} {\bf style}", "Old style"),
        (r"$\alpha$-Fold for $\beta$ sheets", "α-Fold for β sheets"),
        (r"Na\"{\i}ve Bayes, 100\% of the   time", "Naïve Bayes, 100% of the time"),
        ("Zoë, 李, and Ω: already Unicode", "Zoë, 李, and Ω: already Unicode"),
    ],
)
def test_latex_in_titles_becomes_text(title: str, text: str) -> None:
    assert bib(f"@article{{k, title = {{{title}}}}}").title == text


def test_a_quoted_value_and_a_string_macro_are_read() -> None:
    entry = bib(
        '@string{conf = "Conference on Things"}\n'
        '@inproceedings{k, title = "Quoted", booktitle = conf}'
    )
    assert entry.title == "Quoted"


def test_entries_bibtexparser_cannot_read_are_reported_with_their_line() -> None:
    read = fixture("broken.bib")
    assert [e.title for e in read.entries] == ["Fine Paper", "Third One"]
    assert read.skipped == (
        ("broken", "cannot be read (line 2): an unbalanced brace or quote, or no key?"),
        ("line 4", "cannot be read (line 4): an unbalanced brace or quote, or no key?"),
    )


def test_a_key_written_with_latex_is_no_unreadable_entry() -> None:
    read = read_library(rb"@article{m{\"u}ller2024, title={M{\"u}ller}}", "k.bib")
    assert [(e.ref, e.title) for e in read.entries] == [("müller2024", "Müller")]
    assert read.skipped == ()


def test_the_format_comes_from_the_extension_else_from_the_content() -> None:
    data = json.dumps([{"id": "x", "title": "A JSON Paper"}]).encode()
    assert read_library(data, "export.csljson").kind == "csl-json"
    assert read_library(data, "export").kind == "csl-json"
    assert read_library(b"@misc{k, title={A}}", "export").kind == "bibtex"
    single = read_library(json.dumps({"id": "one", "title": "One Item"}).encode(), "one.json")
    assert [e.title for e in single.entries] == ["One Item"]
    wrapped = read_library(json.dumps({"items": [{"title": "In Items"}]}).encode(), "w.json")
    assert [(e.ref, e.title) for e in wrapped.entries] == [("#1", "In Items")]


def test_a_byte_order_mark_is_no_problem() -> None:
    read = read_library(b"\xef\xbb\xbf@misc{k, title={With BOM}}", "bom.bib")
    assert [e.title for e in read.entries] == ["With BOM"]


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("notes.txt", (FIXTURES / "notes.txt").read_bytes(), "notes.txt: no BibTeX entry found"),
        ("broken.json", (FIXTURES / "broken.json").read_bytes(), "broken.json: not JSON (line 1"),
        ("list.json", b'["a", "b"]', "list.json: not CSL JSON"),
        ("number.json", b"42", "number.json: not CSL JSON"),
        ("empty.bib", b"", "empty.bib: no BibTeX entry found"),
        ("empty.json", b"[]", "empty.json: no CSL JSON entry found"),
        ("latin1.bib", "@misc{k, title={Müller}}".encode("latin-1"), "latin1.bib: not UTF-8"),
    ],
)
def test_a_file_that_is_neither_is_refused_naming_it(name: str, data: bytes, message: str) -> None:
    with pytest.raises(RosterError) as caught:
        read_library(data, name)
    assert str(caught.value).startswith(message)
    assert "BibTeX (.bib) or CSL JSON (.json)" in str(caught.value) or "UTF-8" in str(caught.value)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300), st.sampled_from(["x.bib", "x.json", "x"]))
def test_any_bytes_give_entries_or_a_roster_error(data: bytes, name: str) -> None:
    try:
        read = read_library(data, name)
    except RosterError as exc:
        assert exc.source == name
        return
    for entry in read.entries:
        assert entry.title or entry.abstract
        assert entry.key


@settings(max_examples=100, deadline=None)
@given(
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters='{}\\@%"$#'),
        min_size=1,
        max_size=60,
    ).filter(lambda t: t.strip())
)
def test_a_plain_title_comes_back_as_it_was(title: str) -> None:
    # bibtexparser's conversion composes characters (NFC): U+F900 becomes U+8C48
    expected = unicodedata.normalize("NFC", " ".join(title.split()))
    assert bib(f"@misc{{k, title = {{{title}}}}}").title == expected
