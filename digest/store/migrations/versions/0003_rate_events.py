"""rate_events: the web's rate limits kept in the database, so that they hold across
processes and restarts (one row per live event; expired rows are deleted as they go).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("expires", sa.Float, nullable=False),
    )
    op.create_index("ix_rate_events_key", "rate_events", ["key", "expires"])
    op.create_index("ix_rate_events_expires", "rate_events", ["expires"])


def downgrade() -> None:
    op.drop_index("ix_rate_events_expires", "rate_events")
    op.drop_index("ix_rate_events_key", "rate_events")
    op.drop_table("rate_events")
