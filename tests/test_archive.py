"""The archive in-process (httpx over ASGI) over a real SQLite file: the index with paper
counts and without empty days, day pages in a digest's order, the search box."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import pytest

from digest.config import Config, load
from digest.models import Listing, Paper
from digest.run import make_context
from digest.serve import Service, create_app
from digest.store import Store
from tests.support.listings import write_days, write_site_config

SECRET = b"test-secret-0123456789abcdef"
MONDAY, TUESDAY, WEDNESDAY = date(2026, 11, 16), date(2026, 11, 17), date(2026, 11, 18)


@dataclass
class _NoServer:
    host: str = "127.0.0.1"
    port: int = 9  # the archive sends nothing


def paper(n: int, title: str, upvotes: int, abstract: str = "", author: str = "Ada") -> Paper:
    return Paper(
        key=f"2611.{n:05d}",
        arxiv_id=f"2611.{n:05d}",
        title=title,
        abstract=abstract,
        authors=(author,),
        upvotes=upvotes,
    )


MONDAY_PAPERS = (
    paper(1, "Robots that fold laundry", 3),
    paper(2, "Diffusion for proteins", 1, "We study diffusion."),
    paper(3, "Sparse attention", 9, "Diffusion appears in the abstract only."),
    paper(4, "Graph networks", 5, author="Grace Hopper"),
)
WEDNESDAY_PAPERS = (paper(5, "Diffusion policies for robots", 2),)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    write_days(tmp_path / "listings", {})
    return load(write_site_config(tmp_path, _NoServer(), top='base_url = "http://testserver"'))


@pytest.fixture
def store(config: Config) -> Iterator[Store]:
    with Store(config.database) as store:
        store.papers.save_listing(Listing(MONDAY, MONDAY_PAPERS, "file"))
        store.papers.save_listing(Listing(TUESDAY, (), "file"))  # a holiday: fetched empty
        store.papers.save_listing(Listing(WEDNESDAY, WEDNESDAY_PAPERS, "file"))
        yield store


@pytest.fixture
async def client(config: Config, store: Store) -> AsyncIterator[httpx.AsyncClient]:
    ctx = make_context(config, store, now=datetime(2026, 11, 18, 7, tzinfo=UTC))
    web_app = create_app(
        lambda: ctx, Service(lambda now: replace(ctx, now=now)), SECRET, start_service=False
    )
    transport = httpx.ASGITransport(app=web_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


def titles(html: str) -> list[str]:
    found = re.findall(r'<div class="title"><a [^>]*>(.*?)</a>', html)
    return [re.sub(r"<[^>]+>", "", t) for t in found]


async def test_the_index_counts_papers_and_leaves_out_empty_days(
    client: httpx.AsyncClient,
) -> None:
    index = await client.get("/archive/")
    assert index.status_code == 200
    assert "/archive/2026-11-18" in index.text and "1 paper<" in index.text
    assert "/archive/2026-11-16" in index.text and "4 papers<" in index.text
    assert "/archive/2026-11-17" not in index.text
    assert 'action="/archive/search"' in index.text


async def test_a_day_page_lists_papers_in_a_digests_order(client: httpx.AsyncClient) -> None:
    day = await client.get("/archive/2026-11-16")
    assert titles(day.text) == [
        "Sparse attention",
        "Graph networks",
        "Robots that fold laundry",
        "Diffusion for proteins",
    ]
    # the links between days skip the empty Tuesday
    assert 'href="/archive/2026-11-18"' in day.text


async def test_a_day_page_of_queries_shows_the_emails_papers_in_its_order(
    client: httpx.AsyncClient,
) -> None:
    # by score (title and abstract, title, abstract), whatever the upvotes: as in the email
    day = await client.get("/archive/2026-11-16", params={"q": ["diffusion", "robot*"]})
    assert titles(day.text) == [
        "Diffusion for proteins",
        "Robots that fold laundry",
        "Sparse attention",
    ]
    assert "3 papers of 4" in day.text and "in the order of your email" in day.text
    excluded = await client.get("/archive/2026-11-16", params={"q": "diffusion", "x": "proteins"})
    assert titles(excluded.text) == ["Sparse attention"]


async def test_the_search_uses_the_query_language_over_stored_papers(
    client: httpx.AsyncClient,
) -> None:
    found = await client.get("/archive/search", params={"q": "diffusion"})
    assert found.status_code == 200
    assert set(titles(found.text)) == {
        "Diffusion policies for robots",
        "Diffusion for proteins",
        "Sparse attention",
    }
    assert titles(found.text)[0] != "Sparse attention"  # title matches rank first
    by_author = await client.get("/archive/search", params={"q": 'author:"grace hopper"'})
    assert titles(by_author.text) == ["Graph networks"]
    none = await client.get("/archive/search", params={"q": "diffusion AND NOT diffusion"})
    assert "0 papers" in none.text and titles(none.text) == []
    bad = await client.get("/archive/search", params={"q": "(diffusion"})
    assert bad.status_code == 400 and "at character" in bad.text
    assert "Traceback" not in bad.text
    hostile = await client.get("/archive/search", params={"q": "<script>x</script>"})
    assert "<script>x" not in hostile.text


async def test_the_search_is_paginated(client: httpx.AsyncClient, tmp_path: Path) -> None:
    empty = await client.get("/archive/search")
    assert empty.status_code == 200 and 'name="q"' in empty.text
    first = await client.get("/archive/search", params={"q": "*"})
    assert first.status_code in (200, 400)  # whatever "*" means, never a traceback
    page = await client.get("/archive/search", params={"q": "diffusion", "page": "2"})
    assert page.status_code == 200 and titles(page.text) == []
    junk = await client.get("/archive/search", params={"q": "diffusion", "page": "x"})
    assert junk.status_code == 200 and len(titles(junk.text)) == 3


async def test_the_search_sees_a_new_listing_at_once(
    client: httpx.AsyncClient, store: Store
) -> None:
    before = await client.get("/archive/search", params={"q": "policies"})
    assert titles(before.text) == ["Diffusion policies for robots"]
    thursday = (paper(6, "Policies for agents", 4),)
    store.papers.save_listing(Listing(date(2026, 11, 19), thursday, "file"))
    after = await client.get("/archive/search", params={"q": "policies"})
    assert titles(after.text) == ["Policies for agents", "Diffusion policies for robots"]
