"""Store: everything the service remembers, over one SQLAlchemy Core schema.

Small repositories, each owning its tables, composed by a thin ``Store`` (``store``) that
opens the engine and holds them: ``store.papers`` (``papers`` with ``paper_rows``: papers,
the identities they are known by, each source's listings), ``store.sources``
(``source_state``: each source's last fetch, error and conditional-GET validators),
``store.members`` (``members`` with ``subscriber_rows``: subscribers, confirmation,
preferences, schedule, imports; ``subscriber_sources``: a subscriber's choice of sources
saved from the manage page), ``store.outbox`` (``outbox`` with ``outbox_rows``:
deliveries, claims, marks, history), ``store.run_log`` (``runs``: runs and meta keys),
``store.limits`` (``limits``: the web's rate limits, shared by every process),
``store.bounces`` (``bounces``: the bounce mailbox's messages acted on), ``store.profiles``
(``profiles``: the similarity ranker's fitted model and each subscriber's profile),
``store.likes`` (``likes`` with ``like_rows``: liked and disliked papers, their origins).
``schema`` holds the tables, opening the engine and the transaction that turns SQLAlchemy's
errors into ``StateError``; ``migrate`` makes and upgrades the tables with the Alembic
revisions of ``migrations/`` (``Store`` on opening; ``digest db`` with ``open_engine``).

Where a query spans two areas it lives with the table it asks about, and reads the other
table only: the outbox's ``delivered_keys`` joins ``listing_papers`` and ``papers``
(which of a day's papers a subscriber had: digests hold ``papers.id``), ``pending`` joins
``subscribers`` (a digest goes out with its subscriber), ``claims`` joins ``runs`` (is the
claiming run alive?), the likes join ``paper_aliases`` and ``papers`` (the stored paper a
like names) and read ``subscribers`` (the config's lists name them by address). Two writes
cross over, because a delivery's outcome and its subscriber's bounce count must change in one
transaction (crash-safe): ``mark_sent`` ends the subscriber's run of hard bounces and
``mark_failed`` counts one more (suspending at the limit).

Works on SQLite and PostgreSQL. May import ``compose``, ``select`` and the bottom layer.
"""

from digest.store.bounces import Applied, Bounces, DeliveryRef
from digest.store.limits import RateLimits
from digest.store.members import Members
from digest.store.outbox import (
    Claim,
    DeliveryRecord,
    Outbox,
    PendingDelivery,
    new_delivery_id,
)
from digest.store.outbox_rows import INSERT_ROWS, PlannedDelivery
from digest.store.papers import Papers
from digest.store.profiles import Profiles
from digest.store.runs import RunLog, RunRecord, RunTotals
from digest.store.schema import deliveries, metadata, open_engine, papers, subscribers
from digest.store.source_state import SourceState, SourceStates
from digest.store.store import Store
from digest.store.subscriber_rows import ImportCounts

__all__ = [
    "INSERT_ROWS",
    "Applied",
    "Bounces",
    "Claim",
    "DeliveryRecord",
    "DeliveryRef",
    "ImportCounts",
    "Members",
    "Outbox",
    "Papers",
    "PendingDelivery",
    "PlannedDelivery",
    "Profiles",
    "RateLimits",
    "RunLog",
    "RunRecord",
    "RunTotals",
    "SourceState",
    "SourceStates",
    "Store",
    "deliveries",
    "metadata",
    "new_delivery_id",
    "open_engine",
    "papers",
    "subscribers",
]
