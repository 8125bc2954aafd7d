"""Papers as rows and back, and the aliases that name them (tables ``papers`` and
``paper_aliases``): the helpers of :mod:`digest.store.papers`.

A paper's fields beyond the original columns (doi, link, categories, sources, version and
the Hugging Face extras) live in the ``extra`` JSON column, each only when it is set.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from digest.identity import arxiv_id_of, canonical_link, doi_of
from digest.models import Paper
from digest.store.schema import aware, chunks, paper_aliases, papers

#: Rows per IN (...) list: well under SQLite's 999 bound parameters of old builds.
CHUNK = 500
#: The keys of the ``extra`` column, with the value a paper has when the key is absent.
_EXTRA: dict[str, Any] = {
    "num_comments": 0,
    "thumbnail": None,
    "ai_summary": None,
    "ai_keywords": (),
    "github_repo": None,
    "project_page": None,
    "doi": None,
    "link": None,
    "categories": (),
    "sources": (),
    "version": None,
}
_TUPLES = ("ai_keywords", "categories", "sources")


def paper_row(p: Paper, first_seen: datetime) -> dict[str, Any]:
    """The ``papers`` row of ``p`` (``extra`` holds only the fields that are set)."""
    extra = {}
    for name in _EXTRA:
        value = getattr(p, name)
        if value:
            extra[name] = list(value) if name in _TUPLES else value
    return {
        "key": p.key,
        "arxiv_id": p.arxiv_id,
        "title": p.title,
        "abstract": p.abstract,
        "authors": json.dumps(list(p.authors), ensure_ascii=False),
        "upvotes": p.upvotes,
        "published": p.published,
        "extra": json.dumps(extra, ensure_ascii=False),
        "first_seen": first_seen,
    }


def paper_of(r: Any) -> Paper:
    """The :class:`Paper` of a ``papers`` row."""
    extra = json.loads(r["extra"] or "{}")
    fields = {n: extra.get(n, default) for n, default in _EXTRA.items()}
    for name in _TUPLES:
        fields[name] = tuple(fields[name] or ())
    return Paper(
        key=r["key"],
        title=r["title"],
        abstract=r["abstract"],
        authors=tuple(json.loads(r["authors"])),
        arxiv_id=r["arxiv_id"],
        upvotes=r["upvotes"],
        published=aware(r["published"]),
        **fields,
    )


def known_keys(conn: Connection, ids: Iterable[str]) -> dict[str, str]:
    """For each of ``ids`` that names a stored paper (an alias, or a key with no alias row:
    a paper stored before aliases), the key it is stored under."""
    wanted = list(dict.fromkeys(ids))
    found: dict[str, str] = {}
    for chunk in chunks(wanted, CHUNK):
        query = sa.select(paper_aliases.c.alias, paper_aliases.c.paper_key)
        for alias, key in conn.execute(query.where(paper_aliases.c.alias.in_(chunk))):
            found[alias] = key
    rest = [i for i in wanted if i not in found]
    for chunk in chunks(rest, CHUNK):
        for key in conn.execute(sa.select(papers.c.key).where(papers.c.key.in_(chunk))).scalars():
            found[key] = key
    return found


def stored_papers(conn: Connection, keys: Collection[str]) -> dict[str, Paper]:
    """The stored papers of ``keys`` (keys, not aliases), by key."""
    found: dict[str, Paper] = {}
    for chunk in chunks(sorted(keys), CHUNK):
        for r in conn.execute(sa.select(papers).where(papers.c.key.in_(chunk))).mappings():
            found[r["key"]] = paper_of(r)
    return found


def add_aliases(conn: Connection, names: Mapping[str, str]) -> None:
    """Record each alias -> key of ``names``; an alias already naming a paper keeps it (the
    first wins, also against another process writing at the same moment)."""
    rows = [{"alias": a, "paper_key": names[a]} for a in sorted(names)]  # see papers.py
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        conn.execute(postgresql.insert(paper_aliases).on_conflict_do_nothing(), rows)
    elif conn.dialect.name == "sqlite":
        conn.execute(sqlite.insert(paper_aliases).on_conflict_do_nothing(), rows)
    else:  # pragma: no cover - the two databases paper-digest supports are above
        taken = set(known_keys(conn, names))
        fresh = [r for r in rows if r["alias"] not in taken]
        if fresh:
            conn.execute(sa.insert(paper_aliases), fresh)


def lookups(raw: str) -> list[str]:
    """The identities a reader's id may stand for, most exact first: as given (a key or an
    alias), the arXiv id of ``2503.01234v2`` / an abs or pdf link / ``oai:`` guid / arXiv
    DOI, ``doi:`` + a DOI (bare, ``doi:`` or ``https://doi.org/``), ``link:`` + a link."""
    text = raw.strip()
    out = [text]
    base = arxiv_id_of(text)
    if base:
        out.append(base)
    doi = doi_of(text)
    if doi:
        out.append("doi:" + doi)
    link = canonical_link(
        "https://" + text.removeprefix("link:") if text.startswith("link:") else text
    )
    if link:
        out.append("link:" + link)
    return list(dict.fromkeys(out))
