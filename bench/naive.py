"""The naive baseline for bench/run.py: how a first script would do it; prints JSON.

For each subscriber: each query evaluated by regular expressions over every paper, the
template compiled and rendered from scratch, an ``EmailMessage`` built, and a new SMTP
connection (``smtplib``) per message.

    python bench/naive.py LISTING.json SUBSCRIBERS.json COUNT SINK_PORT
"""

from __future__ import annotations

import json
import re
import smtplib
import sys
import time
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from jinja2 import Environment

TEMPLATE = """<html><body><h1>Trending papers</h1><p>{{ papers|length }} new papers</p>
{% for p in papers %}<div style="padding:12px;border-top:1px solid #ddd">
<h2 style="font-size:17px"><a href="https://huggingface.co/papers/{{ p.id }}">{{ p.title }}</a></h2>
<p style="color:#666">{{ p.authors|join(", ") }} · {{ p.upvotes }} upvotes</p>
<p style="font-size:14px">{{ p.summary }}</p>
<p><a href="https://arxiv.org/abs/{{ p.id }}">arXiv</a> · \
<a href="https://arxiv.org/pdf/{{ p.id }}">PDF</a></p>
</div>{% endfor %}<p><a href="{{ unsubscribe }}">Unsubscribe</a></p></body></html>"""
TEXT = """{% for p in papers %}{{ p.title }}
{{ p.summary }}
https://huggingface.co/papers/{{ p.id }}

{% endfor %}Unsubscribe: {{ unsubscribe }}"""
OPERATORS = {"AND", "OR", "NOT"}


def terms(query: str) -> list[re.Pattern[str]]:
    """Each word of the query as a regex; operators and fields ignored (an AND of words)."""
    found = []
    for raw in re.findall(r'"[^"]*"|\S+', query):
        word = raw.strip('"()-').split(":")[-1]
        if not word or word in OPERATORS:
            continue
        if word.endswith("*"):
            found.append(re.compile(r"\b" + re.escape(word[:-1]), re.I))
        else:
            found.append(re.compile(r"\b" + re.escape(word) + r"(?:s|es)?\b", re.I))
    return found


def matches(query: str, paper: dict[str, str]) -> bool:
    text = paper["title"] + " " + paper["summary"]
    return all(p.search(text) for p in terms(query))


def main() -> None:
    listing, subs_file = Path(sys.argv[1]), Path(sys.argv[2])
    count, port = int(sys.argv[3]), int(sys.argv[4])
    papers = [
        {
            "id": e["paper"]["id"],
            "title": e["paper"]["title"],
            "summary": e["paper"]["summary"],
            "authors": [a["name"] for a in e["paper"].get("authors", [])],
            "upvotes": e["paper"].get("upvotes", 0),
        }
        for e in json.loads(listing.read_text("utf-8"))
    ]
    subs = json.loads(subs_file.read_text("utf-8"))[:count]
    start = time.perf_counter()
    sent = 0
    for sub in subs:
        chosen = [
            p
            for p in papers
            if (not sub["keywords"] or any(matches(q, p) for q in sub["keywords"]))
            and not any(matches(q, p) for q in sub["exclude"])
        ][:30]
        if not chosen:
            continue
        env = Environment(autoescape=True)
        unsubscribe = f"https://digest.example.org/unsubscribe?email={sub['email']}"
        html = env.from_string(TEMPLATE).render(papers=chosen, unsubscribe=unsubscribe)
        text = env.from_string(TEXT).render(papers=chosen, unsubscribe=unsubscribe)
        msg = EmailMessage()
        msg["From"] = "Paper Digest <digest@bench.example.org>"
        msg["To"] = sub["email"]
        msg["Subject"] = f"Trending papers: {len(chosen)} new papers"
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = make_msgid(domain="bench.example.org")
        msg["List-Unsubscribe"] = f"<{unsubscribe}>"
        msg.set_content(text)
        msg.add_alternative(html, subtype="html")
        with smtplib.SMTP("127.0.0.1", port) as smtp:
            smtp.send_message(msg)
        sent += 1
    seconds = time.perf_counter() - start
    print(json.dumps({"messages": sent, "seconds": seconds, "rate": sent / seconds}))


if __name__ == "__main__":
    main()
