"""A later day's feed pass (`digest.run.publish_feeds` on yesterday's folder): the shared
files it changes are rewritten into the inodes they replace, nothing is left behind, and
an unchanged private link is only looked at."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import feedparser

from digest.models import Listing, Subscriber
from digest.run import SHARED, publish_feeds
from tests.test_publish import NOW, paper, setup, shared_of


def lstat(path: Path) -> tuple[int, int, str]:
    info = path.lstat()
    return info.st_ino, info.st_ctime_ns, os.readlink(path)


def inodes(folder: Path) -> dict[str, int]:
    return {entry.name: entry.inode() for entry in os.scandir(folder)}


def test_a_later_pass_rewrites_changed_feeds_in_the_inodes_they_replace(tmp_path: Path) -> None:
    config, store, subs = setup(tmp_path)
    shared = config.feeds.dir / "feeds" / SHARED
    with store:
        for n in range(4):  # more readers, more shared files
            store.members.add_subscriber(
                Subscriber(email=f"r{n}@example.org", keywords=(f"topic{n}", "diffusion"))
            )
        publish_feeds(config, store, NOW)
        before = inodes(shared)
        olds = {p.name: p.read_bytes() for p in shared.iterdir()}
        links = {p.name: lstat(p) for p in (config.feeds.dir / "feeds").glob("*.*")}
        # The next day: a diffusion paper changes every feed but the protein one.
        store.papers.save_listing(
            Listing(date(2026, 11, 18), (paper(3, "Diffusion for topic2"),)), NOW
        )
        publish_feeds(config, store, NOW.replace(day=19))
    after = inodes(shared)
    assert sorted(after) == sorted(before)  # the same files, no leftovers
    changed = [p.name for p in shared.iterdir() if p.read_bytes() != olds[p.name]]
    assert len(changed) >= 10, changed
    # One temp file made for the pass; every other rewrite went into a replaced inode.
    assert len(set(after.values()) - set(before.values())) <= 1
    # Links to unchanged names are left as they were (not made again).
    assert {p.name: lstat(p) for p in (config.feeds.dir / "feeds").glob("*.*")} == links
    parsed = feedparser.parse(shared_of(config, subs["ab"]).read_bytes())
    assert not parsed.bozo
    assert parsed.entries[0].title == "Diffusion for topic2"
