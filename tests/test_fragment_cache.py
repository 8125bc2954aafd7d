"""The renderer's caches: least recently used first, bounded by entries or by bytes; equal
pieces of entries kept once; a day's papers indexed with equal values shared."""

from __future__ import annotations

from digest.compose import Renderer
from digest.compose.cache import Cache
from digest.compose.fragments import Fragment
from digest.models import Match, Paper, Span
from digest.select import DayMatcher
from digest.select.index import index_paper

ABSTRACT = (
    "We study diffusion models for agents that plan in latent space. Our agents learn a "
    "world model and plan with diffusion; planning agents beat baselines on ten tasks."
)


def test_a_cache_of_entries_drops_the_least_recently_used() -> None:
    cache: Cache[str, int] = Cache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # now b is the oldest
    cache.put("c", 3)
    assert (cache.get("b"), cache.get("a"), cache.get("c"), len(cache)) == (None, 1, 3, 2)


def test_a_cache_by_weight_keeps_its_sum_within_its_size() -> None:
    cache: Cache[str, bytes] = Cache(10, len)
    cache.put("a", b"1234")
    cache.put("b", b"1234")
    assert cache.get("a") == b"1234"  # b is the oldest
    cache.put("c", b"12345")
    assert (cache.get("b"), len(cache), cache.weight) == (None, 2, 9)
    cache.put("a", b"1")  # replaced: its old weight goes
    assert (cache.weight, cache.get("c")) == (6, b"12345")
    cache.put("d", b"x" * 50)  # heavier than the whole size: kept alone (the newest stays)
    assert (len(cache), cache.weight, cache.get("d")) == (1, 50, b"x" * 50)


def _paper(n: int) -> Paper:
    return Paper(
        key=f"2511.{n:05d}",
        arxiv_id=f"2511.{n:05d}",
        title=f"Diffusion Agents Plan in Latent Space {n}",
        abstract=ABSTRACT,
        authors=("Ada Okafor", "Bo Li"),
    )


def _match(paper: Paper, word: str, after: int = 0) -> Match:
    start = paper.abstract.index(word, after)
    return Match(paper, 1.0, (word,), (Span("abstract", start, start + len(word)),))


def test_entries_of_one_paper_share_their_equal_pieces() -> None:
    fragments = Renderer()._fragments
    paper = _paper(1)
    one = fragments.get(_match(paper, "agents"), "paper", feedback=True)
    other = fragments.get(_match(paper, "agents", 60), "paper", feedback=True)  # another one
    assert one.html_cut[0] != other.html_cut[0]  # the highlights differ, not the terms
    assert len(one.text_cut) == len(other.text_cut) > 1
    # The text entry has no highlights: the same object in both, as each piece after them.
    assert all(a is b for a, b in zip(one.text_cut, other.text_cut, strict=True))
    assert all(a is b for a, b in zip(one.html_cut[1:], other.html_cut[1:], strict=True))


def test_the_entries_kept_are_bounded_by_bytes_with_the_same_output() -> None:
    big, small = Renderer(), Renderer()
    cache = small._fragments._fragments["paper"]
    cache.size = 6_000  # about two entries
    papers = [_paper(n) for n in range(6)]
    for word in ("diffusion", "agents", "latent", "diffusion"):
        for paper in papers:
            made = [r._fragments.get(_match(paper, word), "paper") for r in (big, small)]
            assert made[0] == made[1]
            assert isinstance(made[1], Fragment)
            assert cache.weight <= cache.size or len(cache) == 1
    assert 1 <= len(cache) < len(big._fragments._fragments["paper"]) == 18


def test_a_days_papers_share_equal_words_and_positions() -> None:
    matcher = DayMatcher([_paper(1), _paper(2)])
    first, second = matcher.papers
    assert first.slots[1].words == second.slots[1].words
    assert all(a is b for a, b in zip(first.slots[1].words, second.slots[1].words, strict=True))
    assert first.postings["agents"] is second.postings["agents"]
    alone = index_paper(_paper(1))
    assert alone.postings == first.postings and alone.slots == first.slots
    assert (
        matcher.select(["agents"])[0].spans == DayMatcher([_paper(1)]).select(["agents"])[0].spans
    )
