"""One click in the email, end to end (issue 17): a real ``digest run`` writes each
subscriber's digest, whose every paper has a "more like this" and a "less like this" link
(HTML and text, the same signed links, per subscriber and paper); a scanner's GET and HEAD
on them change nothing; the page's button records the like or dislike (origin ``email``)
and its Undo removes it; the next run does not send a paper the subscriber liked or
disliked.

The site is tests/support/site.py's (file listings, the outbox, SQLite); the web app runs
in-process over the same database, with the run's ``DIGEST_SECRET``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from digest.compose.feedback import read_feedback_token
from digest.config import load
from digest.run import make_context
from digest.serve import create_app
from digest.store import Store, metadata
from tests.support.mime import body_of
from tests.support.site import digest, outbox, write_site

SECRET = "feedback-run-secret-0123456789-abcdefghijklmnopq"
ENV = {"DIGEST_SECRET": SECRET}
BASE = "https://digest.example.org"
LINK = re.compile(rf"{re.escape(BASE)}/(more|less)\?token=([A-Za-z0-9_.-]+)")


@dataclass
class Site:
    folder: Path
    store: Store
    client: httpx.AsyncClient

    def rows(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table (the rate limiter's bookkeeping aside)."""
        with self.store.engine.connect() as conn:
            return {
                t.name: sorted((tuple(r) for r in conn.execute(sa.select(t))), key=repr)
                for t in metadata.sorted_tables
                if t.name != "rate_events"
            }

    def likes(self, email: str) -> list[tuple[str, str, str]]:
        sub = self.store.members.subscriber(email)
        assert sub is not None and sub.id is not None
        return [(like.key, like.kind, like.origin) for like in self.store.likes.of(sub.id)]

    async def press(self, url: str, action: str = "record") -> httpx.Response:
        page = await self.client.get(url)
        assert page.status_code == 200, page.text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf
        return await self.client.post(url, data={"csrf": csrf.group(1), "action": action})


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    """The operator's site, grace reading diffusion and proteins, the day-16 digests sent."""
    write_site(tmp_path)
    added = digest(
        tmp_path,
        "subscribers", "add", "grace@example.org", "--keyword", "diffusion", "--keyword", "protein",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    ran = await asyncio.to_thread(digest, tmp_path, "run", "--date", "2026-11-16", env=ENV)
    assert ran.exit_code == 0, ran.output
    config = load(tmp_path / "config.toml")
    store = Store(config.database)
    ctx = make_context(config, store)
    app = create_app(lambda: ctx, None, SECRET.encode(), start_service=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        yield Site(tmp_path, store, client)
    store.close()


def links_of(site: Site, email: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The feedback links (kind, token) of ``email``'s one digest: HTML part, text part."""
    (message,) = [m for m in outbox(site.folder) if email in m["To"]]
    assert not any("more?token" in str(v) for v in message.values())  # no header for these
    return LINK.findall(body_of(message, "html")), LINK.findall(body_of(message, "plain"))


async def test_each_paper_of_the_email_has_both_links_signed_for_its_reader(site: Site) -> None:
    grace = site.store.members.subscriber("grace@example.org")
    ada = site.store.members.subscriber("ada@example.org")
    assert grace is not None and ada is not None
    html, text = links_of(site, "grace@example.org")
    assert html == text  # the same links in both parts, in the papers' order
    assert [kind for kind, _ in html] == ["more", "less", "more", "less"]
    papers = [read_feedback_token(SECRET.encode(), token) for _, token in html]
    assert papers == [
        (grace.id, "2511.00001"),
        (grace.id, "2511.00001"),
        (grace.id, "2511.00003"),
        (grace.id, "2511.00003"),
    ]
    ada_html, ada_text = links_of(site, "ada@example.org")  # the same paper, her own token
    assert ada_html == ada_text
    assert [read_feedback_token(SECRET.encode(), t) for _, t in ada_html] == [
        (ada.id, "2511.00001")
    ] * 2
    assert ada_html[0][1] != html[0][1]
    (message,) = [m for m in outbox(site.folder) if "grace@example.org" in m["To"]]
    html_part = body_of(message, "html")
    assert html_part.count(">More like this</a>") == 2
    assert html_part.count(">Less like this</a>") == 2
    assert "More like this: https://digest.example.org/more?token=" in body_of(message, "plain")


async def test_scanners_change_nothing_and_the_button_records_with_an_undo(site: Site) -> None:
    html, _ = links_of(site, "grace@example.org")
    urls = [f"{BASE}/{kind}?token={token}" for kind, token in html]
    before = site.rows()
    for url in urls:
        for method in ("HEAD", "GET", "OPTIONS", "GET"):
            response = await site.client.request(method, url)
            assert response.status_code in (200, 405), (method, url, response.status_code)
    assert site.rows() == before
    assert site.likes("grace@example.org") == []

    more_agents, _, _, less_proteins = urls
    liked = await site.press(more_agents)
    assert "You will get more papers like “Diffusion Agents Plan in Latent Space”" in liked.text
    await site.press(less_proteins)
    assert site.likes("grace@example.org") == [
        ("2511.00001", "like", "email"),
        ("2511.00003", "dislike", "email"),
    ]
    undone = await site.press(more_agents, "undo")
    assert "is no longer liked" in undone.text
    assert site.likes("grace@example.org") == [("2511.00003", "dislike", "email")]
    await site.press(more_agents)
    shown = await asyncio.to_thread(digest, site.folder, "subscribers", "show", "grace@example.org")
    assert "Diffusion Agents Plan in Latent Space  (email)" in shown.stdout
    assert "Protein Folding with Graphs  (email)" in shown.stdout


async def test_the_next_digest_leaves_out_what_was_disliked(site: Site) -> None:
    """Day 17 lists 2511.00001 again (as v2): disliked from the email, it stays out of
    grace's digest (as everything recorded against her: what the run reads to leave out)."""
    html, _ = links_of(site, "grace@example.org")
    await site.press(f"{BASE}/less?token={html[1][1]}")  # less like 2511.00001
    grace = site.store.members.subscriber("grace@example.org")
    assert grace is not None and grace.id is not None
    assert "2511.00001" in site.store.likes.keys_of([grace.id])[grace.id]
    # the CLI runs its own event loop: in a thread, as from a shell
    ran = await asyncio.to_thread(digest, site.folder, "run", "--date", "2026-11-17", env=ENV)
    assert ran.exit_code == 0, ran.output
    mails = [m for m in outbox(site.folder) if "grace@example.org" in m["To"]]
    assert len(mails) == 2
    text = body_of(mails[-1], "plain")
    assert "Medical Diffusion for MRI" in text and "Quantized Diffusion" in text
    assert "Latent Space" not in text
    tokens = [read_feedback_token(SECRET.encode(), t)[1] for _, t in LINK.findall(text)]
    assert sorted(set(tokens)) == ["2511.00004", "2511.00005"]  # each new paper has its links
