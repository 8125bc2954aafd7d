"""subscribers.confirm_nonce: a confirmation link confirms the request it was sent for, once.

Each web subscription request stores a fresh nonce, which its confirmation link carries;
confirming clears it. A pending row made before this revision has none: the links sent for
it (which carry none) still confirm it, once.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from digest.store.migrations.columns import drop_subscriber_column

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscribers") as batch:
        batch.add_column(sa.Column("confirm_nonce", sa.String(32)))


def downgrade() -> None:
    drop_subscriber_column("confirm_nonce")
