"""Rendering of the digest email: template contract, escaping, highlighting, size budget."""

from __future__ import annotations

import html as htmllib
import os
import quopri
import re
from dataclasses import fields, replace
from datetime import date
from pathlib import Path

import jinja2.meta
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markupsafe import Markup, escape

import digest.compose.fragments as fragments
import digest.compose.render as render
import digest.compose.templates as templates
import digest.compose.text as texts
import digest.compose.views as views
from digest.compose import (
    DigestContext,
    EmailLinks,
    PaperView,
    Renderer,
    SubjectContext,
    paper_view,
    segments,
    to_html,
    trim_abstract,
)
from digest.errors import RenderError
from digest.models import Match, Paper, Span, Subscriber
from tests.support.mime import dot_lines

GOLDEN = Path(__file__).parent / "golden"
DAY = date(2026, 11, 22)
SUB = Subscriber(
    email="ada@example.org",
    name="Ada",
    keywords=('"large language model" AND survey', "diffusion"),
    exclude=("medical",),
)
LINKS = EmailLinks(
    unsubscribe_url="https://digest.example.org/unsubscribe?token=abc.def&x=1",
    manage_url="https://digest.example.org/manage?token=abc.def",
    feed_url="https://digest.example.org/feeds/Zq3x.xml",
    archive_url="https://digest.example.org/archive/2026-11-22",
)
ABSTRACT = (
    "Diffusion models generate images by reversing a noising process. "
    "We study how diffusion agents plan, e.g. in games, and show that et al. "
    "were right about scaling. Our method improves sample quality by 12.5% on "
    "three benchmarks! It also halves the compute needed for training. "
    "We release code and models. Experiments on ImageNet and COCO confirm the "
    "gains across resolutions, and an ablation isolates the planner. Finally, we "
    "discuss limitations, including failure cases on long-horizon tasks and the "
    "cost of sampling at high resolution, and outline future work on distillation."
)


def check_golden(name: str, actual: str) -> None:
    """Compare with ``tests/golden/NAME``; ``UPDATE_GOLDEN=1`` rewrites it on purpose."""
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(actual.encode("utf-8"))
    assert path.read_bytes().decode("utf-8") == actual, (
        f"{name} differs from its golden file; if the change is intended, run with UPDATE_GOLDEN=1"
    )


def make_paper(n: int = 1, **changes: object) -> Paper:
    values: dict[str, object] = {
        "key": f"2511.{n:05d}",
        "arxiv_id": f"2511.{n:05d}",
        "title": f"Diffusion Agents Plan in Latent Space {n}",
        "abstract": ABSTRACT,
        "authors": ("Ada Okafor", "Bo Li", "Chiara Rossi"),
        "upvotes": n,
        "github_repo": "https://github.com/example/diffusion-agents",
    }
    values.update(changes)
    return Paper(**values)  # type: ignore[arg-type]


def spans_of(paper: Paper, word: str) -> tuple[Span, ...]:
    found = []
    for field in ("title", "abstract"):
        text = getattr(paper, field)
        found += [
            Span(field, m.start(), m.end()) for m in re.finditer(word, text, flags=re.IGNORECASE)
        ]
    return tuple(found)


def make_match(paper: Paper, word: str = "diffusion") -> Match:
    return Match(paper=paper, score=1.0, terms=(word,), spans=spans_of(paper, word))


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(site_title="Paper Digest", base_url="https://digest.example.org")


def digest_of(renderer: Renderer, matches: list[Match], **kw: object) -> render.RenderedEmail:
    args: dict[str, object] = {
        "day": DAY,
        "subscriber": SUB,
        "matches": matches,
        "links": LINKS,
        "total_in_listing": 312,
        "max_papers": None,
    }
    args.update(kw)
    return renderer.render_digest(**args)  # type: ignore[arg-type]


# -- the template contract ------------------------------------------------------------------


def test_context_fields_are_pinned() -> None:
    assert [f.name for f in fields(DigestContext)] == [
        "subject", "preheader", "site_title", "base_url", "day", "day_label",
        "subscriber_email", "subscriber_name", "keywords", "exclude", "total_in_listing",
        "matched_count", "shown_count", "compact_count", "more_count", "max_papers",
        "papers", "compact", "stylesheet", "unsubscribe_url", "manage_url", "feed_url",
        "more_url", "browser_url", "since", "one_off", "picked",
    ]  # fmt: skip
    assert [f.name for f in fields(PaperView)] == [
        "key", "arxiv_id", "title", "title_html", "short_title", "url", "hf_url", "abs_url",
        "pdf_url", "code_url", "project_url", "authors", "authors_html", "authors_more",
        "upvotes", "comments", "primary_category", "sources", "abstract", "abstract_html",
        "abstract_trimmed", "terms", "more_url", "less_url", "like", "similarity",
    ]  # fmt: skip
    assert [f.name for f in fields(SubjectContext)] == [
        "site_title", "day", "day_label", "count", "matched", "total_in_listing", "since",
    ]  # fmt: skip
    assert templates.TEMPLATES == {
        "subject": "email/subject.txt",
        "digest_html": "email/digest.html",
        "digest_text": "email/digest.txt",
        "paper_html": "email/paper.html",
        "paper_text": "email/paper.txt",
        "compact_html": "email/compact.html",
        "compact_text": "email/compact.txt",
    }


@pytest.mark.parametrize("key", sorted(templates.TEMPLATES))
def test_bundled_templates_use_only_their_context(renderer: Renderer, key: str) -> None:
    name = templates.TEMPLATES[key]
    context = {
        "subject": SubjectContext,
        "digest_html": DigestContext,
        "digest_text": DigestContext,
    }.get(key, PaperView)
    source = renderer.env.loader.get_source(renderer.env, name)[0]  # type: ignore[union-attr]
    used = jinja2.meta.find_undeclared_variables(renderer.env.parse(source))
    assert used - set(renderer.env.globals) <= {f.name for f in fields(context)}


def test_templates_come_from_the_repository_or_package() -> None:
    folder = templates.default_templates_dir()
    assert (folder / "email" / "digest.html").is_file()
    assert (folder / "email" / "email.css").is_file()


def test_operator_templates_override_one_file(tmp_path: Path) -> None:
    (tmp_path / "email").mkdir()
    (tmp_path / "email" / "subject.txt").write_text("{{ count }} for you on {{ day_label }}\n")
    mine = Renderer(tmp_path)
    out = digest_of(mine, [make_match(make_paper())])
    assert out.subject == "1 for you on 22 Nov 2026"
    assert "Diffusion" in out.html  # the rest still from the bundled templates


def test_highlights_and_terms_fill_slots_of_one_render_per_paper(renderer: Renderer) -> None:
    paper = make_paper(7)
    one = digest_of(renderer, [make_match(paper, "diffusion")])
    two = digest_of(renderer, [make_match(paper, "agents")])
    assert '<mark class="hl" style="background-color:#fef08a">Agents</mark>' in two.html
    assert "Matched: agents" in two.html and "Matched: agents" in two.text
    assert "Matched: diffusion" in one.html and "pdslot" not in one.html + two.html
    hostile = Match(paper=paper, score=1.0, terms=("<b>x</b>", "y & z"))
    out = digest_of(renderer, [hostile])
    assert "Matched: &lt;b&gt;x&lt;/b&gt;, y &amp; z" in out.html
    assert "Matched: <b>x</b>, y & z" in out.text


def test_an_operator_template_listing_terms_its_own_way(tmp_path: Path) -> None:
    (tmp_path / "email").mkdir()
    (tmp_path / "email" / "paper.html").write_text(
        "<div>{{ title_html }}{% for t in terms %}<i>{{ t }}</i>{% endfor %}</div>\n"
    )
    mine = Renderer(tmp_path)
    paper = make_paper(8)
    match = Match(
        paper=paper, score=1.0, terms=("diffusion", "agents"), spans=spans_of(paper, "diffusion")
    )
    out = digest_of(mine, [match])
    assert "<i>diffusion</i><i>agents</i>" in out.html
    assert "pdslot" not in out.html


def test_operator_template_errors_are_render_errors(tmp_path: Path) -> None:
    (tmp_path / "email").mkdir()
    (tmp_path / "email" / "paper.txt").write_text("{% if %}")
    with pytest.raises(RenderError) as syntax:
        Renderer(tmp_path)
    assert syntax.value.template == "email/paper.txt"

    (tmp_path / "email" / "paper.txt").write_text("{{ no_such_field }}")
    with pytest.raises(RenderError, match="no_such_field") as undefined:
        digest_of(Renderer(tmp_path), [make_match(make_paper())])
    assert undefined.value.template == "email/paper.txt"

    with pytest.raises(RenderError):
        Renderer(tmp_path / "missing")


def test_a_shell_that_drops_the_papers_is_refused(tmp_path: Path) -> None:
    (tmp_path / "email").mkdir()
    (tmp_path / "email" / "digest.html").write_text("<p>{{ matched_count }} papers</p>")
    with pytest.raises(RenderError, match="papers would be lost"):
        digest_of(Renderer(tmp_path), [make_match(make_paper())])


# -- what the email says ----------------------------------------------------------------------


@pytest.mark.parametrize(("count", "subject"), [
    (1, "Paper Digest for 22 Nov 2026: 1 new paper"),
    (7, "Paper Digest for 22 Nov 2026: 7 new papers"),
])  # fmt: skip
def test_subject(renderer: Renderer, count: int, subject: str) -> None:
    matches = [make_match(make_paper(i)) for i in range(count)]
    assert digest_of(renderer, matches).subject == subject


@pytest.mark.parametrize(("matched", "max_papers", "subject"), [
    (25, 10, "Paper Digest for 22 Nov 2026: 10 new papers (25 matched)"),
    (2, 1, "Paper Digest for 22 Nov 2026: 1 new paper (2 matched)"),
    (10, 10, "Paper Digest for 22 Nov 2026: 10 new papers"),
])  # fmt: skip
def test_the_subject_counts_what_the_email_shows(
    renderer: Renderer, matched: int, max_papers: int, subject: str
) -> None:
    matches = [make_match(make_paper(i)) for i in range(matched)]
    out = digest_of(renderer, matches, max_papers=max_papers)
    assert out.subject == subject
    assert out.shown + out.compact == min(matched, max_papers)


def test_the_lede_of_a_subscriber_without_keywords_names_no_keywords(
    renderer: Renderer,
) -> None:
    everything = Subscriber(email="all@example.org", keywords=())
    matches = [make_match(make_paper(i)) for i in range(3)]
    out = digest_of(renderer, matches, subscriber=everything)
    for body in (out.html, out.text):
        assert "3 new papers, of 312 in the day's listing." in body
        assert "matching your keywords" not in body
    assert "3 new papers matching your keywords, of 312" in digest_of(renderer, matches).text


def test_email_has_header_links_footer_and_dark_mode(renderer: Renderer) -> None:
    paper = make_paper(7, project_page="https://example.org/project")
    out = digest_of(renderer, [make_match(paper)])
    html, text = out.html, out.text
    for url in (
        "https://huggingface.co/papers/2511.00007",
        "https://arxiv.org/abs/2511.00007",
        "https://arxiv.org/pdf/2511.00007",
        "https://github.com/example/diffusion-agents",
        "https://example.org/project",
        "https://digest.example.org/unsubscribe?token=abc.def&amp;x=1",
        "https://digest.example.org/manage?token=abc.def",
        "https://digest.example.org/feeds/Zq3x.xml",
    ):
        assert f'href="{url}"' in html
        assert url.replace("&amp;", "&") in text
    assert "22 Nov 2026" in html and "1 new paper matching" in html and "312" in html
    assert '<meta name="color-scheme" content="light dark">' in html
    assert "@media (prefers-color-scheme: dark)" in html
    assert 'class="preheader" style="display:none' in html  # the preheader, hidden
    assert re.search(r'<h2 class="title" style="[^"]*font-size:17px', html)  # CSS inlined
    assert "<mark" not in text and "▲ 7 upvotes" in html and "7 upvotes" in text
    assert "diffusion" in html.split('class="foot"')[1]  # why you get this: the keywords
    assert "(excluding" in html and "medical" in html


def test_listing_text_is_escaped(renderer: Renderer) -> None:
    paper = make_paper(
        title='<script>alert("x")</script> & <b>Bold</b>',
        abstract="<img src=x onerror=alert(1)> results. " * 3,
        authors=("<i>Eve</i>",),
        project_page="javascript:alert(document.cookie)",
        github_repo='https://github.com/x/y" onmouseover="alert(1)',
    )
    out = digest_of(renderer, [make_match(paper, "script")])
    assert "<script" not in out.html and "<img" not in out.html and "<i>Eve" not in out.html
    assert "&lt;script&gt;" in out.html and "&lt;b&gt;Bold" in out.html
    assert "javascript:" not in out.html and "onmouseover" not in out.html
    assert all(href.startswith("https://") for href in re.findall(r'href="([^"]*)"', out.html))
    assert '<script>alert("x")</script> & <b>Bold</b>' in out.text


def test_bidi_overrides_controls_and_line_breaks_are_removed(renderer: Renderer) -> None:
    paper = make_paper(
        title="Safe\u202e title\r\nBcc: x@y\x00 \ud800 end",
        authors=("Ali\u2066ce\x1b[31m",),
    )
    out = digest_of(renderer, [make_match(paper)])
    for bad in ("\u202e", "\u2066", "\x00", "\x1b", "\ud800", "\r"):
        assert bad not in out.html and bad not in out.text
    assert "Safe title Bcc: x@y end" in out.html
    out.html.encode("utf-8")  # no lone surrogate left


def test_very_long_strings_are_cut(renderer: Renderer) -> None:
    paper = make_paper(title="word " * 200, abstract="x" * 50_000, authors=("A" * 5_000,) * 40)
    view = paper_view(make_match(paper))
    assert len(view.title) <= views.TITLE_LIMIT + 2 and view.title.endswith(" …")
    assert len(view.abstract) <= texts.ABSTRACT_LIMIT + 2 and view.abstract_trimmed
    assert all(len(a) <= views.AUTHOR_LIMIT + 1 for a in view.authors)
    assert view.authors_more == 37
    assert digest_of(renderer, [make_match(paper)]).html_size < 20_000


@pytest.mark.parametrize(("authors", "named", "more"), [
    (("A",), ("A",), 0),
    (("A", "B", "C", "D"), ("A", "B", "C", "D"), 0),
    (tuple("ABCDEFGHIJ"), ("A", "B", "C"), 7),
])  # fmt: skip
def test_authors_are_shortened_when_many(
    authors: tuple[str, ...], named: tuple[str, ...], more: int
) -> None:
    view = paper_view(make_match(make_paper(authors=authors)))
    assert (view.authors, view.authors_more) == (named, more)


def test_author_and_more_in_text(renderer: Renderer) -> None:
    out = digest_of(renderer, [make_match(make_paper(authors=tuple("ABCDEFGHIJ")))])
    assert "A, B, C and 7 more" in out.text and "A, B, C and 7 more" in out.html


# -- abstract trimming and highlighting -------------------------------------------------------


@pytest.mark.parametrize(("text", "shown"), [
    ("Short. Whole.", "Short. Whole."),
    ("A" * 30 + ". " + "Second sentence here. " * 40,
     "A" * 30 + ". " + ("Second sentence here. " * 25).rstrip()),
    ("We follow Smith et al. " + "who did things. " * 50, None),
    ("word " * 300, None),
], ids=["short", "sentences", "et-al", "no-sentence"])  # fmt: skip
def test_abstract_is_trimmed_at_a_sentence_or_word(text: str, shown: str | None) -> None:
    end, ellipsis = trim_abstract(text, 600)
    assert end <= 600 or end == len(text)
    assert end == len(text) or text[end] == " "  # never mid-word
    if shown is not None:
        assert text[:end] == shown and not ellipsis
    assert not text[:end].endswith("et al.")


def test_sentence_cut_keeps_whole_sentences() -> None:
    view = paper_view(make_match(make_paper(abstract=ABSTRACT + " " + ABSTRACT)))
    assert view.abstract == ABSTRACT  # the first copy: the last sentence end before 600
    assert "e.g. in games" in view.abstract and view.abstract_trimmed


@settings(max_examples=300)
@given(
    st.text(alphabet=st.sampled_from("ab .-\n\t\x00\u202e\u2028é"), max_size=60),
    st.lists(st.tuples(st.integers(-2, 62), st.integers(-2, 62)), max_size=4),
    st.integers(0, 62),
)
def test_tidy_text_is_cut_into_the_same_segments_without_cleaning(
    text: str, spans: list[tuple[int, int]], end: int
) -> None:
    end = min(end, len(text))
    assert texts.segments(text, spans, end, tidy=texts.tidy(text)) == texts.segments(
        text, spans, end
    )


@settings(max_examples=300)
@given(
    st.text(alphabet=st.sampled_from("ab .-\n\t\x00\u202e\u2028é"), max_size=60),
    st.integers(0, 62),
    st.booleans(),
)
def test_text_without_highlights_is_cut_as_with_highlights_outside_it(
    text: str, end: int, tidy: bool
) -> None:
    end = min(end, len(text))
    tidy = tidy and texts.tidy(text)
    assert texts.segments(text, (), end, tidy=tidy) == texts.segments(
        text, [(end, end + 5)], end, tidy=tidy
    )


@given(st.text(alphabet=st.sampled_from("ab&<>'\" é;#\x00"), max_size=40))
def test_text_is_escaped_as_markupsafe_escapes_it(text: str) -> None:
    assert texts.escape_text(text) == str(escape(text))


def test_highlight_marks_spans_escaped_and_merged() -> None:
    text = "a <b>, large-language model & more"
    pieces = segments(text, [(2, 5), (7, 12), (13, 21), (15, 17), (40, 50)], len(text))
    assert to_html(pieces) == Markup(
        'a <mark class="hl">&lt;b&gt;</mark>, <mark class="hl">large-language</mark>'
        " model &amp; more"
    )


def test_highlights_follow_spans_and_text_has_no_markup(renderer: Renderer) -> None:
    paper = make_paper(title="Planning with DIFFUSION: diffusion\npolicies")
    out = digest_of(renderer, [make_match(paper)])
    title = re.search(r'<h2 class="title".*?</h2>', out.html, re.S)
    assert title and title.group().count("<mark") == 2
    assert "Planning with DIFFUSION: diffusion policies" in out.text


def test_author_spans_highlight_that_author() -> None:
    paper = make_paper(authors=("Ada Okafor", "Bo Li"))
    match = Match(paper, 1.0, ("author:okafor",), (Span("author", 4, 10, index=0),))
    view = paper_view(match)
    assert view.authors_html[0] == Markup('Ada <mark class="hl">Okafor</mark>')
    assert view.authors_html[1] == Markup("Bo Li")


# -- size budget and caps ---------------------------------------------------------------------


def test_300_long_papers_all_fit_under_gmail_clipping(renderer: Renderer) -> None:
    long_abstract = ABSTRACT * 4
    matches = [
        make_match(
            make_paper(
                i,
                title=f"Diffusion Transformers for Long-Horizon Planning and Control {i}: "
                "A Study of Scaling, Data and Compute",
                abstract=long_abstract,
                authors=tuple(f"Author Name{j}" for j in range(12)),
            )
        )
        for i in range(300)
    ]
    out = digest_of(renderer, matches)
    assert out.shown + out.compact == 300 and out.more == 0
    assert out.compact > 0 and out.shown > 0
    assert out.html_size <= render.HTML_BUDGET < 102_000
    for i in range(300):  # every paper is in both parts
        assert f"https://huggingface.co/papers/2511.{i:05d}" in out.html
        assert f"https://huggingface.co/papers/2511.{i:05d}" in out.text
    full = out.html.split('class="brief"')[0]
    assert "2511.00000" in full and f"2511.{out.shown:05d}" not in full  # best ranked in full
    assert f"Also matching ({out.compact})" in out.html


def test_every_digest_links_to_itself_in_the_browser(renderer: Renderer) -> None:
    """Not only past the cap: a short digest links to the archive page of its papers, with
    the subscriber's queries, so the page lists them in the email's order."""
    out = digest_of(renderer, [make_match(make_paper(1))], max_papers=10)
    assert out.more == 0
    url = (
        "https://digest.example.org/archive/2026-11-22"
        "?q=%22large+language+model%22+AND+survey&q=diffusion&x=medical"
    )
    assert f'href="{htmllib.escape(url)}"' in out.html and ">View in browser</a>" in out.html
    assert f"View in browser: {url}" in out.text
    everyone = replace(SUB, keywords=(), exclude=())
    plain = digest_of(renderer, [make_match(make_paper(1))], subscriber=everyone)
    assert "View in browser: https://digest.example.org/archive/2026-11-22\n" in plain.text
    none = digest_of(renderer, [make_match(make_paper(1))], links=EmailLinks(None))
    assert "View in browser" not in none.html + none.text


def test_encoded_bodies_are_the_html_and_text(renderer: Renderer) -> None:
    out = digest_of(renderer, [make_match(make_paper(i)) for i in range(40)])
    assert out.html_body.encoding == out.text_body.encoding == "quoted-printable"
    for body, expected in ((out.html_body, out.html), (out.text_body, out.text)):
        lines = body.data.split(b"\r\n")
        assert all(len(line) <= 76 and b"\n" not in line for line in lines)
        assert quopri.decodestring(body.data).decode("utf-8") == expected.replace("\n", "\r\n")
    assert out.html_size == len(out.html_body.data)


def test_no_body_line_starts_with_a_dot(renderer: Renderer) -> None:
    """SMTP sends bodies flagged clean without scanning them for lines to dot-stuff: no way
    a dot can start a line (text wrapping, soft line breaks, titles) may slip through."""
    for shift in range(12):
        abstract = " ".join(["word" * (1 + (i + shift) % 5) + " ." for i in range(60)])
        papers = [make_paper(i, abstract=abstract[i:], title=f".NET {'x' * shift} {i}")
                  for i in range(1, 8)]  # fmt: skip
        for matches in ([make_match(p, "word") for p in papers], [make_match(papers[0])]):
            out = digest_of(renderer, matches)
            for body in (out.html_body, out.text_body):
                assert not body.dotted and not dot_lines(body.data)
                lines = body.data.split(b"\r\n")
                assert all(len(line) <= 76 for line in lines)
            assert quopri.decodestring(out.text_body.data).decode() == out.text.replace(
                "\n", "\r\n"
            )


def test_max_papers_summarises_the_rest(renderer: Renderer) -> None:
    matches = [make_match(make_paper(i)) for i in range(10)]
    out = digest_of(renderer, matches, max_papers=4)
    assert (out.shown, out.compact, out.more) == (4, 0, 6)
    assert out.subject.endswith("4 new papers (10 matched)")
    assert "And 6 more matching papers, past your limit of 4 per email." in out.html
    assert 'href="https://digest.example.org/archive/2026-11-22"' in out.html
    assert "See the full list: https://digest.example.org/archive/2026-11-22" in out.text
    assert "2511.00003" in out.html and "2511.00004" not in out.html


def test_a_one_off_has_its_own_footer_and_no_unsubscribe_for_a_stranger(
    renderer: Renderer,
) -> None:
    """``digest send``: not "because you subscribed", and no link that would open "This link
    is not valid"; the shared, inlined shell of a subscriber's digest is not mixed up with it."""
    matches = [make_match(make_paper(1))]
    stranger = Subscriber(email="grace@example.org", keywords=("diffusion",))
    links = EmailLinks(None, feed_url="https://digest.example.org/feed.atom")
    before = digest_of(renderer, matches)
    one_off = digest_of(renderer, matches, subscriber=stranger, links=links, one_off=True)
    after = digest_of(renderer, matches)
    for body in (one_off.text, one_off.html):
        assert "A one-off digest of Paper Digest, sent to grace@example.org by hand" in body
        assert "It is not a subscription" in body and "because you subscribed" not in body
        assert "nsubscribe" not in body and "None" not in body
    assert re.search(r'href="https://digest.example.org/"[^>]*>Subscribe</a>', one_off.html)
    assert (before.html, before.text) == (after.html, after.text)
    assert "because you subscribed" in after.text and "Unsubscribe" in after.html
    mine = digest_of(renderer, matches, one_off=True)  # to a subscriber: their links stay
    assert "Your own subscription to Paper Digest goes on as it was" in mine.text
    assert "Unsubscribe: https://digest.example.org/unsubscribe?token=abc.def&x=1" in mine.text


def test_fragments_are_rendered_once_per_paper_and_highlights(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mine = Renderer()
    calls: list[str] = []
    real = paper_view  # the one fragments uses (digest.compose re-exports it)

    def counting(match: Match, abstract: str = "full", show_sources: bool = False) -> PaperView:
        calls.append(match.paper.key)
        return real(match, abstract, show_sources)

    monkeypatch.setattr(fragments, "paper_view", counting)
    papers = [make_paper(i) for i in range(5)]
    for n in range(3):  # three subscribers of one query, new Match objects each time
        links = EmailLinks(f"https://d.example/u?t={n}&n=1", f"https://d.example/m?t={n}")
        sub = Subscriber(email=f"user{n}@example.org", keywords=("diffusion",))
        out = mine.render_digest(
            day=DAY, subscriber=sub, matches=[make_match(p) for p in papers], links=links,
            total_in_listing=5, max_papers=None,
        )  # fmt: skip
        assert f'href="https://d.example/u?t={n}&amp;n=1"' in out.html
        assert f"user{n}@example.org" in out.html and "pdmask" not in out.html
    assert len(calls) == 5
    mine.render_digest(
        day=DAY, subscriber=SUB, matches=[make_match(papers[0], "agents")], links=LINKS,
        total_in_listing=5, max_papers=None,
    )  # fmt: skip
    assert len(calls) == 6  # other highlights: another fragment
    for mode in ("short", "short", "none"):
        mine.render_digest(
            day=DAY, subscriber=SUB, matches=[make_match(papers[0], "agents")], links=LINKS,
            total_in_listing=5, max_papers=None, abstract=mode,
        )  # fmt: skip
    assert len(calls) == 8  # another abstract mode: another fragment, once


def _unescaped(html: str) -> str:
    return htmllib.unescape(html)


@pytest.mark.parametrize(
    "name, keywords",
    [
        ("Ada", ('"large language model" AND survey', "diffusion")),
        ('Zoë "Z" O\'Brien & <Co>', ("a < b", "x & y", "Ünïcode — ✓")),
        (None, ()),
        ("  ", ("LLM",)),
        ("tab\tname", ("agent*",)),
    ],
)
def test_shared_shells_give_the_shell_of_each_subscriber(
    name: str | None, keywords: tuple[str, ...]
) -> None:
    """Shells inlined once per structure and filled with each subscriber's values say what
    a shell inlined for that subscriber alone says (escaped the same way or equivalently)."""
    shared, alone = Renderer(), Renderer()
    alone._shell_shared = False
    assert shared._shell_shared
    papers = [make_paper(i) for i in range(4)]
    for n in range(3):
        sub = Subscriber(email=f"r{n}@example.org", name=name, keywords=keywords, exclude=("x",))
        links = EmailLinks(f'https://d.example/u?t={n}&a="1"', None, f"https://d.example/f{n}")
        outs = [
            r.render_digest(
                day=DAY, subscriber=sub, matches=[make_match(p) for p in papers[n:]],
                links=links, total_in_listing=9, max_papers=None,
            )
            for r in (shared, alone)
        ]  # fmt: skip
        assert _unescaped(outs[0].html) == _unescaped(outs[1].html)
        assert "pdmask" not in outs[0].html
        assert f"r{n}@example.org" in outs[0].html
        for query in keywords:
            assert str(escape(query)) in outs[0].html
    assert len(shared._shells) == 1  # one inlining for every count of papers (see Count)


@pytest.mark.parametrize(
    "shell",
    [
        "<p>{{ subject|upper }}</p>{{ papers }}{{ compact }}",
        "{% set s = subject %}<p>{{ s }}</p>{{ papers }}{{ compact }}",
        "<p>{{ keywords|join(', ')|upper }}</p>{{ papers }}{{ compact }}",
        "<p>{{ keywords|join(subject) }}</p>{{ papers }}{{ compact }}",
        "<p>{{ (subject or 'none')|upper }}</p>{{ papers }}{{ compact }}",
        "{% if keywords|length > 1 %}many{% endif %}{{ papers }}{{ compact }}",
        "{% include 'email/part.html' %}{{ papers }}{{ compact }}",
        "{% autoescape false %}{{ subject }}{% endautoescape %}{{ papers }}{{ compact }}",
        "{% for a, b in keywords %}{{ a }}{% endfor %}{{ papers }}{{ compact }}",
    ],
)
def test_shells_doing_more_than_printing_are_inlined_for_each_subscriber(
    tmp_path: Path, shell: str
) -> None:
    (tmp_path / "email").mkdir()
    (tmp_path / "email" / "digest.html").write_text(shell)
    (tmp_path / "email" / "part.html").write_text("<p>{{ subject }}</p>")
    mine = Renderer(tmp_path)
    assert not mine._shell_shared


def test_a_shell_filtering_a_value_gets_it_filtered(tmp_path: Path) -> None:
    (tmp_path / "email").mkdir()
    (tmp_path / "email" / "digest.html").write_text(
        "<p>{{ subject|upper }}</p><p>{{ keywords|join(' + ') }}</p>{{ papers }}{{ compact }}"
    )
    out = digest_of(Renderer(tmp_path), [make_match(make_paper())])
    assert "PAPER DIGEST FOR 22 NOV 2026: 1 NEW PAPER" in out.html
    assert '"large language model" AND survey + diffusion' in out.html  # inlined as rendered


def test_a_placeholder_in_css_falls_back_to_the_subscriber_shell(tmp_path: Path) -> None:
    (tmp_path / "email").mkdir()
    (tmp_path / "email" / "digest.html").write_text(
        "<html><head><style>.x { color: red }</style></head><body>"
        '<p class="x" title="{{ subscriber_email }}">{{ subject }}</p>'
        "<style>.y::after { content: '{{ preheader }}' }</style>{{ papers }}{{ compact }}"
        "</body></html>"
    )
    mine = Renderer(tmp_path)
    assert mine._shell_shared
    out = digest_of(mine, [make_match(make_paper())])
    assert "pdmask" not in out.html
    assert 'title="ada@example.org"' in out.html and "color:red" in out.html
    assert mine._shells._data and "" in mine._shells._data.values()  # marked: not shared


def test_golden_email(renderer: Renderer) -> None:
    hostile = make_paper(
        3,
        title="<script>alert(1)</script> Diffusion for\r\nEveryone",
        authors=tuple(f"Author {c}" for c in "ABCDEFG"),
        project_page="javascript:alert(1)",
        github_repo=None,
        upvotes=1,
    )
    matches = [
        make_match(make_paper(1, upvotes=42)),
        make_match(hostile),
        make_match(make_paper(2)),
    ]
    out = digest_of(renderer, matches, max_papers=2)
    check_golden("email.html", out.html)
    check_golden("email.txt", out.text)


def test_compiled_templates_are_shared_and_an_edited_one_is_compiled_again(
    tmp_path: Path,
) -> None:
    """Environments share compiled templates (each run and test makes its own), and the
    source's checksum decides: an operator's edited template is never served stale."""
    (tmp_path / "email").mkdir()
    page = tmp_path / "email" / "subject.txt"
    page.write_text("first {{ 1 + 1 }}")
    assert templates.environment(tmp_path).get_template("email/subject.txt").render() == "first 2"
    assert templates.environment(tmp_path).get_template("email/subject.txt").render() == "first 2"
    page.write_text("second {{ 2 + 2 }}")
    assert templates.environment(tmp_path).get_template("email/subject.txt").render() == "second 4"
