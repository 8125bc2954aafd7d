"""Several sources, one identity per paper: ``listings`` and ``listing_papers`` keyed by
source too (older rows named after their kind: "huggingface" for a URL, "file" for a
path), ``paper_aliases`` filled with every identity of the stored papers (so a paper stored
under an old ``title:`` key stays that paper), ``source_state``, ``subscribers.sources``.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import json
import sqlite3

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_KIND = "CASE WHEN source LIKE 'http%' THEN 'huggingface' ELSE 'file' END"


def upgrade() -> None:
    op.create_table(
        "listings_0006",
        sa.Column("date", sa.Date, primary_key=True),
        sa.Column("source", sa.String(64), primary_key=True),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
    )
    op.execute(
        "INSERT INTO listings_0006 (date, source, fetched_at, count)"
        f" SELECT date, {_KIND}, fetched_at, count FROM listings"
    )
    op.create_table(
        "listing_papers_0006",
        sa.Column("date", sa.Date, primary_key=True),
        sa.Column("source", sa.String(64), primary_key=True),
        sa.Column("paper_key", sa.String(512), primary_key=True),
        sa.Column("position", sa.Integer, nullable=False),
    )
    op.execute(
        "INSERT INTO listing_papers_0006 (date, source, paper_key, position)"
        " SELECT lp.date, COALESCE(l.source, 'huggingface'), lp.paper_key, lp.position"
        " FROM listing_papers lp LEFT JOIN listings_0006 l ON l.date = lp.date"
    )
    op.drop_table("listing_papers")
    op.drop_table("listings")
    op.rename_table("listings_0006", "listings")
    op.rename_table("listing_papers_0006", "listing_papers")
    op.create_index("ix_listing_papers_paper", "listing_papers", ["paper_key"])

    op.create_table(
        "paper_aliases",
        sa.Column("alias", sa.String(512), primary_key=True),
        sa.Column("paper_key", sa.String(512), nullable=False),
    )
    op.create_index("ix_paper_aliases_paper", "paper_aliases", ["paper_key"])
    _fill_aliases()

    op.create_table(
        "source_state",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_fetch_at", sa.DateTime(timezone=True)),
        sa.Column("last_ok_at", sa.DateTime(timezone=True)),
        sa.Column("last_count", sa.Integer),
        sa.Column("last_error", sa.Text),
        sa.Column("last_error_at", sa.DateTime(timezone=True)),
        sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
        sa.Column("validated_url", sa.Text),
        sa.Column("etag", sa.Text),
        sa.Column("last_modified", sa.Text),
    )
    with op.batch_alter_table("subscribers") as batch:
        batch.add_column(sa.Column("sources", sa.Text))


def _fill_aliases() -> None:
    """Every identity of every stored paper, naming its key; an identity two stored papers
    share stays with the first (in key order), as a new listing would find it."""
    from digest.identity import identities

    conn = op.get_bind()
    aliases = sa.table("paper_aliases", sa.column("alias"), sa.column("paper_key"))
    taken: set[str] = set()
    rows = conn.execute(
        sa.text("SELECT key, arxiv_id, title, authors, extra FROM papers ORDER BY key")
    )
    batch: list[dict[str, str]] = []
    for key, arxiv_id, title, authors, extra in rows:
        try:
            names = json.loads(authors or "[]")
            more = json.loads(extra or "{}")
        except ValueError:
            names, more = [], {}
        found = identities(
            arxiv_id=arxiv_id,
            doi=more.get("doi"),
            link=more.get("link"),
            title=title or "",
            authors=[a for a in names if isinstance(a, str)],
        )
        for alias in (key, *found):
            if alias not in taken:
                taken.add(alias)
                batch.append({"alias": alias, "paper_key": key})
        if len(batch) >= 5000:
            conn.execute(sa.insert(aliases), batch)
            batch = []
    if batch:
        conn.execute(sa.insert(aliases), batch)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite" and sqlite3.sqlite_version_info < (3, 35):
        with op.batch_alter_table("subscribers") as batch:  # no DROP COLUMN: a table copy
            batch.drop_column("sources")
    else:
        # ALTER TABLE ... DROP COLUMN: a batch copy of subscribers would DROP TABLE it, which
        # SQLite refuses once deliveries refer to it (FOREIGN KEY constraint failed)
        op.drop_column("subscribers", "sources")
    op.drop_table("source_state")
    op.drop_index("ix_paper_aliases_paper", table_name="paper_aliases")
    op.drop_table("paper_aliases")
    op.drop_index("ix_listing_papers_paper", table_name="listing_papers")
    op.create_table(
        "listings_0005",
        sa.Column("date", sa.Date, primary_key=True),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
    )
    op.execute(
        "INSERT INTO listings_0005 (date, source, fetched_at, count)"
        " SELECT date, MIN(source), MAX(fetched_at), SUM(count) FROM listings GROUP BY date"
    )
    op.create_table(
        "listing_papers_0005",
        sa.Column("date", sa.Date, primary_key=True),
        sa.Column("paper_key", sa.String(512), primary_key=True),
        sa.Column("position", sa.Integer, nullable=False),
    )
    op.execute(
        "INSERT INTO listing_papers_0005 (date, paper_key, position)"
        " SELECT date, paper_key, MIN(position) FROM listing_papers GROUP BY date, paper_key"
    )
    op.drop_table("listing_papers")
    op.drop_table("listings")
    op.rename_table("listings_0005", "listings")
    op.rename_table("listing_papers_0005", "listing_papers")
