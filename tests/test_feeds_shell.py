"""The fast ways a FeedSet assembles feeds make the bytes the plain ways make: shells filled
in per feed (digest.compose.feed_shell) against feedgen's, private entries assembled from
pieces against each reason rendered, entries chosen by lookup against a scan of every key."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.compose import FeedMeta, FeedSet, Picked, load_feed_entry
from digest.compose.feed_shell import Shells, render_shell
from digest.models import Paper

SITE = "https://digest.example.org/"
UPDATED = datetime(2026, 11, 20, 7, tzinfo=UTC)
D1, D2 = date(2026, 11, 18), date(2026, 11, 19)
ENTRY = load_feed_entry(None)

NASTY = ["\ud800", "\ufffe", "\x00", "\x1b", "\x7f", "\x85", "\x9b", "\u202e", "\r", "\n"]
NASTY += ["\t", " ", "<", ">", "&", "]]>", "\u2028", '"', "'", "&amp;", "<b>", "pdfeedslot9id9z"]
NASTY += ["pdfeedslot9description9z", "pdfeedslot9queries9z", "pdfeedslot9like9z"]
texts = st.lists(st.one_of(st.characters(), st.sampled_from(NASTY)), max_size=12).map("".join)


def shell_or_error(make: object) -> object:
    """What ``make()`` returns, or the type of what it raises (lxml refuses some ids)."""
    try:
        return make()  # type: ignore[operator]
    except ValueError as exc:
        return type(exc)


@settings(max_examples=200, deadline=None)
@given(
    title=texts,
    stylesheet=st.sampled_from([None, "/feed.xsl", '/a&b"<c>.xsl']),
    atom_url=st.sampled_from([None, SITE + "feed.atom"]),
    feeds=st.lists(
        st.tuples(texts, st.one_of(st.none(), texts, st.just("tag:digest.example.org,2026:f/1"))),
        min_size=1,
        max_size=4,
    ),
    newest=st.sampled_from([UPDATED, datetime(2026, 11, 18, tzinfo=UTC)]),
)
def test_a_filled_in_shell_is_the_shell_feedgen_makes(
    title: str,
    stylesheet: str | None,
    atom_url: str | None,
    feeds: list[tuple[str, str | None]],
    newest: datetime,
) -> None:
    shells = Shells()
    for description, feed_id in feeds:  # one kind of feed: the second on is filled in
        meta = FeedMeta(title, SITE, SITE + "feed.xml", atom_url, description, feed_id, stylesheet)
        filled = shell_or_error(lambda meta=meta: shells.get(meta, newest))
        assert filled == shell_or_error(lambda meta=meta: render_shell(meta, newest))


papers = [
    Paper(key=f"2511.0000{i}", title=f"Paper {i} <b>&", abstract="x", arxiv_id=f"2511.0000{i}")
    for i in range(6)
]
reasons = st.one_of(
    st.lists(texts, max_size=3).map(tuple),
    st.builds(Picked, texts, st.integers(-5, 105)),
)


@settings(max_examples=100, deadline=None)
@given(why=st.lists(reasons, min_size=6, max_size=6), description=texts)
def test_a_private_feed_is_its_shell_and_each_entry_made_for_its_reason(
    why: list[tuple[str, ...] | Picked], description: str
) -> None:
    feed_set = FeedSet(
        [(D2 if i < 2 else D1, p) for i, p in enumerate(papers)],
        link=SITE,
        updated=UPDATED,
        content=ENTRY,
    )
    meta = FeedMeta("Yours", SITE, None, None, description, "tag:digest.example.org,2026:f/1")
    given_reasons = {p.key: w for p, w in zip(papers, why, strict=True)}
    rss, atom = feed_set.build(meta, reasons=given_reasons)
    newest = datetime.combine(D2, time(0), tzinfo=UTC)
    rss_head, rss_tail, atom_head, atom_tail = render_shell(meta, newest)
    # Each entry rendered for its own reason: the plain way, with no placeholder filled in.
    made = [feed_set._entry(i, given_reasons[key], True) for i, key in enumerate(feed_set.keys)]
    assert rss == b"".join([rss_head, *(m[0] for m in made), rss_tail])
    assert atom == b"".join([atom_head, *(m[1] for m in made), atom_tail])


@pytest.mark.parametrize("repeat", [False, True])
@settings(max_examples=100, deadline=None)
@given(
    keys=st.lists(st.sampled_from([f"k{i}" for i in range(60)]), max_size=60),
    limit=st.one_of(st.none(), st.integers(0, 70)),
    as_list=st.booleans(),
)
def test_choosing_by_lookup_picks_what_a_scan_of_every_key_picks(
    repeat: bool, keys: list[str], limit: int | None, as_list: bool
) -> None:
    """A few keys are looked up, many are tried against each entry: the same entries."""
    entries = [(D1, Paper(key=f"k{i}", title=f"T{i}", abstract="x")) for i in range(50)]
    if repeat:  # two papers of one key (different ids): both are chosen
        entries.append((D1, Paper(key="k3", title="Again", abstract="x", arxiv_id="2511.00001")))
    feed_set = FeedSet(entries, link=SITE, updated=UPDATED)
    wanted = list(keys) if as_list else set(keys)
    expected = [i for i, key in enumerate(feed_set.keys) if key in wanted]
    chosen = feed_set.choose(wanted, limit)
    assert list(chosen) == (expected if limit is None else expected[:limit])
