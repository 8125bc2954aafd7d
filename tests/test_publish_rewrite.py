"""A later day's feed pass (`digest.run.publish_feeds` on yesterday's folder): the shared
files it changes are rewritten into the inodes they replace, nothing is left behind, and
an unchanged private link is only looked at."""

from __future__ import annotations

import ctypes
import os
import struct
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import feedparser
import pytest

from digest.models import Listing, Subscriber
from digest.run import SHARED, publish_feeds
from tests.test_publish import NOW, paper, setup, shared_of

IN_CREATE = 0x100


@contextmanager
def created(folder: Path) -> Iterator[list[str]]:
    """The names made in ``folder`` while the block runs (new files, links), as the
    kernel reports them (inotify): inode numbers cannot tell, ext4 hands freed ones out
    again at once."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    assert fd >= 0 and libc.inotify_add_watch(fd, os.fsencode(folder), IN_CREATE) >= 0
    names: list[str] = []
    try:
        yield names
        while True:
            try:
                data = os.read(fd, 1 << 20)
            except BlockingIOError:
                break
            at = 0
            while at < len(data):
                _wd, _mask, _cookie, size = struct.unpack_from("iIII", data, at)
                names.append(data[at + 16 : at + 16 + size].rstrip(b"\0").decode())
                at += 16 + size
    finally:
        os.close(fd)


def lstat(path: Path) -> tuple[int, int, str]:
    info = path.lstat()
    return info.st_ino, info.st_ctime_ns, os.readlink(path)


def inodes(folder: Path) -> dict[str, int]:
    return {entry.name: entry.inode() for entry in os.scandir(folder)}


@pytest.mark.skipif(sys.platform != "linux", reason="inotify")
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
        with created(shared) as made:
            publish_feeds(config, store, NOW.replace(day=19))
    after = inodes(shared)
    assert sorted(after) == sorted(before)  # the same files, no leftovers
    changed = [p.name for p in shared.iterdir() if p.read_bytes() != olds[p.name]]
    assert len(changed) >= 10, changed
    # One temp file made for the pass; every other rewrite went into a replaced inode
    # (linked to a spare name first: a link, no new inode).
    temps = [name for name in made if not name.startswith(".spare.")]
    assert len(temps) == 1 and temps[0].endswith(".tmp"), made
    assert len(made) - 1 >= len(changed)
    # Links to unchanged names are left as they were (not made again).
    assert {p.name: lstat(p) for p in (config.feeds.dir / "feeds").glob("*.*")} == links
    parsed = feedparser.parse(shared_of(config, subs["ab"]).read_bytes())
    assert not parsed.bozo
    assert parsed.entries[0].title == "Diffusion for topic2"
