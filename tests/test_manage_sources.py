"""The manage page's choice of sources (issue 16): a box per configured, enabled source
(every box ticked for a subscriber who never chose), saved as the subscriber's sources
(every box: every source), none ticked refused, read-only for a subscriber of the
configuration, absent with one source. The web app in-process over a real SQLite file."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from digest.compose import tokens
from digest.config import load
from digest.models import Subscriber
from digest.run import make_context
from digest.serve import Service, create_app
from digest.store import Store

SECRET = b"test-secret-0123456789abcdef"
NOW = datetime(2026, 11, 16, 7, tzinfo=UTC)

SOURCES = """
[[sources]]
name = "local"
kind = "file"
path = "listings"

[[sources]]
name = "arxiv-ml"
kind = "arxiv"
categories = ["cs.LG", "stat.ML"]

[[sources]]
name = "neuro"
kind = "feed"
url = "https://journals.example.org/neuro.rss"

[[sources]]
name = "old"
kind = "feed"
url = "https://old.example.org/feed"
enabled = false
"""
ONE_SOURCE = """
[[sources]]
name = "local"
kind = "file"
path = "listings"
"""
OPERATOR = """
[[subscribers]]
email = "op@example.org"
keywords = ["diffusion"]
sources = ["neuro"]
"""


class Site:
    def __init__(self, client: httpx.AsyncClient, store: Store) -> None:
        self.client = client
        self.store = store

    def add(self, email: str, sources: tuple[str, ...] | None = None) -> Subscriber:
        sub = self.store.members.add_subscriber(
            Subscriber(email=email, keywords=("diffusion",), sources=sources)
        )
        assert sub.id is not None
        return sub

    def stored(self, email: str) -> Subscriber:
        sub = self.store.members.subscriber(email)
        assert sub is not None
        return sub

    @staticmethod
    def link(sub: Subscriber) -> str:
        return f"/manage?token={tokens.sign(SECRET, 'manage', str(sub.id))}"

    async def page(self, sub: Subscriber) -> str:
        response = await self.client.get(self.link(sub))
        assert response.status_code == 200
        return response.text

    async def save(
        self, sub: Subscriber, ticked: list[str], *, shown: bool = True, keywords: str = "robots"
    ) -> httpx.Response:
        csrf = re.search(r'name="csrf" value="([^"]+)"', await self.page(sub))
        assert csrf
        data: dict[str, str | list[str]] = {
            "csrf": csrf.group(1),
            "keywords": keywords,
            "send_at": "08:00",
            "timezone": "UTC",
            "frequency": "daily",
            "action": "save",
            "sources": ticked,
        }
        if shown:
            data["sources_shown"] = "1"
        return await self.client.post(self.link(sub), data=data)


@pytest.fixture
async def site(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Site]:
    """The web app over a config with ``param`` (default: four sources, one disabled, and
    an operator's subscriber)."""
    (tmp_path / "listings").mkdir()
    sources = getattr(request, "param", SOURCES + OPERATOR)
    (tmp_path / "config.toml").write_text(
        f'database = "sqlite:///{tmp_path / "digest.db"}"\nbase_url = "http://testserver"\n'
        f'[mail]\nfrom = "Digest <digest@example.org>"\noutbox_dir = "outbox"\n{sources}',
        "utf-8",
    )
    config = load(tmp_path / "config.toml")
    store = Store(config.database)
    store.members.sync_config_subscribers(config.subscribers)
    ctx = make_context(config, store, now=NOW)
    service = Service(lambda now: replace(ctx, now=now))
    app = create_app(lambda: ctx, service, SECRET, start_service=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield Site(client, store)
    store.close()


def boxes(page: str) -> dict[str, bool]:
    """The source boxes of a page: name -> ticked."""
    return {
        m.group(1): bool(m.group(2))
        for m in re.finditer(r'name="sources" value="([^"]+)"( checked)?', page)
    }


async def test_every_enabled_source_is_a_box_ticked_by_default(site: Site) -> None:
    ada = site.add("ada@example.org")
    page = await site.page(ada)
    assert boxes(page) == {"local": True, "arxiv-ml": True, "neuro": True}  # not "old"
    assert 'name="sources_shown"' in page
    assert "arXiv cs.LG, stat.ML" in page and "feed from journals.example.org" in page


async def test_saving_some_boxes_stores_those_sources(site: Site) -> None:
    ada = site.add("ada@example.org")
    saved = await site.save(ada, ["neuro", "local"])
    assert saved.status_code == 200 and "Saved." in saved.text
    stored = site.stored("ada@example.org")
    assert (stored.sources, stored.keywords) == (("local", "neuro"), ("robots",))  # config order
    assert boxes(saved.text) == {"local": True, "arxiv-ml": False, "neuro": True}
    again = await site.save(ada, ["local", "arxiv-ml", "neuro", "not-configured"])
    assert again.status_code == 200
    assert site.stored("ada@example.org").sources is None  # every box: every source


async def test_no_box_ticked_is_an_error_and_saves_nothing(site: Site) -> None:
    ada = site.add("ada@example.org", ("arxiv-ml",))
    refused = await site.save(ada, [], keywords="robots")
    assert refused.status_code == 400
    assert 'id="sources-error">choose at least one source</p>' in refused.text
    assert 'aria-describedby="sources-error"' in refused.text
    assert boxes(refused.text) == {"local": False, "arxiv-ml": False, "neuro": False}  # as sent
    kept = site.stored("ada@example.org")
    assert (kept.sources, kept.keywords) == (("arxiv-ml",), ("diffusion",))
    # with another field wrong too, both are said
    both = await site.save(ada, [], keywords='"unclosed')
    assert both.status_code == 400
    assert "sources-error" in both.text and "keywords-error" in both.text


async def test_a_post_without_the_boxes_keeps_the_choice(site: Site) -> None:
    ada = site.add("ada@example.org", ("neuro",))
    saved = await site.save(ada, [], shown=False)
    assert saved.status_code == 200 and "Saved." in saved.text
    assert site.stored("ada@example.org").sources == ("neuro",)


async def test_a_chosen_source_the_page_does_not_show_stays_chosen(site: Site) -> None:
    ada = site.add("ada@example.org", ("old", "neuro"))
    page = await site.page(ada)
    assert boxes(page) == {"local": False, "arxiv-ml": False, "neuro": True}
    await site.save(ada, ["neuro", "local"])
    assert site.stored("ada@example.org").sources == ("local", "neuro", "old")


async def test_the_operators_subscriber_sees_the_choice_read_only(site: Site) -> None:
    op = site.stored("op@example.org")
    page = await site.page(op)
    assert boxes(page) == {} and 'name="sources_shown"' not in page
    assert '<p class="hint">Sources: neuro</p>' in page
    refused = await site.save(op, ["local"])
    assert refused.status_code == 400 and "nothing saved" in refused.text
    assert site.stored("op@example.org").sources == ("neuro",)


@pytest.mark.parametrize("site", [ONE_SOURCE], indirect=True)
async def test_with_one_source_there_is_no_choice(site: Site) -> None:
    ada = site.add("ada@example.org")
    page = await site.page(ada)
    assert boxes(page) == {} and "sources_shown" not in page and "Sources" not in page
    saved = await site.save(ada, [], shown=False)
    assert saved.status_code == 200 and site.stored("ada@example.org").sources is None
