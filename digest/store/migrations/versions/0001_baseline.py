"""Baseline: the tables as paper-digest made them before migrations (its schema version 3).

A database made then has these tables but no ``alembic_version``: ``digest.store.migrate``
recognises it, adds what versions 1 and 2 lacked, and stamps it with this revision.

Revision ID: 0001
Revises: (none)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

#: The pre-migration code refuses a database whose ``meta.schema_version`` is higher than
#: its own: a revision that old code cannot work with raises it.
SCHEMA_VERSION = "3"


def upgrade() -> None:
    meta = op.create_table(
        "meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "papers",
        sa.Column("key", sa.String(512), primary_key=True),
        sa.Column("arxiv_id", sa.String(64)),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("abstract", sa.Text, nullable=False),
        sa.Column("authors", sa.Text, nullable=False),
        sa.Column("upvotes", sa.Integer, nullable=False),
        sa.Column("published", sa.DateTime(timezone=True)),
        sa.Column("extra", sa.Text, nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "listings",
        sa.Column("date", sa.Date, primary_key=True),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
    )
    op.create_table(
        "listing_papers",
        sa.Column("date", sa.Date, primary_key=True),
        sa.Column("paper_key", sa.String(512), primary_key=True),
        sa.Column("position", sa.Integer, nullable=False),
    )
    _subscribers()
    _deliveries()
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("stage", sa.String(16)),
        sa.Column("error", sa.Text),
        sa.Column("fetched", sa.Integer, nullable=False),
        sa.Column("sent", sa.Integer, nullable=False),
        sa.Column("failed", sa.Integer, nullable=False),
        sa.Column("deferred", sa.Integer, nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
    )
    op.bulk_insert(meta, [{"key": "schema_version", "value": SCHEMA_VERSION}])


def _subscribers() -> None:
    op.create_table(
        "subscribers",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("email", sa.String(320), nullable=False, unique=True),
        sa.Column("name", sa.Text),
        sa.Column("keywords", sa.Text, nullable=False),
        sa.Column("exclude", sa.Text, nullable=False),
        sa.Column("max_papers", sa.Integer),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_reason", sa.String(32)),
        sa.Column("token", sa.String(64), nullable=False, unique=True),
        sa.Column("in_config", sa.Boolean, nullable=False),
        sa.Column("hard_bounces", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("send_at", sa.String(5)),
        sa.Column("timezone", sa.String(64)),
        sa.Column("frequency", sa.String(8)),
        sa.Column("weekday", sa.String(3)),
        sa.Column("days", sa.String(32)),
        sa.Column("next_send_at", sa.DateTime(timezone=True)),
        sa.Column("covered_until", sa.Date),
        sa.Column("confirmed_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_subscribers_due", "subscribers", ["status", "next_send_at"])


def _deliveries() -> None:
    op.create_table(
        "deliveries",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id"), nullable=False),
        sa.Column("listing_date", sa.Date, nullable=False),
        sa.Column("message_id", sa.String(255), nullable=False, unique=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
        sa.Column("claimed_by", sa.Integer),
        sa.Column("claimed_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_deliveries_status", "deliveries", ["status"])
    op.create_index("ix_deliveries_subscriber", "deliveries", ["subscriber_id"])
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


def downgrade() -> None:
    for table in (
        "delivery_papers",
        "deliveries",
        "subscribers",
        "runs",
        "listing_papers",
        "listings",
        "papers",
        "meta",
    ):
        op.drop_table(table)  # their indexes go with them
