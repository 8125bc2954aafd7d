"""How much of each abstract a digest shows (``abstract = "full" | "short" | "none"``): the
short cut (a table and properties) and the entries rendered with each mode."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from digest.compose import EmailLinks, Renderer, short_abstract
from digest.compose.text import SHORT_ABSTRACT_LIMIT
from digest.models import Match, Paper, Subscriber
from tests.support.listings import item, write_days
from tests.support.mime import body_of
from tests.support.site import config_text, digest, outbox

LONG = (
    "Diffusion models generate images by reversing a noising process. "
    "We study how diffusion agents plan, e.g. in games, and show that et al. "
    "were right about scaling. Our method improves sample quality by 12.5% on "
    "three benchmarks! It also halves the compute needed for training. "
    "We release code and models. Experiments on ImageNet and COCO confirm the gains."
)


@pytest.mark.parametrize(
    ("text", "limit", "shown", "ellipsis"),
    [
        ("Short and whole.", 300, "Short and whole.", False),
        ("Whole with a trailing space. ", 28, "Whole with a trailing space.", False),
        ("One. Two. Three is long.", 10, "One. Two.", False),
        ("One. Two. Three is long.", 8, "One.", False),
        # "e.g." and "et al." end no sentence: the cut goes back to the sentence before
        ("We win. It works, e.g. here and there.", 26, "We win.", False),
        ("No sentence ends in time here", 12, "No sentence", True),
        ("Cut at a word, never inside one", 9, "Cut at a", True),
        ("Supercalifragilistic words", 5, "", True),
        ("Spaces\nand\tnew lines count as word breaks", 12, "Spaces\nand", True),
        (LONG, 300, LONG[: LONG.index(" We release")], False),
    ],
)
def test_the_short_cut(text: str, limit: int, shown: str, ellipsis: bool) -> None:
    end, more = short_abstract(text, limit)
    assert (text[:end], more) == (shown, ellipsis)


_WORDS = st.lists(
    st.one_of(
        st.text("abcdefghij", min_size=1, max_size=12),
        st.sampled_from(["Diffusion.", "e.g.", "al.", "works!", "It", "A.", "why?", "(x)."]),
    ),
    max_size=80,
)


@given(_WORDS, st.sampled_from([" ", "  ", "\n"]), st.integers(5, 400))
def test_the_short_cut_keeps_whole_words_and_the_limit(
    words: list[str], space: str, limit: int
) -> None:
    text = space.join(words)
    end, ellipsis = short_abstract(text, limit)
    shown = text[:end]
    assert len(shown) <= limit  # the ellipsis, " …", comes on top
    assert end in (0, len(text)) or text[end].isspace()  # never inside a word
    assert shown == shown.rstrip()
    if len(text.rstrip()) <= limit:
        assert (shown, ellipsis) == (text.rstrip(), False)
    elif not ellipsis:  # cut at a sentence: it ends with one
        assert re.search(r"[.!?][\"')\]]*$", shown)


@given(_WORDS, st.integers(20, 400))
def test_the_short_cut_ends_at_a_sentence_when_one_ends_in_time(
    words: list[str], limit: int
) -> None:
    text = " ".join(["Diffusion works.", "It", *words])  # "works. it" would go on
    end, ellipsis = short_abstract(text, limit)
    assert not ellipsis and end >= len("Diffusion works.")


def paper(n: int, abstract: str = LONG) -> Paper:
    return Paper(
        key=f"2611.{n:05d}",
        arxiv_id=f"2611.{n:05d}",
        title=f"Diffusion agents {n}",
        abstract=abstract,
        authors=("Ada Okafor",),
    )


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(base_url="https://d.example")


def render(renderer: Renderer, abstract: str, papers: list[Paper]) -> tuple[str, str]:
    out = renderer.render_digest(
        day=date(2026, 11, 16),
        subscriber=Subscriber("ada@example.org", keywords=("diffusion",)),
        matches=[Match(p, 1.0, terms=("diffusion",)) for p in papers],
        links=EmailLinks("https://d.example/u"),
        total_in_listing=len(papers),
        max_papers=None,
        abstract=abstract,
    )
    return out.html, out.text


def test_each_mode_shows_its_share_of_the_abstract_in_html_and_text(renderer: Renderer) -> None:
    first = LONG[: LONG.index(" We release")]
    full_html, full_text = render(renderer, "full", [paper(1)])
    short_html, short_text = render(renderer, "short", [paper(1)])
    none_html, none_text = render(renderer, "none", [paper(1)])
    flat = [re.sub(r"\s+", " ", t) for t in (full_text, short_text, none_text)]
    assert "We release code and models." in flat[0]
    assert first[-40:] in flat[1] and "We release" not in flat[1]
    assert "noising process" not in flat[2] and "Diffusion agents 1" in flat[2]
    assert "We release" in full_html and "We release" not in short_html
    assert 'class="abstract"' not in none_html
    # the part left out is a click away: the paper's page
    assert (
        ">Read more</a>" in short_html and "https://huggingface.co/papers/2611.00001" in short_text
    )
    assert len(none_html) < len(short_html)


def test_a_short_abstract_that_fits_is_whole_and_has_no_read_more(renderer: Renderer) -> None:
    html, _ = render(renderer, "short", [paper(2, "Small, whole.")])
    assert "Small, whole." in html and "Read more" not in html


def test_modes_do_not_share_cached_entries(renderer: Renderer) -> None:
    papers = [paper(n) for n in range(3, 6)]
    short = render(renderer, "short", papers)
    full = render(renderer, "full", papers)
    assert render(renderer, "short", papers) == short and short != full
    assert SHORT_ABSTRACT_LIMIT == 300


def test_each_subscriber_gets_the_abstracts_they_chose(tmp_path: Path) -> None:
    """``abstract`` in [[subscribers]], ``mail.abstract`` for the rest, and ``digest
    subscribers add --abstract``, through a run into the outbox."""
    listings = write_days(
        tmp_path / "listings", {"2026-11-16": [item("2611.00001", "Diffusion agents", LONG)]}
    )
    extra = 'abstract = "none"\n[[subscribers]]\nemail = "bo@example.org"\n'
    (tmp_path / "config.toml").write_text(config_text(listings, extra), "utf-8")
    added = digest(tmp_path, "subscribers", "add", "cy@example.org", "--abstract", "full")
    assert added.exit_code == 0, added.output
    shown = digest(tmp_path, "subscribers", "show", "cy@example.org")
    assert "abstract: full" in shown.output
    wrong = digest(tmp_path, "subscribers", "add", "cy@example.org", "--abstract", "most")
    assert wrong.exit_code == 2 and "Traceback" not in wrong.output
    result = digest(tmp_path, "run", "--date", "2026-11-16")
    assert result.exit_code == 0, result.output
    texts = {
        m["To"].addresses[0].addr_spec: re.sub(r"\s+", " ", body_of(m, "plain"))
        for m in outbox(tmp_path)
    }
    assert "noising process" not in texts["ada@example.org"]  # abstract = "none"
    assert "It also halves" in texts["bo@example.org"]  # the default: short
    assert "We release" not in texts["bo@example.org"]
    assert "We release code and models." in texts["cy@example.org"]  # --abstract full
