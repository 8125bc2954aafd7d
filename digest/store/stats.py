"""Counts for the operator's overview (``/admin``, ``digest status --json``) that no
repository needs for its own work: subscribers added per day."""

from __future__ import annotations

from datetime import UTC, date, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from digest.store.schema import aware, subscribers


class Stats:
    """Read-only counts over the tables."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def added_per_day(self, since: datetime) -> list[tuple[date, int]]:
        """Subscribers added (in any state now) per UTC day from ``since``, oldest first;
        days with none left out."""
        c = subscribers.c
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(c.created_at).where(c.created_at >= since)).scalars()
            per_day: dict[date, int] = {}
            for when in rows:
                day = (aware(when) or since).astimezone(UTC).date()
                per_day[day] = per_day.get(day, 0) + 1
        return sorted(per_day.items())
