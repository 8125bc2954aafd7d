"""What several revisions do alike: dropping a column of ``subscribers`` in a downgrade."""

from __future__ import annotations

import sqlite3

from alembic import op


def drop_subscriber_column(name: str) -> None:
    """``ALTER TABLE subscribers DROP COLUMN name``: a batch copy of the table would DROP
    TABLE it, which SQLite refuses once ``deliveries`` refer to it (FOREIGN KEY constraint
    failed); only a SQLite older than 3.35, which has no DROP COLUMN, copies it."""
    if op.get_bind().dialect.name == "sqlite" and sqlite3.sqlite_version_info < (3, 35):
        with op.batch_alter_table("subscribers") as batch:
            batch.drop_column(name)
    else:
        op.drop_column("subscribers", name)
