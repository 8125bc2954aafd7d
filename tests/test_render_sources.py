"""Where each paper of a digest came from (issue 16): Hugging Face upvotes, the arXiv primary
category, the names of the sources that listed it (with several sources), and links that
fit the paper: its own page, arXiv's abstract and PDF only for an arXiv paper. Counts are
of distinct papers, however many sources listed one."""

from __future__ import annotations

import asyncio
import dataclasses
import email
import email.policy
from datetime import UTC, date, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest

from digest.compose import EmailLinks, Renderer, environment, paper_view
from digest.config import parse
from digest.models import Listing, Match, Paper, Subscriber
from digest.run import make_context, send_once
from digest.store import Store

DAY = date(2026, 11, 24)
SUB = Subscriber(email="ada@example.org", keywords=("agents",))
LINKS = EmailLinks(unsubscribe_url="https://digest.example.org/u?t=x")

ARXIV_ONLY = Paper(
    key="2511.00003",
    arxiv_id="2511.00003",
    title="Sparse Routers for Agents",
    abstract="We route tokens between agents.",
    authors=("Chidi Mbeki",),
    link="https://arxiv.org/abs/2511.00003",
    categories=("cs.LG", "cs.CL"),
    sources=("arxiv-ml",),
)
BOTH = Paper(
    key="2511.00004",
    arxiv_id="2511.00004",
    title="Diffusion Agents, Merged",
    abstract="Agents plan with diffusion.",
    authors=("Ada Okafor",),
    upvotes=7,
    link="https://huggingface.co/papers/2511.00004",
    categories=("cs.AI",),
    sources=("hf", "arxiv-ml"),
)
FROM_A_FEED = Paper(
    key="doi:10.1000/neuro.1",
    title="Glia <i>agents</i> & listen",
    abstract="Astrocytes <b>modulate</b> synapses, like agents.",
    authors=("Dana Ørsted",),
    doi="10.1000/neuro.1",
    link="https://journal.example/articles/1?ref=rss&x=1",
    categories=("Neuroscience", "cs.LG"),
    sources=("neuro", "<b>lab</b>"),
)


def rendered(papers: list[Paper], show_sources: bool) -> tuple[str, str]:
    renderer = Renderer(base_url="https://digest.example.org", show_sources=show_sources)
    out = renderer.render_digest(
        day=DAY,
        subscriber=SUB,
        matches=[Match(paper=p, score=1.0) for p in papers],
        links=LINKS,
        total_in_listing=len(papers),
        max_papers=None,
    )
    return out.html, out.text


def entries(text: str) -> list[str]:
    """The text part's paper entries, by their title lines."""
    titles = [ARXIV_ONLY.title, BOTH.title, FROM_A_FEED.title]
    starts = [text.index(title + "\n") for title in titles]
    return [text[a:b] for a, b in zip(starts, [*starts[1:], len(text)], strict=True)]


def test_each_paper_says_where_it_came_from_and_links_what_it_has() -> None:
    html, text = rendered([ARXIV_ONLY, BOTH, FROM_A_FEED], show_sources=True)
    only, both, feed = html.split('class="paper"')[1:]
    # Titles link each paper's own page: arXiv's, Hugging Face's, the journal's.
    assert 'href="https://arxiv.org/abs/2511.00003"' in only.split("</h2>")[0]
    assert 'href="https://huggingface.co/papers/2511.00004"' in both.split("</h2>")[0]
    assert 'href="https://journal.example/articles/1?ref=rss&amp;x=1"' in feed.split("</h2>")[0]
    assert "Chidi Mbeki · cs.LG · via arxiv-ml</p>" in only
    assert "▲ 7 upvotes · cs.AI · via hf, arxiv-ml</p>" in both
    # A feed's tags are not an arXiv category; third-party text stays text.
    assert "Dana Ørsted · via neuro, &lt;b&gt;lab&lt;/b&gt;</p>" in feed
    assert "Glia &lt;i&gt;agents&lt;/i&gt; &amp; listen" in feed
    assert "<b>" not in feed and "arxiv.org" not in feed and ">PDF<" not in feed
    assert ">arXiv<" in only and ">PDF<" in only and "huggingface.co" not in only

    only_t, both_t, feed_t = entries(text)
    assert "Chidi Mbeki · cs.LG · via arxiv-ml\n" in only_t
    assert "Paper:" not in only_t and "arXiv:   https://arxiv.org/abs/2511.00003" in only_t
    assert "Ada Okafor · 7 upvotes · cs.AI · via hf, arxiv-ml\n" in both_t
    assert "Paper:   https://huggingface.co/papers/2511.00004" in both_t
    assert "Dana Ørsted · via neuro, <b>lab</b>\n" in feed_t  # text is text in a text part
    assert "Paper:   https://journal.example/articles/1?ref=rss&x=1" in feed_t
    assert "PDF:" not in feed_t and "arXiv:" not in feed_t


def test_with_one_source_the_sources_are_not_named() -> None:
    html, text = rendered([ARXIV_ONLY, BOTH, FROM_A_FEED], show_sources=False)
    assert "via " not in html and "via " not in text
    assert "· cs.LG</p>" in html and "· cs.AI</p>" in html  # the category stays
    assert paper_view(Match(paper=BOTH, score=1.0)).sources == ()
    assert paper_view(Match(paper=BOTH, score=1.0), show_sources=True).sources == (
        "hf",
        "arxiv-ml",
    )


OLD = Paper(key="2511.1", arxiv_id="2511.1", title="Old")
ARXIV_FIRST = dataclasses.replace(BOTH, link="https://arxiv.org/abs/2511.00004")
UNSAFE = Paper(key="l:x", title="X", link="javascript:alert(1)", project_page="https://x.example/")


@pytest.mark.parametrize(
    ("paper", "url", "hf"),
    [
        # A record from before papers had links and sources: Hugging Face was the source.
        (OLD, "https://huggingface.co/papers/2511.1", True),
        # From arXiv only, no upvotes: no Hugging Face page to link.
        (ARXIV_ONLY, "https://arxiv.org/abs/2511.00003", False),
        # Listed by arXiv first, then by Hugging Face (upvotes): both pages.
        (ARXIV_FIRST, "https://arxiv.org/abs/2511.00004", True),
        (FROM_A_FEED, "https://journal.example/articles/1?ref=rss&x=1", False),
        # An unsafe link of a feed's is no link; its project page is.
        (UNSAFE, "https://x.example/", False),
    ],
)
def test_the_papers_own_page_and_its_hugging_face_page(paper: Paper, url: str, hf: bool) -> None:
    view = paper_view(Match(paper=paper, score=1.0))
    assert view.url == url
    assert (view.hf_url is not None) == hf
    assert (view.pdf_url is None) == (paper.arxiv_id is None)


def test_a_paper_listed_by_two_sources_is_counted_once(tmp_path: Path) -> None:
    """The day's listing merges its sources: the subject and the lede count distinct papers
    (2 matched of 3 in the listing, not 3 of 4), the merged paper is in the email once."""
    config = parse(
        {
            "database": f"sqlite:///{tmp_path / 'digest.db'}",
            "base_url": "https://digest.example.org",
            "mail": {"from": "Digest <digest@example.org>", "outbox_dir": "outbox"},
        },
        base=tmp_path,
    )
    hf_copy = dataclasses.replace(BOTH, categories=(), sources=(), abstract="Agents plan.")
    arxiv_copy = dataclasses.replace(
        BOTH, upvotes=0, link="https://arxiv.org/abs/2511.00004", sources=()
    )
    now = datetime(2026, 11, 24, 8, tzinfo=UTC)
    with Store(config.database) as store:
        store.papers.save_listing(Listing(DAY, (hf_copy, FROM_A_FEED), source="hf"), now)
        store.papers.save_listing(Listing(DAY, (ARXIV_ONLY, arxiv_copy), source="arxiv-ml"), now)
        stored = store.papers.listing(DAY)
        assert stored is not None and len(stored.papers) == 3
        ctx = make_context(config, store, now=now)
        ctx = dataclasses.replace(
            ctx, renderer=Renderer(base_url=config.base_url, show_sources=True)
        )
        out = tmp_path / "one.eml"
        count = asyncio.run(send_once(ctx, DAY, "bo@example.org", ["diffusion"], [], out=out))
    assert count == 1
    message = email.message_from_bytes(out.read_bytes(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    assert message["Subject"].endswith(": 1 new paper")
    text_part = message.get_body(("plain",))
    assert text_part is not None
    text = text_part.get_content()
    assert "1 new paper matching your keywords, of 3 in the day's listing." in text
    assert text.count(BOTH.title) == 1
    # The merged record: Hugging Face's upvotes and arXiv's category, both sources named.
    assert "7 upvotes · cs.AI · via " in text
    assert "hf" in text.split("via ")[1].split("\n")[0]
    assert "arxiv-ml" in text.split("via ")[1].split("\n")[0]


def test_the_archive_lists_each_papers_category_sources_and_own_page() -> None:
    template = environment(None).get_template("web/_archive_papers.html")
    views = [
        paper_view(Match(paper=p, score=1.0), show_sources=True) for p in (ARXIV_ONLY, FROM_A_FEED)
    ]
    page = template.render(papers=views, start=1)
    only, feed = page.split("<li ")[1:]
    assert '<a href="https://arxiv.org/abs/2511.00003"' in only
    assert " · cs.LG · via arxiv-ml" in only and ">PDF</a>" in only
    assert '<a href="https://journal.example/articles/1?ref=rss&amp;x=1"' in feed
    assert "via neuro, &lt;b&gt;lab&lt;/b&gt;" in feed and "<b>" not in feed
    assert "arxiv.org" not in feed and "cs.LG" not in feed
