"""Writing the feed files (`digest.publish`): one shared pair per distinct set of queries,
each token a link to it, and a feed rewritten only when what it holds changed."""

from __future__ import annotations

import os
import stat
from dataclasses import replace
from datetime import UTC, date, datetime
from html import unescape
from pathlib import Path

import feedparser

from digest.compose import FeedSet
from digest.config import Config, parse
from digest.files import link_atomic
from digest.models import Listing, Paper, Subscriber
from digest.run import INDEX, SHARED, publish_feeds
from digest.run.feed_likes import Matching
from digest.select import DayMatcher
from digest.store import Store

NOW = datetime(2026, 11, 18, 9, 0, tzinfo=UTC)


def paper(n: int, title: str, abstract: str = "") -> Paper:
    return Paper(
        key=f"2611.{n:05d}",
        arxiv_id=f"2611.{n:05d}",
        title=title,
        abstract=abstract or f"We study {title.lower()}.",
        authors=("Ada Okafor",),
    )


def setup(tmp_path: Path) -> tuple[Config, Store, dict[str, Subscriber]]:
    config = parse({"database": f"sqlite:///{tmp_path / 'digest.db'}"}, base=tmp_path)
    store = Store(config.database)
    store.papers.save_listing(
        Listing(date(2026, 11, 17), (paper(1, "Diffusion models"), paper(2, "Speech agents"))),
        NOW,
    )
    subs = {
        "ab": store.members.add_subscriber(
            Subscriber(email="ab@example.org", keywords=("diffusion", "speech"))
        ),
        "ba": store.members.add_subscriber(
            Subscriber(email="ba@example.org", keywords=("speech", "diffusion", "speech"))
        ),
        "protein": store.members.add_subscriber(
            Subscriber(email="p@example.org", keywords=("protein",))
        ),
    }
    return config, store, subs


def shared_of(config: Config, sub: Subscriber) -> Path:
    link = config.feeds.dir / "feeds" / f"{sub.token}.atom"
    return (link.parent / os.readlink(link)).resolve()


def stamp(path: Path) -> tuple[int, int]:
    info = path.stat()
    return info.st_ino, info.st_mtime_ns


def test_the_same_queries_in_any_order_share_one_file(tmp_path: Path) -> None:
    config, store, subs = setup(tmp_path)
    with store:
        publish_feeds(config, store, NOW)
    assert shared_of(config, subs["ab"]) == shared_of(config, subs["ba"])
    assert shared_of(config, subs["ab"]) != shared_of(config, subs["protein"])
    parsed = feedparser.parse(shared_of(config, subs["ab"]).read_bytes())
    assert not parsed.bozo and len(parsed.entries) == 2
    assert "diffusion; speech" in parsed.feed.subtitle
    files = sorted(p.name for p in (config.feeds.dir / "feeds" / SHARED).iterdir())
    assert len([f for f in files if f.endswith(".atom")]) == 2
    mode = stat.S_IMODE(shared_of(config, subs["ab"]).stat().st_mode)
    assert mode == 0o666 & ~_umask(), oct(mode)  # readable by the web server, as any new file


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_an_unchanged_feed_is_not_written_again(tmp_path: Path) -> None:
    config, store, subs = setup(tmp_path)
    with store:
        publish_feeds(config, store, NOW)
        ab, protein = shared_of(config, subs["ab"]), shared_of(config, subs["protein"])
        before = {p: (stamp(p), p.read_bytes()) for p in (ab, protein)}

        publish_feeds(config, store, NOW.replace(hour=10))  # nothing new: nothing written
        assert {p: (stamp(p), p.read_bytes()) for p in (ab, protein)} == before

        # A new protein paper: that feed is rewritten, the other one is left as it was.
        store.papers.save_listing(Listing(date(2026, 11, 18), (paper(3, "Protein design"),)), NOW)
        publish_feeds(config, store, NOW.replace(hour=11))
        assert (stamp(ab), ab.read_bytes()) == before[ab]
        assert protein.read_bytes() != before[protein][1]
        parsed = feedparser.parse(protein.read_bytes())
        assert [e.title for e in parsed.entries] == ["Protein design"]
        assert parsed.feed.updated.startswith("2026-11-18T00:00")  # its newest entry


def test_the_public_feed_is_left_as_it_is_when_no_entry_changed(tmp_path: Path) -> None:
    """Its Last-Modified stays, as its ETag does: readers polling with If-Modified-Since get
    304s between listings."""
    config, store, _ = setup(tmp_path)
    files = [config.feeds.dir / name for name in ("feed.xml", "feed.atom", "feed.xsl")]
    with store:
        publish_feeds(config, store, NOW)
        before = [(stamp(p), p.read_bytes()) for p in files]
        publish_feeds(config, store, NOW.replace(hour=15))
        assert [(stamp(p), p.read_bytes()) for p in files] == before
        store.papers.save_listing(Listing(date(2026, 11, 18), (paper(3, "Protein design"),)), NOW)
        publish_feeds(config, store, NOW.replace(hour=16))
        assert files[1].read_bytes() != before[1][1]


def test_a_lost_file_or_index_is_written_again(tmp_path: Path) -> None:
    config, store, subs = setup(tmp_path)
    with store:
        publish_feeds(config, store, NOW)
        ab = shared_of(config, subs["ab"])
        content = ab.read_bytes()
        ab.unlink()
        publish_feeds(config, store, NOW)
        assert ab.read_bytes() == content

        index = config.feeds.dir / "feeds" / SHARED / INDEX
        index.write_text("{not json", "utf-8")
        first = stamp(ab)
        publish_feeds(config, store, NOW.replace(hour=12))
        assert stamp(ab) != first  # no trustworthy record of it: rewritten
        assert feedparser.parse(ab.read_bytes()).feed.updated.startswith("2026-11-17T00:00")


def test_public_and_private_feed_files_carry_listing_markup_as_text(tmp_path: Path) -> None:
    config = parse({"database": f"sqlite:///{tmp_path / 'digest.db'}"}, base=tmp_path)
    title = 'Diffusion <img src="https://tracker.example/p.gif"> a<b and c>d'
    abstract = '<a href="https://phish.example/">Log in</a><form><input name=pw></form>'
    with Store(config.database) as store:
        store.papers.save_listing(Listing(date(2026, 11, 17), (paper(1, title, abstract),)), NOW)
        sub = store.members.add_subscriber(
            Subscriber(email="x@example.org", keywords=("diffusion", "<b>x</b>"))
        )
        publish_feeds(config, store, NOW)
    private = shared_of(config, sub)
    files = [config.feeds.dir / "feed.xml", config.feeds.dir / "feed.atom"]
    files += [private.with_suffix(".xml"), private]
    for path in files:
        parsed = feedparser.parse(path.read_bytes())
        (entry,) = parsed.entries
        for name, text in (("title", title), ("summary", abstract)):
            detail = entry[f"{name}_detail"]
            html = detail.type == "text/html"
            assert (unescape(detail.value) if html else detail.value) == text, path.name
        assert b"<img" not in path.read_bytes() and b"<form" not in path.read_bytes()


def test_private_feed_entries_say_which_terms_picked_them(tmp_path: Path) -> None:
    config, store, subs = setup(tmp_path)
    with store:
        publish_feeds(config, store, NOW)
    parsed = feedparser.parse(shared_of(config, subs["ab"]).read_bytes())
    reasons = {e.title: e.content[0].value.split("</p>")[0] for e in parsed.entries}
    assert reasons == {
        "Diffusion models": "<p><strong>Picked for you:</strong> it matched diffusion.",
        "Speech agents": "<p><strong>Picked for you:</strong> it matched speech.",
    }
    public = feedparser.parse((config.feeds.dir / "feed.atom").read_bytes())
    assert all("Picked" not in e.content[0].value for e in public.entries)


def test_an_operators_entry_template_is_used_and_an_edit_rewrites_the_feeds(
    tmp_path: Path,
) -> None:
    config, store, subs = setup(tmp_path)
    folder = tmp_path / "mine" / "feed"
    folder.mkdir(parents=True)
    (folder / "entry.html").write_text("<p>Mine: {{ title }} {{ queries|join }}</p>", "utf-8")
    config = replace(config, templates_dir=folder.parent)
    with store:
        publish_feeds(config, store, NOW)
        ab = shared_of(config, subs["ab"])
        entries = feedparser.parse(ab.read_bytes()).entries
        assert entries[0].content[0].value == "<p>Mine: Diffusion models diffusion</p>"
        (folder / "entry.html").write_text("<p>Edited: {{ title }}</p>", "utf-8")
        publish_feeds(config, store, NOW)  # same papers, another template: written again
        entries = feedparser.parse(ab.read_bytes()).entries
        assert entries[0].content[0].value == "<p>Edited: Diffusion models</p>"


def test_link_atomic_makes_keeps_and_replaces_links(tmp_path: Path) -> None:
    link = tmp_path / "tok.xml"
    assert link_atomic(link, "shared/a.xml", absent=True)  # a first run: no look first
    assert os.readlink(link) == "shared/a.xml"
    assert not link_atomic(link, "shared/a.xml")  # already there: untouched
    assert link_atomic(str(link), "shared/b.xml")  # queries changed: replaced in one step
    assert os.readlink(link) == "shared/b.xml"
    # Listed as absent but made meanwhile (another process): replaced, not an error.
    assert link_atomic(link, "shared/c.xml", absent=True)
    assert os.readlink(link) == "shared/c.xml"
    link.unlink()
    assert link_atomic(link, "shared/d.xml")  # listed as present but gone: made
    assert os.readlink(link) == "shared/d.xml"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tok.xml"]  # no temp left


def test_link_atomic_links_a_link_like_it_when_told_of_one(tmp_path: Path) -> None:
    first, second, third = (tmp_path / f"{name}.xml" for name in ("t1", "t2", "t3"))
    assert link_atomic(first, "shared/a.xml", absent=True)
    # Another reader of the same file: the same link inode, no new one.
    assert link_atomic(second, "shared/a.xml", absent=True, like=str(first))
    assert os.readlink(second) == "shared/a.xml"
    assert os.lstat(second).st_ino == os.lstat(first).st_ino
    # Replacing a link that pointed elsewhere, with a like: linked, in one step.
    assert link_atomic(third, "shared/b.xml", absent=True)
    assert link_atomic(third, "shared/a.xml", like=str(first))
    assert os.lstat(third).st_ino == os.lstat(first).st_ino
    # A like that no longer points at the target, or is gone: a link of its own.
    fourth, fifth = tmp_path / "t4.xml", tmp_path / "t5.xml"
    assert link_atomic(fourth, "shared/c.xml", absent=True, like=str(first))
    assert os.readlink(fourth) == "shared/c.xml"
    assert os.lstat(fourth).st_ino != os.lstat(first).st_ino
    assert link_atomic(fifth, "shared/a.xml", like=str(tmp_path / "gone.xml"))
    assert os.readlink(fifth) == "shared/a.xml"
    assert os.readlink(first) == "shared/a.xml"  # the like itself is never changed
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["t1.xml", "t2.xml", "t3.xml", "t4.xml", "t5.xml"]  # no temp left


def test_readers_of_one_file_share_its_link_inodes_and_each_follows_their_queries(
    tmp_path: Path,
) -> None:
    config, store, subs = setup(tmp_path)
    folder = config.feeds.dir / "feeds"

    def link(sub: Subscriber, suffix: str) -> Path:
        return folder / f"{sub.token}{suffix}"

    with store:
        publish_feeds(config, store, NOW)
        for suffix in (".xml", ".atom"):
            ab, ba, protein = (link(subs[k], suffix) for k in ("ab", "ba", "protein"))
            assert os.lstat(ab).st_ino == os.lstat(ba).st_ino != os.lstat(protein).st_ino
            assert os.readlink(ab) == os.readlink(ba) != os.readlink(protein)
        # ba's queries change: their links follow, ab's stay as they were.
        before = os.readlink(link(subs["ab"], ".atom"))
        store.members.update_preferences(
            subs["ba"].id or 0, replace(subs["ba"], keywords=("protein",))
        )
        publish_feeds(config, store, NOW)
        assert os.readlink(link(subs["ab"], ".atom")) == before
        for suffix in (".xml", ".atom"):
            assert os.readlink(link(subs["ba"], suffix)) == os.readlink(
                link(subs["protein"], suffix)
            )
        assert shared_of(config, subs["ba"]) == shared_of(config, subs["protein"])
        # Unsubscribed: their links go at the next pass, the others' stay.
        store.members.set_status(
            subs["protein"].id or 0, "unsubscribed", None, only_from=("active",)
        )
        publish_feeds(config, store, NOW)
    names = sorted(p.name for p in folder.iterdir() if p.is_symlink())
    tokens = (subs["ab"].token, subs["ba"].token)
    assert names == sorted(f"{t}{s}" for t in tokens for s in (".atom", ".xml"))
    assert shared_of(config, subs["ba"]).exists()


def test_matching_chooses_by_bitmask_what_choose_gives_for_the_keys() -> None:
    titles = ["Diffusion models", "Speech agents", "Protein diffusion", "Agents for speech"]
    papers = [paper(n, title) for n, title in enumerate(titles * 3)]
    # A paper listed on two dates (the same key twice): the feed holds it once.
    entries = [(date(2026, 11, 17 - n // 4), p) for n, p in enumerate(papers)]
    entries.append((date(2026, 11, 10), papers[0]))
    feeds = FeedSet(entries, link="https://example.org/", updated=NOW)
    matching = Matching(DayMatcher([p for _, p in entries]))
    for keywords, exclude in [
        ([], []),
        ([], ["speech"]),
        (["diffusion"], []),
        (["diffusion", "speech"], ["protein"]),
        (["agent*"], ["title:speech"]),
        (["nothing"], []),
        (["agent*", "diffusion", "speech"], []),
    ]:
        wanted = matching.matcher.keys(keywords, exclude)
        assert matching.wanted(keywords, exclude) == matching.keys(keywords, exclude) == wanted
        for limit in (None, 0, 2, 5):
            chosen = matching.chosen(keywords, exclude, feeds.keys, limit)
            assert chosen == list(feeds.choose(wanted, limit)), (keywords, exclude, limit)
        # Each entry's reasons: the queries whose papers include it, in their order.
        keys = [feeds.keys[i] for i in matching.chosen([], [], feeds.keys, None)]
        sets = {q: matching.matcher.keys([q]) for q in keywords}
        expected = {key: tuple(q for q in keywords if key in sets[q]) for key in keys}
        assert matching.reasons(keywords, iter(keys)) == expected, keywords
