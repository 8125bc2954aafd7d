"""The reader's pages in a real browser at a phone's width (390 px) and a desktop's (1280 px).

Against the real ``digest serve`` (a subprocess, tests/support/browser.py) holding a listing
of today with long titles, a reader with a long address: the subscribe, confirm, manage (as
shown, its live preview, and with a form error), delete-my-data, unsubscribe and archive
pages. On each page
at each width: no horizontal scrolling (the document is no wider than the window), and every
visible input, select, textarea, button and link is reached by the Tab key. A screenshot of
each goes to ``$DIGEST_TEST_ARTIFACTS`` (``test-artifacts/`` by default) as
``layout-<page>-<width>.png``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.browser import Serve, artifacts_dir, free_port, write_config
from tests.support.listings import item, write_days
from tests.support.smtpd import SmtpServer

pytestmark = pytest.mark.browser

WIDTHS = (390, 1280)
#: A long address: the unsubscribe heading and the manage page must wrap it.
READER = "ada.augusta.king.countess.of.lovelace@analytical-engine.example.org"

#: Marks every visible control with its index and records each one focus reaches (in
#: ``window.reached``); returns how many controls there are.
MARK_CONTROLS = """() => {
  const all = document.querySelectorAll(
    'a[href], button, input:not([type=hidden]), select, textarea, summary');
  let n = 0;
  for (const el of all) {
    const box = el.getBoundingClientRect();
    if (el.disabled || box.width === 0 || box.height === 0) continue;
    el.dataset.control = String(n++);
  }
  window.reached = new Set();
  document.addEventListener("focusin", (e) => {
    if (e.target.dataset && e.target.dataset.control) window.reached.add(e.target.dataset.control);
  });
  if (document.activeElement) document.activeElement.blur();
  return n;
}"""
#: The controls focus never reached (the start of their HTML).
UNREACHED = """() => [...document.querySelectorAll('[data-control]')]
  .filter((el) => !window.reached.has(el.dataset.control))
  .map((el) => el.outerHTML.slice(0, 120))"""
#: How wide the document is, and the window.
OVERFLOW = "() => [document.documentElement.scrollWidth, window.innerWidth]"


def tab_through(page: Any) -> list[str]:
    """The controls of ``page`` the Tab key never reaches (their HTML), after Tabbing
    through the page: once per control, again (up to twice) while some are left (a time
    input takes a Tab per field)."""
    count: int = page.evaluate(MARK_CONTROLS)
    missing: list[str] = []
    for _ in range(3):
        for _ in range(count):
            page.keyboard.press("Tab")
        missing = page.evaluate(UNREACHED)
        if not missing:
            break
    return missing


def check_layout(page: Any, name: str, width: int, shots: Path) -> list[str]:
    """What is wrong with the page shown (empty: nothing); saves its screenshot."""
    page.screenshot(path=shots / f"layout-{name}-{width}.png", full_page=True)
    problems = []
    scroll, inner = page.evaluate(OVERFLOW)
    if scroll > inner:
        wide = page.evaluate(
            "(inner) => [...document.querySelectorAll('body *')]"
            ".filter(el => el.getBoundingClientRect().right > inner + 1)"
            ".map(el => el.outerHTML.slice(0, 100)).slice(0, 3)",
            inner,
        )
        problems.append(f"{name} at {width}px scrolls sideways ({scroll} > {inner}): {wide}")
    problems += [f"{name} at {width}px: Tab never reaches {m}" for m in tab_through(page)]
    return problems


def listing() -> list[dict[str, Any]]:
    long_title = (
        "Diffusion-Based Generative Models for Protein Backbone Design with "
        "Equivariant Transformers and Reinforcement-Learning-from-Structure-Feedback"
    )
    return [
        item("2611.00001", long_title, "We design proteins with a diffusion model. " * 8),
        item("2611.00002", "A Survey of Large Language Model Agents", "Agents. " * 20),
        item("2611.00003", "Graph Networks for Weather", "Message passing on stations."),
    ]


def sign_up(base: str, smtp: SmtpServer) -> str:
    """Subscribe READER over HTTP; the confirmation link the email carries."""
    with httpx.Client(base_url=base, timeout=10) as client:
        form = client.get("/")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf, form.text
        data = {
            "csrf": csrf.group(1),
            "email": READER,
            "keywords": "diffusion\nlanguage model",
            "send_at": "08:00",
            "timezone": "Europe/Berlin",
            "frequency": "daily",
        }
        assert client.post("/subscribe", data=data).status_code == 200
    body = smtp.messages[-1].message.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    found = re.search(r"(http://\S+/confirm\?token=\S+)", text)
    assert found, text
    return found.group(1)


def test_every_page_fits_a_phone_and_a_desktop_and_works_by_keyboard(
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
    write_days(tmp_path / "listings", {today.isoformat(): listing()})
    server = serve(config, port)
    server.wait_ready()
    base, shots = server.base, artifacts_dir()
    confirm_url = sign_up(base, smtp)
    problems: list[str] = []
    pages = {
        w: chromium.new_context(viewport={"width": w, "height": 900}).new_page() for w in WIDTHS
    }

    def visit(name: str, url: str | None = None) -> None:
        for width, page in pages.items():
            if url is not None:
                page.goto(url)
            problems.extend(check_layout(page, name, width, shots))

    visit("subscribe", base + "/")
    visit("confirm", confirm_url)
    pages[WIDTHS[0]].get_by_role("button", name="Confirm").click()
    manage_url = (
        pages[WIDTHS[0]].get_by_role("link", name="Change keywords or time").get_attribute("href")
    )
    assert manage_url and "/manage?token=" in manage_url
    visit("manage", manage_url)
    desk = pages[WIDTHS[-1]]  # the live preview, as on the subscribe page (subscribe.js)
    desk.fill("#keywords", "diffusion")
    expect(desk.locator("#preview li")).to_have_count(1)
    expect(desk.locator("#preview")).to_contain_text("1 of 3 papers")
    desk.fill("#keywords", "diffusion\nlanguage model")
    unsubscribe = pages[WIDTHS[0]].get_by_role("link", name="Unsubscribe", exact=True)
    unsubscribe_url = unsubscribe.get_attribute("href")
    assert unsubscribe_url and "/unsubscribe?token=" in unsubscribe_url
    for page in pages.values():  # a typo in the time zone: the error under its input
        page.fill("#timezone", "Europe/Berln")
        page.get_by_role("button", name="Save").click()
        assert "did you mean Europe/Berlin?" in page.locator("#timezone-error").inner_text()
    visit("manage-error")
    for page in pages.values():
        page.goto(manage_url)
        page.get_by_role("button", name="Delete my data").click()
    visit("delete")
    visit("unsubscribe", unsubscribe_url)
    visit("archive", base + "/archive/")
    visit("archive-day", f"{base}/archive/{today.isoformat()}")
    assert not problems, "\n".join(problems)
