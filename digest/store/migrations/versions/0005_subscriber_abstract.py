"""subscribers.abstract: how much of each abstract a subscriber's digests show ("full",
"short" or "none"; NULL: the configuration's mail.abstract).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from digest.store.migrations.columns import drop_subscriber_column

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscribers") as batch:
        batch.add_column(sa.Column("abstract", sa.String(8)))


def downgrade() -> None:
    drop_subscriber_column("abstract")
