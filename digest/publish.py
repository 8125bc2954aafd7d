"""Writing the feed files: the public pair, and each subscriber's private pair.

``feeds.dir/feed.xml`` and ``feed.atom`` hold every paper of the last ``feeds.days`` listing
dates. A private feed depends only on its subscriber's queries, so each distinct pair of
``keywords`` and ``exclude`` is written once, as ``feeds/shared/<hash>.xml|.atom``, and
``feeds/<token>.xml|.atom`` is a symbolic link to it, changed only when the queries change.
A private feed holds the newest ``feeds.private_max_entries`` of its matching papers.
A hundred thousand subscribers then cost one file per distinct query set, not two each.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from urllib.parse import urlsplit

from digest.config import Config
from digest.feeds import FeedMeta, FeedSet
from digest.files import link_atomic, write_atomic
from digest.match import DayMatcher
from digest.models import Paper
from digest.store import Store

SHARED = "shared"


def signature(keywords: Sequence[str], exclude: Sequence[str]) -> str:
    """A stable name for a pair of query lists (the same queries, the same feed file)."""
    text = json.dumps([list(keywords), list(exclude)], ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def recent_entries(store: Store, days: int) -> list[tuple[date, Paper]]:
    """The papers of the ``days`` most recent listing dates, newest first, each once."""
    entries: list[tuple[date, Paper]] = []
    seen: set[str] = set()
    for day in store.recent_dates(days):
        listing = store.listing(day)
        if listing is None:
            continue
        for paper in listing.papers:
            if paper.key not in seen:
                seen.add(paper.key)
                entries.append((day, paper))
    return entries


def publish_feeds(config: Config, store: Store, now: datetime, batch: int = 1000) -> list[Path]:
    """Rewrite the public feeds and every active subscriber's private feed; return the public
    files. Private feeds of subscribers no longer active are removed."""
    base = config.base_url
    title = config.feeds.title
    out = config.feeds.dir
    entries = recent_entries(store, config.feeds.days)
    feeds = FeedSet(entries, link=base + "/", updated=now)
    rss, atom = feeds.build(
        FeedMeta(
            title=title,
            link=base + "/",
            rss_url=base + "/feed.xml",
            atom_url=base + "/feed.atom",
            description=f"{title}: the papers of the last {config.feeds.days} listing days",
        )
    )
    public = [out / "feed.xml", out / "feed.atom"]
    write_atomic(public[0], rss)
    write_atomic(public[1], atom)

    private = out / "feeds"
    shared = private / SHARED
    shared.mkdir(parents=True, exist_ok=True)
    host = urlsplit(base).hostname or "localhost"
    matcher = DayMatcher([paper for _, paper in entries])
    written: set[str] = set()
    tokens: set[str] = set()
    for subs in store.active_batches(batch):
        for sub in subs:
            name = signature(sub.keywords, sub.exclude)
            if name not in written:
                keys = matcher.keys(sub.keywords, sub.exclude)
                about = "; ".join(sub.keywords) or "every paper"
                if sub.exclude:
                    about += " (excluding " + "; ".join(sub.exclude) + ")"
                meta = FeedMeta(
                    title=f"{title}: your papers",
                    link=base + "/",
                    rss_url=None,
                    atom_url=None,
                    description=f"Papers matching {about}"[:500],
                    feed_id=f"tag:{host},2026:feed/{name}",
                )
                rss, atom = feeds.build(meta, keys, config.feeds.private_max_entries)
                write_atomic(shared / f"{name}.xml", rss, durable=False)
                write_atomic(shared / f"{name}.atom", atom, durable=False)
                written.add(name)
            for suffix in (".xml", ".atom"):
                link_atomic(private / f"{sub.token}{suffix}", f"{SHARED}/{name}{suffix}")
            tokens.add(sub.token)
    _remove_stale(private, tokens)
    _remove_stale(shared, written)
    return public


def _remove_stale(folder: Path, keep: set[str]) -> None:
    with os.scandir(folder) as found:
        for entry in found:
            stem, dot, suffix = entry.name.rpartition(".")
            if dot and suffix in ("xml", "atom") and stem not in keep:
                os.unlink(entry.path)
