"""mailbox_messages: the bounce mailbox's messages acted on (bounces, complaints, mailto
unsubscribes), so that none is acted on twice.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mailbox_messages",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("subscriber_id", sa.Integer),
        sa.Column("delivery_id", sa.String(32)),
        sa.Column("detail", sa.Text),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_mailbox_messages_subscriber", "mailbox_messages", ["subscriber_id"])


def downgrade() -> None:
    op.drop_index("ix_mailbox_messages_subscriber", table_name="mailbox_messages")
    op.drop_table("mailbox_messages")
