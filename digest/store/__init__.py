"""Store: everything the service remembers, over one SQLAlchemy Core schema.

``store`` (papers and listings, subscribers, the outbox of deliveries and claims, runs).
Works on SQLite and PostgreSQL. May import ``compose``, ``select`` and the bottom layer.
"""

from digest.store.store import (
    INSERT_ROWS,
    Claim,
    ImportCounts,
    PendingDelivery,
    PlannedDelivery,
    RunRecord,
    Store,
    deliveries,
    delivery_papers,
    metadata,
    new_delivery_id,
    subscribers,
)

__all__ = [
    "INSERT_ROWS",
    "Claim",
    "ImportCounts",
    "PendingDelivery",
    "PlannedDelivery",
    "RunRecord",
    "Store",
    "deliveries",
    "delivery_papers",
    "metadata",
    "new_delivery_id",
    "subscribers",
]
