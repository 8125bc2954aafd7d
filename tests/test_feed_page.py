"""A feed opened in a real browser (Debian's chromium through Playwright, against the real
``digest serve``) is a readable page made by ``feed/feed.xsl`` (applied by the server, not
by the browser's deprecated XSLT), not raw XML: it says how to follow the feed in a reader,
gives its address, lists the papers with the listing's markup as text, and fits a 390 px
screen as well as a 1280 px one.

Screenshots (``feed-page-{rss,atom,private}-{390,1280}.png``) go to the artifacts folder.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from digest.config import load
from digest.store import Store
from tests.support.browser import Serve, artifacts_dir, free_port, write_config
from tests.support.listings import item, write_days
from tests.support.smtpd import SmtpServer

pytestmark = pytest.mark.browser

NASTY = "<script>alert(1)</script> Diffusion & <b>bold</b> a&lt;b"


def wait_for(url: str, timeout: float = 30) -> None:
    """Until ``url`` answers 200 (the service writes the public feed at its first pass)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if httpx.get(url, timeout=5).status_code == 200:
            return
        time.sleep(0.2)
    pytest.fail(f"{url} never answered 200")


def test_a_feed_in_the_browser_is_a_page_that_says_how_to_follow_it(
    tmp_path: Path,
    smtp_server: Callable[..., SmtpServer],
    serve: Callable[[Path, int], Serve],
    chromium: Any,
) -> None:
    port = free_port()
    config = write_config(tmp_path, port, smtp_server())
    today = datetime.now(UTC).date()
    long_abstract = "We study diffusion with a very long abstract. " * 12
    papers = [item("2611.00001", NASTY, long_abstract, upvotes=12)]
    papers.append(item("2611.00002", "Speech agents", "Talk."))
    write_days(tmp_path / "listings", {today.isoformat(): papers})
    server = serve(config, port)
    server.wait_ready()
    server.cli("subscribers", "add", "ada@example.org", "--keyword", "diffusion")
    with Store(load(config).database) as store:
        sub = store.members.subscriber("ada@example.org")
    assert sub is not None
    token = sub.token
    base, shots = server.base, artifacts_dir()
    wait_for(base + "/feed.atom")
    feeds = {"rss": "/feed.xml", "atom": "/feed.atom", "private": f"/feeds/{token}.atom"}
    dialogs: list[str] = []  # an alert() run from a title would land here

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    for width in (390, 1280):
        page = chromium.new_page(viewport={"width": width, "height": 900})
        page.on("dialog", on_dialog)
        for name, path in feeds.items():
            page.goto(base + path)
            assert page.locator("h1").count() == 1, server.why(page.content()[:300])
            how = page.locator("#how")
            assert how.inner_text() == "This page is a feed: follow it in a feed reader"
            assert how.is_visible()
            titles = page.locator(".entry-title").all_inner_texts()
            assert NASTY in titles  # the listing's markup shown as text, never run
            assert page.inner_text(".address") == base + path
            if name == "private":
                assert titles == [NASTY]  # only the subscriber's papers
                assert "Keep its address to yourself" in page.inner_text("main")
            assert page.locator("xslt-warning-banner").count() == 0  # made by digest serve
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"{name} at {width}px scrolls sideways by {overflow}px"
            page.screenshot(path=str(shots / f"feed-page-{name}-{width}.png"), full_page=True)
        assert dialogs == []
        page.close()
