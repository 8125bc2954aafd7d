"""A liked or disliked paper is never sent by ``digest serve``'s scheduled passes either
(real SMTP server, the scheduler's world of tests/test_scheduler.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

from digest.store.like_rows import LikeEntry
from tests.test_scheduler import World, world

__all__ = ["world"]  # the scheduler's fixture


async def test_scheduled_digests_leave_out_what_each_subscriber_liked_or_disliked(
    world: Callable[..., World],
) -> None:
    w = world(start=date(2026, 11, 16), days=2)
    # ada's keyword matches every paper: with likes, no keywords would bring only the papers
    # similar enough to hers (tests/test_ranking_run), and this is about what is never sent
    ada = w.add("ada@example.org", send_at="07:00", timezone="UTC", keywords=("diffusion",))
    bo = w.add("bo@example.org", send_at="07:00", timezone="UTC")
    assert ada.id is not None and bo.id is not None
    # before the papers exist: an arXiv id kept until it arrives, and a link with a version
    w.store.likes.add(ada.id, [LikeEntry("2611.16001")], "like", "library")
    w.store.likes.add(ada.id, [LikeEntry("https://arxiv.org/abs/2611.17002v3")], "dislike", "web")
    start = datetime(2026, 11, 16, 0, tzinfo=UTC)
    await w.every(start, start + timedelta(days=2) - timedelta(minutes=15), timedelta(minutes=15))
    assert len(w.sends_to("ada@example.org")) == len(w.sends_to("bo@example.org")) == 2
    everything = w.papers_to("bo@example.org")
    assert {"2611.16001", "2611.17002"} <= set(everything)
    assert sorted(w.papers_to("ada@example.org")) == sorted(  # ordered by similarity
        p for p in everything if p not in ("2611.16001", "2611.17002")
    )
