"""Leaner digests on PostgreSQL, a bounded read for recording them, paper ids never reused.

- ``deliveries.message_id`` loses its unique constraint for a hash index
  (``ix_deliveries_message_id``): on PostgreSQL 4 bytes of hash an entry instead of a B-tree
  of the whole Message-ID (half of which stood empty, the ids being random); on SQLite, which
  has no hash index, a plain index (the table is rebuilt to drop the constraint).
- Each paper's ``first_seen`` is made no later than the first digest carrying it (a paper
  merged into a newer row by revision 0006 could be later): recording a digest now reads
  only the subscriber's digests recorded since its papers were first seen, and that bound
  holds for what was sent before too.
- SQLite numbers papers from a high-water mark kept in ``meta`` (``papers_id_high``), as
  PostgreSQL's sequence does: pruning the newest paper no longer lets the next one take its
  id while old sent-state still names it.

Nothing is sent again: the digests' rows are copied as they are.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sys
from array import array
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_HIGH = "papers_id_high"
#: The columns of ``deliveries`` at revisions 0008 and 0009 (frozen here), in order.
_COLUMNS = (
    "id, subscriber_id, listing_date, message_id, status, attempts, error, created_at,"
    " sent_at, claimed_by, claimed_at, papers, shown"
)
_OPEN = ("pending", "sending")

_TRIGGER_0008 = (
    "CREATE TRIGGER papers_id AFTER INSERT ON papers WHEN NEW.id IS NULL BEGIN"
    " UPDATE papers SET id = (SELECT coalesce(max(id), 0) + 1 FROM papers)"
    " WHERE rowid = NEW.rowid; END"
)
_TRIGGER_0009 = (
    "CREATE TRIGGER papers_id AFTER INSERT ON papers WHEN NEW.id IS NULL BEGIN"
    f" INSERT INTO meta (key, value) SELECT '{_HIGH}', coalesce(max(id), 0) + 1"
    " FROM papers WHERE true ON CONFLICT (key) DO UPDATE"
    " SET value = max(CAST(value AS INTEGER) + 1, CAST(excluded.value AS INTEGER));"
    " UPDATE papers SET id = (SELECT CAST(value AS INTEGER) FROM meta"
    f" WHERE key = '{_HIGH}') WHERE rowid = NEW.rowid; END"
)


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "sqlite":
        _rebuild_sqlite(unique_message_id=False)
        op.create_index("ix_deliveries_message_id", "deliveries", ["message_id"])
        op.execute("DROP TRIGGER papers_id")
        op.execute(_TRIGGER_0009)
    else:
        # IF EXISTS: tests/test_claims.py makes its "version 1" tables from today's schema
        op.execute("ALTER TABLE deliveries DROP CONSTRAINT IF EXISTS deliveries_message_id_key")
        op.create_index(
            "ix_deliveries_message_id", "deliveries", ["message_id"], postgresql_using="hash"
        )
    named = _first_seen_no_later_than_sent(conn)
    if conn.dialect.name == "sqlite":  # the largest id given: in papers, or a pruned one's
        high = conn.exec_driver_sql("SELECT max(id) FROM papers").scalar() or 0
        if max(high, named):
            op.execute(f"INSERT INTO meta (key, value) VALUES ('{_HIGH}', '{max(high, named)}')")


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "sqlite":
        _rebuild_sqlite(unique_message_id=True)
        op.execute("DROP TRIGGER papers_id")
        op.execute(_TRIGGER_0008)
        op.execute(f"DELETE FROM meta WHERE key = '{_HIGH}'")
    else:
        op.drop_index("ix_deliveries_message_id", table_name="deliveries")
        op.create_unique_constraint("deliveries_message_id_key", "deliveries", ["message_id"])


def _rebuild_sqlite(*, unique_message_id: bool) -> None:
    """SQLite drops (or adds) a table constraint only by copying the table: ``deliveries``
    made anew as revision 0008 had it, with or without ``UNIQUE (message_id)``, its rows
    copied in one statement, and its indexes made again (but the Message-ID's: the
    caller's)."""
    unique = ", UNIQUE (message_id)" if unique_message_id else ""
    op.execute(
        "CREATE TABLE deliveries_0009 (id VARCHAR(32) NOT NULL,"
        " subscriber_id INTEGER NOT NULL, listing_date DATE NOT NULL,"
        " message_id VARCHAR(255) NOT NULL, status VARCHAR(16) NOT NULL,"
        " attempts INTEGER NOT NULL, error TEXT, created_at DATETIME NOT NULL,"
        " sent_at DATETIME, claimed_by INTEGER, claimed_at DATETIME,"
        " papers BLOB DEFAULT '' NOT NULL, shown INTEGER DEFAULT '0' NOT NULL,"
        " PRIMARY KEY (id), FOREIGN KEY(subscriber_id) REFERENCES subscribers (id)"
        f"{unique})"
    )
    op.execute(f"INSERT INTO deliveries_0009 ({_COLUMNS}) SELECT {_COLUMNS} FROM deliveries")
    op.execute("DROP TABLE deliveries")  # and its indexes
    op.execute("ALTER TABLE deliveries_0009 RENAME TO deliveries")
    for status in _OPEN:
        where = sa.text(f"status = '{status}'")
        op.create_index(f"ix_deliveries_{status}", "deliveries", ["status"], sqlite_where=where)
    op.create_index("ix_deliveries_subscriber", "deliveries", ["subscriber_id"])


def _first_seen_no_later_than_sent(conn: Any) -> int:
    """Each paper's ``first_seen`` set back to the ``created_at`` of the earliest digest
    carrying it, where that is earlier (one pass over the digests); returns the largest
    paper id a digest names (0: none)."""
    earliest: dict[int, datetime] = {}
    rows = conn.exec_driver_sql("SELECT created_at, papers FROM deliveries WHERE papers <> ''")
    for created_at, blob in rows:
        when = _aware(created_at)
        for paper_id in _unpack(blob):
            if paper_id not in earliest or when < earliest[paper_id]:
                earliest[paper_id] = when
    papers = sa.table("papers", sa.column("id"), sa.column("first_seen", sa.DateTime(True)))
    later = [
        {"pid": paper_id, "when": when}
        for paper_id, seen in conn.execute(sa.select(papers.c.id, papers.c.first_seen))
        if paper_id in earliest and (when := earliest[paper_id]) < _aware(seen)
    ]
    update = (
        sa.update(papers)
        .where(papers.c.id == sa.bindparam("pid"))
        .values(first_seen=sa.bindparam("when", type_=sa.DateTime(True)))
    )
    for start in range(0, len(later), 5_000):
        conn.execute(update, later[start : start + 5_000])
    return max(earliest, default=0)


def _aware(value: datetime | str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _unpack(blob: bytes | str | None) -> array[int]:
    """As ``digest.store.outbox_rows.unpack_ids`` (frozen here): uint32, little-endian."""
    ids = array("I")
    if blob:
        ids.frombytes(blob.encode() if isinstance(blob, str) else bytes(blob))
        if sys.byteorder == "big":
            ids.byteswap()
    return ids
