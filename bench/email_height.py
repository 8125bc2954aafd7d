"""How tall a 10-paper digest is on a phone, per abstract mode: the HTML part rendered from
the bundled sample listings and laid out by Debian's chromium at 390 px (Playwright).

    python bench/email_height.py [--width 390] [--papers 10] [--shots DIR]

Prints one line per mode: the page's height in CSS pixels and the HTML part's size.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from datetime import date
from pathlib import Path

from playwright.async_api import async_playwright

from digest.compose import EmailLinks, Renderer
from digest.models import ABSTRACT_MODES, Match, Subscriber
from digest.sources.file import FileSource

SAMPLE = Path(__file__).resolve().parent.parent / "digest" / "data" / "sample"
CHROMIUM = "/usr/bin/chromium"


async def heights(width: int, count: int, shots: Path | None) -> dict[str, tuple[int, int]]:
    day = date(2026, 11, 16)
    listing = await FileSource(SAMPLE).fetch(day)
    papers = sorted(listing.papers, key=lambda p: -p.upvotes)[:count]
    renderer = Renderer(base_url="https://digest.example.org")
    found: dict[str, tuple[int, int]] = {}
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = await browser.new_page(viewport={"width": width, "height": 800})
        with tempfile.TemporaryDirectory() as folder:
            for mode in ABSTRACT_MODES:
                out = renderer.render_digest(
                    day=day,
                    subscriber=Subscriber("ada@example.org"),
                    matches=[Match(paper, 0.0) for paper in papers],
                    links=EmailLinks(
                        "https://digest.example.org/unsubscribe?token=x",
                        archive_url="https://digest.example.org/archive/2026-11-16",
                    ),
                    total_in_listing=len(listing.papers),
                    max_papers=None,
                    abstract=mode,
                )
                html = Path(folder) / f"{mode}.html"
                html.write_text(out.html, "utf-8")
                await page.goto(html.as_uri())
                height = await page.evaluate("document.documentElement.scrollHeight")
                found[mode] = (int(height), out.html_size)
                if shots is not None:
                    shots.mkdir(parents=True, exist_ok=True)
                    await page.screenshot(
                        path=str(shots / f"email-{mode}-{width}.png"), full_page=True
                    )
        await browser.close()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=390)
    parser.add_argument("--papers", type=int, default=10)
    parser.add_argument("--shots", type=Path, default=None)
    args = parser.parse_args()
    for mode, (height, size) in asyncio.run(heights(args.width, args.papers, args.shots)).items():
        print(f"abstract = {mode!r:8} {height:6,} px tall at {args.width} px, HTML {size:,} bytes")


if __name__ == "__main__":
    main()
