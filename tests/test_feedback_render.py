"""The feedback links in the rendered email (issue 17): each paper shown in full carries its
reader's "more like this" and "less like this" links, in the HTML and the text part, while
the entry itself stays rendered once for every reader (cut at the links, each piece encoded
apart and ended by a soft line break). The bodies stay valid quoted-printable (lines of at
most 76 characters, none starting with a dot), within the HTML budget.
"""

from __future__ import annotations

import binascii
import quopri
import re
from dataclasses import replace
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from digest.compose import Renderer, render
from digest.compose.feedback import FeedbackLinks, read_feedback_token
from digest.compose.fragments import link_piece, open_ended
from digest.compose.views import EmailLinks
from tests.support.mime import dot_lines
from tests.test_render import LINKS, digest_of, make_match, make_paper, renderer

__all__ = ["renderer"]  # the renderer fixture of tests/test_render.py

SECRET = b"render-secret-0123456789abcdef"
LONG = "Diffusion models generate images by reversing a noising process. " * 24
LINK = re.compile(r"https://digest\.example\.org/(more|less)\?token=([A-Za-z0-9_.-]+)")


def links_for(sub_id: int, base: str = "https://digest.example.org") -> EmailLinks:
    return EmailLinks(
        unsubscribe_url=LINKS.unsubscribe_url,
        manage_url=LINKS.manage_url,
        feed_url=LINKS.feed_url,
        archive_url=LINKS.archive_url,
        feedback=FeedbackLinks(base, SECRET, sub_id),
    )


def read_links(text: str) -> list[tuple[str, int, str]]:
    return [(kind, *read_feedback_token(SECRET, token)) for kind, token in LINK.findall(text)]


def check_body(data: bytes) -> None:
    lines = data.split(b"\r\n")
    assert all(len(line) <= 76 for line in lines), max(lines, key=len)
    assert not dot_lines(data)


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(codec="utf-8"), max_size=400), st.booleans())
def test_open_ended_pieces_decode_to_their_text_on_short_lines(text: str, link: bool) -> None:
    piece = link_piece(text) if link else open_ended(text)
    decoded = binascii.a2b_qp(piece).decode("utf-8").replace("\r\n", "\n")
    assert decoded == text.replace("\r\n", "\n").replace("\r", "\n")  # breaks made CRLF
    lines = piece.split(b"\r\n")
    assert all(len(line) <= 76 for line in lines)
    assert not any(line.startswith(b".") for line in lines)
    if text and not text.endswith("\n"):
        assert piece.endswith(b"=\r\n")  # the next piece goes on the same line


def test_every_paper_in_full_has_its_readers_links_in_both_parts(renderer: Renderer) -> None:
    matches = [make_match(make_paper(i)) for i in range(1, 6)]
    ada = digest_of(renderer, matches, links=links_for(7))
    bo = digest_of(renderer, matches, links=links_for(8))
    for out, reader in ((ada, 7), (bo, 8)):
        expected = [
            (kind, reader, f"2511.{i:05d}") for i in range(1, 6) for kind in ("more", "less")
        ]
        assert read_links(out.html) == expected
        assert read_links(out.text) == expected
        assert out.html.count(">More like this</a>") == 5
        assert out.text.count("More like this: https://") == 5
        for body in (out.html_body, out.text_body):
            check_body(body.data)
        assert quopri.decodestring(out.text_body.data).decode() == out.text.replace("\n", "\r\n")
    # The entries are the same but for the links.
    assert LINK.sub("", ada.html) == LINK.sub("", bo.html)
    stranger = digest_of(renderer, matches)  # no feedback (not a subscriber): no links
    assert "like this" not in stranger.html + stranger.text
    assert (
        LINK.sub("", ada.text).replace("More like this: \n", "").replace("Less like this: \n", "")
        == stranger.text
    )


def test_an_address_with_an_ampersand_and_a_long_key_stay_links(renderer: Renderer) -> None:
    key = "link:https://journal.example.org/" + "very-long-path/" * 12 + "ünïcode"
    paper = make_paper(1, key=key, arxiv_id=None)
    out = digest_of(
        renderer, [make_match(paper)], links=links_for(3, "https://digest.example.org/a&b")
    )
    html_links = re.findall(
        r'href="(https://digest\.example\.org/a&amp;b/more\?token=[^"]+)"', out.html
    )
    assert len(html_links) == 1
    token = html_links[0].split("token=")[1]
    assert len(token) > 76 and read_feedback_token(SECRET, token) == (3, key)
    assert f"https://digest.example.org/a&b/less?token={token}" in out.text
    for body in (out.html_body, out.text_body):
        check_body(body.data)


def test_many_papers_with_links_stay_under_the_html_budget(renderer: Renderer) -> None:
    matches = [
        make_match(make_paper(i, abstract=LONG, authors=tuple(f"A{j}" for j in range(12))))
        for i in range(200)
    ]
    out = digest_of(renderer, matches, links=links_for(11))
    assert out.shown > 0 and out.compact > 0 and out.shown + out.compact == 200
    assert out.html_size <= render.HTML_BUDGET
    full = read_links(out.html)
    # Two hundred compact entries with their links would not fit: listed without them.
    assert len(full) == 2 * out.shown
    assert full[0] == ("more", 11, "2511.00000")


def test_compact_entries_carry_the_links_and_stay_compact(renderer: Renderer) -> None:
    """Papers listed briefly (past what fits in full) have their reader's links in both
    parts, on the entry's one line in the HTML (one text line each); a pick's reason stays."""
    matches = [
        make_match(make_paper(i, abstract=LONG, authors=tuple(f"A{j}" for j in range(12))))
        for i in range(60)
    ]
    matches[-1] = replace(
        matches[-1], terms=(), spans=(), like='Graphs < Trees & "Co"', similarity=0.42
    )
    out = digest_of(renderer, matches, links=links_for(4))
    assert out.compact > 0 and out.shown + out.compact == 60
    expected = [(kind, 4, f"2511.{i:05d}") for i in range(60) for kind in ("more", "less")]
    assert read_links(out.html) == expected
    assert read_links(out.text) == expected
    brief = out.html.split('class="brief"')[1]
    items = re.findall(r"<li>.*?</li>", brief, re.DOTALL)
    assert len(items) == out.compact
    for i, item in enumerate(items, start=out.shown):
        assert "\n" not in item and "class=" not in item  # one line, no styling added
        token = LINK.findall(item)[0][1]
        more = f'[<a href="https://digest.example.org/more?token={token}">more like this</a>'
        assert more in item
        assert read_feedback_token(SECRET, token) == (4, f"2511.{i:05d}")
    assert "like “Graphs &lt; Trees &amp; " in items[-1] and ", 42% [<a " in items[-1]
    text = out.text.split("Also matching")[1]
    assert text.count("\n  More like this: https://") == out.compact
    assert text.count("\n  Less like this: https://") == out.compact
    assert 'Like "Graphs < Trees & "Co"" (42% similar)\n  More like this: ' in text
    for body in (out.html_body, out.text_body):
        check_body(body.data)
    # Another reader: the same entries but for the links.
    other = digest_of(renderer, matches, links=links_for(5))
    assert LINK.sub("", other.html) == LINK.sub("", out.html)
    assert {reader for _, reader, _ in read_links(other.text)} == {5}
    # No feedback (not a subscriber): compact entries without links, as before.
    stranger = digest_of(renderer, matches)
    assert stranger.compact > 0 and "like this" not in stranger.html + stranger.text


def test_an_operator_template_without_the_links_still_renders(tmp_path: Path) -> None:
    (tmp_path / "email").mkdir()
    (tmp_path / "email" / "paper.html").write_text("<p>{{ title_html }}</p>\n")
    (tmp_path / "email" / "paper.txt").write_text("{{ title }}\nmore: {{ more_url }}\n")
    mine = Renderer(tmp_path)
    out = digest_of(mine, [make_match(make_paper(1))], links=links_for(5))
    assert "like this" not in out.html and "/more?token=" not in out.html
    assert read_links(out.text) == [("more", 5, "2511.00001")]
