"""The pipeline's pure stages timed one by one, for bench/run.py; prints JSON.

python bench/stages.py LISTING.json SUBSCRIBERS.json
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from digest import GC_THRESHOLDS
from digest.compose import EmailLinks, Renderer, build_message, make_message_id
from digest.compose.feedback import FeedbackLinks
from digest.models import Subscriber
from digest.select import (
    DayMatcher,
    Selection,
    query,
)
from digest.sources.huggingface import dedupe, parse_page

SENDER = "Paper Digest <digest@bench.example.org>"
SECRET = b"bench-secret-0123456789abcdefghijklmnopqrstu"
#: BENCH_FEEDBACK=0: emails without the feedback links (to see what they cost)
FEEDBACK = os.environ.get("BENCH_FEEDBACK", "1") != "0"
DAY = date(2026, 11, 18)


def main() -> None:
    gc.set_threshold(*GC_THRESHOLDS)  # as the `digest` command runs
    listing, subs_file = Path(sys.argv[1]), Path(sys.argv[2])
    found, warnings = parse_page(listing.read_bytes(), str(listing))
    papers = dedupe(found, warnings)
    subs = [
        Subscriber(
            email=s["email"],
            keywords=tuple(s["keywords"]),
            exclude=tuple(s["exclude"]),
            id=i,
            token=f"tok{i}",
        )
        for i, s in enumerate(json.loads(subs_file.read_text("utf-8")))
    ]
    begin = time.perf_counter()

    distinct = {q for s in subs for q in (*s.keywords, *s.exclude)}
    start = time.perf_counter()
    for q in distinct:
        query.parse(q)
    compile_s = time.perf_counter() - start

    start = time.perf_counter()
    matcher = DayMatcher(papers)
    # What a run does: the papers of each digest, highlighted only where shown (cap 30).
    matched = [matcher.choose(s.keywords, s.exclude, set(), 30) for s in subs]
    match_s = time.perf_counter() - start

    renderer = Renderer(site_title="Trending papers", base_url="https://digest.example.org")
    render_s = build_s = 0.0
    digests = total_size = 0
    now = datetime.now(UTC)
    for i, (sub, (shown, more)) in enumerate(zip(subs, matched, strict=True)):
        if not shown:
            continue
        t0 = time.perf_counter()
        selection = Selection(tuple(shown), tuple(more))
        links = EmailLinks(
            unsubscribe_url=f"https://digest.example.org/unsubscribe?token={sub.token}",
            manage_url=f"https://digest.example.org/manage?token={sub.token}",
            feed_url=f"https://digest.example.org/feeds/{sub.token}.atom",
            archive_url=f"https://digest.example.org/archive/{DAY}",
            # each paper's "more/less like this" links, signed per subscriber (as a run)
            feedback=FeedbackLinks("https://digest.example.org", SECRET, i) if FEEDBACK else None,
        )
        rendered = renderer.render_digest(
            day=DAY,
            subscriber=sub,
            matches=selection.all,
            links=links,
            total_in_listing=len(papers),
            max_papers=len(selection.shown),
        )
        t1 = time.perf_counter()
        data = build_message(
            sender=SENDER,
            to=sub.email,
            to_name=sub.name,
            subject=rendered.subject,
            text=rendered.text_body,
            html=rendered.html_body,
            message_id=make_message_id(SENDER),
            date=now,
            list_id="Paper Digest <digest.bench.example.org>",
            unsubscribe_url=links.unsubscribe_url,
            unsubscribe_mailto="mailto:digest@bench.example.org?subject=unsubscribe",
        )
        t2 = time.perf_counter()
        render_s += t1 - t0
        build_s += t2 - t1
        digests += 1
        total_size += len(data)
    print(
        json.dumps(
            {
                "queries": len(distinct),
                "compile": compile_s,
                "match": match_s,
                "render": render_s,
                "build": build_s,
                "digests": digests,
                "avg_size": total_size / max(digests, 1),
                "total": time.perf_counter() - begin,
            }
        )
    )


if __name__ == "__main__":
    main()
