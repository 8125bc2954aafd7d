"""The Hugging Face listing parser: good elements, bad ones skipped, bad documents refused."""

from __future__ import annotations

import contextlib
import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from digest.errors import SourceError
from digest.models import Paper
from digest.sources.huggingface import MAX_TEXT, dedupe, parse_page
from tests.support.listings import item


def title_hash(folded_title: str, surname: str) -> str:
    """The key of a paper without arXiv id, DOI or link (digest.identity): ``title:`` + the
    first 24 hex digits of SHA-256 of the folded title, U+001F and the first author's surname."""
    return "title:" + hashlib.sha256(f"{folded_title}\x1f{surname}".encode()).hexdigest()[:24]


URL = "https://hf.example/api/daily_papers?date=2026-11-18"
PUBLISHED = datetime(2026, 11, 15, 17, 59, 1, tzinfo=UTC)  # item()'s publishedAt


def parse(elements: list[Any]) -> tuple[list[Paper], list[str]]:
    return parse_page(json.dumps(elements).encode(), URL)


def one(element: dict[str, Any]) -> tuple[Paper, list[str]]:
    (paper,), warnings = parse([element])
    return paper, warnings


def test_a_full_element() -> None:
    element = item(
        "2511.04217v2",
        "  Diffusion\n Agents  ",
        "First line\nsame paragraph.\n\nSecond one.",
        authors=("Zoë Ångström", "Łukasz Wójcik"),
        upvotes=42,
        githubRepo="https://github.com/x/y",
        projectPage="https://x.example/p",
        ai_summary="Short.",
        ai_keywords=["diffusion", "agents"],
        unknownKey={"ignored": True},
    )
    element["numComments"] = 3
    element["somethingNew"] = [1, 2]
    paper, warnings = one(element)
    assert warnings == []
    assert paper.key == paper.arxiv_id == "2511.04217"
    assert paper.title == "Diffusion Agents"
    assert paper.abstract == "First line same paragraph.\n\nSecond one."
    assert paper.authors == ("Zoë Ångström", "Łukasz Wójcik")
    assert (paper.upvotes, paper.num_comments) == (42, 3)
    assert paper.published == PUBLISHED
    assert paper.github_repo == "https://github.com/x/y"
    assert paper.project_page == "https://x.example/p"
    assert paper.ai_summary == "Short." and paper.ai_keywords == ("diffusion", "agents")
    assert paper.thumbnail and paper.thumbnail.endswith("2511.04217v2.png")


def test_top_level_copies_and_media_url_fill_in() -> None:
    element = {
        "paper": {"id": "2511.00001", "authors": []},
        "title": "Only at the top",
        "summary": "Abstract at the top.",
        "publishedAt": "2026-11-15T01:00:00Z",
        "mediaUrl": "https://cdn.example/old.png",
    }
    paper, _ = one(element)
    assert paper.title == "Only at the top" and paper.abstract == "Abstract at the top."
    assert paper.thumbnail == "https://cdn.example/old.png"
    assert paper.published == datetime(2026, 11, 15, 1, tzinfo=UTC)


def test_paper_fields_win_over_top_level_copies() -> None:
    element = item("2511.00011", "Inner title", "Inner abstract")
    element.update(title="Outer title", summary="Outer", mediaUrl="https://cdn.example/m.png")
    paper, _ = one(element)
    assert (paper.title, paper.abstract) == ("Inner title", "Inner abstract")
    assert paper.thumbnail and "social-thumbnails" in paper.thumbnail  # thumbnail over mediaUrl


def test_an_element_without_paper_object_uses_the_top_level() -> None:
    paper, _ = one({"title": "Bare", "summary": "S", "numComments": 2})
    assert (paper.title, paper.abstract, paper.num_comments) == ("Bare", "S", 2)
    assert paper.key == title_hash("bare", "") and paper.arxiv_id is None
    assert paper.link is None


def test_html_stays_text_and_controls_and_bidi_go() -> None:
    title = "<b>Bold</b> claims & <script>alert(1)</script>\r\nBcc: x@evil.example\u202e"
    paper, _ = one(item("2511.00002", title, "a\x00b\x01c\x1fd\ufffe\u2066e"))
    assert paper.title == "<b>Bold</b> claims & <script>alert(1)</script> Bcc: x@evil.example"
    assert paper.abstract == "abcde"


def test_non_ascii_survives() -> None:
    title = "Ünïcödé 模型 🚀 — Ελληνικά"
    paper, _ = one(item(None, title, "Résumé: ½ ∑ 𝔼[x]", authors=("李雷", "Ωmega")))
    assert paper.title == title and paper.abstract == "Résumé: ½ ∑ 𝔼[x]"
    assert paper.authors == ("李雷", "Ωmega")
    assert paper.key == title_hash("unicode 模型 ελληνικα", "李雷")


def test_a_very_long_abstract_is_cut_with_a_warning() -> None:
    paper, warnings = one(item("2511.00012", "Long", "word " * 60_000))
    assert len(paper.abstract) <= MAX_TEXT
    assert warnings == ["item 0 (2511.00012): 'summary' of 300,000 characters cut to 100,000"]


def test_a_paper_without_id_is_known_by_its_title() -> None:
    paper, _ = one(item(None, "Naïve Bayes  Is All You Need?"))
    assert paper.arxiv_id is None
    assert paper.key == title_hash("naive bayes is all you need", "okafor")
    again, _ = one(item(None, "naive  BAYES is all you need!", authors=("Okafor, Ada",)))
    assert again.key == paper.key  # case, punctuation and "Surname, Given" do not matter


@pytest.mark.parametrize(
    ("raw", "arxiv_id", "warned"),
    [
        ("2511.04217", "2511.04217", False),
        ("2511.04217v12", "2511.04217", False),
        ("arXiv:2511.04217v1", "2511.04217", False),
        ("hep-th/9901001v2", "hep-th/9901001", False),
        ("not an id", None, True),
        (2511.04217, None, True),
        ("", None, False),
    ],
)
def test_ids_lose_their_version(raw: Any, arxiv_id: str | None, warned: bool) -> None:
    paper, warnings = one(item(raw, "Some title"))
    assert paper.arxiv_id == arxiv_id
    assert paper.key == (arxiv_id or title_hash("some title", "okafor"))
    assert paper.link == (f"https://huggingface.co/papers/{arxiv_id}" if arxiv_id else None)
    assert bool(warnings) == warned


@pytest.mark.parametrize(
    ("element", "warning"),
    [
        ("a string", "item 0: expected an object, got a string, skipped"),
        (None, "item 0: expected an object, got null, skipped"),
        ({"paper": {"id": "2511.1"}}, "item 0 (2511.1): 'title' missing, skipped"),
        ({"paper": {"id": "2511.00003", "title": "   "}}, "item 0 (2511.00003): 'title' missing"),
        ({"paper": {"id": "2511.00003", "title": "\x00\u202e"}}, "'title' empty, skipped"),
        ({"paper": ["x"], "title": "x"}, "item 0: 'paper' should be an object, got a list"),
        ({"paper": {"id": "2511.00004", "title": 7}}, "'title' should be text, got a number"),
        ({"paper": {"id": "2511.00004", "title": ["T"]}}, "'title' should be text, got a list"),
    ],
)
def test_bad_elements_are_skipped_with_a_warning(element: Any, warning: str) -> None:
    papers, warnings = parse([element, item("2511.00009", "Still here")])
    assert [p.key for p in papers] == ["2511.00009"]
    assert len(warnings) == 1 and warning in warnings[0] and warnings[0].endswith(", skipped")


def test_warnings_name_the_index_of_the_element() -> None:
    elements = [item(f"2511.{i:05d}", f"T{i}") for i in range(9)]
    elements[7] = {"paper": {"id": "2511.01234"}}
    _, warnings = parse(elements)
    assert warnings == ["item 7 (2511.01234): 'title' missing, skipped"]


@pytest.mark.parametrize(
    ("field", "value", "expected", "warned"),
    [
        ("upvotes", "12", 12, False),
        ("upvotes", True, 0, True),  # JSON true is not 1
        ("upvotes", False, 0, True),
        ("upvotes", -3, 0, True),
        ("upvotes", 1.5, 0, True),
        ("upvotes", "²", 0, True),
        ("upvotes", "1" * 5000, 0, True),
        ("upvotes", 10**12, 0, True),
        ("upvotes", None, 0, False),
        ("publishedAt", "yesterday", None, True),
        ("publishedAt", "2026-11-15T19:59:01+02:00", PUBLISHED, False),
        ("publishedAt", "2026-11-15", datetime(2026, 11, 15, tzinfo=UTC), False),
        ("publishedAt", "0001-01-01T00:00:00+01:00", None, True),
        ("publishedAt", 1763229541, None, True),
        ("projectPage", "javascript:alert(1)", None, True),
        ("projectPage", "https://ok.example/a b", None, True),
        ("githubRepo", 12, None, True),
        ("githubRepo", "", None, False),
        ("authors", "Ada", (), True),
        ("ai_keywords", "diffusion", (), True),
        ("ai_keywords", ["ok", 3], (), True),
        ("ai_summary", {"text": "x"}, None, True),
    ],
)  # fmt: skip
def test_wrong_optional_fields_are_dropped(
    field: str, value: Any, expected: Any, warned: bool
) -> None:
    element = item("2511.00005", "Title")
    element["paper"][field] = value
    element.pop(field, None)
    paper, warnings = one(element)
    attr = {
        "publishedAt": "published",
        "projectPage": "project_page",
        "githubRepo": "github_repo",
    }.get(field, field)
    assert getattr(paper, attr) == expected
    assert bool(warnings) == warned
    assert all(w.startswith("item 0 (2511.00005): ") for w in warnings)


def test_num_comments_is_a_count_too() -> None:
    element = item("2511.00013", "T")
    element["numComments"] = True
    paper, warnings = one(element)
    assert paper.num_comments == 0 and "'numComments' should be a count" in warnings[0]


def test_hidden_authors_keep_their_names_and_nameless_ones_go() -> None:
    element = item("2511.00006", "T")
    element["paper"]["authors"] = [
        {"name": "Ada", "hidden": True},
        {"hidden": False},
        {"name": 3},
        "Bo",
        {"name": "  Cy\n Dee ", "_id": "x", "user": {"fullname": "Other"}},
    ]
    paper, warnings = one(element)
    assert paper.authors == ("Ada", "Bo", "Cy Dee")
    assert warnings == ["item 0 (2511.00006): 2 author(s) without a usable name left out"]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (
            b"<!DOCTYPE html><html><body>Rate limited</body></html>",
            "expected a JSON list of papers,"
            " got an HTML or XML page (starts with '<!DOCTYPE html>')",
        ),
        (b"  <?xml version='1.0'?><feed/>", 'got an HTML or XML page (starts with "<?xml'),
        (b"Internal Server Error", "got text starting with 'Internal Server Error'"),
        (b'[{"paper": {"id": "2511.00001", "title": "Trun', "(the response looks truncated)"),
        (b'[{"paper": {"id": "2511.00001"}},', "looks truncated"),
        (b'{"error": "Invalid date"}', "got a JSON object: 'Invalid date'"),
        (b'{"papers": []}', "got a JSON object"),
        (b"null", "got a JSON null"),
        (b'"[]"', "got a JSON string"),
        (b"42", "got a JSON number"),
        (b"", "empty body"),
        (b"\xff\xfe[\x00]\x00", "expected a JSON list"),  # UTF-16 is not UTF-8
        (b"[1, 2,\n  x]", "invalid JSON at line 2 column 3"),
        (b"[" * 100_000, "invalid JSON"),
        (b"[" + b"1" * 5000 + b"]", "invalid JSON"),
    ],
)
def test_documents_of_the_wrong_shape_are_refused(body: bytes, reason: str) -> None:
    with pytest.raises(SourceError) as caught:
        parse_page(body, URL)
    assert reason in str(caught.value)
    assert caught.value.url == URL


def test_invalid_utf8_inside_a_listing_is_replaced_not_fatal() -> None:
    body = json.dumps([item("2511.00008", "Caf\u00e9 models", "ok")]).encode()
    body = body.replace(b"ok", b"bad \xff byte")
    (paper,), warnings = parse_page(body, URL)
    assert paper.abstract == "bad \ufffd byte"
    at = body.index(b"\xff")
    assert warnings == [f"invalid UTF-8 (first at byte {at}) replaced by U+FFFD"]


def test_an_empty_list_is_a_normal_empty_day() -> None:
    assert parse_page(b"[]", URL) == ([], [])
    assert parse_page(b" \n[ ]\n", URL) == ([], [])


def test_parse_keeps_duplicates_and_dedupe_keeps_the_first() -> None:
    papers, _ = parse(
        [item("2511.00007", "First"), item("2511.00007v3", "Again"), item(None, "T"),
         item(None, "  t ")]
    )  # fmt: skip
    assert len(papers) == 4
    warnings: list[str] = []
    unique = dedupe(papers, warnings)
    assert [p.title for p in unique] == ["First", "T"]
    assert warnings == ["2511.00007 listed twice; kept the first", "t listed twice; kept the first"]


# -- properties ------------------------------------------------------------------------------

KEYS = [
    "paper", "id", "title", "summary", "authors", "upvotes", "name", "hidden", "publishedAt",
    "githubRepo", "projectPage", "ai_keywords", "ai_summary", "numComments", "thumbnail",
    "mediaUrl",
]  # fmt: skip

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | st.sampled_from(["2511.00001v2", "2026-11-15T01:00:00Z", "https://x.example/a", "12"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=3), children, max_size=6)
    ),
    max_leaves=25,
)


def check(papers: list[Paper]) -> None:
    for paper in papers:
        assert paper.title and paper.title == " ".join(paper.title.split())
        assert paper.key
        assert paper.upvotes >= 0 and paper.num_comments >= 0
        assert paper.published is None or paper.published.tzinfo is not None
        assert all(isinstance(a, str) and a for a in paper.authors)


@given(st.lists(json_values, max_size=5))
def test_any_json_list_gives_papers_and_warnings(elements: list[Any]) -> None:
    papers, _warnings = parse_page(json.dumps(elements).encode(), URL)
    assert len(papers) <= len(elements)
    check(papers)


@given(json_values)
def test_any_json_document_gives_papers_or_a_source_error(document: Any) -> None:
    try:
        papers, _ = parse_page(json.dumps(document).encode(), URL)
    except SourceError as exc:
        assert not isinstance(document, list) and exc.url == URL
    else:
        check(papers)


@given(st.binary(max_size=300))
def test_any_bytes_give_papers_or_a_source_error(body: bytes) -> None:
    with contextlib.suppress(SourceError):
        check(parse_page(body, URL)[0])
