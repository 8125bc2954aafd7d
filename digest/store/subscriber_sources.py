"""A subscriber's choice of sources (``subscribers.sources``), written on its own: the manage
page saves it beside :meth:`Members.update_preferences`, which leaves it alone."""

from __future__ import annotations

import json
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from digest.store.schema import begin, subscribers, utc_now


def save_sources(engine: Engine, subscriber_id: int, sources: Sequence[str] | None) -> bool:
    """Store subscriber ``subscriber_id``'s sources (None: every source; the names as
    :func:`~digest.store.subscriber_rows.subscriber_values` writes them); whether the
    subscriber exists. Raises StateError."""
    value = None if sources is None else json.dumps(list(sources), ensure_ascii=False)
    with begin(engine) as conn:
        result = conn.execute(
            sa.update(subscribers)
            .where(subscribers.c.id == subscriber_id)
            .values(sources=value, updated_at=utc_now())
        )
        return bool(result.rowcount)
