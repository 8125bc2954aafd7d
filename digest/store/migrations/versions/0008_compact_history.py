"""Compact sent-state: ``papers.id`` (a number per paper, set by the database), each digest's
papers packed into its own row (``deliveries.papers``: their ids in order; ``shown``)
instead of a ``delivery_papers`` row per paper, and ``deliveries`` indexed by status only
where a digest is still to send (``ix_deliveries_pending``, ``ix_deliveries_sending``).

Nothing sent is sent again: every ``delivery_papers`` row becomes its paper's id in its
digest's array (a key stored only as an alias is followed to its paper). The downgrade
unpacks them back.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sys
from array import array
from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

#: Digests updated per statement batch while packing.
_BATCH = 5_000
#: What numbered new papers at this revision, by dialect (frozen here: revision 0009 changed
#: SQLite's).
PAPERS_ID_DDL = {
    "sqlite": (
        "CREATE TRIGGER papers_id AFTER INSERT ON papers WHEN NEW.id IS NULL BEGIN"
        " UPDATE papers SET id = (SELECT coalesce(max(id), 0) + 1 FROM papers)"
        " WHERE rowid = NEW.rowid; END",
    ),
    "postgresql": (
        "CREATE SEQUENCE IF NOT EXISTS papers_id_seq OWNED BY papers.id",
        "CREATE OR REPLACE FUNCTION papers_id() RETURNS trigger AS $$ BEGIN"
        " IF NEW.id IS NULL THEN NEW.id := nextval('papers_id_seq'); END IF;"
        " RETURN NEW; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER papers_id BEFORE INSERT ON papers FOR EACH ROW"
        " EXECUTE FUNCTION papers_id()",
    ),
}
#: The statuses of digests still to send, each with a partial index of its own.
_OPEN = ("pending", "sending")


def pack_ids(ids: list[int]) -> bytes:
    """As ``digest.store.outbox_rows.pack_ids`` (frozen here): uint32, little-endian."""
    packed = array("I", ids)
    if sys.byteorder == "big":
        packed.byteswap()
    return packed.tobytes()


def unpack_ids(blob: bytes | str | None) -> array[int]:
    ids = array("I")
    if blob:
        ids.frombytes(blob.encode() if isinstance(blob, str) else bytes(blob))
        if sys.byteorder == "big":
            ids.byteswap()
    return ids


def upgrade() -> None:
    conn = op.get_bind()
    op.add_column("papers", sa.Column("id", sa.Integer))
    if conn.dialect.name == "sqlite":
        op.execute("UPDATE papers SET id = rowid")
    for statement in PAPERS_ID_DDL[conn.dialect.name]:
        op.execute(statement)
    if conn.dialect.name == "postgresql":
        op.execute("UPDATE papers SET id = nextval('papers_id_seq')")
    op.create_index("ix_papers_id", "papers", ["id"], unique=True)

    op.add_column(
        "deliveries",
        sa.Column("papers", sa.LargeBinary, nullable=False, server_default=sa.text("''")),
    )
    op.add_column("deliveries", sa.Column("shown", sa.Integer, nullable=False, server_default="0"))
    _pack(conn)
    op.drop_table("delivery_papers")  # and its index
    op.execute("DROP INDEX IF EXISTS ix_deliveries_status")  # a version 1 database had none
    for status in _OPEN:
        where = sa.text(f"status = '{status}'")
        op.create_index(
            f"ix_deliveries_{status}",
            "deliveries",
            ["status"],
            sqlite_where=where,
            postgresql_where=where,
        )


def _pack(conn: Any) -> None:
    """Each digest's ``delivery_papers`` rows into its ``papers`` array, in position order
    (read in one ordered pass; written ``_BATCH`` digests a statement batch)."""
    rows = conn.exec_driver_sql(
        "SELECT dp.delivery_id, COALESCE(p.id, pa.id), dp.shown FROM delivery_papers dp"
        " LEFT JOIN papers p ON p.key = dp.paper_key"
        " LEFT JOIN paper_aliases a ON p.key IS NULL AND a.alias = dp.paper_key"
        " LEFT JOIN papers pa ON pa.key = a.paper_key"
        " ORDER BY dp.delivery_id, dp.position"
    )
    ids: dict[str, list[int]] = defaultdict(list)
    shown: dict[str, int] = defaultdict(int)
    for delivery_id, paper_id, is_shown in rows:
        if paper_id is not None and paper_id not in ids[delivery_id]:
            ids[delivery_id].append(paper_id)
            shown[delivery_id] += 1 if is_shown else 0
    update = sa.text("UPDATE deliveries SET papers = :papers, shown = :shown WHERE id = :id")
    update = update.bindparams(sa.bindparam("papers", type_=sa.LargeBinary))
    batch: list[dict[str, Any]] = []
    for delivery_id, paper_ids in ids.items():
        batch.append(
            {"id": delivery_id, "papers": pack_ids(paper_ids), "shown": shown[delivery_id]}
        )
        if len(batch) >= _BATCH:
            conn.execute(update, batch)
            batch = []
    if batch:
        conn.execute(update, batch)


def downgrade() -> None:
    conn = op.get_bind()
    for status in _OPEN:
        op.drop_index(f"ix_deliveries_{status}", table_name="deliveries")
    op.create_index("ix_deliveries_status", "deliveries", ["status"])
    op.create_table(
        "delivery_papers",
        sa.Column("delivery_id", sa.String(32), sa.ForeignKey("deliveries.id"), nullable=False),
        sa.Column("subscriber_id", sa.Integer, nullable=False),
        sa.Column("paper_key", sa.String(512), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("shown", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("subscriber_id", "paper_key"),
    )
    op.create_index("ix_delivery_papers_delivery", "delivery_papers", ["delivery_id"])
    _unpack(conn)
    # ALTER TABLE DROP COLUMN (SQLite >= 3.35): a batch copy of deliveries could not drop
    # it once delivery_papers refers to it (FOREIGN KEY constraint failed).
    op.drop_column("deliveries", "shown")
    op.drop_column("deliveries", "papers")
    if conn.dialect.name == "sqlite":
        op.execute("DROP TRIGGER papers_id")
    else:
        op.execute("DROP TRIGGER papers_id ON papers")
        op.execute("DROP FUNCTION papers_id()")
    op.drop_index("ix_papers_id", table_name="papers")
    op.drop_column("papers", "id")


def _unpack(conn: Any) -> None:
    keys = dict(conn.exec_driver_sql("SELECT id, key FROM papers").all())
    rows = conn.exec_driver_sql(
        "SELECT id, subscriber_id, papers, shown FROM deliveries WHERE status <> 'failed'"
    )
    insert = sa.text(
        "INSERT INTO delivery_papers (delivery_id, subscriber_id, paper_key, position, shown)"
        " VALUES (:d, :s, :k, :p, :shown)"
    ).bindparams(sa.bindparam("shown", type_=sa.Boolean))
    batch: list[dict[str, Any]] = []
    seen: set[tuple[int, str]] = set()
    for delivery_id, subscriber_id, blob, shown in rows.all():
        for position, paper_id in enumerate(unpack_ids(blob)):
            key = keys.get(paper_id)
            if key is None or (subscriber_id, key) in seen:
                continue
            seen.add((subscriber_id, key))
            batch.append(
                {
                    "d": delivery_id,
                    "s": subscriber_id,
                    "k": key,
                    "p": position,
                    "shown": position < shown,
                }
            )
    for start in range(0, len(batch), _BATCH):
        conn.execute(insert, batch[start : start + _BATCH])
