"""The reader's whole journey in a real browser, against the real ``digest serve``.

``digest serve`` runs as a subprocess on a free port with a real aiosmtpd server and a
folder of listings. Chromium (Debian's, driven by Playwright, zone Europe/Paris) fills the
subscribe form; the confirmation email arrives; the browser opens its link (a HEAD and a GET
on it, as mail scanners send, confirm nothing) and presses its Confirm button; the digest
arrives at the chosen minute and not before; the private feed lists the same papers and
answers a conditional GET with 304; a mail client's one-click unsubscribe (RFC 8058 POST)
and the unsubscribe page both work; then nothing more is sent, even once the (now
unsubscribed) reader's send time comes again with a new matching paper. SIGTERM ends the
server with exit status 0.

Screenshots (subscribe, confirm, confirmed, digest, unsubscribed) go to ``$DIGEST_TEST_ARTIFACTS``,
by default ``test-artifacts/`` at the repository's root.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import feedparser
import httpx
import pytest

from tests.support.browser import Serve, artifacts_dir, free_port, write_config
from tests.support.listings import item, write_days
from tests.support.smtpd import Received, SmtpServer

pytestmark = pytest.mark.browser

ZONE = "Europe/Paris"
READER = "ada@example.org"

NASTY = "<script>alert(1)</script> Diffusion & <b>bold</b>"
MATCHING = {  # arXiv id: title; each matches "diffusion" or "language model"
    "2611.00001": "Diffusion Models for Protein Design",
    "2611.00002": NASTY,
    "2611.00003": "A Survey of Large Language Model Agents",
}
OTHERS = {  # match no keyword, or an exclude
    "2611.00004": "Scaling Laws for Sparse Mixture-of-Experts",
    "2611.00005": "Graph Neural Networks for Weather Forecasting",
    "2611.00006": "Latent Diffusion for Medical Imaging",  # excluded: "medical"
}
LATER = ("2611.00007", "Consistency Diffusion Distillation")  # added after unsubscribing


def listing() -> list[dict[str, Any]]:
    summaries = {
        "2611.00001": "We design proteins with a diffusion model.",
        "2611.00002": "A title that tries to inject markup & script into the email.",
        "2611.00003": "We survey agents built on a large language model.",
        "2611.00004": "Sparse experts scale better than dense ones.",
        "2611.00005": "Message passing on weather station graphs.",
        "2611.00006": "Diffusion on medical scans.",
    }
    return [
        item(arxiv_id, title, summaries[arxiv_id], upvotes=10 - n)
        for n, (arxiv_id, title) in enumerate({**MATCHING, **OTHERS}.items())
    ]


# -- helpers ---------------------------------------------------------------------------------


def wait_for(what: str, found: Callable[[], Any], timeout: float, why: Callable[[str], str]) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = found()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(why(f"{what}: nothing after {timeout}s"))


def html_part(message: EmailMessage) -> str:
    part = message.get_body(("html",))
    assert part is not None, "no text/html part"
    return str(part.get_content())


def text_part(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None, "no text/plain part"
    return str(part.get_content())


def is_confirmation(received: Received) -> bool:
    return str(received.message["Subject"]).startswith("Confirm your subscription")


def next_minute_in(zone: ZoneInfo) -> datetime:
    """The next whole minute (aware, in ``zone``) with room before it for the whole sign-up:
    subscribing, confirming and the scheduler placing the reader all happen before it."""
    now = datetime.now(zone)
    if now.second >= 45:  # too close: start from the minute after
        time.sleep(60.5 - now.second - now.microsecond / 1e6)
        now = datetime.now(zone)
    return now.replace(second=0, microsecond=0) + timedelta(minutes=1)


def feed_when_ready(url: str, why: Callable[[str], str], timeout: float = 15) -> httpx.Response:
    """GET a private feed, again while it answers 503 "being prepared" (with Retry-After)."""
    deadline = time.monotonic() + timeout
    while True:
        response = httpx.get(url, timeout=5)
        if response.status_code != 503:
            return response
        assert response.headers.get("Retry-After"), why("503 without Retry-After")
        if time.monotonic() > deadline:
            pytest.fail(why(f"{url} still 503 after {timeout}s: {response.text}"))
        time.sleep(0.25)


# -- the journey -----------------------------------------------------------------------------


def test_subscribe_confirm_digest_feed_unsubscribe_in_a_browser(
    tmp_path: Path,
    smtp_server: Callable[..., SmtpServer],
    serve: Callable[[Path, int], Serve],
    chromium: Any,
) -> None:
    from playwright.sync_api import expect

    smtp = smtp_server()
    port = free_port()
    config = write_config(tmp_path, port, smtp)
    today = datetime.now(UTC).date()
    # Today's listing (the day after's too, should the test cross midnight UTC).
    days = {d.isoformat(): listing() for d in (today, today + timedelta(days=1))}
    write_days(tmp_path / "listings", days)
    server = serve(config, port)
    server.wait_ready()
    base = server.base
    why = server.why
    shots = artifacts_dir()
    paris = ZoneInfo(ZONE)

    context = chromium.new_context(
        timezone_id=ZONE, locale="en-GB", viewport={"width": 1000, "height": 900}
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    outside: list[str] = []  # requests that leave the server: there must be none
    problems: list[str] = []  # console errors, uncaught exceptions, dialogs
    page.on(
        "request",
        lambda r: (
            None if r.url.startswith((base + "/", "about:", "data:")) else outside.append(r.url)
        ),
    )
    # (the 404 of the browser's own /favicon.ico request is no problem of the pages)
    page.on(
        "console",
        lambda m: (
            problems.append(f"console {m.type}: {m.text} at {m.location}")
            if m.type == "error" and not m.location.get("url", "").endswith("/favicon.ico")
            else None
        ),
    )
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))

    def on_dialog(dialog: Any) -> None:
        problems.append(f"dialog {dialog.type}: {dialog.message}")
        dialog.dismiss()

    page.on("dialog", on_dialog)

    # 1. The subscribe page; its script fills in the browser's zone.
    page.goto(base + "/")
    expect(page.locator("#timezone")).to_have_value(ZONE)
    send_at = next_minute_in(paris)
    send_at_text = f"{send_at:%H:%M}"
    target = send_at.astimezone(UTC)
    page.fill("#email", READER)
    page.fill("#keywords", 'diffusion\n"language model"')
    page.fill("#exclude", "medical")
    page.fill("#send_at", send_at_text)
    page.select_option("#frequency", "daily")
    expect(page.locator("#send_at")).to_have_value(send_at_text)
    expect(page.locator("#timezone")).to_have_value(ZONE)
    # The live preview (today's listing was fetched at start): the matches, titles as text.
    expect(page.locator("#preview li")).to_have_count(len(MATCHING))
    expect(page.locator("#preview")).to_contain_text(f"{len(MATCHING)} of {len(listing())}")
    shown = page.locator("#preview li a").all_inner_texts()
    assert sorted(shown) == sorted(MATCHING.values()), shown
    page.locator("#send_at").blur()
    page.screenshot(path=shots / "subscribe.png", full_page=True)
    page.get_by_role("button", name="Subscribe").click()
    expect(page.locator("h1")).to_have_text("Check your inbox")
    expect(page.locator("main")).to_contain_text(READER)

    # 2. The confirmation email, through the real SMTP server.
    confirmation = wait_for(
        "the confirmation email",
        lambda: next((m for m in smtp.messages if is_confirmation(m)), None),
        15,
        why,
    )
    assert confirmation.rcpt_tos == (READER,)
    assert str(confirmation.message["To"]).endswith(READER)
    found = re.search(
        re.escape(base) + r"/confirm\?token=[\w.\-]+", text_part(confirmation.message)
    )
    assert found, why(f"no confirm link in:\n{text_part(confirmation.message)}")
    confirm_url = found.group(0)

    # 3. The link: a scanner's HEAD and GET confirm nothing; the browser's page shows the
    # request and one button, which confirms.
    for method in ("HEAD", "GET"):
        probe = httpx.request(method, confirm_url, timeout=10)
        assert probe.status_code == 200, why(f"{method} {confirm_url}: {probe.status_code}")
    assert "\tpending" in server.cli("subscribers", "list"), why("a GET confirmed")
    page.goto(confirm_url)
    expect(page.locator("h1")).to_have_text("Confirm your subscription")
    expect(page.locator("main button")).to_have_count(1)
    expect(page.locator(".card")).to_contain_text("medical")  # the exclude query too
    page.screenshot(path=shots / "confirm.png", full_page=True)
    page.get_by_role("button", name="Confirm").click()
    expect(page.locator("h1")).to_have_text("You're subscribed")
    card = page.locator(".card")
    expect(card).to_contain_text(READER)
    expect(card).to_contain_text(f"at {send_at_text} ({ZONE})")
    feed_link = page.locator(f'a[href^="{base}/feeds/"]')
    expect(feed_link).to_have_count(1)
    feed_url = feed_link.get_attribute("href") or ""
    assert re.fullmatch(re.escape(base) + r"/feeds/[\w\-]{16,128}\.atom", feed_url), feed_url
    expect(feed_link).to_have_text(feed_url)
    manage = page.get_by_role("link", name="Change keywords or time")
    expect(manage).to_have_attribute("href", re.compile("^" + re.escape(base) + r"/manage\?token="))
    page.screenshot(path=shots / "confirmed.png", full_page=True)
    confirmed_at = datetime.now(UTC)
    assert confirmed_at < target - timedelta(seconds=5), why(
        f"confirmed at {confirmed_at:%H:%M:%S.%f} UTC, too close to the send time {target:%H:%M}"
    )

    # Right after confirming, the private feed exists (maybe after a 503 "being prepared").
    early = feed_when_ready(feed_url, why)
    assert early.status_code == 200, why(f"{feed_url}: {early.status_code} {early.text}")

    # 4. The digest: not before the chosen minute, soon after it.
    digest: Received | None = None
    deadline = target + timedelta(seconds=60)
    while digest is None:
        now = datetime.now(UTC)
        digest = next((m for m in smtp.messages if not is_confirmation(m)), None)
        if digest is not None:
            assert now >= target, why(f"the digest arrived at {now} UTC, before {target}")
        elif now > deadline:
            pytest.fail(why(f"no digest by {now:%H:%M:%S} UTC (send time {target:%H:%M} UTC)"))
        else:
            time.sleep(0.05)
    seen_at = datetime.now(UTC)
    assert seen_at - target <= timedelta(seconds=15), why(
        f"the digest for {target:%H:%M:%S} UTC arrived only at {seen_at:%H:%M:%S} UTC"
    )
    assert len(smtp.messages) == 2, why(f"{len(smtp.messages)} messages, expected 2")
    message = digest.message
    assert digest.rcpt_tos == (READER,)
    assert not is_confirmation(digest)
    sent_date = parsedate_to_datetime(str(message["Date"]))
    assert target <= sent_date <= target + timedelta(seconds=15), (sent_date, target)

    # Its headers: List-Unsubscribe with our URL and a mailto:; no -Post over plain http.
    links = re.findall(r"<([^>]+)>", str(message["List-Unsubscribe"]))
    unsubscribe_url = next((u for u in links if u.startswith(base + "/unsubscribe?token=")), None)
    assert unsubscribe_url, f"List-Unsubscribe: {message['List-Unsubscribe']}"
    assert any(u.startswith("mailto:") for u in links), message["List-Unsubscribe"]
    assert message["List-Unsubscribe-Post"] is None  # RFC 8058 §3.1: https only

    # Its HTML: the matching papers, not the others, the nasty title escaped.
    html = html_part(message)
    text = text_part(message)
    for title in MATCHING.values():
        if title != NASTY:
            assert title in html, title
            assert title in text, title
    for title in OTHERS.values():
        assert title not in html, title
        assert title not in text, title
    assert "<script" not in html.lower()
    assert "<b>bold</b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html
    assert NASTY in text  # the text part shows it as it is
    assert unsubscribe_url.replace("&", "&amp;") in html or unsubscribe_url in html

    # ... and as a mail reader shows it: the titles as text, no script run.
    page.set_content(html)
    titles = page.locator("h2.title").all_inner_texts()
    assert sorted(" ".join(t.split()) for t in titles) == sorted(MATCHING.values()), titles
    page.screenshot(path=shots / "digest.png", full_page=True)
    assert page.evaluate("document.querySelectorAll('script').length") == 0

    # 5. The private feed lists the same papers; a conditional GET gives 304.
    def feed_with_papers() -> httpx.Response | None:
        response = feed_when_ready(feed_url, why)
        assert response.status_code == 200, why(f"{feed_url}: {response.status_code}")
        return response if MATCHING["2611.00001"] in response.text else None

    feed = wait_for("the papers in the private feed", feed_with_papers, 15, why)
    assert feed.headers["content-type"].startswith("application/atom+xml")
    parsed = feedparser.parse(feed.content)
    assert not parsed.bozo, parsed.bozo_exception
    assert sorted(e.title for e in parsed.entries) == sorted(MATCHING.values())
    etag = feed.headers.get("ETag")
    assert etag, feed.headers
    again = httpx.get(feed_url, headers={"If-None-Match": etag}, timeout=5)
    assert again.status_code == 304, (again.status_code, again.headers)
    assert again.headers.get("ETag") == etag
    assert again.content == b""

    # 6. Unsubscribe: a link checker's HEAD changes nothing; the page from the email's link,
    # a mail client's one-click POST, then the page's own button (still "unsubscribed": it
    # is idempotent).
    head = httpx.head(unsubscribe_url, timeout=10)
    assert head.status_code == 200, why(f"HEAD {unsubscribe_url}: {head.status_code}")
    [row] = [r for r in server.cli("subscribers", "list").splitlines() if r.startswith(READER)]
    assert row.split("\t")[1].startswith("active"), why(f"a HEAD unsubscribed: {row}")
    page.goto(unsubscribe_url)
    expect(page.locator("h1")).to_have_text(f"Unsubscribe {READER}?")
    expect(page.locator("main button")).to_have_count(1)
    one_click = httpx.post(
        unsubscribe_url,
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=10,
    )
    assert one_click.status_code == 200, why(f"one-click: {one_click.status_code} {one_click.text}")
    assert "You're unsubscribed" in one_click.text or "You&#39;re unsubscribed" in one_click.text
    listed = server.cli("subscribers", "list")
    [line] = [row for row in listed.splitlines() if row.startswith(READER)]
    assert line.split("\t")[1].startswith("unsubscribed"), listed
    page.get_by_role("button", name="Unsubscribe").click()
    expect(page.locator("h1")).to_have_text("You're unsubscribed")
    expect(page.locator(".card")).to_contain_text(READER)
    page.screenshot(path=shots / "unsubscribed.png", full_page=True)

    # 7. No more digests: a new matching paper and the reader's send time come again
    # (pushed into the past in the database): still nothing, over several ticks.
    write_days(
        tmp_path / "listings", {day: [*papers, item(*LATER)] for day, papers in days.items()}
    )
    from digest.store import Store

    with Store(f"sqlite:///{tmp_path / 'digest.db'}") as store:
        sub = store.members.subscriber(READER)
        assert sub is not None and sub.id is not None and sub.status == "unsubscribed"
        past = datetime.now(UTC) - timedelta(minutes=1)
        # unsubscribing cleared it
        store.members.set_next_sends([(sub.id, past, None)], only_if_due=None)
        assert (store.members.subscriber(READER) or sub).next_send_at is not None
    time.sleep(6)  # three ticks
    assert len(smtp.messages) == 2, why(
        f"sent after unsubscribing: {[str(m.message['Subject']) for m in smtp.messages[2:]]}"
    )
    # ... and the private feed is gone (asserted last, below, so that the rest runs first).
    feed_after = httpx.get(feed_url, timeout=5)

    assert not outside, f"the pages asked for outside resources: {outside}"
    assert not problems, problems
    context.close()

    # 8. SIGTERM: a clean exit.
    status = server.stop()
    assert status == 0, why(f"digest serve exited with {status} after SIGTERM")
    output = server.output()
    assert "Traceback" not in output, why("the server printed a traceback")
    assert " ERROR " not in output, why("the server logged an error")

    # An unsubscribed reader's private feed is no longer served: 404 like any unknown one
    # (publish_feeds removes the feeds of subscribers no longer active, and a feed not
    # written yet answers 404 for them).
    assert feed_after.status_code == 404, (
        f"{feed_url} still answers {feed_after.status_code} ({len(feed_after.content)} bytes)"
        " 6 s after unsubscribing"
    )
