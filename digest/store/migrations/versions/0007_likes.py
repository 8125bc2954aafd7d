"""A subscriber's library and the similarity ranker: ``likes`` (liked and disliked papers),
``ranker_models`` (fitted models), ``profiles`` (each subscriber's, per model) and
``subscribers.like_threshold``.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from digest.store.migrations.columns import drop_subscriber_column

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "likes",
        sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id"), primary_key=True),
        sa.Column("paper_key", sa.String(512), primary_key=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("title", sa.Text),
        sa.Column("abstract", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_likes_paper", "likes", ["paper_key"])
    op.create_table(
        "ranker_models",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("papers", sa.Integer, nullable=False),
        sa.Column("fitted_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "profiles",
        sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id"), primary_key=True),
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    with op.batch_alter_table("subscribers") as batch:
        batch.add_column(sa.Column("like_threshold", sa.Float))


def downgrade() -> None:
    drop_subscriber_column("like_threshold")
    op.drop_table("profiles")
    op.drop_table("ranker_models")
    op.drop_index("ix_likes_paper", table_name="likes")
    op.drop_table("likes")
