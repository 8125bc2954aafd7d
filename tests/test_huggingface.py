"""The Hugging Face listing parser: good elements, bad ones skipped, bad documents refused."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from digest.errors import SourceError
from digest.sources.huggingface import dedupe, parse_page
from tests.support.listings import item

URL = "https://hf.example/api/daily_papers?date=2026-11-18"


def parse(elements: list[Any]) -> tuple[list[Any], list[str]]:
    return parse_page(json.dumps(elements).encode(), URL)


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
    )
    element["numComments"] = 3
    (paper,), warnings = parse([element])
    assert warnings == []
    assert paper.key == paper.arxiv_id == "2511.04217"
    assert paper.title == "Diffusion Agents"
    assert paper.abstract == "First line same paragraph.\n\nSecond one."
    assert paper.authors == ("Zoë Ångström", "Łukasz Wójcik")
    assert (paper.upvotes, paper.num_comments) == (42, 3)
    assert paper.published == datetime(2026, 11, 15, 17, 59, 1, tzinfo=UTC)
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
    (paper,), _ = parse([element])
    assert paper.title == "Only at the top" and paper.abstract == "Abstract at the top."
    assert paper.thumbnail == "https://cdn.example/old.png"
    assert paper.published == datetime(2026, 11, 15, 1, tzinfo=UTC)


def test_html_stays_text_and_controls_and_bidi_go() -> None:
    title = "<b>Bold</b> claims & <script>alert(1)</script>\r\nBcc: x@evil.example\u202e"
    (paper,), _ = parse([item("2511.00002", title, "a\x00b\x01c\x1fd\ufffe")])
    assert paper.title.startswith("<b>Bold</b> claims & <script>")  # the renderer escapes it
    assert "\r" not in paper.title and "\n" not in paper.title
    assert paper.abstract == "abcd"


def test_a_paper_without_id_is_known_by_its_title() -> None:
    (paper,), _ = parse([item(None, "Naïve Bayes  Is All You Need?")])
    assert paper.arxiv_id is None
    assert paper.key == "title:naive bayes is all you need"


@pytest.mark.parametrize(
    ("element", "reason"),
    [
        ("a string", "expected an object"),
        ({"paper": {"id": "2511.1"}}, "'title' missing"),
        ({"paper": {"id": "2511.00003", "title": "   "}}, "'title' missing"),
        ({"paper": ["not", "an", "object"], "title": "x"}, "'paper' should be an object"),
        ({"paper": {"id": "2511.00004", "title": 7}}, "'title' missing"),
    ],
)
def test_bad_elements_are_skipped_with_a_warning(element: Any, reason: str) -> None:
    good = item("2511.00009", "Still here")
    papers, warnings = parse([element, good])
    assert [p.key for p in papers] == ["2511.00009"]
    assert len(warnings) >= 1 and reason in warnings[-1] and "item 0" in warnings[-1]
    assert "skipped" in warnings[-1]


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("upvotes", "12", 12),
        ("upvotes", True, 0),
        ("upvotes", -3, 0),
        ("upvotes", None, 0),
        ("publishedAt", "yesterday", None),
        ("projectPage", "javascript:alert(1)", None),
        ("githubRepo", 12, None),
        ("authors", "Ada", ()),
    ],
)
def test_wrong_optional_fields_are_repaired(field: str, value: Any, expected: Any) -> None:
    element = item("2511.00005", "Title")
    element["paper"][field] = value
    element.pop(field, None)
    (paper,), _ = parse([element])
    attr = {"publishedAt": "published", "projectPage": "project_page", "githubRepo": "github_repo"}
    assert getattr(paper, attr.get(field, field)) == expected


def test_hidden_authors_keep_their_names_and_nameless_ones_go() -> None:
    element = item("2511.00006", "T")
    element["paper"]["authors"] = [{"name": "Ada", "hidden": True}, {"hidden": False}, "Bo"]
    (paper,), warnings = parse([element])
    assert paper.authors == ("Ada", "Bo")
    assert any("without a usable name" in w for w in warnings)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<!DOCTYPE html><html><body>Rate limited</body></html>", "HTML"),
        (b'[{"paper": {"id": "2511.00001", "title": "Trun', "truncated"),
        (b'{"error": "Invalid date"}', "got a JSON object: 'Invalid date'"),
        (b"null", "got a JSON null"),
        (b"", "empty body"),
        (b"\xff\xfe[]", "expected a JSON list"),
        (b"[1, 2", "invalid JSON"),
    ],
)
def test_documents_of_the_wrong_shape_are_refused(body: bytes, reason: str) -> None:
    with pytest.raises(SourceError) as caught:
        parse_page(body, URL)
    assert reason in str(caught.value)
    assert URL in str(caught.value)


def test_invalid_utf8_inside_a_listing_is_replaced_not_fatal() -> None:
    body = json.dumps([item("2511.00008", "Caf\u00e9 models", "ok")]).encode()
    body = body.replace(b"ok", b"bad \xff byte")
    (paper,), _ = parse_page(body, URL)
    assert paper.abstract == "bad \ufffd byte"


def test_an_empty_list_is_a_normal_empty_day() -> None:
    assert parse_page(b"[]", URL) == ([], [])


def test_dedupe_keeps_the_first_and_warns() -> None:
    papers, _ = parse([item("2511.00007", "First"), item("2511.00007v3", "Again"), item("x", "T")])
    warnings: list[str] = []
    unique = dedupe(papers, warnings)
    assert [p.title for p in unique] == ["First", "T"]
    assert warnings == ["2511.00007 listed twice; kept once"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "paper",
                    "id",
                    "title",
                    "summary",
                    "authors",
                    "upvotes",
                    "name",
                    "publishedAt",
                    "githubRepo",
                    "ai_keywords",
                    "numComments",
                ]
            ),
            children,
            max_size=6,
        )
    ),
    max_leaves=20,
)


@given(st.lists(json_values, max_size=5))
def test_any_json_list_gives_papers_or_warnings(elements: list[Any]) -> None:
    papers, _warnings = parse_page(json.dumps(elements).encode(), URL)
    assert len(papers) <= len(elements)
    for paper in papers:
        assert paper.title and paper.key


@given(st.binary(max_size=200))
def test_any_bytes_give_a_result_or_a_source_error(body: bytes) -> None:
    with contextlib.suppress(SourceError):
        parse_page(body, URL)
